"""Fluctuation electron microscopy: the standard deviation in a ring of each frame
(:class:`FEMUDF`, LiberTEM's) and the normalised variance of annular means over the scan
versus radius (:class:`FEMProfileUDF`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu import masks
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.kernels.masks import MaskStack
from libertem_gpu.masks import SparseMask
from libertem_gpu.udf._common import (
    PARTIAL_FRAMES,
    PROFILE_MASKS_SPARSE,
    check_center,
    check_radii,
    flat_tile,
    kernel_backends,
    kernel_input_dtype,
    on_worker,
    pixel_range,
    refuse_complex,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.ellipse import check_ellipse, elliptic_polar
from libertem_gpu.udf.mask_shifts import as_shifts, frame_shifts
from libertem_gpu.udf.masks import ApplyMasksUDF, build_mask_stack

__all__ = ["FEMUDF", "FEMProfileUDF", "fem_ring", "profile_bins"]


def _frame_2d(sig_shape: Sequence[int], what: str) -> tuple[int, int]:
    sig = tuple(int(d) for d in sig_shape)
    if len(sig) != 2:
        raise InvalidParameterError(f"{what} needs two signal dimensions, got sig_shape {sig}")
    return sig[0], sig[1]


def _centre(center: Any, sig: tuple[int, int], what: str) -> tuple[float, float]:
    """``center`` as ``(cy, cx)``, checked to lie on the frame."""
    cy, cx = check_center(center, what)
    ny, nx = sig
    if not (0 <= cy <= ny - 1 and 0 <= cx <= nx - 1):
        raise InvalidParameterError(
            f"{what}: center=(row {cy}, column {cx}) lies outside the {ny} x {nx} frame; it is "
            "(row, column), as LiberTEM's FEMUDF uses it"
        )
    return cy, cx


def _distance(sig: tuple[int, int], cy: float, cx: float, ellipse: Any, what: str) -> np.ndarray:
    """Each pixel's distance from ``(cy, cx)``, the distortion ``ellipse`` undone, flat."""
    y, x = np.mgrid[: sig[0], : sig[1]]
    dy, dx = (y - cy).reshape(-1).astype(np.float64), (x - cx).reshape(-1).astype(np.float64)
    return elliptic_polar(dy, dx, check_ellipse(ellipse, what))[0]


def fem_ring(
    sig_shape: Sequence[int], center: Any, rad_in: float, rad_out: float, ellipse: Any = None
) -> np.ndarray:
    """The pixels of FEM's ring, as LiberTEM 0.16 selects them.

    Parameters
    ----------
    sig_shape : sequence of int
        ``(rows, cols)``.
    center : tuple of float
        ``(row, column)`` of the ring's centre, on the frame.
    rad_in, rad_out : float
        Pixels with ``rad_in < distance <= rad_out`` (integer pixel coordinates) count.
    ellipse : EllipseFit or tuple of float, optional
        ``(ratio, angle)`` of an elliptical distortion to undo: the distance is then that of
        :func:`~libertem_gpu.udf.ellipse.elliptic_polar`.

    Returns
    -------
    numpy.ndarray
        int64 flat indices of the ring's pixels, ascending.

    Raises
    ------
    InvalidParameterError
        For radii out of order, a centre off the frame, or a ring that holds no pixel.
    """
    sig = _frame_2d(sig_shape, "FEMUDF")
    cy, cx = _centre(center, sig, "FEMUDF")
    ri, ro = check_radii(rad_in, rad_out, "FEMUDF", ("rad_in", "rad_out"))
    if ellipse is None:  # LiberTEM's pixels exactly, from its disks' squared distances
        ring = np.asarray(masks.disk(sig, cy, cx, ro)) & ~np.asarray(masks.disk(sig, cy, cx, ri))
    else:
        d = _distance(sig, cy, cx, ellipse, "FEMUDF")
        ring = (d > ri) & (d <= ro)
    indices = np.flatnonzero(ring).astype(np.int64)
    if indices.size == 0:
        raise InvalidParameterError(
            f"FEMUDF: the ring rad_in={rad_in} < distance <= rad_out={rad_out} around "
            f"{(cy, cx)} holds no pixel of the {sig[0]} x {sig[1]} frame; widen it"
        )
    return indices


