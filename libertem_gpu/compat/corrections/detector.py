"""LiberTEM's ``libertem.corrections.detector``: ``correct``, ``RepairDescriptor`` and
``RepairValueError`` (``correct_dot_masks`` is not provided), and our
:func:`~libertem_gpu.corrections.detector.detect_bad_pixels`."""

from __future__ import annotations

from libertem_gpu.corrections.detector import (
    RepairDescriptor,
    RepairValueError,
    correct,
    detect_bad_pixels,
)

__all__ = ["RepairDescriptor", "RepairValueError", "correct", "detect_bad_pixels"]
