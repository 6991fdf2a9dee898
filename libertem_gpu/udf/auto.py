"""A UDF made from a plain function of one frame: :class:`AutoUDF` (``ctx.map``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl


class AutoUDF(UDF):
    """Apply ``f`` to every frame and keep what it returns, one value (or array) per position.

    The shape and dtype of the result are those of ``f`` applied to a frame of zeros of the
    data set's input type, so ``f`` must return the same shape for every frame.

    Parameters
    ----------
    f : callable
        ``f(frame) -> scalar or array``; must be picklable to run on a cluster.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5))
    >>> ctx.map(dataset=ds, f=lambda frame: frame.max()).data.shape
    (2, 3)
    """

    def __init__(self, f: Callable[[Any], Any]) -> None:
        super().__init__(f=f)

    def _probe(self) -> np.ndarray:
        assert self.meta is not None
        zeros = np.zeros(tuple(self.meta.dataset_shape.sig), dtype=self.meta.input_dtype)
        return np.asarray(self.params.f(zeros))

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``result``: nav, shaped and typed like ``f``'s answer for a frame."""
        probe = self._probe()
        return {"result": self.buffer(kind="nav", extra_shape=probe.shape, dtype=probe.dtype)}

    def process_frame(self, frame: Any) -> None:
        """Store ``f(frame)``."""
        self.results.result[:] = np.asarray(self.params.f(frame))
