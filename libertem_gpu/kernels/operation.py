"""What an operation is: its signature (a :class:`typing.Protocol`), its implementations per
backend, and the capability facts callers plan with (which dtypes each reads natively, which it
reads in reversed byte order, swapping as it reads).

Implementations are ``"module:function"`` targets, imported on first use
(:mod:`libertem_gpu.kernels.registry`), so that declaring them imports no kernel module, no
Numba and no CuPy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from libertem_gpu.kernels.tiles import SUPPORTED_DTYPES

__all__ = [
    "Accumulate",
    "CentreOfMass",
    "ComPreparer",
    "Correct",
    "DenseMasks",
    "DiskPeaksPreparer",
    "DiskRefinePreparer",
    "FourierPreparer",
    "Impl",
    "LabelMasks",
    "LogSum",
    "MasksPreparer",
    "Operation",
    "PixelMoments",
    "PolarCorrelationPreparer",
    "PreparedCoM",
    "PreparedMasks",
    "PtychoStep",
    "SSBPreparer",
    "ShiftedMoments",
    "SpanCentreOfMass",
    "SpanMasks",
    "SparseCorrelationPreparer",
    "SparseMasks",
    "WeightedFrameSum",
]


# --- signatures: one per kind of operation, shared by its CPU and GPU implementations ---------
# Arrays are NumPy arrays for the "numpy" backend and CuPy arrays for "cupy"; ``out`` buffers
# are updated in place (accumulated), because frames may arrive as several row slabs.


class Accumulate(Protocol):
    """``(tile (n, npix), out, swap=False)``: fold a tile into ``out`` (sums, extrema)."""

    def __call__(self, tile: Any, out: Any, swap: bool = False) -> None: ...


class ShiftedMoments(Protocol):
    """``(tile, shift, s1, s2)``: ``s1 += sum (x - shift)``, ``s2 += sum (x - shift)**2``."""

    def __call__(self, tile: Any, shift: Any, s1: Any, s2: Any) -> None: ...


class LogSum(Protocol):
    """``(tile (n, npix), out (npix,))``: ``out += sum_i log(tile[i] - min(tile[i]) + 1)`` over
    whole frames."""

    def __call__(self, tile: Any, out: Any) -> None: ...


class ParallaxSplat(Protocol):
    """``(tile (n, npix), pixels (m,), scale (m,), positions (n, 2), offsets (m, 2), total,
    weight)``: add ``tile[i, pixels[j]] * scale[j]`` at ``positions[i] + offsets[j]`` of the
    float64 images ``total`` and ``weight`` with bilinear weights (:mod:`~.parallax`)."""

    def __call__(
        self,
        tile: Any,
        pixels: Any,
        scale: Any,
        positions: Any,
        offsets: Any,
        total: Any,
        weight: Any,
    ) -> None: ...


class PixelMoments(Protocol):
    """``(tile (n, npix), indices (k,), mean (n,), m2 (n,))``: write each frame's mean and sum of
    squared deviations over the pixels ``indices``."""

    def __call__(self, tile: Any, indices: Any, mean: Any, m2: Any) -> None: ...


class DenseMasks(Protocol):
    """``(tile (n, npix), masks_t (npix, k), out (n, k))``: ``out += tile @ masks_t``."""

    def __call__(self, tile: Any, masks_t: Any, out: Any) -> None: ...


class SparseMasks(Protocol):
    """``(tile, indptr, indices, data, out)``: masks as the rows of a CSR ``(k, npix)``."""

    def __call__(self, tile: Any, indptr: Any, indices: Any, data: Any, out: Any) -> None: ...


class LabelMasks(Protocol):
    """``(tile (n, npix), labels (npix,) int32, weights (npix,), out (n, k))``: masks that
    share no pixel, ``out[i, labels[p]] += weights[p] * tile[i, p]``, label ``k`` no mask."""

    def __call__(self, tile: Any, labels: Any, weights: Any, out: Any) -> None: ...


class SpanMasks(Protocol):
    """``(tile, spans, out, swap=False)``: masks as runs of equal value (whole frames)."""

    def __call__(self, tile: Any, spans: Any, out: Any, swap: bool = False) -> None: ...


class CentreOfMass(Protocol):
    """``(tile3d, weights, row_offset, out_total, out_y, out_x, swap=False)``: weighted total
    and first moments of a slab of frame rows."""

    def __call__(
        self,
        tile3d: Any,
        weights: Any,
        row_offset: int,
        out_total: Any,
        out_y: Any,
        out_x: Any,
        swap: bool = False,
    ) -> None: ...


class SpanCentreOfMass(Protocol):
    """As :class:`CentreOfMass`, with one binary mask given as runs instead of weights."""

    def __call__(
        self,
        tile3d: Any,
        spans: Any,
        row_offset: int,
        out_total: Any,
        out_y: Any,
        out_x: Any,
        swap: bool = False,
    ) -> None: ...


class PreparedMasks(Protocol):
    """A mask stack laid out for one backend, with its strategy chosen (see
    :func:`libertem_gpu.kernels.masks.prepare`)."""

    #: Whether tiles may come in stored (reversed) byte order: the strategy swaps as it reads.
    reads_stored_order: bool

    def __call__(self, tile: Any, out: Any, p0: int, p1: int, swapped: bool = False) -> None:
        """``out += tile @ masks[:, p0:p1].T`` for a tile ``(n, p1 - p0)`` of pixels
        ``[p0, p1)`` of the frames (the whole frame, or a row slab)."""
        ...


class MasksPreparer(Protocol):
    """A backend's ``prepare`` of the ``apply_masks`` operation."""

    def __call__(
        self, stack: Any, sig_shape: tuple[int, ...], input_dtype: np.dtype
    ) -> PreparedMasks: ...


