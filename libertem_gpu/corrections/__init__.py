"""Detector corrections: dark frame, gain map and excluded (dead, hot, gap) pixels, applied to
every frame in the same pass that converts stored values to the UDFs' float type.

Pass a :class:`CorrectionSet` as ``ctx.run_udf(..., corrections=...)`` (or to ``ctx.load`` as
the data set's default); :func:`~.detector.detect_bad_pixels` finds hot and dead pixels from a
sum and a standard deviation frame.
"""

from libertem_gpu.corrections.corrset import CorrectionSet
from libertem_gpu.corrections.detector import correct, detect_bad_pixels
from libertem_gpu.corrections.repair import RepairDescriptor, RepairValueError

__all__ = ["CorrectionSet", "RepairDescriptor", "RepairValueError", "correct", "detect_bad_pixels"]
