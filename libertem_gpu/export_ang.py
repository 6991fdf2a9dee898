"""Orientation maps as EDAX/TSL ``.ang`` files, which MTEX, orix, OIM Analysis, kikuchipy and
DREAM.3D read: template matching's orientations over the scan, for texture, grain and
misorientation analysis in EBSD software."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.outputs import atomic_path
from libertem_gpu.udf.crystal_symmetry import system_name
from libertem_gpu.udf.orientation_map import euler_angles

__all__ = ["TSL_SYMMETRY", "Phase", "write_ang"]

#: The .ang header's ``Symmetry`` code of each system's Laue group as this library samples it
#: (trigonal: -3, see :mod:`~libertem_gpu.udf.crystal_symmetry`).
TSL_SYMMETRY = {
    "cubic": 43,
    "hexagonal": 62,
    "tetragonal": 42,
    "orthorhombic": 22,
    "trigonal": 3,
    "monoclinic": 2,
    "triclinic": 1,
}

# What the format's readers take for a position without a solution.
_UNINDEXED_EULER = 4 * math.pi
_UNINDEXED_CI = -1.0


def _grid(rotations: Any) -> np.ndarray:
    rot = np.asarray(rotations, dtype=np.float64)
    if rot.ndim == 3:
        rot = rot[None]
    if rot.ndim != 4 or rot.shape[-2:] != (3, 3):
        raise InvalidParameterError(
            f"write_ang: rotations must be (rows, cols, 3, 3) or (cols, 3, 3) over the scan, "
            f"got shape {rot.shape}"
        )
    return rot


@dataclass(frozen=True)
class Phase:
    """One phase of a multi-phase :func:`write_ang`: its name, crystal system and cell
    ``(a, b, c, alpha, beta, gamma)`` (Å, degrees)."""

    name: str
    system: str
    cell: tuple[float, ...]


def _phase_list(
    phases: Sequence[Phase] | None, system: str | None, cell: Any, phase_name: str
) -> list[Phase]:
    if phases is None:
        if system is None or cell is None:
            raise InvalidParameterError("write_ang: give system and cell, or phases")
        phases = [Phase(phase_name, system, tuple(cell))]
    elif system is not None or cell is not None:
        raise InvalidParameterError("write_ang: give system and cell, or phases, not both")
    checked = []
    for ph in phases:
        try:
            lattice = tuple(float(v) for v in ph.cell)
        except (TypeError, ValueError):
            lattice = ()
        if len(lattice) != 6:
            raise InvalidParameterError(
                f"write_ang: cell must be six numbers, got {ph.cell!r} for phase {ph.name!r}"
            )
        checked.append(Phase(str(ph.name), system_name(ph.system), lattice))
    if not checked:
        raise InvalidParameterError("write_ang: phases is empty")
    return checked


def write_ang(
    path: str | os.PathLike[str],
    rotations: Any,
    system: str | None = None,
    cell: Sequence[float] | None = None,
    score: Any = None,
    step: tuple[float, float] = (1.0, 1.0),
    phase_name: str = "phase",
    sample_frame: Any = None,
    overwrite: bool = False,
    phases: Sequence[Phase] | None = None,
    phase_index: Any = None,
) -> str:
    """Write an orientation map as a TSL ``.ang`` file: one phase (``system``, ``cell``) or
    several (``phases`` and ``phase_index``).

    Parameters
    ----------
    path : str or path-like
        The file to write (written whole under a temporary name, then renamed).
    rotations : array_like
        ``(rows, cols, 3, 3)`` orientations over a 2-D scan (or ``(cols, 3, 3)``), crystal to
        laboratory, as :func:`~libertem_gpu.match_orientations` gives them (take the best
        match, ``[..., 0, :, :]``). NaN marks a position without a solution: it is written
        as unindexed (Euler angles 4 pi, CI -1, phase 0).
    system : str, optional
        One phase's crystal system, for the header's ``Symmetry`` (:data:`TSL_SYMMETRY`).
    cell : sequence of float, optional
        One phase's ``(a, b, c, alpha, beta, gamma)``, Å and degrees, for
        ``LatticeConstants``.
    score : array_like, optional
        The match score per position (``TemplateMatchUDF``'s ``score[..., 0]``): the IQ
        column, and the CI column as score over the map's highest (so in [0, 1]).
    step : (float, float)
        Scan step ``(y, x)`` in the unit the EBSD software should show (µm in TSL's own).
    phase_name : str
        ``MaterialName`` of the one phase.
    sample_frame : array_like, optional
        A 3 x 3 rotation from the laboratory frame (x along the detector's columns, y along
        its rows, z along the beam) to the sample frame the file should use; the Euler
        angles are of ``sample_frame @ R``. Default: the laboratory frame.
    overwrite : bool
        Replace an existing file.
    phases : sequence of Phase, optional
        Several phases instead of ``system``, ``cell`` and ``phase_name``; written as the
        header's phases 1, 2, ...
    phase_index : array_like, optional
        With ``phases``: each position's phase, 0-based into ``phases`` (the scan's shape);
        negative for none (unindexed).

    Returns
    -------
    str
        The path written.

    Notes
    -----
    Columns: ``phi1 PHI phi2`` (Bunge, radians, :func:`~libertem_gpu.euler_angles`), ``x y``
    (the scan position times ``step``), IQ, CI and the phase (1-based; 0 unindexed), row by
    row. The crystal frame is this library's, ``a`` along x (for hexagonal crystals TSL
    software may expect ``a*`` along x: choose that setting when importing).
    """
    target = os.fspath(path)
    if os.path.lexists(target) and not overwrite:
        raise FileExistsError(f"write_ang: {target} exists; pass overwrite=True to replace it")
    table_of = _phase_list(phases, system, cell, phase_name)
    rot = _grid(rotations)
    rows, cols = rot.shape[:2]
    if sample_frame is not None:
        frame = np.asarray(sample_frame, dtype=np.float64)
        if frame.shape != (3, 3) or not np.allclose(frame @ frame.T, np.eye(3), atol=1e-6):
            raise InvalidParameterError("write_ang: sample_frame must be a 3 x 3 rotation matrix")
        if np.linalg.det(frame) < 0:
            raise InvalidParameterError("write_ang: sample_frame must be a rotation, not a mirror")
        rot = frame @ rot
    try:
        dy, dx = (float(v) for v in step)
    except (TypeError, ValueError):
        raise InvalidParameterError("write_ang: step must be two numbers") from None
    if phase_index is None:
        which = np.zeros(rows * cols, dtype=np.int64)
    else:
        which = np.asarray(phase_index).reshape(-1)
        if which.size != rows * cols or which.dtype.kind not in "iu":
            raise InvalidParameterError(
                f"write_ang: phase_index must hold one integer per position ({rows} x {cols}), "
                f"got {np.asarray(phase_index).dtype} of shape {np.shape(phase_index)}"
            )
        if which.max(initial=-1) >= len(table_of):
            raise InvalidParameterError(
                f"write_ang: phase_index {int(which.max())} is beyond the {len(table_of)} phases"
            )
    angles = euler_angles(rot).reshape(-1, 3)
    solved = np.isfinite(angles).all(axis=1) & (which >= 0)
    iq = np.zeros(rows * cols)
    if score is not None:
        s = np.asarray(score, dtype=np.float64).reshape(-1)
        if s.size != rows * cols:
            raise InvalidParameterError(
                f"write_ang: score must have one value per position ({rows} x {cols}), got "
                f"{np.shape(score)}"
            )
        solved &= np.isfinite(s)
        top = float(np.max(s[solved])) if solved.any() else 0.0
        iq = np.where(np.isfinite(s), s, 0.0)
        ci = np.where(solved, s / top if top > 0 else 0.0, _UNINDEXED_CI)
    else:
        ci = np.where(solved, 1.0, _UNINDEXED_CI)
    angles[~solved] = _UNINDEXED_EULER
    yy, xx = np.mgrid[0:rows, 0:cols]
    table = np.column_stack(
        [angles, xx.ravel() * dx, yy.ravel() * dy, iq, ci, np.where(solved, which + 1, 0)]
    )
    header = ["# File written by libertem_gpu (template matching)", "#"]
    for number, ph in enumerate(table_of, start=1):
        header += [
            f"# Phase {number}",
            f"# MaterialName  \t{ph.name}",
            f"# Formula     \t{ph.name}",
            "# Info          \t",
            f"# Symmetry              {TSL_SYMMETRY[ph.system]}",
            "# LatticeConstants      " + " ".join(f"{v:.3f}" for v in ph.cell),
            "# NumberFamilies        0",
            "#",
        ]
    header += [
        "# GRID: SqrGrid",
        f"# XSTEP: {dx:.6f}",
        f"# YSTEP: {dy:.6f}",
        f"# NCOLS_ODD: {cols}",
        f"# NCOLS_EVEN: {cols}",
        f"# NROWS: {rows}",
        "#",
        "# COLUMN_COUNT: 8",
        "# COLUMN_HEADERS: phi1, PHI, phi2, x, y, IQ, CI, Phase index",
        "#",
    ]
    with atomic_path(target) as tmp:
        np.savetxt(
            tmp,
            table,
            fmt=["%.5f", "%.5f", "%.5f", "%.5f", "%.5f", "%.6g", "%.4f", "%d"],
            header="\n".join(header),
            comments="",
        )
    return target