class PreparedCoM(Protocol):
    """Centre-of-mass weights laid out for one backend (see
    :func:`libertem_gpu.kernels.com.prepare`)."""

    reads_stored_order: bool
    #: Whether the strategy adds the pixel terms given to ``prepare``.
    adds_terms: bool

    def __call__(
        self,
        tile3d: Any,
        row_offset: int,
        out_total: Any,
        out_y: Any,
        out_x: Any,
        swapped: bool = False,
    ) -> None: ...


class ComPreparer(Protocol):
    """A backend's ``prepare`` of the ``centre_of_mass`` operation."""

    def __call__(
        self,
        weights: np.ndarray,
        input_dtype: np.dtype,
        single: bool = False,
        terms: Any = None,
    ) -> PreparedCoM: ...


class FourierPreparer(Protocol):
    """A backend's ``prepare`` of a per-frame Fourier operation (``power_spectrum``,
    ``fft_mask_sum``, ``holo_reconstruct``; see :mod:`libertem_gpu.kernels.fourier` and
    :mod:`libertem_gpu.kernels.fourier_mask`): the operation's constants, then ``input_dtype``
    and ``double``; returns ``(tile, out)`` for tiles ``(n, rows, cols)`` of whole frames."""

    def __call__(self, *constants: Any, **options: Any) -> Callable[[Any, Any], None]: ...


class SSBPreparer(Protocol):
    """A backend's ``prepare`` of ``ssb_accumulate`` (see :mod:`libertem_gpu.kernels.ssb`):
    ``(pixels (m,), weights (m, k) complex, freqs (k, 2), nav_shape, double=False)``; returns
    ``(tile (n, npix), positions (n, 2) int, acc (3, k) complex128, pixel_sum (m,),
    pixels=None, valid=None)`` (other pixels to read, and which of them are on the frame)."""

    def __call__(self, *constants: Any, **options: Any) -> Callable[..., None]: ...


class WeightedFrameSum(Protocol):
    """``(tile (n, npix), weights (n, l), out (l, npix), squared=False)``: ``out +=
    weights.T @ tile`` in float64, of ``tile**2`` if ``squared`` (see
    :mod:`libertem_gpu.kernels.weighted_sum`)."""

    def __call__(self, tile: Any, weights: Any, out: Any, squared: bool = False) -> None: ...


