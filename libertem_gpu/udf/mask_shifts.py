"""Masks moved frame by frame, as LiberTEM's ``ApplyMasksUDF(shifts=...)``: descan compensation.

A shift ``(dy, dx)`` moves every mask ``dy`` rows down and ``dx`` columns right relative to the
frame: a frame's value is the sum over the pixels where the frame and the moved mask overlap,
``sum(frame[y, x] * mask[y - dy, x - dx])``; mask pixels moved off the frame are left out, and a
mask moved off the frame entirely gives 0. Shifts are whole pixels; like LiberTEM, floats are
cast to integers, towards zero (:func:`descan_shifts` rounds a fitted descan plane instead).

Frames of one shift are applied together: a tile is split into the runs of frames that share a
shift, each run applied with the mask stack moved by it (laid out and prepared once per shift and
partition, the last few kept).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.kernels.masks import MaskStack
from libertem_gpu.udf.aux import AuxData

__all__ = ["Descan", "descan_shifts", "estimate_descan"]

#: Moved mask stacks kept for a run's partitions, and the operations prepared from them kept
#: per partition: a descan plane rounded to whole pixels gives a few dozen shifts over a scan.
#: Made once per run, a shift costs the same in a scan of 1 GiB as in one of 100 GiB.
_KEPT_BYTES = 512 * 2**20
_KEPT_MIN = 4


def as_shifts(value: Any) -> Any:
    """``shifts`` as given to the UDF, normalised: None; a constant ``tuple`` of int; or
    :class:`AuxData` of ``kind="nav"`` holding one shift per scan position (an array of
    ``(*nav_shape, sig_dims)`` or ``(nav_size, sig_dims)`` becomes one)."""
    if value is None:
        return None
    if isinstance(value, AuxData):
        if value.kind != "nav" or len(value.extra_shape) != 1:
            raise InvalidParameterError(
                "shifts as aux data must be kind='nav' with extra_shape=(sig_dims,), got "
                f"kind={value.kind!r}, extra_shape={value.extra_shape}"
            )
        _check_values(value.data, "shifts")
        return value
    array = np.asarray(value)
    if array.ndim == 1:
        _check_values(array, "shifts")
        return tuple(int(v) for v in array)
    if array.ndim < 1:
        raise InvalidParameterError(
            f"shifts must be a (dy, dx) pair or one pair per scan position, got {value!r}"
        )
    _check_values(array, "shifts")
    return AuxData.make(array, "nav", extra_shape=(array.shape[-1],), dtype=array.dtype)


def _check_values(array: np.ndarray, name: str) -> None:
    if array.dtype.kind not in "iuf" or array.size == 0:
        raise InvalidParameterError(
            f"{name} must hold integers (pixels), got {array.dtype} of shape {array.shape}"
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise InvalidParameterError(f"{name} holds a value that is not finite, at {bad}")


def check_shifts(shifts: Any, sig_shape: tuple[int, ...]) -> None:
    """Raise :class:`ShapeMismatchError` if the shifts do not have one value per frame axis."""
    if shifts is None:
        return
    width = len(shifts) if isinstance(shifts, tuple) else shifts.extra_shape[0]
    if width != len(sig_shape):
        raise ShapeMismatchError(
            f"shifts give {width} values per shift; frames of shape {sig_shape} need "
            f"{len(sig_shape)} (one per frame axis)"
        )


def frame_shifts(shifts: Any, frames: np.ndarray) -> np.ndarray:
    """``(len(frames), sig_dims)`` int64 shifts of flat scan positions ``frames``."""
    if isinstance(shifts, tuple):
        return np.broadcast_to(np.asarray(shifts, dtype=np.int64), (len(frames), len(shifts)))
    values = shifts.data[frames]
    return values if values.dtype == np.int64 else values.astype(np.int64)


#: Runs of frames of one shift at least this long on average are applied in place, one call
#: each; shorter ones (shifts that change from frame to frame) are gathered by shift instead.
_MIN_RUN = 4


def shift_groups(shifts: np.ndarray) -> list[tuple[tuple[int, ...], slice | np.ndarray]]:
    """The frames of a tile to apply together: ``(shift, rows)``, ``rows`` a slice for a run of
    neighbouring frames of one shift, or the indices of all the tile's frames of one shift
    where its runs are short (a copy of them is cheaper than a call per frame or two)."""
    n = len(shifts)
    if n == 0:
        return []
    change = np.flatnonzero((shifts[1:] != shifts[:-1]).any(axis=1)) + 1
    if len(change) == 0:
        return [(tuple(int(v) for v in shifts[0]), slice(0, n))]
    if (len(change) + 1) * _MIN_RUN <= n:  # a descan plane: runs along the scan's rows
        starts = np.concatenate(([0], change))
        stops = np.concatenate((change, [n]))
        return [
            (tuple(int(v) for v in shifts[a]), slice(int(a), int(b)))
            for a, b in zip(starts, stops, strict=True)
        ]
    unique, inverse = np.unique(shifts, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [(tuple(int(v) for v in u), np.flatnonzero(inverse == i)) for i, u in enumerate(unique)]


def overlap(n: int, d: int) -> tuple[slice, slice]:
    """Source and destination slices of an axis of length ``n`` moved by ``d``."""
    if abs(d) >= n:
        return slice(0, 0), slice(0, 0)
    if d >= 0:
        return slice(0, n - d), slice(d, n)
    return slice(-d, n), slice(0, n + d)


def shift_stack(stack: MaskStack, sig_shape: tuple[int, ...], shift: tuple[int, ...]) -> MaskStack:
    """``stack`` with every mask moved by ``shift`` (pixels moved off the frame dropped), in
    the same layout (dense or CSR)."""
    sig = tuple(int(s) for s in sig_shape)
    if stack.dense_t is not None:
        width = stack.width
        masks = stack.dense_t.T.reshape(width, *sig)  # C-contiguous rows: a view
        moved = np.zeros_like(masks)
        pairs = [overlap(n, d) for n, d in zip(sig, shift, strict=True)]
        src = (slice(None), *(p[0] for p in pairs))
        dst = (slice(None), *(p[1] for p in pairs))
        moved[dst] = masks[src]
        dense = moved.reshape(width, math.prod(sig))
        return MaskStack(stack.count, stack.is_complex, stack.compute_dtype, dense.T, None)
    assert stack.csr is not None
    indptr, indices, data = stack.csr
    coords = np.unravel_index(indices, sig)
    keep = np.ones(len(indices), dtype=bool)
    moved_coords = []
    for c, n, d in zip(coords, sig, shift, strict=True):
        m = c + d
        keep &= (m >= 0) & (m < n)
        moved_coords.append(m)
    # A uniform shift keeps the pixels of each mask in ascending order.
    new_indices = np.ravel_multi_index(tuple(m[keep] for m in moved_coords), sig)
    row = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))[keep]
    new_indptr = np.zeros_like(indptr)
    new_indptr[1:] = np.cumsum(np.bincount(row, minlength=len(indptr) - 1))
    csr = (new_indptr, new_indices.astype(indices.dtype), data[keep])
    return MaskStack(stack.count, stack.is_complex, stack.compute_dtype, None, csr)


class ByShift:
    """Values made per shift on first use, the most recently used kept (up to about 512 MiB
    as ``nbytes`` counts them, at least four); safe to share between threads.

    Parameters
    ----------
    make : callable
        ``make(shift)`` returns the value.
    nbytes : callable
        The bytes a value holds, asked when the cap is checked (values may grow as used).
    """

    def __init__(
        self, make: Callable[[tuple[int, ...]], Any], nbytes: Callable[[Any], int]
    ) -> None:
        self._make = make
        self._nbytes = nbytes
        self._kept: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        """Bytes held by the values kept."""
        with self._lock:
            return sum(self._nbytes(v) for v in self._kept.values())

    def __call__(self, shift: tuple[int, ...]) -> Any:
        with self._lock:
            found = self._kept.get(shift)
            if found is not None:
                self._kept.move_to_end(shift)
                return found
        made = self._make(shift)  # outside the lock: threads may make two shifts at once
        with self._lock:
            found = self._kept.setdefault(shift, made)
            self._kept.move_to_end(shift)
            held = sum(self._nbytes(v) for v in self._kept.values())
            while len(self._kept) > _KEPT_MIN and held > _KEPT_BYTES:
                _, gone = self._kept.popitem(last=False)
                held -= self._nbytes(gone)
        return found


def descan_shifts(regression: Any, nav_shape: Any) -> np.ndarray:
    """Whole-pixel shifts of the beam at each scan position from a fitted descan plane.

    Parameters
    ----------
    regression : array_like
        ``(1 + nav_dims, 2)``: the ``regression`` result of a
        :class:`~libertem_gpu.CoMUDF` run with ``regression=1`` (a plane, in detector axes:
        run it with ``scan_rotation=0`` and ``flip_y=False``), ``[[y, x], [dy/dscan_0,
        dx/dscan_0], ...]``.
    nav_shape : tuple of int
        The scan's shape.

    Returns
    -------
    numpy.ndarray
        int64 ``(*nav_shape, 2)``: ``(dy, dx)`` of the plane at each position, rounded to the
        nearest pixel; pass it as ``shifts`` to :class:`~libertem_gpu.ApplyMasksUDF` or
        :class:`~libertem_gpu.RadialProfileUDF` to move their masks with the beam.

    Examples
    --------
    >>> import numpy as np
    >>> plane = np.array([[0.2, -1.0], [0.5, 0.0], [0.0, 0.26]])
    >>> descan_shifts(plane, (2, 3))[..., 1]
    array([[-1, -1,  0],
           [-1, -1,  0]])
    """
    nav = tuple(int(n) for n in nav_shape)
    plane = np.asarray(regression, dtype=np.float64)
    if plane.shape != (1 + len(nav), 2):
        raise ShapeMismatchError(
            f"descan_shifts: a plane for a scan of {len(nav)} dimensions has shape "
            f"({1 + len(nav)}, 2), got {plane.shape}"
        )
    if not np.isfinite(plane).all():
        raise InvalidParameterError("descan_shifts: the plane holds values that are not finite")
    coords = np.indices(nav, dtype=np.float64)
    values = plane[0] + np.moveaxis(coords, 0, -1) @ plane[1:]
    return np.rint(values).astype(np.int64)


@dataclass(frozen=True)
class Descan:
    """What :func:`estimate_descan` found.

    Attributes
    ----------
    plane : numpy.ndarray
        ``(1 + nav_dims, 2)``: the beam's offset from ``center`` fitted as a plane over the
        scan, in detector axes (``CoMUDF``'s ``regression`` result).
    shifts : numpy.ndarray
        int64 ``(*nav_shape, 2)``: the plane at each position, rounded (:func:`descan_shifts`).
    center : tuple of float
        ``(row, column)`` the offsets are measured from.
    radius : float
        The radius of the disk the centre of mass was taken in.
    """

    plane: np.ndarray
    shifts: np.ndarray
    center: tuple[float, float]
    radius: float


def estimate_descan(
    ctx: Any,
    dataset: Any,
    center: Any = None,
    radius: float | None = None,
    corrections: Any = None,
) -> Descan:
    """Fit the beam's walk across the detector over the scan (descan), for ``shifts``.

    The centre of mass of each frame inside a disk around the bright-field disk, fitted by a
    plane over the scan (:class:`~libertem_gpu.CoMUDF` with ``regression=1``). A specimen's
    own deflections average out over a large scan; their linear part is fitted too (scan a
    region in vacuum and pass its plane to :func:`descan_shifts` where that matters).

    Parameters
    ----------
    ctx : Context
        Runs the passes.
    dataset : DataSet
        The scan (2-D frames).
    center, radius : optional
        The bright-field disk; where either is missing, a first pass takes the mean frame and
        :func:`~libertem_gpu.udf.parallax_fit.find_bright_field` finds it. The centre of mass
        is taken within twice the radius, so that a beam that walks by up to a radius stays
        inside.
    corrections : CorrectionSet, optional
        Detector corrections applied to the frames.

    Returns
    -------
    Descan
        ``shifts`` goes to ``ApplyMasksUDF(shifts=...)`` or ``RadialProfileUDF(shifts=...)``.
    """
    from libertem_gpu.udf.com import CoMUDF
    from libertem_gpu.udf.parallax_fit import find_bright_field
    from libertem_gpu.udf.sum import SumUDF

    nav = tuple(int(n) for n in dataset.shape.nav)
    sig = tuple(int(n) for n in dataset.shape.sig)
    if len(sig) != 2:
        raise InvalidParameterError(f"estimate_descan needs 2-D frames, got frames of shape {sig}")
    if center is None or radius is None:
        total = ctx.run_udf(dataset=dataset, udf=SumUDF(), corrections=corrections)
        found_center, found_radius = find_bright_field(total["intensity"].data)
        center = found_center if center is None else center
        radius = found_radius if radius is None else radius
    cy, cx = (float(c) for c in center)
    udf = CoMUDF.with_params(cy=cy, cx=cx, r=2.0 * float(radius), regression=1)
    plane = np.asarray(
        ctx.run_udf(dataset=dataset, udf=udf, corrections=corrections)["regression"].data
    )
    return Descan(plane, descan_shifts(plane, nav), (cy, cx), float(radius))
