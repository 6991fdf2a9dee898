"""LiberTEM's ``libertem.common.shape``: :class:`Shape`, built as ``Shape(shape, sig_dims)``."""

from __future__ import annotations

from collections.abc import Iterable

from libertem_gpu.shape import Shape as _Shape

__all__ = ["Shape"]


class Shape(_Shape):
    """A shape split into navigation and signal parts, constructed as in LiberTEM.

    Parameters
    ----------
    shape : iterable of int
        The full shape, navigation dimensions first.
    sig_dims : int
        How many trailing dimensions are the signal.

    Examples
    --------
    >>> s = Shape((16, 16, 128, 128), sig_dims=2)
    >>> s.nav.size, tuple(s.sig), s.flatten_nav().to_tuple()
    (256, (128, 128), (256, 128, 128))
    """

    __slots__ = ()

    def __init__(self, shape: Iterable[int], sig_dims: int) -> None:
        split = _Shape.from_tuple(shape, sig_dims)
        super().__init__(nav=split.nav, sig=split.sig)
