"""Cropping a data set on export: a box of scan positions (``crop_nav``) and a box of each
frame (``crop_sig``), as ``libertem-gpu convert --crop-nav/--crop-sig`` and
``ctx.export_dataset(crop_nav=..., crop_sig=...)`` write them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError

__all__ = ["NavCrop", "axis_slices", "parse_crop"]


def _as_slice(entry: Any, length: int, name: str, axis: int) -> slice:
    """One axis of a crop: None (all), a slice, or ``(start, stop[, step])``."""
    if entry is None:
        return slice(0, length, 1)
    if isinstance(entry, slice):
        parts: tuple[Any, ...] = (entry.start, entry.stop, entry.step)
    elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) in (2, 3):
        parts = (*tuple(entry), None)[:3]
    else:
        raise InvalidParameterError(
            f"{name}[{axis}] must be None, a slice or (start, stop[, step]), got {entry!r}"
        )
    if not all(
        p is None or (isinstance(p, (int, np.integer)) and not isinstance(p, bool)) for p in parts
    ):
        raise InvalidParameterError(f"{name}[{axis}] must hold whole numbers, got {entry!r}")
    start, stop, step = slice(*parts).indices(length)
    if step < 1:
        raise InvalidParameterError(f"{name}[{axis}]: the step must be positive, got {step}")
    if len(range(start, stop, step)) == 0:
        raise InvalidParameterError(
            f"{name}[{axis}] = {entry!r} keeps nothing of an axis of length {length}"
        )
    return slice(start, stop, step)


def axis_slices(spec: Any, shape: Sequence[int], name: str) -> tuple[slice, ...]:
    """A crop as one normalised slice per axis of ``shape`` (non-empty, positive steps).

    Parameters
    ----------
    spec : sequence
        One entry per axis: None (the whole axis), a ``slice``, or ``(start, stop[, step])``;
        negative numbers count from the end, as in NumPy.
    shape : sequence of int
        The axes' lengths.
    name : str
        The parameter, for errors.

    Examples
    --------
    >>> axis_slices([(2, -2), None], (10, 6), "crop_sig")
    (slice(2, 8, 1), slice(0, 6, 1))
    """
    shape = tuple(int(s) for s in shape)
    if isinstance(spec, (slice, str)) or not isinstance(spec, Sequence) or len(spec) != len(shape):
        raise InvalidParameterError(
            f"{name} must give one entry per axis of {shape} (None, a slice or "
            f"(start, stop[, step])), got {spec!r}"
        )
    return tuple(_as_slice(e, n, name, i) for i, (e, n) in enumerate(zip(spec, shape, strict=True)))


def cropped_shape(slices: Sequence[slice], shape: Sequence[int]) -> tuple[int, ...]:
    """The lengths of ``shape``'s axes once cropped by ``slices``."""
    return tuple(len(range(*s.indices(n))) for s, n in zip(slices, shape, strict=True))


class NavCrop:
    """A box of scan positions: which to read (``roi_flat``) and where each goes in the
    cropped scan (``index``).

    Parameters
    ----------
    nav_shape : sequence of int
        The scan's shape.
    spec : sequence
        As :func:`axis_slices`, one entry per scan axis.
    """

    def __init__(self, nav_shape: Sequence[int], spec: Any) -> None:
        nav = tuple(int(n) for n in nav_shape)
        self.slices = axis_slices(spec, nav, "crop_nav")
        self.nav_shape = cropped_shape(self.slices, nav)
        selected = np.zeros(nav, dtype=bool)
        selected[self.slices] = True
        self.roi_flat = selected.reshape(-1)
        #: The cropped scan's flat index of each position (-1 outside the box); positions of
        #: the box come in the same order in both scans.
        self.index = np.full(math.prod(nav), -1, dtype=np.int64)
        self.index[self.roi_flat] = np.arange(int(self.roi_flat.sum()))


def parse_crop(text: str) -> tuple[tuple[int | None, ...], ...]:
    """``"10:138,20:148"`` (``start:stop[:step]`` per axis, parts may be empty) as
    :func:`axis_slices` takes it.

    Examples
    --------
    >>> parse_crop("10:138,:")
    ((10, 138, None), (None, None, None))
    """
    axes = []
    for part in text.split(","):
        fields = part.strip().split(":")
        if len(fields) not in (2, 3):
            raise ValueError(f"expected start:stop[:step] per axis, got {part!r} in {text!r}")
        try:
            numbers = tuple(int(f) if f.strip() else None for f in fields)
        except ValueError:
            raise ValueError(f"expected whole numbers in {part!r} of {text!r}") from None
        axes.append((*numbers, None)[:3])
    return tuple(axes)
