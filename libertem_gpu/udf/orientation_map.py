"""Orientation maps from template matching: Euler angles and inverse pole figure colours.

Orientations are rotation matrices ``R`` from the crystal's Cartesian frame (``a`` along x,
``b`` in the xy plane) to the laboratory's (x along the detector's columns, y along its rows,
the beam along +z), as :func:`~libertem_gpu.match_orientations` gives them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.crystal_symmetry import (
    azimuth_span,
    in_sector,
    laue_operations,
    reduce_directions,
    sector_corners,
    system_name,
)

__all__ = [
    "euler_angles",
    "grain_labels",
    "ipf_colors",
    "ipf_key",
    "kernel_average_misorientation",
    "misorientation",
    "rotations_from_euler",
]


def _rotations(rotations: Any, what: str) -> np.ndarray:
    rot = np.asarray(rotations, dtype=np.float64)
    if rot.shape[-2:] != (3, 3):
        raise InvalidParameterError(
            f"{what}: rotations must have shape (..., 3, 3), got {rot.shape}"
        )
    return rot


def euler_angles(rotations: Any, degrees: bool = False) -> np.ndarray:
    """Bunge's Euler angles ``(phi1, Phi, phi2)`` (z, x', z'') of each orientation.

    They describe ``g = R.T``, which takes laboratory (sample) coordinates to crystal ones:
    ``g = Rz(phi2) Rx(Phi) Rz(phi1)`` in the passive sense, the convention of EBSD software
    (TSL .ang files, MTEX, orix).

    Parameters
    ----------
    rotations : array_like
        ``(..., 3, 3)``, crystal to laboratory; NaN matrices give NaN angles.
    degrees : bool
        Degrees instead of radians.

    Returns
    -------
    numpy.ndarray
        ``(..., 3)``: ``phi1`` and ``phi2`` in [0, 2 pi), ``Phi`` in [0, pi]. Where ``Phi``
        is 0 or pi only ``phi1 + phi2`` (or their difference) is defined: ``phi2`` is 0.
    """
    g = np.swapaxes(_rotations(rotations, "euler_angles"), -1, -2)
    # atan2 keeps Phi accurate near 0 and pi, where arccos loses half the digits.
    sin_phi = np.hypot(g[..., 2, 0], g[..., 2, 1])
    big_phi = np.arctan2(sin_phi, g[..., 2, 2])
    regular = sin_phi > 1e-12
    phi1 = np.where(
        regular, np.arctan2(g[..., 2, 0], -g[..., 2, 1]), np.arctan2(g[..., 0, 1], g[..., 0, 0])
    )
    phi2 = np.where(regular, np.arctan2(g[..., 0, 2], g[..., 1, 2]), 0.0)
    angles = np.stack([phi1 % (2 * np.pi), big_phi, phi2 % (2 * np.pi)], axis=-1)
    angles[~np.isfinite(g).all(axis=(-1, -2))] = np.nan
    return np.degrees(angles) if degrees else angles


def rotations_from_euler(angles: Any, degrees: bool = False) -> np.ndarray:
    """The orientations (crystal to laboratory) of Bunge Euler angles ``(..., 3)``: the
    inverse of :func:`euler_angles`."""
    a = np.asarray(angles, dtype=np.float64)
    if a.shape[-1:] != (3,):
        raise InvalidParameterError(
            f"rotations_from_euler: angles must have shape (..., 3), got {a.shape}"
        )
    if degrees:
        a = np.radians(a)
    c1, c, c2 = np.cos(a[..., 0]), np.cos(a[..., 1]), np.cos(a[..., 2])
    s1, s, s2 = np.sin(a[..., 0]), np.sin(a[..., 1]), np.sin(a[..., 2])
    g = np.empty((*a.shape[:-1], 3, 3))
    g[..., 0, 0] = c1 * c2 - s1 * s2 * c
    g[..., 0, 1] = s1 * c2 + c1 * s2 * c
    g[..., 0, 2] = s2 * s
    g[..., 1, 0] = -c1 * s2 - s1 * c2 * c
    g[..., 1, 1] = -s1 * s2 + c1 * c2 * c
    g[..., 1, 2] = c2 * s
    g[..., 2, 0] = s1 * s
    g[..., 2, 1] = -c1 * s
    g[..., 2, 2] = c
    return np.swapaxes(g, -1, -2)


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV to RGB, each in [0, 1]."""
    i = np.floor(h * 6.0) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros((*h.shape, 3))
    for k, (r, g, b) in enumerate(choices):
        sel = i == k
        out[sel] = np.stack([r[sel], g[sel], b[sel]], axis=-1)
    return out


