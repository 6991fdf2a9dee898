"""LiberTEM's ``libertem.udf``: the UDF base class and the built-in UDFs' modules."""

from libertem_gpu.compat.udf.base import (
    UDF,
    UDFData,
    UDFFrameMixin,
    UDFMeta,
    UDFPartitionMixin,
    UDFPostprocessMixin,
    UDFPreprocessMixin,
    UDFRunCancelled,
    UDFTileMixin,
    check_cast,
)
from libertem_gpu.udf.auto import AutoUDF

__all__ = [
    "UDF",
    "AutoUDF",
    "UDFData",
    "UDFFrameMixin",
    "UDFMeta",
    "UDFPartitionMixin",
    "UDFPostprocessMixin",
    "UDFPreprocessMixin",
    "UDFRunCancelled",
    "UDFTileMixin",
    "check_cast",
]
