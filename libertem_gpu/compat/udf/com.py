"""LiberTEM's ``libertem.udf.com``: :class:`CoMUDF` and the field helpers."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu import CoMParams, CoMUDF
from libertem_gpu.udf.com import RegressionOptions, apply_correction
from libertem_gpu.udf.com_fields import GuessResult, coordinate_check, guess_corrections

__all__ = [
    "CoMParams",
    "CoMUDF",
    "GuessResult",
    "RegressionOptions",
    "apply_correction",
    "center_shifts",
    "coordinate_check",
    "curl_2d",
    "divergence",
    "guess_corrections",
    "magnitude",
]


def center_shifts(
    img_sum: Any, img_y: Any, img_x: Any, ref_y: float, ref_x: float
) -> tuple[np.ndarray, np.ndarray]:
    """Centre-of-mass shifts ``(y, x)`` from the masked sums: ``img_y / img_sum - ref_y`` (0
    where the sum is 0)."""
    total = np.asarray(img_sum)
    zero = total == 0
    safe = np.where(zero, 1, total)
    y = np.where(zero, ref_y, np.asarray(img_y) / safe) - ref_y
    x = np.where(zero, ref_x, np.asarray(img_x) / safe) - ref_x
    return y, x


def divergence(y_centers: Any, x_centers: Any) -> np.ndarray:
    """``d y/d axis0 + d x/d axis1`` by central differences (one-sided at the borders)."""
    return np.gradient(y_centers, axis=0) + np.gradient(x_centers, axis=1)


def curl_2d(y_centers: Any, x_centers: Any) -> np.ndarray:
    """``d y/d axis1 - d x/d axis0`` by central differences (one-sided at the borders)."""
    return np.gradient(y_centers, axis=1) - np.gradient(x_centers, axis=0)


def magnitude(y_centers: Any, x_centers: Any) -> np.ndarray:
    """The length of the vectors ``(y, x)``."""
    return np.hypot(y_centers, x_centers)
