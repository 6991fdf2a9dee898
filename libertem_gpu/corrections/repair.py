"""Repair environments of excluded pixels, and frame splits that keep them whole.

An excluded pixel is replaced by the mean of its *environment*: the pixels around it (the
``3**ndim - 1`` neighbours of a pixel, diagonals included) that lie inside the frame and are not
excluded themselves, as in LiberTEM. In a cluster of adjacent excluded pixels each one is
repaired from the valid pixels around it only; a pixel whose neighbours are all excluded has an
empty environment (an error unless ``allow_empty``: then it keeps its dark- and gain-corrected
value).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from libertem_gpu.errors import InvalidParameterError

__all__ = ["RepairDescriptor", "RepairValueError", "slab_rows"]


class RepairValueError(InvalidParameterError):
    """An excluded pixel has no valid neighbour to be repaired from (LiberTEM's name)."""


def _offsets(ndim: int) -> np.ndarray:
    """``(3**ndim - 1, ndim)`` neighbour offsets in C order, the centre left out (the order in
    which an environment is summed)."""
    steps = np.array(list(itertools.product((-1, 0, 1), repeat=ndim)), dtype=np.intp)
    return steps[np.any(steps != 0, axis=1)]


class RepairDescriptor:
    """Excluded pixels of frames of ``sig_shape`` with their environments, as flat indices.

    Parameters
    ----------
    sig_shape : tuple of int
        The frame shape.
    excluded_pixels : array of int, optional
        ``(ndim, k)`` coordinates (duplicates allowed), inside the frame.
    allow_empty : bool
        Allow pixels with an empty environment (left as they are) instead of raising.

    Attributes
    ----------
    exclude_flat : numpy.ndarray
        ``(k,)`` flat indices, sorted.
    repair_flat : numpy.ndarray
        ``(k, 3**ndim - 1)`` flat indices of each environment (first ``repair_counts[i]`` valid).
    repair_counts : numpy.ndarray
        ``(k,)`` environment sizes.

    Raises
    ------
    RepairValueError
        If an environment is empty and ``allow_empty`` is False.
    """

    def __init__(
        self,
        sig_shape: tuple[int, ...],
        excluded_pixels: np.ndarray | None = None,
        allow_empty: bool = False,
    ) -> None:
        sig_shape = tuple(int(s) for s in sig_shape)
        ndim = len(sig_shape)
        coords = np.zeros((ndim, 0), dtype=np.intp) if excluded_pixels is None else excluded_pixels
        coords = np.asarray(coords, dtype=np.intp).reshape(ndim, -1)
        exclude = np.zeros(0, dtype=np.intp)
        if coords.size:
            exclude = np.unique(np.ravel_multi_index(tuple(coords), sig_shape)).astype(np.intp)
        coords = np.array(np.unravel_index(exclude, sig_shape), dtype=np.intp).reshape(ndim, -1)
        offsets = _offsets(ndim)
        cand = coords[:, :, None] + offsets.T[:, None, :]  # (ndim, k, m)
        shape = np.array(sig_shape, dtype=np.intp)[:, None, None]
        inside = np.all((cand >= 0) & (cand < shape), axis=0)
        cand_flat = np.ravel_multi_index(tuple(np.where(inside, cand, 0)), sig_shape)
        valid = inside & ~np.isin(cand_flat, exclude)
        # Valid neighbours first, in offset order (a stable sort keeps it).
        order = np.argsort(~valid, axis=1, kind="stable")
        env = np.take_along_axis(np.where(valid, cand_flat, 0), order, axis=1).astype(np.intp)
        counts = valid.sum(axis=1).astype(np.intp)
        self.sig_shape = sig_shape
        self.exclude_flat = exclude
        self.repair_flat = env
        self.repair_counts = counts
        self.check_empty_repairs(allow_empty)

    def empty_repairs(self) -> np.ndarray:
        """Indices (into :attr:`exclude_flat`) of pixels with an empty environment."""
        return np.flatnonzero(self.repair_counts == 0)

    def check_empty_repairs(self, allow_empty: bool) -> None:
        """Raise :class:`RepairValueError` for empty environments unless ``allow_empty``."""
        empty = self.empty_repairs()
        if len(empty) and not allow_empty:
            where = np.array(np.unravel_index(self.exclude_flat[empty], self.sig_shape)).T
            raise RepairValueError(
                f"excluded_pixels: {len(empty)} excluded pixel(s) have no valid neighbour to be "
                f"repaired from, at {where[:5].tolist()}{' ...' if len(empty) > 5 else ''}; "
                "expected every excluded pixel to touch at least one valid pixel (pass "
                "allow_empty=True to leave such pixels unrepaired)"
            )

    def rows(self, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The excluded pixels in rows ``[r0, r1)`` of the first axis, with their environments,
        as flat indices into that row slab.

        Raises
        ------
        ValueError
            If an environment reaches outside the slab (the run plan splits frames so that
            this never happens, see :func:`slab_rows`).
        """
        row_len = math.prod(self.sig_shape[1:])
        p0, p1 = r0 * row_len, r1 * row_len
        keep = (self.exclude_flat >= p0) & (self.exclude_flat < p1)
        env = self.repair_flat[keep]
        counts = self.repair_counts[keep]
        used = np.arange(env.shape[1])[None, :] < counts[:, None]
        if np.any(used & ((env < p0) | (env >= p1))):
            raise ValueError(f"a repair environment crosses the rows [{r0}, {r1}) of its tile")
        return self.exclude_flat[keep] - p0, np.where(used, env - p0, 0), counts


def slab_rows(excluded_rows: np.ndarray, total_rows: int, target: int) -> int | None:
    """Rows per slab, near ``target``, such that no slab boundary separates an excluded pixel
    from a row of its environment; None if only whole frames do.

    A boundary at row ``b`` (between rows ``b - 1`` and ``b``) is forbidden where ``b - 1`` or
    ``b`` holds an excluded pixel. Heights from ``target`` down to 1 are tried first (smaller
    tiles keep memory bounded), then larger ones.
    """
    rows = np.unique(np.asarray(excluded_rows, dtype=np.intp))
    forbidden = np.zeros(total_rows + 1, dtype=bool)
    forbidden[rows] = True
    forbidden[np.minimum(rows + 1, total_rows)] = True
    forbidden[0] = forbidden[total_rows] = False
    if not forbidden.any():
        return target
    target = max(1, min(target, total_rows))
    for height in itertools.chain(range(target, 0, -1), range(target + 1, total_rows)):
        if not forbidden[height:total_rows:height].any():
            return height
    return None
