"""Folding corrections into the weights of a linear analysis.

The corrected frame is linear in the stored one: ``c = P((x - dark) * gain)``, where ``P``
replaces each excluded pixel by the mean of its environment. A weighted sum of the corrected
frame is therefore a weighted sum of the stored one, less a constant::

    a . c = F(a) . x - F(a) . dark,    F(a) = gain * P^T a

``P^T a`` hands each excluded pixel's weight to its environment in equal shares (and keeps it
where the environment is empty). Analyses whose kernels read stored integers directly (centre
of mass) take ``F(a)`` as their weights and subtract the constant once per frame, instead of
reading corrected float copies of the tiles: the same numbers in exact arithmetic, and within
float32 rounding of the corrected frames (which are rounded to float32 per pixel).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.corrections.corrset import FrameCorrection

if TYPE_CHECKING:
    from libertem_gpu.kernels.com import PixelTerms

__all__ = ["FoldedMoments", "fold_weights", "folded_moments", "touched_pixels"]


def fold_weights(correction: FrameCorrection, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``F(a)`` for each row ``a`` of ``weights``, and the constants ``F(a) . dark``.

    Parameters
    ----------
    correction : FrameCorrection
        The corrections laid out for the frame shape.
    weights : numpy.ndarray
        ``(k, npix)`` float64: ``k`` weight vectors over the flat frame.

    Returns
    -------
    folded : numpy.ndarray
        ``(k, npix)`` float64.
    constants : numpy.ndarray
        ``(k,)`` float64, to subtract from each weighted sum of a stored frame.
    """
    a = np.array(weights, dtype=np.float64, copy=True)
    r = correction.repair
    keep = r.repair_counts > 0
    ex = r.exclude_flat[keep]
    counts = r.repair_counts[keep]
    env = r.repair_flat[keep]
    if ex.size:
        share = a[:, ex] / counts  # (k, e)
        used = np.arange(env.shape[1])[None, :] < counts[:, None]  # (e, m)
        targets = env[used]  # flat, excluded pixel by excluded pixel
        shares = np.repeat(share, counts, axis=1)  # (k, sum(counts)), same order
        a[:, ex] = 0.0
        for row in range(a.shape[0]):  # environments never hold excluded pixels
            np.add.at(a[row], targets, shares[row])
    folded = a * correction.gain
    return folded, folded @ correction.dark


def touched_pixels(correction: FrameCorrection) -> np.ndarray:
    """Flat indices of the excluded pixels and of every pixel in their environments: where
    ``F(a * v)`` may differ from ``F(a) * v`` for a per-pixel factor ``v``."""
    r = correction.repair
    used = np.arange(r.repair_flat.shape[1])[None, :] < r.repair_counts[:, None]
    return np.unique(np.concatenate([r.exclude_flat, r.repair_flat[used]])).astype(np.intp)