def _sector_colors(d: np.ndarray, system: str) -> np.ndarray:
    """Colours of unit directions already in the sector (NaN rows stay NaN)."""
    corners = sector_corners(system)
    if corners is not None:
        # Weights of the corners that make the direction (the sector is convex as a cone):
        # each corner pure red, green or blue, brightest component 1.
        w = np.linalg.solve(corners.T, d.reshape(-1, 3).T).T
        w = np.clip(w, 0.0, None)
        rgb = w / w.max(axis=1, keepdims=True)
        return np.sqrt(rgb).reshape(d.shape)
    # Azimuth across the sector as hue, the angle from z as saturation: z is white.
    span = azimuth_span(system)
    phi = np.degrees(np.arctan2(d[..., 1], d[..., 0])) % 360.0
    hue = np.clip(phi / span, 0.0, 1.0) * (5.0 / 6.0 if span < 360.0 else 1.0)
    theta = np.degrees(np.arccos(np.clip(d[..., 2], -1.0, 1.0)))
    sat = np.clip(theta / 90.0, 0.0, 1.0)
    return _hsv_to_rgb(hue, sat, np.ones_like(hue))


def ipf_colors(rotations: Any, system: str, axis: Any = (0.0, 0.0, 1.0)) -> np.ndarray:
    """Inverse pole figure colours: where a laboratory direction (the beam by default) lies in
    the crystal, reduced into the system's fundamental sector, as RGB.

    Triangular sectors (cubic, hexagonal, tetragonal, orthorhombic) colour their corners red,
    green and blue (cubic: [001], [101], [111]; see
    :func:`~libertem_gpu.udf.crystal_symmetry.sector_corners`) and mix them between. The
    others (trigonal, monoclinic, triclinic) take the azimuth across the sector as hue and
    the angle from z as saturation, z white. :func:`ipf_key` draws the key.

    Parameters
    ----------
    rotations : array_like
        ``(..., 3, 3)`` orientations, crystal to laboratory.
    system : str
        The crystal system (``crystal_symmetry.SYSTEMS``).
    axis : array_like
        The laboratory direction, default the beam (IPF-Z).

    Returns
    -------
    numpy.ndarray
        ``(..., 3)`` float RGB in [0, 1]; NaN where the orientation is NaN.
    """
    name = system_name(system)
    rot = _rotations(rotations, "ipf_colors")
    v = np.asarray(axis, dtype=np.float64)
    if v.shape != (3,) or not np.linalg.norm(v) > 0:
        raise InvalidParameterError(f"ipf_colors: axis must be a non-zero 3-vector, got {axis!r}")
    crystal = np.einsum("...ji,j->...i", rot, v / np.linalg.norm(v))  # R.T v
    d = reduce_directions(crystal, name)
    out = np.full(d.shape, np.nan)
    ok = np.isfinite(d).all(axis=-1)
    out[ok] = _sector_colors(d[ok], name)
    return out


