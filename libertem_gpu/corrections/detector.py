"""Finding hot and dead pixels, and correcting frames in memory.

:func:`detect_bad_pixels` flags pixels that stand out from their neighbourhood in a sum frame
(``SumUDF``) or a standard deviation frame (``StdDevUDF``) by more than ``threshold`` standard
deviations, and returns them as the coordinates a :class:`CorrectionSet` takes.
:func:`correct` applies corrections to frames held in memory, with LiberTEM's signature.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from libertem_gpu.corrections.repair import RepairDescriptor, RepairValueError
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError

__all__ = ["RepairDescriptor", "RepairValueError", "correct", "detect_bad_pixels"]


def _finite_frame(value: Any, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "buif" or arr.ndim < 1:
        raise InvalidParameterError(
            f"{name}: expected a real-valued frame, got {type(value).__name__} of dtype "
            f"{arr.dtype} and shape {arr.shape}"
        )
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise InvalidParameterError(f"{name}: expected finite values, found NaN or infinity")
    return arr


def _scores(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How far each pixel stands above the largest (and below the smallest) of its neighbours
    (``3**ndim - 1`` of them, inside the frame), in units of the local noise. The noise is
    estimated from differences between horizontally adjacent pixels (``sqrt(2)`` times the
    noise where the signal is flat): 1.4826 / sqrt(2) times their median absolute value over the
    surrounding 7x7 window or 3x3 window, whichever is larger (the narrow one rises along edges
    of the beam), floored at the same estimate over the whole frame. A pixel on a slope or edge
    lies between its neighbours and scores below zero; an isolated hot or dead pixel scores
    high, and its own two differences do not move the medians."""
    from scipy.ndimage import maximum_filter, median_filter, minimum_filter

    footprint = np.ones((3,) * frame.ndim, bool)
    footprint[(1,) * frame.ndim] = False
    highest = maximum_filter(frame, footprint=footprint, mode="constant", cval=-np.inf)
    lowest = minimum_filter(frame, footprint=footprint, mode="constant", cval=np.inf)
    steps = np.abs(np.diff(frame, axis=-1, append=frame[..., -2:-1]))
    scale = 1.4826 / np.sqrt(2.0)
    floor = scale * float(np.median(steps))
    if floor == 0.0:
        floor = float(np.std(frame)) or 1.0  # a flat frame: any step stands out
    wide = median_filter(steps, size=7, mode="nearest")
    narrow = median_filter(steps, size=3, mode="nearest")
    sigma = np.maximum(scale * np.maximum(wide, narrow), floor)
    return (frame - highest) / sigma, (lowest - frame) / sigma


def detect_bad_pixels(
    sum_frame: Any,
    std_frame: Any = None,
    threshold: float = 5.0,
    hot: bool = True,
    dead: bool = True,
    as_mask: bool = False,
) -> np.ndarray:
    """Hot and dead pixels from a sum frame and, optionally, a standard deviation frame.

    A pixel is *hot* where its sum (or its standard deviation over the scan) exceeds the
    largest of its neighbours by more than ``threshold`` standard deviations, and *dead* where
    its sum falls below the smallest of them by more than that. The standard deviation is the
    local noise, estimated robustly from the surrounding 7x7 window, so that the noisy beam and
    the quiet dark field each get their own scale; edges of the beam, lying between their
    neighbours, do not stand out. Clusters of adjacent bad pixels hide each other: this finds
    isolated ones.

    Parameters
    ----------
    sum_frame : array
        The sum (or mean) of the frames, e.g. ``SumUDF``'s ``intensity``.
    std_frame : array, optional
        Their standard deviation, e.g. ``StdDevUDF``'s ``std``: hot pixels also fluctuate.
    threshold : float
        In standard deviations; lower finds more pixels.
    hot, dead : bool
        Which kinds to report.
    as_mask : bool
        Return a boolean frame instead of coordinates.

    Returns
    -------
    numpy.ndarray
        ``(ndim, k)`` integer coordinates (``CorrectionSet(excluded_pixels=...)`` takes them),
        or a boolean frame with ``as_mask``.

    Raises
    ------
    InvalidParameterError
        For non-numeric frames, NaN or infinite values, or a threshold that is not positive.
    ShapeMismatchError
        If the two frames differ in shape.

    Examples
    --------
    >>> import numpy as np
    >>> sums = np.random.default_rng(0).normal(1000, 10, (16, 16))
    >>> sums[3, 4] = 5000  # hot
    >>> sums[10, 0] = 0  # dead
    >>> detect_bad_pixels(sums).T.tolist()
    [[3, 4], [10, 0]]
    """
    total = _finite_frame(sum_frame, "sum_frame")
    if not isinstance(threshold, int | float) or not math.isfinite(threshold) or threshold <= 0:
        raise InvalidParameterError(f"threshold: expected a positive number, got {threshold!r}")
    found = np.zeros(total.shape, bool)
    above, below = _scores(total)
    if hot:
        found |= above > threshold
    if dead:
        found |= below > threshold
    if std_frame is not None:
        std = _finite_frame(std_frame, "std_frame")
        if std.shape != total.shape:
            raise ShapeMismatchError(
                f"std_frame: expected the shape of sum_frame {total.shape}, got {std.shape}"
            )
        if hot:
            found |= _scores(std)[0] > threshold
    if as_mask:
        return found
    return np.array(np.nonzero(found), dtype=np.intp)


