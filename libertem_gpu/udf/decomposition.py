"""Principal component analysis of a data set in a few streaming passes: :func:`decompose`.

The frames are the rows of a matrix ``X`` (scan positions x pixels), centred by the mean frame.
A randomised singular value decomposition (Halko, Martinsson and Tropp 2011) finds its leading
components without forming ``X``: project the frames onto ``l = n_components + oversampling``
random frame-shaped masks (one pass, with the mean and the total variance), orthonormalise the
``(positions, l)`` result, sum the frames weighed by it (a pass), and decompose that small
``(l, pixels)`` matrix. Each power iteration adds two passes that sharpen the subspace where the
spectrum decays slowly. Memory: ``l`` values per scan position and ``l`` frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, UnsupportedDTypeError

__all__ = ["Decomposition", "decompose"]


@dataclass(frozen=True)
class Decomposition:
    """The result of :func:`decompose`.

    Attributes
    ----------
    components : numpy.ndarray
        ``(k, *sig)``: the principal components, orthonormal frames, strongest first (the
        sign of each is chosen so that its largest pixel is positive).
    scores : numpy.ndarray
        ``(*nav, k)``: each centred frame's coordinates on them, NaN at positions not processed.
    singular_values : numpy.ndarray
        ``(k,)``, descending.
    explained_variance_ratio : numpy.ndarray
        ``(k,)``: each component's share of the frames' total variance about the mean.
    mean : numpy.ndarray
        ``(*sig)``: the mean frame that was taken away.
    frames : int
        How many frames went in.
    frame_scale, pixel_scale : numpy.ndarray or None
        With ``poisson=True``: ``sqrt`` of each frame's total (``(*nav)``, NaN where not
        processed) and of each pixel's total over the frames (``(*sig)``). Components,
        scores, singular values and ``mean`` are then those of the normalised frames
        ``X / sqrt(frame total x pixel total)``; :meth:`reconstruct` and :meth:`nmf` scale
        back.
    """

    components: np.ndarray
    scores: np.ndarray
    singular_values: np.ndarray
    explained_variance_ratio: np.ndarray
    mean: np.ndarray
    frames: int
    frame_scale: np.ndarray | None = None
    pixel_scale: np.ndarray | None = None

    def reconstruct(self, n: int | None = None) -> np.ndarray:
        """The frames rebuilt from the mean and the first ``n`` components (all by default),
        ``(*nav, *sig)``: a denoised copy, for data sets that fit in memory."""
        k = len(self.singular_values) if n is None else int(n)
        sig = self.mean.shape
        flat = self.scores[..., :k] @ self.components[:k].reshape(k, self.mean.size)
        frames = flat.reshape(*self.scores.shape[:-1], *sig) + self.mean
        if self.frame_scale is None or self.pixel_scale is None:
            return frames
        per_frame = self.frame_scale.reshape(self.frame_scale.shape + (1,) * len(sig))
        return frames * per_frame * self.pixel_scale

    def nmf(
        self,
        n_factors: int,
        rank: int | None = None,
        iterations: int = 2000,
        seed: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Non-negative factors of the frames' low-rank approximation: ``maps @ patterns``
        closest (least squares) to the mean plus the first ``rank`` components, both
        non-negative, by multiplicative updates (Lee and Seung 2001) on the factored
        approximation, without passes over the data.

        Parameters
        ----------
        n_factors : int
            Factors (phases) to find.
        rank : int, optional
            Components of the approximation (default: all that were found); those that hold
            only noise add nothing but noise.
        iterations : int
            Updates of both factors.
        seed : int
            Of the random start.

        Returns
        -------
        maps : numpy.ndarray
            ``(*nav, n_factors)``, NaN at positions not processed.
        patterns : numpy.ndarray
            ``(n_factors, *sig)``, each scaled to a largest value of 1.
        """
        if isinstance(n_factors, bool) or not isinstance(n_factors, (int, np.integer)):
            raise InvalidParameterError(f"nmf: n_factors must be a whole number, got {n_factors!r}")
        if n_factors < 1:
            raise InvalidParameterError(f"nmf: n_factors must be >= 1, got {n_factors}")
        r = len(self.singular_values) if rank is None else int(rank)
        flat_scores = self.scores.reshape(-1, self.scores.shape[-1])
        seen = ~np.isnan(flat_scores[:, 0])
        # X ~ left @ right: the mean and r components, never formed
        left = np.hstack([flat_scores[seen, :r], np.ones((int(seen.sum()), 1))])
        right = np.vstack([self.components[:r].reshape(r, -1), self.mean.reshape(1, -1)])
        if self.frame_scale is not None and self.pixel_scale is not None:
            left = left * self.frame_scale.reshape(-1)[seen][:, None]
            right = right * self.pixel_scale.reshape(1, -1)
        rng = np.random.default_rng(seed)
        scale = max(float(right[-1].mean() * left[:, -1].mean()), 1e-12)
        maps = rng.random((left.shape[0], n_factors)) + 0.1
        patterns = (rng.random((n_factors, right.shape[1])) + 0.1) * scale
        tiny = 1e-12 * scale
        for _ in range(iterations):
            numerator = np.maximum(left @ (right @ patterns.T), 0)
            maps *= numerator / (maps @ (patterns @ patterns.T) + tiny)
            numerator = np.maximum((maps.T @ left) @ right, 0)
            patterns *= numerator / ((maps.T @ maps) @ patterns + tiny)
        peak = patterns.max(axis=1)
        peak[peak == 0] = 1
        full = np.full((len(seen), n_factors), np.nan)
        full[seen] = maps * peak
        return (
            full.reshape(*self.scores.shape[:-1], n_factors),
            (patterns / peak[:, None]).reshape(n_factors, *self.mean.shape),
        )


