"""Disk finding in diffraction patterns: correlation templates, per-frame correlation and peak
finding (:mod:`.templates`, :mod:`.peaks`), simulated disk lattices (:mod:`.simulate`)."""

from __future__ import annotations

from libertem_gpu.disks.peaks import find_peaks, find_peaks_sparse
from libertem_gpu.disks.templates import (
    disk_template,
    normalise_template,
    probe_template,
    radial_gradient_template,
    ring_template,
    user_template,
)

__all__ = [
    "disk_template",
    "find_peaks",
    "find_peaks_sparse",
    "normalise_template",
    "probe_template",
    "radial_gradient_template",
    "ring_template",
    "user_template",
]
