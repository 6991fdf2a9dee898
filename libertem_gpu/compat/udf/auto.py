"""LiberTEM's ``libertem.udf.auto``: :class:`AutoUDF`."""

from libertem_gpu import AutoUDF

__all__ = ["AutoUDF"]
