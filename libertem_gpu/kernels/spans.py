"""Piecewise-constant masks as runs of equal value along each frame row ("spans").

The masks users draw (disks, rings, rectangles, points) are a handful of runs per row. Summing
runs reads only the pixels under the mask, adds integers exactly and vectorises, where a dense
dot product multiplies every pixel by a float. Used by the CPU paths of ``ApplyMasksUDF`` and
``CoMUDF`` when :func:`encode` finds the masks compact enough.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError

__all__ = ["MaskSpans", "encode", "reference"]


# Runs shorter than this on average are summed through a prefix sum of the frame instead of
# one loop per run.
_SHORT_RUN = 24


@dataclass(frozen=True)
class MaskSpans:
    """Run-length encoding of ``k`` masks over frames of ``rows x cols`` pixels.

    Attributes
    ----------
    ptr : numpy.ndarray
        int64 ``(k + 1,)``: runs of mask ``j`` are ``ptr[j]:ptr[j + 1]``.
    starts, stops : numpy.ndarray
        int64 flat pixel index range of each run (a run never crosses a row).
    values : numpy.ndarray
        float64 weight of each run.
    rows, cols : int
        Frame shape.
    """

    ptr: np.ndarray
    starts: np.ndarray
    stops: np.ndarray
    values: np.ndarray
    rows: int
    cols: int

    @property
    def num_masks(self) -> int:
        """Number of masks encoded."""
        return len(self.ptr) - 1

    @property
    def mean_run(self) -> float:
        """Average run length in pixels."""
        return float((self.stops - self.starts).mean()) if len(self.starts) else 0.0

    @property
    def read_fraction(self) -> float:
        """Pixels the run kernels read per pixel of a frame, summed over the masks."""
        return float((self.stops - self.starts).sum()) / max(self.rows * self.cols, 1)

    @property
    def is_binary(self) -> bool:
        """Whether every run has weight 1."""
        return bool(np.all(self.values == 1.0))


def encode(masks: np.ndarray, max_runs_per_pixel: float = 0.125) -> MaskSpans | None:
    """Encode a stack of masks ``(k, rows, cols)`` (or one ``(rows, cols)`` mask) as runs.

    Returns ``None`` when the masks are not compact (more than ``max_runs_per_pixel`` runs per
    pixel of the frame on average, e.g. smooth or random weights): callers then use the dense
    kernels.
    """
    stack = np.asarray(masks)
    if stack.ndim == 2:
        stack = stack[np.newaxis]
    if stack.ndim != 3:
        raise ShapeMismatchError(f"masks must be (k, rows, cols), got shape {stack.shape}")
    k, rows, cols = stack.shape
    # A run starts where the value changes along a row, or at the row start, and is non-zero.
    # Counted mask by mask in the masks' own dtype, stopping as soon as the budget is spent:
    # dense weights (random, smooth) are refused after a mask or two.
    budget = max_runs_per_pixel * rows * cols * k
    begins = np.ones(stack.shape, dtype=bool)
    found = 0
    for j in range(k):
        m = stack[j]
        np.not_equal(m[:, 1:], m[:, :-1], out=begins[j, :, 1:])
        begins[j] &= m != 0
        found += int(np.count_nonzero(begins[j]))
        if found > budget:
            return None
    flat = stack.astype(np.float64, copy=False)
    ptr = [0]
    starts: list[np.ndarray] = []
    stops: list[np.ndarray] = []
    values: list[np.ndarray] = []
    for j in range(k):
        _, r, c = np.nonzero(begins[j : j + 1])
        ends_all = np.zeros(flat.shape[1:], dtype=bool)
        ends_all[:, :-1] = flat[j, :, 1:] != flat[j, :, :-1]
        ends_all[:, -1] = True
        er, ec = np.nonzero(ends_all & (flat[j] != 0))
        # Runs and their ends pair up in row-major order.
        starts.append(r * cols + c)
        stops.append(er * cols + ec + 1)
        values.append(flat[j, r, c])
        ptr.append(ptr[-1] + len(r))
    return MaskSpans(
        ptr=np.asarray(ptr, dtype=np.int64),
        starts=np.concatenate(starts).astype(np.int64),
        stops=np.concatenate(stops).astype(np.int64),
        values=np.concatenate(values).astype(np.float64),
        rows=rows,
        cols=cols,
    )


def reference(tile: np.ndarray, spans: MaskSpans) -> np.ndarray:
    """``(n, k)`` mask sums from the decoded masks, in plain NumPy."""
    dense = np.zeros((spans.num_masks, spans.rows * spans.cols))
    for j in range(spans.num_masks):
        for q in range(spans.ptr[j], spans.ptr[j + 1]):
            dense[j, spans.starts[q] : spans.stops[q]] = spans.values[q]
    return np.asarray(tile, dtype=np.float64) @ dense.T


# The CPU kernels (Numba) live in ``spans_cpu``, so that the reference imports no Numba; their
# names stay reachable here for callers of the single module this once was.
_MOVED = frozenset({"com_cpu", "masks_cpu"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("libertem_gpu.kernels.spans_cpu"), name)