def _orthonormal(y: np.ndarray) -> np.ndarray:
    q, _ = np.linalg.qr(y)
    return q


def decompose(
    ctx: Any,
    dataset: Any,
    n_components: int = 8,
    oversampling: int = 8,
    power_iterations: int = 2,
    roi: Any = None,
    pixel_mask: Any = None,
    corrections: Any = None,
    seed: int = 0,
    progress: bool = False,
    poisson: bool = False,
) -> Decomposition:
    """Principal components of the frames (about their mean), by a randomised SVD in
    ``2 + 2 * power_iterations`` streaming passes (one more with ``poisson``).

    Parameters
    ----------
    ctx : Context
        Runs the passes.
    dataset : DataSet
        Any scan of any frames.
    n_components : int
        Components to return.
    oversampling : int
        Extra random directions: the subspace found is ``n_components + oversampling`` wide,
        which makes the leading components exact where the data has no more than that many
        (and close where its spectrum decays).
    power_iterations : int
        Rounds that sharpen the subspace (two passes each). With 1, a component barely above
        the noise came out 4 % low (``benchmarks/bench_decomposition.py``), with 2 within
        1e-4; 0 makes the fewest passes for data far above its noise.
    roi : numpy.ndarray, optional
        Scan positions to use (bool, the scan's shape).
    pixel_mask : numpy.ndarray, optional
        Detector pixels to use (bool, the frame's shape), e.g. all but the bright-field disk,
        whose intensity would otherwise dominate the variance; the components are 0 elsewhere
        and the explained variance is of these pixels.
    corrections : CorrectionSet, optional
        Applied to every frame.
    seed : int
        Of the random directions.
    progress : bool
        Show a progress bar for each pass.
    poisson : bool
        Normalise for counting noise first (Keenan and Kotula 2004, HyperSpy's and pyxem's
        ``normalize_poissonian_noise``): decompose ``X / sqrt(a b)``, ``a`` each frame's
        total and ``b`` each pixel's total over the frames, in which Poisson noise is about
        equally strong everywhere, so that weak phases rise above the noise of strong pixels.
        Needs non-negative data; pixels that never count are left out. One extra pass.

    Returns
    -------
    Decomposition

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, decompose
    >>> rng = np.random.default_rng(0)
    >>> maps, patterns = rng.random((2, 6, 7)), rng.random((2, 8, 8))
    >>> data = np.einsum("cij,cab->ijab", maps, patterns)  # two phases mixed over the scan
    >>> ctx = Context("inline")
    >>> found = decompose(ctx, ctx.load("memory", data=data), n_components=3)
    >>> found.explained_variance_ratio.round(3)[2]  # nothing beyond two phases
    np.float64(0.0)
    """
    from libertem_gpu import ApplyMasksUDF, StdDevUDF
    from libertem_gpu.udf.weighted_sum import WeightedSumUDF

    if isinstance(poisson, (int, np.integer)) and not isinstance(poisson, bool):
        poisson = bool(poisson)
    if not isinstance(poisson, bool):
        raise InvalidParameterError(f"decompose: poisson must be True or False, got {poisson!r}")

    for name, value, least in (
        ("n_components", n_components, 1),
        ("oversampling", oversampling, 0),
        ("power_iterations", power_iterations, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InvalidParameterError(
                f"decompose: {name} must be a whole number >= {least}, got {value!r}"
            )
    if np.dtype(dataset.dtype).kind == "c":
        raise UnsupportedDTypeError(
            f"decompose works on real frames; this data set holds {np.dtype(dataset.dtype)}: "
            "decompose the real and imaginary parts (or the magnitude) as data sets of their own"
        )
    sig = tuple(int(n) for n in dataset.shape.sig)
    nav = tuple(int(n) for n in dataset.shape.nav)
    npix = math.prod(sig)
    used = np.ones(npix, bool)
    if pixel_mask is not None:
        mask = np.asarray(pixel_mask)
        if mask.dtype != bool or mask.shape != sig:
            raise InvalidParameterError(
                f"decompose: pixel_mask must be bool of the frame's shape {sig}, got "
                f"{mask.dtype} of shape {mask.shape}"
            )
        used = mask.reshape(-1)
        if not used.any():
            raise InvalidParameterError("decompose: pixel_mask selects no pixel")
    width = min(n_components + oversampling, int(used.sum()))
    rng = np.random.default_rng(seed)

    def run(udfs: list[Any]) -> list[Any]:
        return ctx.run_udf(
            dataset=dataset, udf=udfs, roi=roi, corrections=corrections, progress=progress
        )

    def project(directions: np.ndarray, extra: list[Any]) -> tuple[np.ndarray, list[Any]]:
        """``X_c @ directions`` (``(npix, width)``) over the processed positions."""
        n_directions = directions.shape[1]  # fewer than width where there are fewer frames
        masks = ApplyMasksUDF(
            mask_factories=lambda: directions.T.reshape(n_directions, *sig),
            mask_count=n_directions,
        )
        results = run([masks, *extra])
        values = results[0]["intensity"]
        return np.asarray(values.raw_data, dtype=np.float64), [values, *results[1:]]

    in_roi = np.ones(math.prod(nav), bool) if roi is None else np.asarray(roi).reshape(-1)
    frame_w = np.ones(math.prod(nav))  # per position: 1, or 1 / sqrt(frame total)
    pixel_w = np.ones(npix)  # per pixel: 1, or 1 / sqrt(pixel total)
    totals = None
    if poisson:
        totals = _poisson_totals(run, nav, npix)
        frame_total, pixel_total = totals
        used = used & (pixel_total > 0)
        if not used.any():
            raise InvalidParameterError("decompose: no pixel counts anything (poisson=True)")
        width = min(width, int(used.sum()))
        with np.errstate(divide="ignore", invalid="ignore"):
            frame_w = np.where(frame_total > 0, 1 / np.sqrt(frame_total), 0.0)
            pixel_w = np.where(used, 1 / np.sqrt(np.maximum(pixel_total, 0)), 0.0)

    omega = rng.standard_normal((npix, width)) * used[:, None]
    if not poisson:
        y, (values, moments) = project(omega, [StdDevUDF()])
        count = int(np.asarray(moments["num_frames"].data).reshape(-1)[0])
        mean = np.asarray(moments["mean"].data, dtype=np.float64).reshape(-1)
        varsum = np.asarray(moments["varsum"].data).reshape(-1)
        total_variance = float(np.sum(varsum[used]))
    else:
        extra = [
            WeightedSumUDF(frame_w.reshape(nav)),
            WeightedSumUDF(frame_w.reshape(nav) ** 2, squared=True),
        ]
        y, (values, sums, squares) = project(omega * pixel_w[:, None], extra)
        y = y * frame_w[in_roi][:, None]
        count = int(np.count_nonzero(np.asarray(values.valid_mask)))
        mean = np.asarray(sums["intensity"].data).reshape(-1) * pixel_w / max(count, 1)
        second = np.asarray(squares["intensity"].data).reshape(-1) * pixel_w**2
        total_variance = float(np.sum((second - count * mean**2)[used]))
    if count == 0:
        raise InvalidParameterError("decompose: no frame was processed (empty roi?)")
    processed = np.asarray(values.valid_mask).reshape(-1)
    rows = processed[in_roi]  # raw_data holds the roi's positions, processed or not
    y = y[rows] - mean @ omega

    def weighted(q: np.ndarray) -> np.ndarray:
        """``q.T @ X_c``, ``(width, npix)``: the frames summed with q's columns as weights,
        less the mean's share (nothing where q's columns lie in the centred frames' span,
        but QR pads a rank-deficient ``y``, e.g. fewer frames than directions)."""
        table = np.zeros((math.prod(nav), q.shape[1]))
        table[np.flatnonzero(processed)] = q * frame_w[processed][:, None]
        sums = np.asarray(run([WeightedSumUDF(table)])[0]["intensity"].data).reshape(-1, npix)
        return (sums * pixel_w - np.outer(q.sum(axis=0), mean)) * used

    for _ in range(power_iterations):
        z = _orthonormal(weighted(_orthonormal(y)).T)  # (npix, width)
        y, _ = project(z * pixel_w[:, None], [])
        y = (y * frame_w[in_roi][:, None])[rows] - mean @ z
    q = _orthonormal(y)
    small = weighted(q)  # (width, npix)
    u_small, s, vt = np.linalg.svd(small, full_matrices=False)
    k = min(n_components, len(s))
    components = vt[:k] * used  # exactly 0 off the mask (the SVD leaves rounding there)
    flip = np.sign(components[np.arange(k), np.abs(components).argmax(axis=1)])
    flip[flip == 0] = 1
    components = components * flip[:, None]
    scores_processed = (q @ u_small[:, :k]) * s[:k] * flip
    scores = np.full((math.prod(nav), k), np.nan)
    scores[np.flatnonzero(processed)] = scores_processed
    ratio = s[:k] ** 2 / total_variance if total_variance > 0 else np.zeros(k)
    return Decomposition(
        components=components.reshape(k, *sig),
        scores=scores.reshape(*nav, k),
        singular_values=s[:k],
        explained_variance_ratio=ratio,
        mean=mean.reshape(sig),
        frames=count,
        frame_scale=None if totals is None else _frame_scale(totals[0], processed, nav),
        pixel_scale=None if totals is None else np.sqrt(np.maximum(totals[1], 0)).reshape(sig),
    )


def _poisson_totals(run: Any, nav: tuple[int, ...], npix: int) -> tuple[np.ndarray, np.ndarray]:
    """Each position's frame total (flat, 0 where not processed) and each pixel's total over
    the frames; an error for negative ones (not counts)."""
    from libertem_gpu import SumSigUDF, SumUDF

    pixel_res, frame_res = run([SumUDF(), SumSigUDF()])
    pixel_total = np.asarray(pixel_res["intensity"].data, dtype=np.float64).reshape(-1)
    frame_total = np.nan_to_num(
        np.asarray(frame_res["intensity"].data, dtype=np.float64).reshape(-1), nan=0.0
    )
    if (pixel_total < 0).any() or (frame_total < 0).any():
        raise InvalidParameterError(
            "decompose: poisson=True needs counts (non-negative data); this data set has "
            "negative frame or pixel totals (dark-subtracted?)"
        )
    return frame_total, pixel_total


def _frame_scale(frame_total: np.ndarray, processed: np.ndarray, nav: tuple[int, ...]) -> Any:
    scale = np.full(frame_total.shape, np.nan)
    scale[processed] = np.sqrt(frame_total[processed])
    return scale.reshape(nav)
