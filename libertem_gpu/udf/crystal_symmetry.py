"""The Laue symmetry of each crystal system, for orientation maps: its operations, the
fundamental sector of directions (the standard stereographic triangle and its kin), the
reduction of any direction into it, and a grid of beam directions over it for a template bank.

Directions are in the crystal's Cartesian frame of :mod:`~libertem_gpu.udf.template_bank`:
``a`` along x, ``b`` in the xy plane. Each system takes its holohedral Laue group in its
standard setting (``c`` along z; for monoclinic, ``b`` unique, along y), except trigonal,
which takes ``-3``: the sector of each ``-3m`` setting (``-3m1`` or ``-31m``) is a different
half of ``-3``'s, so ``-3``'s sector serves both (at twice the templates).

======================  ==========  ==============================================
system                  Laue group  sector (z up)
======================  ==========  ==============================================
``cubic``               m-3m        ``z >= x >= y >= 0``: [001], [101], [111]
``hexagonal``           6/mmm       azimuth 0 to 30 degrees: [0001], [2-1-10], [10-10]
``tetragonal``          4/mmm       azimuth 0 to 45 degrees: [001], [100], [110]
``orthorhombic``        mmm         azimuth 0 to 90 degrees: [001], [100], [010]
``trigonal``            -3          azimuth 0 to 120 degrees
``monoclinic``          2/m         azimuth 0 to 180 degrees (``y >= 0``)
``triclinic``           -1          the upper hemisphere
======================  ==========  ==============================================
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError

__all__ = [
    "SYSTEMS",
    "azimuth_span",
    "beam_directions",
    "in_sector",
    "laue_operations",
    "reduce_directions",
    "sector_corners",
    "system_name",
]

#: Azimuth span of each system's sector in degrees; the cubic one is also cut by ``z >= x``.
_SPAN = {
    "cubic": 45.0,
    "hexagonal": 30.0,
    "tetragonal": 45.0,
    "orthorhombic": 90.0,
    "trigonal": 120.0,
    "monoclinic": 180.0,
    "triclinic": 360.0,
}

#: The crystal systems, highest symmetry first.
SYSTEMS = tuple(_SPAN)

# Boundaries count as inside, within this much (unit vectors).
_EPS = 1e-9


def system_name(system: Any) -> str:
    """The crystal system's name as :data:`SYSTEMS` spells it.

    Raises
    ------
    InvalidParameterError
        For a name not in :data:`SYSTEMS`.
    """
    name = str(system).strip().lower()
    if name not in _SPAN:
        raise InvalidParameterError(
            f"crystal system must be one of {', '.join(SYSTEMS)}, got {system!r}"
        )
    return name


def azimuth_span(system: str) -> float:
    """The azimuth in degrees that the system's sector spans from x (the cubic one is also
    cut by ``z >= x``)."""
    return _SPAN[system_name(system)]


def _about_z(degrees: float) -> np.ndarray:
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def laue_operations(system: str) -> np.ndarray:
    """The point operations of the system's Laue group (rotations and their products with the
    inversion), as ``(n, 3, 3)`` matrices acting on Cartesian crystal vectors.

    Raises
    ------
    InvalidParameterError
        For a name not in :data:`SYSTEMS`.
    """
    name = system_name(system)
    flip_z = np.diag([1.0, 1.0, -1.0])
    if name == "cubic":  # every signed permutation of the axes: 48
        ops = []
        for perm in itertools.permutations(range(3)):
            for signs in itertools.product((1.0, -1.0), repeat=3):
                m = np.zeros((3, 3))
                m[range(3), perm] = signs
                ops.append(m)
        return np.array(ops)
    if name in ("tetragonal", "hexagonal"):  # turns about z, a mirror through x, z flipped
        step = 90.0 if name == "tetragonal" else 60.0
        turns = [_about_z(k * step) for k in range(round(360 / step))]
        mirror_y = np.diag([1.0, -1.0, 1.0])
        return np.array(
            [z @ m @ t for t in turns for m in (np.eye(3), mirror_y) for z in (np.eye(3), flip_z)]
        )
    if name == "orthorhombic":
        return np.array([np.diag(s) for s in itertools.product((1.0, -1.0), repeat=3)])
    if name == "trigonal":
        turns = [_about_z(k * 120.0) for k in range(3)]
        return np.array([i * t for t in turns for i in (1.0, -1.0)])
    if name == "monoclinic":  # two-fold axis along b (y)
        two = np.diag([-1.0, 1.0, -1.0])
        return np.array([np.eye(3), -np.eye(3), two, -two])
    return np.array([np.eye(3), -np.eye(3)])


def _azimuth(d: np.ndarray) -> np.ndarray:
    """Azimuth in degrees, in [0, 360), with directions along z at 0."""
    phi = np.degrees(np.arctan2(d[..., 1], d[..., 0]))
    return np.where(phi < -_EPS, phi + 360.0, np.maximum(phi, 0.0))


def in_sector(directions: Any, system: str) -> np.ndarray:
    """Whether each unit direction ``(..., 3)`` lies in the system's fundamental sector
    (boundaries included)."""
    name = system_name(system)
    d = np.asarray(directions, dtype=np.float64)
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    if name == "cubic":
        return (z >= x - _EPS) & (x >= y - _EPS) & (y >= -_EPS)
    up = z >= -_EPS
    if name == "triclinic":
        # The equator's far half belongs to the lower hemisphere's images.
        flat = np.abs(z) <= _EPS
        return up & (~flat | (_azimuth(d) < 180.0 - 1e-7))
    span = _SPAN[name]
    phi = _azimuth(d)
    along_z = np.hypot(x, y) <= _EPS
    return up & (along_z | (phi <= span + 1e-7) | (phi >= 360.0 - 1e-7))


def reduce_directions(directions: Any, system: str) -> np.ndarray:
    """Each direction ``(..., 3)`` moved into the fundamental sector by the Laue group (unit
    length; NaN stays NaN). Equivalent directions come out as one."""
    d = np.asarray(directions, dtype=np.float64)
    if d.shape[-1:] != (3,):
        raise InvalidParameterError(f"directions must have shape (..., 3), got {d.shape}")
    norm = np.linalg.norm(d, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = (d / norm).reshape(-1, 3)
    ops = laue_operations(system)
    out = np.empty_like(unit)
    # In blocks: all images of a million directions at once would take a gigabyte (cubic).
    for start in range(0, len(unit), _REDUCE_BLOCK):
        block = unit[start : start + _REDUCE_BLOCK]
        images = np.einsum("oij,nj->oni", ops, block)  # (ops, n, 3)
        inside = in_sector(images, system)
        found = images[inside.argmax(axis=0), np.arange(len(block))]
        found[~inside.any(axis=0)] = np.nan  # NaN input, nothing else
        out[start : start + len(block)] = found
    return out.reshape(d.shape)


#: Directions reduced at once (48 images of each: 75 MB for the cubic group).
_REDUCE_BLOCK = 65536


def sector_corners(system: str) -> np.ndarray | None:
    """The three corners of a triangular sector (cubic, hexagonal, tetragonal, orthorhombic)
    as unit rows, in the order of the colour key's red, green and blue; None for the others."""
    name = system_name(system)
    if name == "cubic":
        c = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    elif name in ("hexagonal", "tetragonal", "orthorhombic"):
        edge = np.radians(_SPAN[name])
        c = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [math.cos(edge), math.sin(edge), 0.0]])
    else:
        return None
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def beam_directions(system: str, resolution: float = 1.0) -> np.ndarray:
    """Directions covering the system's fundamental sector, no point of it farther than
    about ``resolution`` from one of them (0.7 of it in most sectors, up to 1.1 near the
    cubic triangle's [101]-[111] edge and the triclinic equator): rings of equal polar
    angle, each sampled evenly from edge to edge (so the sector's edges and corners are in).

    Parameters
    ----------
    system : str
        One of :data:`SYSTEMS`.
    resolution : float
        Spacing in degrees, between rings and along each ring (default 1).

    Returns
    -------
    numpy.ndarray
        ``(n, 3)`` unit vectors in the crystal's Cartesian frame, the first along z; give
        each to :func:`~libertem_gpu.udf.template_bank.direction_orientations` for a bank.

    Examples
    --------
    >>> len(beam_directions("cubic", 5.0))
    52
    """
    name = system_name(system)
    try:
        step = float(resolution)
    except (TypeError, ValueError):
        step = math.nan
    if not (math.isfinite(step) and 0.05 <= step <= 45.0):
        raise InvalidParameterError(
            f"beam_directions: resolution must be degrees in [0.05, 45], got {resolution!r}"
        )
    span = _SPAN[name]
    top = math.degrees(math.atan(math.sqrt(2.0))) if name == "cubic" else 90.0
    rings = max(1, math.ceil(top / step))
    out = [np.array([0.0, 0.0, 1.0])]
    for i in range(1, rings + 1):
        theta = math.radians(top * i / rings)
        lo = 0.0
        if name == "cubic" and math.tan(theta) > 1.0:  # the edge z = x
            lo = math.degrees(math.acos(min(1.0, 1.0 / math.tan(theta))))
        arc = math.sin(theta) * (span - lo)
        full = span >= 360.0
        count = max(1, math.ceil(arc / step)) + (0 if full else 1)
        if span - lo < 1e-9:
            count = 1
        phis = np.linspace(lo, span, count, endpoint=not full) if count > 1 else np.array([lo])
        if name == "triclinic" and i == rings:  # the equator's far half is the near one's image
            phis = phis[phis < 180.0 - 1e-9]
        rad = np.radians(phis)
        ring = np.column_stack(
            [
                math.sin(theta) * np.cos(rad),
                math.sin(theta) * np.sin(rad),
                np.full(len(rad), math.cos(theta)),
            ]
        )
        out.extend(ring)
    return np.array(out)
