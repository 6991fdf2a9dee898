"""The shape of a data set: navigation (scan) dimensions followed by signal (frame) dimensions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from libertem_gpu.errors import DataSetError


def validate_dims(dims: Iterable[int], what: str, min_ndim: int, max_ndim: int) -> tuple[int, ...]:
    """Return ``dims`` as a tuple of positive ints, or raise a :class:`DataSetError` naming
    ``what``."""
    try:
        result = tuple(int(d) for d in dims)
    except (TypeError, ValueError):
        raise DataSetError(f"{what} must be a sequence of integers, got {dims!r}") from None
    if not min_ndim <= len(result) <= max_ndim:
        raise DataSetError(
            f"{what} must have {min_ndim} to {max_ndim} dimensions, got {len(result)}: {result}"
        )
    if any(d <= 0 for d in result):
        raise DataSetError(f"every entry of {what} must be positive, got {result}")
    return result


@dataclass(frozen=True)
class Shape:
    """A data set's shape, split into navigation and signal parts.

    Parameters
    ----------
    nav : tuple of int
        The scan dimensions, e.g. ``(scan_y, scan_x)``.
    sig : tuple of int
        The frame dimensions, e.g. ``(det_y, det_x)``.
    """

    nav: tuple[int, ...]
    sig: tuple[int, ...]

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

    def to_tuple(self) -> tuple[int, ...]:
        """The full shape, navigation dimensions first."""
        return self.nav + self.sig

    def __iter__(self) -> Iterator[int]:
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self.nav) + len(self.sig)
