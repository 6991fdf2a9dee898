"""A plain NumPy reference of detector corrections, written independently of the library's
repair descriptors: loops over each excluded pixel's 3x3 neighbourhood (2-D frames)."""

from __future__ import annotations

import numpy as np


def corrected(frames: np.ndarray, dark, gain, excluded: np.ndarray | None, dtype=np.float32):
    """``(n, rows, cols)`` frames corrected as LiberTEM defines it, in ``dtype``: dark and gain
    rounded to ``dtype``, ``(x - dark) * gain`` in ``dtype``, then each excluded pixel the
    float64 mean (neighbours in C order) of its in-frame, non-excluded 8-neighbours."""
    dtype = np.dtype(dtype)
    rows, cols = frames.shape[1:]
    d = np.zeros((rows, cols), dtype) if dark is None else np.asarray(dark).astype(dtype)
    g = np.ones((rows, cols), dtype) if gain is None else np.asarray(gain).astype(dtype)
    out = (frames.astype(dtype) - d) * g
    if excluded is None:
        return out
    for r, c in zip(*np.nonzero(excluded), strict=True):
        acc = np.zeros(len(frames))
        count = 0
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr, dc) == (0, 0) or not (0 <= rr < rows and 0 <= cc < cols):
                    continue
                if excluded[rr, cc]:
                    continue
                acc += out[:, rr, cc].astype(np.float64)
                count += 1
        if count:
            out[:, r, c] = (acc / count).astype(dtype)
    return out


def bad_pixels(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Excluded pixels: the four corners, an edge pixel, an L-shaped cluster of three and a
    horizontal pair inside, and a few random ones."""
    ex = np.zeros((rows, cols), bool)
    ex[0, 0] = ex[0, -1] = ex[-1, 0] = ex[-1, -1] = True
    ex[rows // 2, 0] = True
    ex[2, 3] = ex[3, 3] = ex[3, 4] = True
    ex[rows - 3, cols // 2] = ex[rows - 3, cols // 2 + 1] = True
    ex[rng.integers(0, rows, 3), rng.integers(0, cols, 3)] = True
    return ex