class PtychoStep(Protocol):
    """``(obj (H, W) complex, probe (N, N) complex, amplitudes (b, N, N), corners (b, 2) int,
    fractions (b, 2) or None, object_step, regularisation, probe_terms,
    position_terms=False)``: one batch of iterative ptychography, ``obj`` updated in place;
    returns ``(misfit, numerator, weight, shifts)`` (see :mod:`libertem_gpu.kernels.ptycho`)."""

    def __call__(
        self,
        obj: Any,
        probe: Any,
        amplitudes: Any,
        corners: Any,
        fractions: Any,
        object_step: float,
        regularisation: float,
        probe_terms: bool,
        position_terms: bool = False,
    ) -> tuple[float, Any, Any, Any]: ...


class PolarCorrelationPreparer(Protocol):
    """A backend's ``prepare`` of ``polar_correlate`` (see
    :mod:`libertem_gpu.kernels.template_match`): ``(templates (K, R, S), double=False)``;
    returns ``(polar (n, R, S), score (n, K), shift (n, K))``."""

    def __call__(self, *constants: Any, **options: Any) -> Callable[[Any, Any, Any], None]: ...


class Correct(Protocol):
    """``(tile (n, npix), dark, gain, exclude, env, counts, out (n, npix))``: write the
    detector-corrected tile to ``out`` in its float type (see
    :mod:`libertem_gpu.kernels.correct`)."""

    def __call__(
        self, tile: Any, dark: Any, gain: Any, exclude: Any, env: Any, counts: Any, out: Any
    ) -> None: ...


class SparseCorrelationPreparer(Protocol):
    """A backend's ``prepare`` of ``disk_correlate_sparse`` (see
    :mod:`libertem_gpu.kernels.disk_corr`): ``(template, positions (P, 2) int, half,
    input_dtype, double=False)``; returns ``(tile, out (n, P, 2 half + 1, 2 half + 1))``."""

    def __call__(self, *constants: Any, **options: Any) -> Callable[[Any, Any], None]: ...


class DiskPeaksPreparer(Protocol):
    """A backend's ``prepare`` of ``disk_peaks_full`` or ``disk_peaks_sparse`` (see
    :mod:`libertem_gpu.kernels.disk_peaks`); returns ``(maps, peaks, heights, found)``."""

    def __call__(self, *constants: Any) -> Callable[[Any, Any, Any, Any], None]: ...


class DiskRefinePreparer(Protocol):
    """A backend's ``prepare`` of ``disk_refine_upsampled``: ``(template, upsample, wrap)``;
    returns ``(tile, frame (K,), iy (K,), ix (K,), out (K, 2))``."""

    def __call__(self, *constants: Any) -> Callable[[Any, Any, Any, Any, Any], None]: ...


# --- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Impl:
    """One implementation of an operation on one backend.

    Attributes
    ----------
    target : str or callable
        ``"package.module:function"`` (imported on first use) or the callable itself.
    dtypes : frozenset of numpy.dtype
        Tile dtypes it reads in native byte order.
    swaps : frozenset of numpy.dtype
        Native dtypes whose byte-reversed tiles it reads with ``swap=True`` (big-endian data
        straight from the file); see :data:`libertem_gpu.kernels.byteorder.SWAPPABLE_DTYPES`.
    """

    target: str | Callable[..., Any]
    dtypes: frozenset[np.dtype] = SUPPORTED_DTYPES
    swaps: frozenset[np.dtype] = frozenset()

    def reads_swapped(self, dtype: Any) -> bool:
        """Whether it reads tiles of ``dtype`` (either byte order) in reversed byte order."""
        dtype = np.dtype(dtype)
        return dtype.newbyteorder("=") in self.swaps


@dataclass(frozen=True)
class Operation:
    """An operation: its signature, its plain NumPy reference and its implementations.

    Attributes
    ----------
    name : str
        What callers ask for, e.g. ``"sum_frames"``.
    signature : type
        The :class:`typing.Protocol` every implementation follows.
    reference : str or callable
        The plain NumPy reference, which *returns* the result for a whole tile (its own
        documented signature); tests compare every implementation with it.
    impls : mapping of str to Impl
        Implementations by backend name (``"numpy"``: Numba on the CPU; ``"cupy"``: CuPy /
        Numba-CUDA), in order of preference.
    """

    name: str
    signature: type
    reference: str | Callable[..., Any]
    impls: Mapping[str, Impl] = field(default_factory=dict)
