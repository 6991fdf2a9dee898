"""Disk finding in diffraction patterns: correlation templates, per-frame correlation and peak
finding (:mod:`.templates`, :mod:`.peaks`), Bragg vector maps and dark field from the disks
(:mod:`.vectors`), simulated disk lattices (:mod:`.simulate`,
:mod:`.simulate_strain`), lattice fitting (:mod:`.lattice`, :mod:`.fit_udf`), strain maps
(:mod:`.strain`) and the one-call :func:`find_lattice_strain` (:mod:`.helper`)."""

from __future__ import annotations

from libertem_gpu.disks.helper import LatticeStrainResult, find_lattice_strain
from libertem_gpu.disks.lattice import LatticeFit, find_lattice, fit_lattice
from libertem_gpu.disks.peaks import find_peaks, find_peaks_sparse
from libertem_gpu.disks.strain import StrainMaps, reference_basis, strain_from_basis
from libertem_gpu.disks.templates import (
    disk_template,
    normalise_template,
    probe_template,
    radial_gradient_template,
    ring_template,
    user_template,
)
from libertem_gpu.disks.vectors import bragg_vector_map, vector_dark_field

__all__ = [
    "LatticeFit",
    "LatticeStrainResult",
    "StrainMaps",
    "bragg_vector_map",
    "disk_template",
    "find_lattice",
    "find_lattice_strain",
    "find_peaks",
    "find_peaks_sparse",
    "fit_lattice",
    "normalise_template",
    "probe_template",
    "radial_gradient_template",
    "reference_basis",
    "ring_template",
    "strain_from_basis",
    "user_template",
    "vector_dark_field",
]