class FEMUDF(UDF):
    """Fluctuation electron microscopy: the standard deviation of each frame's pixels in a ring
    around the zero-order beam (LiberTEM's ``FEMUDF``).

    Parameters
    ----------
    center : tuple of float
        ``(row, column)`` of the ring's centre. LiberTEM 0.16's docstring says ``(x, y)``, but
        its code (and its GUI) use ``(y, x)``; so do we, to give the same numbers.
    rad_in, rad_out : float
        The ring: pixels with ``rad_in < distance <= rad_out``.
    ellipse : EllipseFit or tuple of float, optional
        Undo an elliptical distortion of the pattern (not in LiberTEM): ``(ratio, angle)`` or
        a :func:`~libertem_gpu.fit_ellipse` result, as for
        :class:`~libertem_gpu.RadialProfileUDF`; the ring is then an ellipse of the
        distortion, radii measured as ``sqrt(a * b)``. ``center`` is still needed (pass the
        fit's ``center``).

    Results
    -------
    intensity : nav, float64
        Population standard deviation (``ddof=0``) of the ring's pixels, per frame.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, FEMUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.random.default_rng(0).poisson(5, (2, 3, 16, 16)))
    >>> res = ctx.run_udf(dataset=ds, udf=FEMUDF(center=(8, 8), rad_in=3, rad_out=6))
    >>> res["intensity"].data.shape
    (2, 3)
    """

    def __init__(self, center: Any, rad_in: float, rad_out: float, ellipse: Any = None) -> None:
        check_radii(rad_in, rad_out, "FEMUDF", ("rad_in", "rad_out"))
        check_ellipse(ellipse, "FEMUDF")
        super().__init__(center=center, rad_in=rad_in, rad_out=rad_out, ellipse=ellipse)

    def _indices(self) -> np.ndarray:
        assert self.meta is not None
        p = self.params
        sig = tuple(self.meta.dataset_shape.sig)
        return fem_ring(sig, p.center, p.rad_in, p.rad_out, p.ellipse)

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the kernel reads directly (float32 where it cannot)."""
        return kernel_input_dtype(self.meta, "pixel_moments")

    def get_backends(self) -> tuple[str, ...]:
        """Where its kernel runs: the CPU and, where a GPU is, CuPy."""
        return kernel_backends("pixel_moments")

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs (their moments combine)."""
        return dict(PARTIAL_FRAMES)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity`` (nav, float64); per-frame pixel count, mean and squared deviations of
        the ring's part seen so far (private)."""
        if self.meta is not None:
            self._indices()  # bad parameters fail here, on the client, before any data is read
        f8 = np.float64
        return {
            "intensity": self.buffer(kind="nav", dtype=f8),
            "count": self.buffer(kind="nav", dtype=f8, use="private"),
            "mean": self.buffer(kind="nav", dtype=f8, use="private"),
            "m2": self.buffer(kind="nav", dtype=f8, use="private"),
        }

    def preprocess(self) -> None:
        """Look the kernel up; the ring's indices per row slab are made on first use."""
        if on_worker(self.meta):
            assert self.meta is not None
            self._kernel = get_kernel("pixel_moments", self.meta.kernels)
            self._ring = self._indices()
            self._slabs: dict[tuple[int, int], Any] = {}

    def _slab(self, p0: int, p1: int) -> Any:
        """The ring's indices within pixels ``[p0, p1)``, relative to ``p0``, on the backend."""
        found = self._slabs.get((p0, p1))
        if found is None:
            ring = self._ring
            part = ring[(ring >= p0) & (ring < p1)] - p0
            found = self._slabs[(p0, p1)] = self.xp.asarray(part)
        return found

    def process_tile(self, tile: Any) -> None:
        """The moments of the ring's pixels in the tile, combined with earlier row slabs'."""
        assert self.meta is not None
        p0, p1 = pixel_range(self.meta)
        idx = self._slab(p0, p1)
        k = len(idx)
        if k == 0:
            return
        r = self.results
        flat = flat_tile(tile)
        if k == len(self._ring):  # the whole ring in this tile: write the frames' moments
            self._kernel(flat, idx, r.mean, r.m2)
            r.count[...] = k
            return
        from libertem_gpu.kernels.pixel_moments import combine

        mean = self.xp.empty(len(flat), dtype=np.float64)
        m2 = self.xp.empty_like(mean)
        self._kernel(flat, idx, mean, m2)
        r.count[...], r.mean[...], r.m2[...] = combine(r.count, r.mean, r.m2, k, mean, m2)

    def postprocess(self) -> None:
        """Standard deviation from each frame's moments."""
        r = self.results
        r.intensity[...] = self.xp.sqrt(r.m2 / self.xp.maximum(r.count, 1))


