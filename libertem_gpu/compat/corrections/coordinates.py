"""LiberTEM's ``libertem.corrections.coordinates``: 2x2 transforms of ``(y, x)`` vectors."""

from __future__ import annotations

import numpy as np

__all__ = ["flip_x", "flip_y", "identity", "rotate", "rotate_deg", "scale"]


def scale(factor: float) -> np.ndarray:
    """Scale both components by ``factor``."""
    return np.eye(2) * factor


def rotate(radians: float) -> np.ndarray:
    """Rotate ``(y, x)`` vectors by ``radians`` (positive: clockwise on screen)."""
    c, s = np.cos(radians), np.sin(radians)
    return np.array([[c, s], [-s, c]])


def rotate_deg(degrees: float) -> np.ndarray:
    """:func:`rotate` in degrees."""
    return rotate(np.deg2rad(degrees))


def flip_y() -> np.ndarray:
    """Negate the y component."""
    return np.diag([-1.0, 1.0])


def flip_x() -> np.ndarray:
    """Negate the x component."""
    return np.diag([1.0, -1.0])


def identity() -> np.ndarray:
    """Leave vectors as they are."""
    return np.eye(2)
