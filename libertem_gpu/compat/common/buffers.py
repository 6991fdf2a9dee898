"""LiberTEM's ``libertem.common.buffers``: the result and buffer types under LiberTEM's names.

``BufferWrapper`` is what ``run_udf`` returns per result here (a
:class:`~libertem_gpu.udf.buffers.BufferResult`: ``.data``, ``.raw_data``, ``.valid_mask``,
``.masked_data``, ``np.asarray``); buffers are declared with ``UDF.buffer`` as in LiberTEM.
"""

from libertem_gpu.udf.buffers import BufferDecl, BufferResult

__all__ = ["BufferDecl", "BufferWrapper"]

BufferWrapper = BufferResult
