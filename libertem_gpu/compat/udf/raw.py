"""LiberTEM's ``libertem.udf.raw``: :class:`PickUDF`."""

from libertem_gpu import PickUDF

__all__ = ["PickUDF"]