def profile_bins(
    sig_shape: Sequence[int],
    center: Any,
    n_bins: int,
    rad_max: float,
    rad_min: float = 0.0,
    ellipse: Any = None,
) -> tuple[SparseMask, np.ndarray, np.ndarray]:
    """The rings of :class:`FEMProfileUDF`: masks that average each ring, and its pixel counts
    and centre radii.

    Ring ``b`` holds the pixels with ``rad_min + b * w < distance <= rad_min + (b + 1) * w``,
    ``w = (rad_max - rad_min) / n_bins`` (the first ring includes ``distance == rad_min``);
    with ``ellipse``, the distance of :func:`~libertem_gpu.udf.ellipse.elliptic_polar`.

    Returns
    -------
    stack : SparseMask
        ``(n_bins, rows, cols)``, ``1 / pixels`` on each ring's pixels.
    counts : numpy.ndarray
        int64 pixels per ring.
    radii : numpy.ndarray
        float64 centre radius of each ring.
    """
    sig = _frame_2d(sig_shape, "FEMProfileUDF")
    cy, cx = _centre(center, sig, "FEMProfileUDF")
    lo, hi = check_radii(rad_min, rad_max, "FEMProfileUDF", ("rad_min", "rad_max"))
    if int(n_bins) != n_bins or n_bins < 1:
        raise InvalidParameterError(
            f"FEMProfileUDF: n_bins must be an integer >= 1, got {n_bins!r}"
        )
    stack, counts, radii = _rings(sig, (cy, cx), int(n_bins), (lo, hi), ellipse)
    if (counts == 0).any():
        empty = np.flatnonzero(counts == 0).tolist()
        raise InvalidParameterError(
            f"FEMProfileUDF: ring(s) {empty} of width {(hi - lo) / int(n_bins):.3g} hold no "
            f"pixel of the {sig[0]} x {sig[1]} frame; use fewer bins or a smaller rad_max"
        )
    return stack, counts, radii


def _rings(
    sig: tuple[int, int],
    center: tuple[float, float],
    n_bins: int,
    radii: tuple[float, float],
    ellipse: Any,
) -> tuple[SparseMask, np.ndarray, np.ndarray]:
    """:func:`profile_bins` of checked parameters, rings without pixels allowed (empty
    masks: the rings of a frame whose beam moved far)."""
    cy, cx = center
    lo, hi = radii
    width = (hi - lo) / n_bins
    if ellipse is None:
        d = np.sqrt(masks._squared_distance(sig, cy, cx)).reshape(-1)
    else:
        d = _distance(sig, cy, cx, ellipse, "FEMProfileUDF")
    which = np.ceil((d - lo) / width).astype(np.int64) - 1
    which[d == lo] = 0
    inside = (d >= lo) & (d <= hi) & (which >= 0) & (which < n_bins)
    pix = np.flatnonzero(inside)
    which = which[pix]
    counts = np.bincount(which, minlength=n_bins)
    order = np.lexsort((pix, which))
    npix = sig[0] * sig[1]
    stack = SparseMask((n_bins, *sig), which[order] * npix + pix[order], 1.0 / counts[which[order]])
    return stack, counts, lo + (np.arange(n_bins) + 0.5) * width


