"""The UDF model and the built-in analyses."""

from libertem_gpu.udf.base import UDF, UDFMeta
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace, BufferResult

__all__ = ["UDF", "BufferDecl", "BufferNamespace", "BufferResult", "UDFMeta"]
