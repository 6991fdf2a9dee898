"""The shape of a data set: navigation (scan) dimensions followed by signal (frame) dimensions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from typing import Any, SupportsIndex, overload

from libertem_gpu.errors import DataSetError


def as_integer(value: Any, what: str) -> int:
    """Return ``value`` as an int if it is integral (``4``, ``np.int64(4)``, ``4.0``), else raise
    a :class:`DataSetError` naming ``what``: ``int()`` would silently truncate ``2.7`` and fail
    on NaN with a message that names no parameter."""
    if isinstance(value, bool | str | bytes) or value is None:
        raise DataSetError(f"{what} must be an integer, got {value!r}")
    try:
        result = int(value)
        integral = result == value
    except (TypeError, ValueError, OverflowError):
        raise DataSetError(f"{what} must be an integer, got {value!r}") from None
    if not integral:
        raise DataSetError(f"{what} must be an integer, got {value!r} (not a whole number)")
    return result


def validate_dims(dims: Iterable[int], what: str, min_ndim: int, max_ndim: int) -> tuple[int, ...]:
    """Return ``dims`` as a tuple of positive ints, or raise a :class:`DataSetError` naming
    ``what``."""
    if isinstance(dims, str | bytes):
        raise DataSetError(f"{what} must be a sequence of integers, got {dims!r}")
    try:
        result = tuple(as_integer(d, what) for d in dims)
    except (TypeError, DataSetError):
        raise DataSetError(f"{what} must be a sequence of whole numbers, got {dims!r}") from None
    if not min_ndim <= len(result) <= max_ndim:
        raise DataSetError(
            f"{what} must have {min_ndim} to {max_ndim} dimensions, got {len(result)}: {result}"
        )
    if any(d <= 0 for d in result):
        raise DataSetError(f"every entry of {what} must be positive, got {result}")
    return result


class Dims(tuple[int, ...]):
    """The navigation or signal part of a :class:`Shape`: a tuple of ints that also answers
    LiberTEM's ``Shape`` questions (``size``, ``dims``, ``to_tuple()``).

    A tuple rather than a ``Shape`` so that ``shape.nav + shape.sig``, ``len(shape.nav)`` and
    ``shape.sig == (128, 128)`` keep their plain tuple meaning.
    """

    __slots__ = ()

    @property
    def size(self) -> int:
        """Number of elements (1 for no dimensions)."""
        return math.prod(self)

    @property
    def dims(self) -> int:
        """Number of dimensions."""
        return len(self)

    def to_tuple(self) -> tuple[int, ...]:
        """The dimensions as a plain tuple."""
        return tuple(self)


class Shape:
    """A data set's shape, split into navigation and signal parts.

    Besides its own names (``nav_size``, ``sig_size``) it answers LiberTEM's ``Shape``
    methods: ``nav`` and ``sig`` (with ``.size``, ``.dims``, ``.to_tuple()``), ``dims``,
    ``size``, ``nav_dims``, ``flatten_nav()``, ``flatten_sig()``, ``to_tuple()``, indexing, and
    equality with a plain tuple.

    Parameters
    ----------
    nav : tuple of int
        The scan dimensions, e.g. ``(scan_y, scan_x)``.
    sig : tuple of int
        The frame dimensions, e.g. ``(det_y, det_x)``.

    Examples
    --------
    >>> s = Shape(nav=(4, 5), sig=(16, 16))
    >>> s.nav.size, s.sig.dims, s.flatten_nav().to_tuple()
    (20, 2, (20, 16, 16))
    >>> s == (4, 5, 16, 16)
    True
    """

    __slots__ = ("_nav", "_sig")

    def __init__(self, nav: Iterable[int], sig: Iterable[int]) -> None:
        self._nav = Dims(int(d) for d in nav)
        self._sig = Dims(int(d) for d in sig)

    @property
    def nav(self) -> Dims:
        """The scan dimensions."""
        return self._nav

    @property
    def sig(self) -> Dims:
        """The frame dimensions."""
        return self._sig

    @classmethod
    def from_tuple(cls, shape: Iterable[int], sig_dims: int) -> Shape:
        """A Shape from the full shape and the number of trailing signal dimensions (LiberTEM's
        ``Shape(shape, sig_dims)``)."""
        full = tuple(int(d) for d in shape)
        sig_dims = int(sig_dims)
        if not 0 <= sig_dims <= len(full):
            raise DataSetError(f"sig_dims={sig_dims} does not fit a shape of {len(full)} dims")
        split = len(full) - sig_dims
        return Shape(nav=full[:split], sig=full[split:])

    @property
    def nav_size(self) -> int:
        """Number of positions in the scan."""
        return math.prod(self.nav)

    @property
    def sig_size(self) -> int:
        """Number of pixels in a frame."""
        return math.prod(self.sig)

    @property
    def sig_dims(self) -> int:
        """Number of signal dimensions."""
        return len(self.sig)

    @property
    def nav_dims(self) -> int:
        """Number of navigation dimensions."""
        return len(self.nav)

    @property
    def dims(self) -> int:
        """Number of dimensions in all."""
        return len(self.nav) + len(self.sig)

    @property
    def size(self) -> int:
        """Number of elements in all (scan positions times pixels per frame)."""
        return self.nav_size * self.sig_size

    def flatten_nav(self) -> Shape:
        """The same shape with the scan as one dimension: ``(nav_size, *sig)``."""
        return Shape(nav=(self.nav_size,), sig=self.sig)

    def flatten_sig(self) -> Shape:
        """The same shape with the frame as one dimension: ``(*nav, sig_size)``, one signal
        dimension."""
        return Shape(nav=self.nav, sig=(self.sig_size,))

    def to_tuple(self) -> tuple[int, ...]:
        """The full shape, navigation dimensions first."""
        return self.nav + self.sig

    def __iter__(self) -> Iterator[int]:
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self.nav) + len(self.sig)

    @overload
    def __getitem__(self, index: SupportsIndex) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[int, ...]: ...

    def __getitem__(self, index: SupportsIndex | slice) -> int | tuple[int, ...]:
        return self.to_tuple()[index]

    def __eq__(self, other: Any) -> bool:
        # Equal to a Shape with the same split, and to the full shape as a tuple (LiberTEM's rule).
        if isinstance(other, Shape):
            return self.nav == other.nav and self.sig == other.sig
        if isinstance(other, tuple):
            return self.to_tuple() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((tuple(self.nav), tuple(self.sig)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Shape, (tuple(self._nav), tuple(self._sig)))

    def __repr__(self) -> str:
        return f"Shape(nav={tuple(self.nav)}, sig={tuple(self.sig)})"