def correct(
    buffer: np.ndarray,
    dark_image: np.ndarray | None = None,
    gain_map: np.ndarray | None = None,
    excluded_pixels: np.ndarray | None = None,
    repair_descriptor: RepairDescriptor | None = None,
    inplace: bool = False,
    sig_shape: tuple[int, ...] | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Correct frames held in memory (LiberTEM's ``libertem.corrections.detector.correct``).

    Parameters
    ----------
    buffer : numpy.ndarray
        ``(*nav, *sig)`` frames.
    dark_image, gain_map : numpy.ndarray, optional
        Shaped like a frame.
    excluded_pixels : array of int, optional
        ``(ndim, k)`` coordinates of pixels to repair.
    repair_descriptor : RepairDescriptor, optional
        Instead of ``excluded_pixels``: prepared environments, reused across calls.
    inplace : bool
        Correct ``buffer`` itself (it must be float32 or float64 and C-contiguous).
    sig_shape : tuple of int, optional
        The frame shape where neither ``dark_image`` nor ``gain_map`` gives it.
    allow_empty : bool
        Leave excluded pixels without valid neighbours unrepaired instead of raising.

    Returns
    -------
    numpy.ndarray
        The corrected frames: ``buffer`` with ``inplace``, else a new array of
        ``result_type(float32, buffer.dtype)``.
    """
    from libertem_gpu.kernels.correct_cpu import cpu

    for frame in (dark_image, gain_map):
        if frame is not None:
            sig_shape = tuple(np.shape(frame))
    if sig_shape is None:
        raise InvalidParameterError("correct: need dark_image, gain_map or sig_shape")
    sig_shape = tuple(int(s) for s in sig_shape)
    if tuple(buffer.shape[-len(sig_shape) :]) != sig_shape:
        raise ShapeMismatchError(
            f"buffer: expected frames of shape {sig_shape}, got an array of shape {buffer.shape}"
        )
    if repair_descriptor is not None and excluded_pixels is not None:
        raise InvalidParameterError("correct: give excluded_pixels or repair_descriptor, not both")
    if repair_descriptor is None:
        repair_descriptor = RepairDescriptor(sig_shape, excluded_pixels, allow_empty=allow_empty)
    else:
        repair_descriptor.check_empty_repairs(allow_empty)
    dtype = np.result_type(np.float32, buffer.dtype)
    if inplace:
        if buffer.dtype not in (np.float32, np.float64) or not buffer.flags.c_contiguous:
            raise InvalidParameterError(
                f"buffer: in-place correction needs a C-contiguous float32 or float64 array, "
                f"got {buffer.dtype}"
            )
        dtype = buffer.dtype
    npix = math.prod(sig_shape)
    src = np.ascontiguousarray(buffer).reshape(-1, npix)
    out = buffer.reshape(-1, npix) if inplace else np.empty(src.shape, dtype)
    dark = np.zeros(npix, dtype) if dark_image is None else np.ravel(dark_image).astype(dtype)
    gain = np.ones(npix, dtype) if gain_map is None else np.ravel(gain_map).astype(dtype)
    r = repair_descriptor
    cpu(src, dark, gain, r.exclude_flat, r.repair_flat, r.repair_counts, out)
    return buffer if inplace else out.reshape(buffer.shape)