class FoldedMoments:
    """Centre-of-mass weights ``w`` (over the whole frame) with corrections folded in.

    The kernels compute ``sum W x``, ``sum W x row`` and ``sum W x col`` for one weight frame
    ``W``; folded, the three sums need ``F(w)``, ``F(w * row)`` and ``F(w * col)``. Without a
    gain map these differ from ``w``, ``w * row`` and ``w * col`` only at the excluded pixels
    and their environments, so the kernels keep ``W = w`` (a disk stays a disk, read as runs
    of integers) and :meth:`apply` adds the differences at those few pixels. With a gain map,
    ``W = F(w)``, and the differences of the moments remain at those pixels. :meth:`apply` also
    subtracts the dark frame's constants, once per frame.

    Parameters
    ----------
    correction : FrameCorrection
        The corrections for 2-D frames.
    weights : numpy.ndarray
        float64 ``(rows, cols)``.
    """

    def __init__(self, correction: FrameCorrection, weights: np.ndarray) -> None:
        rows, cols = weights.shape
        yy, xx = np.mgrid[:rows, :cols].astype(np.float64)
        w = weights.reshape(-1)
        stack = np.stack([w, w * yy.reshape(-1), w * xx.reshape(-1)])
        folded, self.constants = fold_weights(correction, stack)
        idx = touched_pixels(correction)
        if correction.has_gain:
            self.weights = np.ascontiguousarray(folded[0].reshape(rows, cols))
            base = folded[0, idx]
        else:
            self.weights = weights
            base = w[idx]
        #: Whether the kernel's weights carry the gain map (then good to float32 only, as the
        #: corrected frames are); a binary disk stays exact.
        self.single = bool(correction.has_gain)
        self.index = idx
        self.delta = np.stack(
            [
                folded[0, idx] - base,
                folded[1, idx] - base * yy.reshape(-1)[idx],
                folded[2, idx] - base * xx.reshape(-1)[idx],
            ],
            axis=1,
        )  # (m, 3): what the kernels' sums lack at the touched pixels
        # Pixels where nothing is lacking (outside the weights, e.g. an excluded pixel and its
        # environment outside a disk) need not be read again.
        lacking = np.any(self.delta != 0.0, axis=1)
        self.index = idx[lacking]
        self.delta = np.ascontiguousarray(self.delta[lacking])
        self.row_len = cols
        self._terms: PixelTerms | None = None
        self._on: dict[int, tuple[Any, Any]] = {}
        self._spans: dict[tuple[int, int], tuple[int, ...]] = {}

    @property
    def terms(self) -> PixelTerms:
        """The differences at the touched pixels, for kernels that add them as they read."""
        from libertem_gpu.kernels.com import PixelTerms

        if self._terms is None:
            self._terms = PixelTerms(self.index, self.delta)
        return self._terms

    def gathers(self, terms_added: bool = False) -> bool:
        """Whether :meth:`apply` reads pixels of the tile (else it only subtracts constants)."""
        return self.index.size > 0 and not terms_added

    def apply(
        self,
        xp: Any,
        tile: Any,
        sig_rows: tuple[int, int] | None,
        total: Any,
        y: Any,
        x: Any,
        terms_added: bool = False,
    ) -> None:
        """Complete the kernels' sums for ``tile`` (``(n, rows, cols)`` stored values of rows
        ``sig_rows``): add the differences at the touched pixels (unless the kernel added
        :attr:`terms`: ``terms_added``), and subtract the constants once per frame (with its
        first rows)."""
        n = tile.shape[0]
        p0 = 0 if sig_rows is None else sig_rows[0] * self.row_len
        p1 = p0 + tile.shape[1] * tile.shape[2]
        span = self._spans.get((p0, p1))
        if span is None:
            span = self._spans[(p0, p1)] = tuple(
                int(v) for v in np.searchsorted(self.index, [p0, p1])
            )
        lo, hi = span
        if hi > lo and self.gathers(terms_added):
            # A gather and a small product, on the host or the device: the CPU kernels add
            # these terms themselves where they can, so this serves the GPU and the plain
            # kernels of small runs (which import no Numba).
            flat = tile.reshape(n, -1)
            on = self._on.get(id(xp))
            if on is None:
                on = self._on[id(xp)] = (xp.asarray(self.index), xp.asarray(self.delta))
            index, delta = on
            vals = flat[:, index[lo:hi] - p0].astype(np.float64)
            moments = vals @ delta[lo:hi]
            total += moments[:, 0]
            y += moments[:, 1]
            x += moments[:, 2]
        if p0 == 0:
            total -= self.constants[0]
            y -= self.constants[1]
            x -= self.constants[2]


def folded_moments(
    correction: FrameCorrection, weights: np.ndarray, key: object = None
) -> FoldedMoments:
    """:class:`FoldedMoments` for ``weights``, made once per corrections and ``key`` (what
    determines the weights; default: their bytes) in a process: the partitions of a run, and
    later runs with the same corrections, share it."""
    if key is None:
        import hashlib

        key = hashlib.sha1(np.ascontiguousarray(weights).tobytes()).hexdigest()
    key = ("moments", weights.shape, key)
    cache = correction.cache
    found = cache.get(key)
    if found is None:
        found = FoldedMoments(correction, weights)
        cache[key] = found
    return found  # type: ignore[no-any-return]
