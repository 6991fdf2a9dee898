"""Kinematic diffraction templates of a crystal for :class:`~libertem_gpu.TemplateMatchUDF`:
the reflections excited by a parallel beam along each given orientation, their positions on
the detector and their intensities :math:`|F|^2`, without a simulation package.

Conventions: the laboratory frame has the beam along +z, x along the detector's columns and
y along its rows. An orientation is a rotation matrix ``R`` taking crystal Cartesian
coordinates (``a`` along x, ``b`` in the xy plane) to the laboratory frame. A reflection
``g`` (in 1/Å, without the factor 2 pi) is excited where its excitation error, the distance
of ``R g`` from the Ewald sphere, is within ``max_excitation``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.ssb_geometry import electron_wavelength

__all__ = [
    "direct_basis",
    "direction_orientations",
    "kinematic_templates",
    "match_orientations",
    "zone_axis_orientation",
]

_WHAT = "kinematic_templates"


def direct_basis(cell: Sequence[float]) -> np.ndarray:
    """The lattice vectors ``a, b, c`` as the rows of a 3 x 3 matrix, in Å.

    Parameters
    ----------
    cell : sequence of float
        ``(a, b, c, alpha, beta, gamma)``: lengths in Å, angles in degrees (the standard
        setting: ``a`` along x, ``b`` in the xy plane).

    Raises
    ------
    InvalidParameterError
        For lengths that are not positive or angles that make no cell.
    """
    try:
        a, b, c, alpha, beta, gamma = (float(v) for v in cell)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"{_WHAT}: cell must be six numbers (a, b, c in Å, alpha, beta, gamma in degrees), "
            f"got {cell!r}"
        ) from None
    ca, cb, cg = (math.cos(math.radians(v)) for v in (alpha, beta, gamma))
    sg = math.sin(math.radians(gamma))
    cy = (ca - cb * cg) / sg if sg > 1e-12 else math.nan
    cz2 = 1 - cb * cb - cy * cy
    if not (min(a, b, c) > 0 and math.isfinite(a + b + c) and cz2 > 1e-12):
        raise InvalidParameterError(
            f"{_WHAT}: cell {tuple(cell)} is no lattice (positive lengths, and angles that "
            "close a cell)"
        )
    return np.array([[a, 0, 0], [b * cg, b * sg, 0], [c * cb, c * cy, c * math.sqrt(cz2)]])


def zone_axis_orientation(cell: Sequence[float], uvw: Sequence[float]) -> np.ndarray:
    """A rotation that puts the direct lattice direction ``[uvw]`` along the beam (+z).

    The rotation about the beam is arbitrary: template matching searches it. For a family of
    orientations (a fundamental zone), pass rotation matrices from orix instead.

    Returns
    -------
    numpy.ndarray
        3 x 3 rotation matrix (orthonormal, determinant 1).
    """
    direction = np.asarray(uvw, dtype=np.float64) @ direct_basis(cell)
    norm = float(np.linalg.norm(direction))
    if direction.shape != (3,) or not norm > 0:
        raise InvalidParameterError(f"{_WHAT}: uvw must be three numbers, not all 0, got {uvw!r}")
    return _onto_beam(direction / norm)


def direction_orientations(directions: Any) -> np.ndarray:
    """Rotations that put each Cartesian crystal direction along the beam (+z), turned about
    the beam as :func:`zone_axis_orientation` turns them (template matching searches that
    turn).

    Parameters
    ----------
    directions : array_like
        ``(n, 3)`` directions in the crystal's Cartesian frame (``a`` along x, ``b`` in the
        xy plane), such as :func:`~libertem_gpu.udf.crystal_symmetry.beam_directions`.

    Returns
    -------
    numpy.ndarray
        ``(n, 3, 3)`` rotation matrices, crystal to laboratory.
    """
    d = np.asarray(directions, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != 3 or not np.isfinite(d).all():
        raise InvalidParameterError(
            f"{_WHAT}: directions must be finite (n, 3) vectors, got shape {d.shape}"
        )
    norm = np.linalg.norm(d, axis=1)
    if (norm <= 0).any():
        raise InvalidParameterError(f"{_WHAT}: direction {int(np.argmin(norm))} is zero")
    return np.array([_onto_beam(v / n) for v, n in zip(d, norm, strict=True)]).reshape(-1, 3, 3)


def _onto_beam(t: np.ndarray) -> np.ndarray:
    """The rotation about ``t x z`` taking the unit vector ``t`` to +z (half a turn about x
    for -z)."""
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(t, z)
    s, c = float(np.linalg.norm(axis)), float(t @ z)
    if s < 1e-12:  # already along the beam, or against it: half a turn about x
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = axis / s
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * cross + (1 - c) * cross @ cross


def _orientations(orientations: Any) -> np.ndarray:
    rot = np.asarray(orientations, dtype=np.float64)
    if rot.ndim == 2:
        rot = rot[None]
    if rot.ndim != 3 or rot.shape[1:] != (3, 3) or not np.isfinite(rot).all():
        raise InvalidParameterError(
            f"{_WHAT}: orientations must be 3 x 3 rotation matrices, (n, 3, 3), got shape "
            f"{rot.shape}"
        )
    off = np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max(axis=(1, 2))
    if (off > 1e-6).any() or (np.linalg.det(rot) < 0).any():
        bad = int(np.flatnonzero((off > 1e-6) | (np.linalg.det(rot) < 0))[0])
        raise InvalidParameterError(
            f"{_WHAT}: orientation {bad} is not a rotation (orthonormal, determinant 1)"
        )
    return rot


def _atoms(atoms: Any) -> np.ndarray:
    if atoms is None:
        return np.array([[0.0, 0.0, 0.0, 1.0]])
    found = np.asarray(atoms, dtype=np.float64)
    if found.ndim != 2 or found.shape[1] != 4 or not len(found) or not np.isfinite(found).all():
        raise InvalidParameterError(
            f"{_WHAT}: atoms must be rows (x, y, z, f): fractional coordinates and a scattering "
            f"weight, got shape {found.shape}"
        )
    return found


def kinematic_templates(
    cell: Sequence[float],
    orientations: Any,
    pixel_size: float,
    reach: float,
    voltage_kv: float = 200.0,
    max_excitation: float = 0.01,
    atoms: Any = None,
    min_intensity: float = 1e-3,
) -> list[np.ndarray]:
    """The reflections of a crystal for each orientation, as templates of
    :class:`~libertem_gpu.TemplateMatchUDF`.

    Parameters
    ----------
    cell : sequence of float
        ``(a, b, c, alpha, beta, gamma)``, Å and degrees.
    orientations : array_like
        Rotation matrices, ``(n, 3, 3)`` (or one 3 x 3): crystal to laboratory (module
        docstring); for instance from :func:`zone_axis_orientation`, or orix's
        ``Orientation.to_matrix()`` (transposed if it maps the other way).
    pixel_size : float
        The detector's pixel in reciprocal space, 1/Å per pixel (without 2 pi).
    reach : float
        Keep reflections up to this distance from the centre, in pixels.
    voltage_kv : float
        Accelerating voltage, for the Ewald sphere's curvature (default 200).
    max_excitation : float
        Largest excitation error kept, 1/Å (default 0.01). A reflection's intensity falls
        linearly from its ``|F|**2`` at 0 to nothing there (the relrod of a thin crystal).
    atoms : array_like, optional
        Rows ``(x, y, z, f)``: fractional coordinates in the cell and a scattering weight (an
        atomic number will do), for the structure factor ``F = sum f exp(2 pi i (h x + k y +
        l z))``. Default: one atom at the origin (every reflection allowed).
    min_intensity : float
        Leave out reflections weaker than this fraction of the strongest one of the bank
        (forbidden ones, ``F = 0``, included; default 1e-3).

    Returns
    -------
    list of numpy.ndarray
        One ``(spots, 3)`` float64 array per orientation: ``(dy, dx, intensity)``, pixels from
        the pattern's centre and ``|F|**2`` times the relrod factor. An orientation without
        an excited reflection gives an empty array (TemplateMatchUDF refuses those: drop
        them or widen ``max_excitation``).

    Examples
    --------
    >>> from libertem_gpu.udf.template_bank import kinematic_templates, zone_axis_orientation
    >>> fcc = [(0, 0, 0, 13), (0.5, 0.5, 0, 13), (0.5, 0, 0.5, 13), (0, 0.5, 0.5, 13)]
    >>> cell = (4.05, 4.05, 4.05, 90, 90, 90)
    >>> bank = kinematic_templates(cell, zone_axis_orientation(cell, (0, 0, 1)),
    ...                            pixel_size=0.02, reach=60, atoms=fcc)
    >>> import numpy as np
    >>> sorted({round(float(r), 2) for r in np.hypot(bank[0][:, 0], bank[0][:, 1])})
    [24.69, 34.92]
    """
    basis = direct_basis(cell)
    rot = _orientations(orientations)
    placed = _atoms(atoms)
    try:
        pixel, reach_px = float(pixel_size), float(reach)
        kv, max_s = float(voltage_kv), float(max_excitation)
        floor = float(min_intensity)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"{_WHAT}: pixel_size, reach, voltage_kv, max_excitation and min_intensity must be "
            "numbers"
        ) from None
    for name, value in (
        ("pixel_size", pixel),
        ("reach", reach_px),
        ("voltage_kv", kv),
        ("max_excitation", max_s),
    ):
        if not (math.isfinite(value) and value > 0):
            raise InvalidParameterError(f"{_WHAT}: {name} must be a number > 0, got {value}")
    k = 1.0 / electron_wavelength(kv * 1e3)
    recip = np.linalg.inv(basis).T  # rows: a*, b*, c*; g = hkl @ recip
    g_max = reach_px * pixel + max_s
    # Indices up to |h| <= g_max |a| (g . a = h) on each axis.
    limits = [math.ceil(g_max * float(np.linalg.norm(v))) for v in basis]
    grid = np.stack(
        np.meshgrid(*(np.arange(-n, n + 1) for n in limits), indexing="ij"), axis=-1
    ).reshape(-1, 3)
    grid = grid[np.any(grid != 0, axis=1)]
    g = grid @ recip
    phase = 2 * np.pi * (grid @ placed[:, :3].T)
    structure = (np.exp(1j * phase) * placed[:, 3]).sum(axis=1)
    strength = np.abs(structure) ** 2
    out = []
    for r in rot:
        lab = g @ r.T
        # Distance of k0 + g from the Ewald sphere around -k0 (beam along +z).
        s = (k * k - ((lab[:, 2] + k) ** 2 + lab[:, 0] ** 2 + lab[:, 1] ** 2)) / (2 * k)
        radius = np.hypot(lab[:, 0], lab[:, 1]) / pixel
        keep = (np.abs(s) <= max_s) & (radius <= reach_px)
        value = strength[keep] * (1 - np.abs(s[keep]) / max_s)
        out.append(np.column_stack([lab[keep, 1] / pixel, lab[keep, 0] / pixel, value]))
    top = max((float(t[:, 2].max()) for t in out if len(t)), default=0.0)
    return [t[t[:, 2] > floor * top] for t in out]


def match_orientations(
    orientations: Any, template: Any, rotation: Any, mirrored: Any = None
) -> np.ndarray:
    """The full orientation of each match of :class:`~libertem_gpu.TemplateMatchUDF` on a
    bank made by :func:`kinematic_templates`: the bank's orientation turned about the beam by
    the matched rotation.

    Parameters
    ----------
    orientations : array_like
        The bank's rotation matrices, ``(K, 3, 3)``, as given to :func:`kinematic_templates`
        (without the orientations dropped for having no reflection).
    template, rotation : array_like
        The UDF's ``template`` (int) and ``rotation`` (radians) results, of one shape.
    mirrored : array_like, optional
        The UDF's ``mirrored`` result (with ``mirror=True``). A mirrored match is the
        orientation turned by half a turn about y first, ``R_z(rotation) R_y(pi) R``, whose
        kinematic pattern is exactly ``R``'s with rows negated (each reflection ``g`` goes to
        where ``-g`` was mirrored, with the same excitation error; ``|F(-g)| = |F(g)|``).

    Returns
    -------
    numpy.ndarray
        float64 ``(*template.shape, 3, 3)``: ``R_z(rotation) R[template]``, crystal to
        laboratory, as the bank's (NaN where the rotation is NaN: positions without data).
    """
    rot = _orientations(orientations)
    which = np.asarray(template)
    turn = np.asarray(rotation, dtype=np.float64)
    if which.shape != turn.shape:
        raise InvalidParameterError(
            f"match_orientations: template and rotation must have one shape, got {which.shape} "
            f"and {turn.shape}"
        )
    if which.size and (which.min() < 0 or which.max() >= len(rot)):
        raise InvalidParameterError(
            f"match_orientations: template indices must lie in [0, {len(rot)}), the bank's "
            f"orientations; got {int(which.min())}..{int(which.max())}"
        )
    c, s = np.cos(turn), np.sin(turn)
    about_z = np.zeros((*turn.shape, 3, 3))
    about_z[..., 0, 0], about_z[..., 0, 1] = c, -s
    about_z[..., 1, 0], about_z[..., 1, 1] = s, c
    about_z[..., 2, 2] = 1.0
    base = rot[which]
    if mirrored is not None:
        flip = np.asarray(mirrored, dtype=bool)
        base = np.where(flip[..., None, None], np.diag([-1.0, 1.0, -1.0]) @ base, base)
    return about_z @ base
