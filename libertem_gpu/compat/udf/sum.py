"""LiberTEM's ``libertem.udf.sum``: :class:`SumUDF`."""

from libertem_gpu import SumUDF

__all__ = ["SumUDF"]