def ipf_key(system: str, size: int = 256) -> np.ndarray:
    """The colour key of :func:`ipf_colors`: the fundamental sector in stereographic
    projection (z at the origin, x to the right, y up), as an RGBA image.

    Returns
    -------
    numpy.ndarray
        float ``(size, size, 4)`` in [0, 1], transparent outside the sector.
    """
    name = system_name(system)
    if not isinstance(size, (int, np.integer)) or not 16 <= size <= 4096:
        raise InvalidParameterError(f"ipf_key: size must be an integer in [16, 4096], got {size!r}")
    span = azimuth_span(name)
    top = math.atan(math.sqrt(2.0)) if name == "cubic" else math.pi / 2
    reach = math.tan(top / 2)  # stereographic radius of the sector's farthest point
    if span >= 180.0:
        x0, x1, y0, y1 = -reach, reach, (0.0 if span == 180.0 else -reach), reach
    else:
        edge = math.radians(span)
        x0, x1 = min(0.0, reach * math.cos(edge)), reach
        y0, y1 = 0.0, max(reach * math.sin(edge), 1e-3 * reach)
    half = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    t = (np.arange(size) + 0.5) / size * 2 - 1
    xs = cx + half * 1.04 * t[None, :]
    ys = cy - half * 1.04 * t[:, None]  # rows downwards, y up
    r2 = xs**2 + ys**2
    d = np.stack(np.broadcast_arrays(2 * xs, 2 * ys, 1 - r2), axis=-1) / (1 + r2)[..., None]
    inside = in_sector(d, name)
    image = np.zeros((size, size, 4))
    image[inside, :3] = _sector_colors(d[inside], name)
    image[inside, 3] = 1.0
    return image


def misorientation(a: Any, b: Any, system: str, degrees: bool = True) -> np.ndarray:
    """The misorientation angle between orientations ``a`` and ``b`` of one crystal system:
    the smallest rotation that takes one onto the other, over the symmetry's equivalents.

    Parameters
    ----------
    a, b : array_like
        ``(..., 3, 3)`` orientations, crystal to laboratory, broadcast together; NaN gives NaN.
    system : str
        The crystal system: its Laue group's rotations are the equivalents.
    degrees : bool
        Degrees (default) instead of radians.

    Returns
    -------
    numpy.ndarray
        ``(...)``: from 0 to the system's largest misorientation (62.8 degrees for cubic).
    """
    name = system_name(system)
    ra = _rotations(a, "misorientation")
    rb = _rotations(b, "misorientation")
    ops = laue_operations(name)
    proper = ops[np.linalg.det(ops) > 0]
    d = np.swapaxes(ra, -1, -2) @ rb  # crystal a to crystal b
    best = np.full(d.shape[:-2], -np.inf)
    for s in proper:  # the largest trace(S d) is the smallest angle; memory of one map
        best = np.maximum(best, np.einsum("ij,...ji->...", s, d))
    angle = np.arccos(np.clip((best - 1.0) / 2.0, -1.0, 1.0))
    angle = np.where(np.isfinite(d).all(axis=(-1, -2)), angle, np.nan)
    return np.degrees(angle) if degrees else angle


