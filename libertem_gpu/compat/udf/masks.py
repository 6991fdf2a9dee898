"""LiberTEM's ``libertem.udf.masks``: :class:`ApplyMasksUDF`."""

from libertem_gpu import ApplyMasksUDF

__all__ = ["ApplyMasksUDF"]