class FEMProfileUDF(ApplyMasksUDF):
    """FEM's variance profile: for rings of equal width around ``center``, the normalised
    variance over the scan of each frame's mean intensity in the ring,
    ``V(k) = <I(k)**2> / <I(k)>**2 - 1`` (the variance of the annular mean, Daulton et al.
    2010's ``V_Omega``), with ``I(k)`` a frame's mean over ring ``k`` and ``< >`` the mean
    over the selected scan positions.

    The annular means are a linear functional of each frame: they run as sparse masks
    (:class:`~libertem_gpu.ApplyMasksUDF`, CPU and GPU), and the statistics over the scan are
    formed from them at the end.

    Parameters
    ----------
    center : tuple of float
        ``(row, column)`` of the rings' centre, on the frame.
    n_bins : int
        Number of rings.
    rad_max : float
        Outer radius of the last ring.
    rad_min : float
        Inner radius of the first ring (default 0).
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.
    ellipse : EllipseFit or tuple of float, optional
        Undo an elliptical distortion of the pattern: ``(ratio, angle)`` or a
        :func:`~libertem_gpu.fit_ellipse` result, as for
        :class:`~libertem_gpu.RadialProfileUDF`; radii are then measured as ``sqrt(a * b)``.
        ``center`` is still needed (pass the fit's ``center``).
    shifts : array_like or AuxData, optional
        Move the rings with the beam (descan), as :class:`~libertem_gpu.ApplyMasksUDF`'s
        ``shifts``: whole-pixel ``(dy, dx)`` for every frame or per scan position,
        ``(*nav_shape, 2)``. A frame's rings lie around ``center + (dy, dx)`` and its means are
        over their pixels on the frame; a ring the shift takes off the frame is NaN for that
        frame and left out of the statistics over the scan.

    Results
    -------
    annular_mean : nav, extra_shape ``(n_bins,)``, float64
        ``I(k)`` per frame.
    mean : single, ``(n_bins,)``, float64
        ``<I(k)>``.
    variance : single, ``(n_bins,)``, float64
        Population variance (``ddof=0``) of ``I(k)`` over the scan.
    normalized_variance : single, ``(n_bins,)``, float64
        ``V(k) = variance / mean**2``; NaN where the mean is 0.
    radius : single, ``(n_bins,)``, float64
        The centre radius of each ring, in pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, FEMProfileUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.random.default_rng(0).poisson(5, (3, 4, 16, 16)))
    >>> res = ctx.run_udf(dataset=ds, udf=FEMProfileUDF(center=(8, 8), n_bins=4, rad_max=8))
    >>> res["normalized_variance"].data.shape
    (4,)
    """

    def __init__(
        self,
        center: Any,
        n_bins: int,
        rad_max: float,
        rad_min: float = 0.0,
        backends: Sequence[str] | None = None,
        ellipse: Any = None,
        shifts: Any = None,
    ) -> None:
        check_radii(rad_min, rad_max, "FEMProfileUDF", ("rad_min", "rad_max"))
        check_ellipse(ellipse, "FEMProfileUDF")
        # Not ApplyMasksUDF.__init__: the parameters are ours, the masks are made from them.
        super(ApplyMasksUDF, self).__init__(
            center=center,
            n_bins=n_bins,
            rad_max=rad_max,
            rad_min=rad_min,
            backends=backends,
            ellipse=ellipse,
            shifts=as_shifts(shifts),
        )

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the mask kernels read directly (float32 where they cannot);
        complex data is refused (a variance of complex means is not FEM's)."""
        refuse_complex(
            self.meta,
            "FEMProfileUDF",
            "FEM measures intensity; run it on the frames' magnitude or squared magnitude, "
            "e.g. with ctx.map(dataset, f=np.abs) or a UDF of your own",
        )
        return super().get_preferred_input_dtype()

    def _bins(self, sig: tuple[int, ...]) -> tuple[SparseMask, np.ndarray, np.ndarray]:
        p = self.params
        return profile_bins(sig, p.center, p.n_bins, p.rad_max, p.rad_min, p.ellipse)

    def _mask_source(self, sig: tuple[int, ...]) -> tuple[Any, tuple[int, ...], Any, Any, Any]:
        stack = self._bins(sig)[0]
        n = int(self.params.n_bins)
        return (lambda: stack), sig, PROFILE_MASKS_SPARSE, np.float64, n

    def _moved_rings(
        self, sig: tuple[int, ...], shift: tuple[int, ...]
    ) -> tuple[SparseMask, np.ndarray, np.ndarray]:
        """The rings around the centre moved by ``shift``, averaging their pixels on the
        frame (rings off the frame empty)."""
        p = self.params
        cy, cx = _centre(p.center, _frame_2d(sig, "FEMProfileUDF"), "FEMProfileUDF")
        lo, hi = check_radii(p.rad_min, p.rad_max, "FEMProfileUDF", ("rad_min", "rad_max"))
        moved = (cy + int(shift[0]), cx + int(shift[1]))
        return _rings((int(sig[0]), int(sig[1])), moved, int(p.n_bins), (lo, hi), p.ellipse)

    def _shifted_stack(self, sig: tuple[int, ...], shift: tuple[int, ...]) -> MaskStack:
        stack = self._moved_rings(sig, shift)[0]
        n = int(self.params.n_bins)
        return build_mask_stack(lambda: stack, sig, PROFILE_MASKS_SPARSE, np.float64, n)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``annular_mean`` (nav) and the profiles over the scan (single, made at the end)."""
        assert self.meta is not None
        self._bins(tuple(self.meta.dataset_shape.sig))  # bad parameters fail before any read
        n = int(self.params.n_bins)
        buffers = super().get_result_buffers()
        decl = buffers.pop("intensity")

        def single() -> BufferDecl:
            return self.buffer(kind="single", extra_shape=(n,), dtype=np.float64, use="result_only")

        return {
            "annular_mean": self.buffer(kind="nav", extra_shape=(n,), dtype=decl.dtype),
            "mean": single(),
            "variance": single(),
            "normalized_variance": single(),
            "radius": single(),
        }

    def process_tile(self, tile: Any) -> None:
        """Accumulate the tile's annular means (or a row slab's share of them)."""
        self._masks_into(tile, "annular_mean")

    def _empty_rings(self, shape: tuple[int, ...]) -> np.ndarray | None:
        """Which rings of each processed frame hold no pixel (moved off the frame by its
        shift), ``shape`` (frames, rings); None without shifts."""
        shifts = self._shifts
        if shifts is None or (isinstance(shifts, tuple) and not any(shifts)):
            return None
        assert self.meta is not None
        sig = tuple(self.meta.dataset_shape.sig)
        per_frame = frame_shifts(shifts, np.arange(math.prod(self.meta.dataset_shape.nav)))
        if self.meta.roi is not None:
            per_frame = per_frame[self.meta.roi.reshape(-1)]
        unique, which = np.unique(per_frame, axis=0, return_inverse=True)
        table = np.stack([self._moved_rings(sig, tuple(int(v) for v in u))[1] == 0 for u in unique])
        return table[which.reshape(-1)].reshape(shape)

    def get_results(self) -> dict[str, Any]:
        """The annular means, and their mean, variance and normalised variance over the frames
        that were processed."""
        assert self.meta is not None
        means = np.array(self.results.annular_mean)
        empty = self._empty_rings(means.shape)
        if empty is not None:
            means[empty] = np.nan
        valid = self.meta.get_valid_nav_mask()
        seen = means if valid is None else means[valid]
        radii = self._bins(tuple(self.meta.dataset_shape.sig))[2]
        counted = np.isfinite(seen).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counted > 0, np.nansum(seen, axis=0) / counted, np.nan)
            var = np.where(
                counted > 0, np.nansum((seen - mean) ** 2, axis=0) / np.maximum(counted, 1), np.nan
            )
        with np.errstate(divide="ignore", invalid="ignore"):
            normalized = np.where(mean != 0, var / (mean * mean), np.nan)
        return {
            "annular_mean": means,
            "mean": mean,
            "variance": var,
            "normalized_variance": normalized,
            "radius": radii,
        }