def kernel_average_misorientation(
    rotations: Any, system: str, threshold: float = 5.0, phase: Any = None
) -> np.ndarray:
    """Kernel average misorientation (KAM): each position's mean misorientation, in degrees,
    to its four nearest neighbours on the scan, leaving out those beyond ``threshold`` (grain
    boundaries), of another phase, or without an orientation. A map of local lattice
    curvature: dislocation density, deformation.

    Parameters
    ----------
    rotations : array_like
        ``(rows, cols, 3, 3)`` orientations over a 2-D scan (NaN where none).
    system : str
        The crystal system of all of them (with ``phase``, of every phase: misorientations
        are only taken between positions of one phase, so pass each phase's map separately
        where the systems differ).
    threshold : float
        Degrees; neighbours farther apart count as across a boundary (default 5).
    phase : array_like, optional
        ``(rows, cols)`` phase index; neighbours of another phase are left out.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` float64 degrees; NaN where no neighbour counts.
    """
    rot = _rotations(rotations, "kernel_average_misorientation")
    which = _scan_phase(rot, phase, "kernel_average_misorientation")
    total = np.zeros(rot.shape[:2])
    count = np.zeros(rot.shape[:2])
    # Each pair of neighbours once, added to both.
    for lo, hi, angle, keep in _neighbour_pairs(rot, system, threshold, which):
        for side in (lo, hi):
            total[side] += np.where(keep, angle, 0.0)
            count[side] += keep
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _neighbour_pairs(rot: np.ndarray, system: str, threshold: float, which: np.ndarray):  # type: ignore[no-untyped-def]
    """For the right and lower neighbour of every position: the slices of each side, the
    misorientation and whether the two are of one grain (within ``threshold``, one phase)."""
    for axis in (0, 1):
        lo = [slice(None), slice(None)]
        hi = [slice(None), slice(None)]
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        angle = misorientation(rot[tuple(lo)], rot[tuple(hi)], system)
        keep = (angle <= threshold) & (which[tuple(lo)] == which[tuple(hi)])
        yield tuple(lo), tuple(hi), angle, keep


def _scan_phase(rot: np.ndarray, phase: Any, what: str) -> np.ndarray:
    """``phase`` checked against the 2-D scan of ``rot`` (all 0 when None)."""
    if rot.ndim != 4:
        raise InvalidParameterError(
            f"{what}: rotations must be (rows, cols, 3, 3), got {rot.shape}"
        )
    which = np.zeros(rot.shape[:2], dtype=np.int64) if phase is None else np.asarray(phase)
    if which.shape != rot.shape[:2]:
        raise InvalidParameterError(
            f"{what}: phase must have the scan's shape {rot.shape[:2]}, got {which.shape}"
        )
    return which


def grain_labels(
    rotations: Any, system: str, threshold: float = 5.0, phase: Any = None
) -> tuple[np.ndarray, int]:
    """Grains: the scan positions joined to a neighbour (of four) within ``threshold`` degrees
    of misorientation and of one phase, as connected regions. A gradual bend stays one grain
    however far it turns in all; a boundary is a step between neighbours.

    Parameters
    ----------
    rotations : array_like
        ``(rows, cols, 3, 3)`` orientations over a 2-D scan (NaN where none).
    system : str
        The crystal system (with ``phase``, see :func:`kernel_average_misorientation`).
    threshold : float
        Degrees (default 5; 15 for high-angle boundaries only).
    phase : array_like, optional
        ``(rows, cols)`` phase index; neighbours of another phase are in another grain.

    Returns
    -------
    labels : numpy.ndarray
        ``(rows, cols)`` int64, grains numbered from 0 by their first position in scan order;
        -1 where there is no orientation.
    count : int
        How many grains.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rot = _rotations(rotations, "grain_labels")
    which = _scan_phase(rot, phase, "grain_labels")
    rows, cols = rot.shape[:2]
    index = np.arange(rows * cols).reshape(rows, cols)
    pairs = [
        (index[lo][keep], index[hi][keep])
        for lo, hi, _, keep in _neighbour_pairs(rot, system, threshold, which)
    ]
    first = np.concatenate([p[0] for p in pairs])
    second = np.concatenate([p[1] for p in pairs])
    graph = coo_matrix((np.ones(first.size), (first, second)), shape=(rows * cols,) * 2)
    _, component = connected_components(graph, directed=False)
    solved = np.isfinite(rot).all(axis=(-1, -2)).reshape(-1)
    # Renumber the components of solved positions by first appearance.
    order, first_seen = np.unique(component[solved], return_index=True)
    rank = np.empty(len(order), dtype=np.int64)
    rank[np.argsort(first_seen)] = np.arange(len(order))
    labels = np.full(rows * cols, -1, dtype=np.int64)
    labels[solved] = rank[np.searchsorted(order, component[solved])]
    return labels.reshape(rows, cols), len(order)
