"""Masks that share no pixel, given as a label per pixel: ``out[i, labels[p]] += weights[p] *
tile[i, p]``, the label ``k = out.shape[1]`` marking pixels of no mask.

Rings, sectors of a polar grid and segmented detectors are such masks. As CSR rows they cost
a gather per pixel and mask row; as labels, one pass over each frame that adds every pixel to
its mask's sum (:mod:`libertem_gpu.kernels.labels_cpu`). :func:`from_csr` finds whether a CSR
stack is such a set of masks. The GPU applies the CSR stack as it is (cuSPARSE).
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError

__all__ = ["check", "from_csr", "reference"]


def from_csr(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, npix: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """The labels (int32, ``k`` for pixels of no mask) and weights (float64) of the CSR masks
    ``(k, npix)``, or None where a pixel belongs to two masks."""
    k = len(indptr) - 1
    indices = np.asarray(indices)
    if len(indices) and np.bincount(indices, minlength=npix).max() > 1:
        return None
    labels = np.full(npix, k, dtype=np.int32)
    labels[indices] = np.repeat(np.arange(k, dtype=np.int32), np.diff(np.asarray(indptr)))
    weights = np.zeros(npix, dtype=np.float64)
    weights[indices] = data
    return labels, weights


def check(npix: int, labels: Any, weights: Any, n: int, out: Any) -> int:
    """Raise unless the arguments fit a tile of ``n`` frames of ``npix`` pixels; the number of
    masks ``k``."""
    if out.ndim != 2 or out.shape[0] != n or out.dtype not in (np.float64, np.float32):
        raise ShapeMismatchError(
            f"out must be float64 or float32 of shape ({n}, k), got {out.dtype} {out.shape}"
        )
    k = out.shape[1]
    if labels.shape != (npix,) or labels.dtype != np.int32:
        raise ShapeMismatchError(
            f"labels must be int32 of shape ({npix},), got {labels.dtype} {labels.shape}"
        )
    if weights.shape != (npix,):
        raise ShapeMismatchError(f"weights must have shape ({npix},), got {weights.shape}")
    if npix and (int(labels.min()) < 0 or int(labels.max()) > k):
        raise ShapeMismatchError(f"labels must lie in [0, {k}] for out of {k} masks")
    return int(k)


def reference(tile: np.ndarray, labels: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """``(n, k)`` float64 sums ``sum_p weights[p] * tile[i, p]`` over the pixels of each label
    ``0 <= label < k``, in plain NumPy."""
    f = np.asarray(tile, dtype=np.float64) * np.asarray(weights, dtype=np.float64)
    out = np.zeros((f.shape[0], k + 1))
    for i, row in enumerate(f):
        out[i] = np.bincount(labels, row, minlength=k + 1)
    return out[:, :k]


# The CPU kernel (Numba) lives in ``labels_cpu``, so that the reference imports no Numba.
_MOVED = frozenset({"cpu"})


def __getattr__(name: str) -> Any:
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("libertem_gpu.kernels.labels_cpu"), name)
