"""The ``fft_mask_sum`` operation: each frame's Fourier amplitudes, weighted and summed.

For each whole frame ``f`` (``rows x cols``) of a tile ``(n, rows, cols)``, with an optional
real-space weight ``w`` (e.g. a blanked disk) and weights ``W`` on the spectrum::

    out[i] += sum_k W(k) * |FFT2(f_i * w)(k)|

``W`` covers the half spectrum ``rfft2`` returns (``rows x (cols // 2 + 1)``, zero frequency at
``[0, 0]``) for real frames (fold full-spectrum weights with
:func:`~libertem_gpu.kernels.fourier.hermitian_fold`), the whole unshifted spectrum for complex
ones. Crystallinity's ring and :class:`~libertem_gpu.ApplyFFTMaskUDF`'s ring or arbitrary mask
are all this one operation.

:func:`choose_strategy` picks, once per partition, how the weighted frequencies are computed
(measured on 256 x 256 uint16 frames, one thread per partition, see there):

* ``"dft"`` (CPU, real frames): only the weighted frequencies, as two matrix products (a partial
  DFT): each row's even and odd halves times the cosines and sines of the needed column
  frequencies, then the needed row frequencies of that small result. Cheapest for weights on
  few columns (narrow rings around zero frequency, a few spots).
* ``"pruned"``: ``rfft`` along the rows, then ``fft`` along the columns only for the columns
  the weights touch.
* ``"full"``: ``rfft2`` (``fft2`` for complex frames), where most columns are weighted.

The CPU transforms are SciPy's (one worker: partitions already run one per core), the GPU ones
CuPy's batched cuFFT. Real frames transformed in float32 (integers of up to 16 bits, float32;
see :func:`~libertem_gpu.kernels.fourier.work_dtype`) are centred first: their mean (float64)
is taken out and added back at zero frequency, which keeps float32 transforms of bright frames
with small contrast at a relative error of ~1e-7 of the result (1e-3 without).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.fourier import (
    FourierBackend,
    _cpu,
    _device,
    _gpu,
    _host,
    half_width,
    work_dtype,
)
from libertem_gpu.kernels.tiles import as_rows

__all__ = [
    "PreparedMaskSum",
    "choose_strategy",
    "prepare_mask_sum",
    "prepare_mask_sum_gpu",
    "prepare_mask_sum_reference",
    "reference_mask_sum",
]

#: The partial DFT runs where its needed column frequencies ``k`` satisfy
#: ``k <= _DFT_COLUMNS_PER_LOG2 * log2(rows * cols)`` (16 columns on 256 x 256 frames), the
#: pruned FFT where ``k <= _PRUNE_SHARE`` of the transform's columns, else the full FFT. See
#: :func:`choose_strategy` for the measurements.
_DFT_COLUMNS_PER_LOG2 = 1.0
_PRUNE_SHARE = 0.7
#: Bytes of converted frames the partial DFT takes per block (fits L2 beside its weights).
_DFT_BLOCK_BYTES = 2 * 2**20


# --- reference -----------------------------------------------------------------------------------


def reference_mask_sum(
    tile: np.ndarray, real_mask: np.ndarray | None, weights: np.ndarray
) -> np.ndarray:
    """``sum_k weights[k] * |fft2(tile[i] * real_mask)[k]|`` per frame, ``weights`` over the
    full unshifted spectrum ``(rows, cols)``; plain NumPy, complex128, float64 ``(n,)``."""
    tile = np.asarray(tile)
    weights = np.asarray(weights)
    sums = []
    for frame in tile:
        values = frame.astype(np.complex128 if frame.dtype.kind == "c" else np.float64)
        if real_mask is not None:
            values = values * np.asarray(real_mask)
        sums.append(np.sum(np.abs(np.fft.fft2(values)) * weights))
    return np.array(sums, dtype=np.float64).reshape(len(tile))


def prepare_mask_sum_reference(
    sig_shape: tuple[int, int], real_mask: Any, weights: Any, input_dtype: Any, double: bool = False
) -> Callable[[Any, Any], None]:
    """:func:`reference_mask_sum`, with half-spectrum weights placed in the full spectrum."""
    rows, cols = sig_shape
    full = np.zeros((rows, cols))
    weights = np.asarray(weights)
    full[:, : weights.shape[1]] = weights

    def kernel(tile: Any, out: Any) -> None:
        out += reference_mask_sum(tile, real_mask, full)

    return kernel


# --- the choice ----------------------------------------------------------------------------------


def choose_strategy(
    weights: np.ndarray, sig_shape: tuple[int, int], complex_input: bool, cpu: bool
) -> str:
    """``"dft"``, ``"pruned"`` or ``"full"`` for these weights (see the module's docstring);
    ``"none"`` where no weight is non-zero.

    Measured (us per 256 x 256 uint16 frame, one thread, noisy shared machine; dft / pruned /
    full, without and with a blanked disk): rings of radius 4-6 (7 columns) 64-69 / 70-79 /
    133-145; four spots (11 columns) 54-87 / 78-89 / 131-140; 6-20 (21 columns) 89-99 /
    81-87 / 135-149; 12-40 (41 columns) 140 / 103-113 / 136-150; 10-64 (65 columns) 460 /
    124-137 / 151-179; 10-100 (101 columns) 1200 / 142-173 / 136-149; random weights
    everywhere 1600 / - / 150-162. The pruned FFT's second pass costs ~0.9 us per column on
    top of ~60 us; the full FFT ~140 us. The GPU always transforms (cuFFT), pruned on the
    same terms.
    """
    rows, cols = sig_shape
    used = int(np.count_nonzero(np.asarray(weights).any(axis=0)))
    if used == 0:  # nothing weighted: every sum is 0
        return "none"
    if cpu and not complex_input and used <= _DFT_COLUMNS_PER_LOG2 * math.log2(max(rows * cols, 2)):
        return "dft"
    width = cols if complex_input else half_width(cols)
    return "pruned" if used <= _PRUNE_SHARE * width else "full"


# --- partial DFT (CPU, real frames) --------------------------------------------------------------


@dataclass(frozen=True)
class _DFT:
    """The partial DFT's weights: ``cx``, ``sx`` ``(kc, cols // 2 + 1)``, the cosines and sines
    of the needed column frequencies over half a row (they act on a row's even and odd parts,
    see :func:`~libertem_gpu.kernels.fourier_cpu.fold`), ``ey`` ``(rows, 2 kr)`` (cosines, then
    sines of the needed row frequencies), the weights ``(kc, kr)``, where zero frequency sits
    (or None) and the frame width ``nx``."""

    cx: np.ndarray
    sx: np.ndarray
    ey: np.ndarray
    band: np.ndarray
    dc: tuple[int, int] | None
    nx: int

    @classmethod
    def make(cls, half: np.ndarray, nx: int, dtype: Any) -> _DFT:
        ny = half.shape[0]
        rows = np.flatnonzero(half.any(axis=1))
        cols = np.flatnonzero(half.any(axis=0))
        px = 2 * np.pi * np.outer(cols, np.arange(nx // 2 + 1)) / nx
        py = 2 * np.pi * np.outer(np.arange(ny), rows) / ny
        ey = np.concatenate([np.cos(py), np.sin(py)], axis=1).astype(dtype)
        dc = (0, 0) if rows[0] == 0 and cols[0] == 0 else None
        band = np.ascontiguousarray(half[np.ix_(rows, cols)].T)
        return cls(np.cos(px).astype(dtype), np.sin(px).astype(dtype), ey, band, dc, nx)

    def amplitudes(self, even: np.ndarray, odd: np.ndarray, means: np.ndarray) -> np.ndarray:
        """Each frame's weighted amplitude sum from the even and odd parts
        ``(n, rows, cols // 2 + 1)`` of its centred rows (``means``: what was taken out)."""
        kc, kr = self.band.shape
        n, ny, h = even.shape
        # The rows' transform at the needed columns is A - iB, A = cos @ even, B = sin @ odd,
        # then F = (Cy - iSy)(A - iB): Re = Cy A - Sy B, -Im = Sy A + Cy B. Each stage is one
        # matrix product over all the block's frames (1.2x faster than per-frame products).
        a = self.cx @ even.reshape(-1, h).T  # (kc, frames * rows)
        b = self.sx @ odd.reshape(-1, h).T
        pa = (a.reshape(-1, ny) @ self.ey).reshape(kc, n, 2 * kr).astype(np.float64)
        pb = (b.reshape(-1, ny) @ self.ey).reshape(kc, n, 2 * kr).astype(np.float64)
        re = pa[..., :kr] - pb[..., kr:]
        im = pa[..., kr:] + pb[..., :kr]
        if self.dc is not None:  # the mean taken out before the transform
            re[self.dc[1], :, self.dc[0]] += means * (ny * self.nx)
        return (np.sqrt(re * re + im * im) * self.band[:, None, :]).sum(axis=(0, 2))


# --- transforms (CPU and GPU) --------------------------------------------------------------------


def _runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(starts, lengths)`` of the runs of consecutive values in the sorted ``flat``."""
    breaks = np.flatnonzero(np.diff(flat) != 1) + 1
    first = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(flat)]])
    return flat[first].astype(np.intp), (ends - first).astype(np.intp)


class PreparedMaskSum:
    """``fft_mask_sum`` laid out for one backend: call as ``(tile (n, rows, cols), out (n,))``
    (``out`` float32 or float64).

    Attributes
    ----------
    strategy : str
        ``"dft"``, ``"pruned"``, ``"full"`` or ``"none"`` (see :func:`choose_strategy`).
    """

    def __init__(
        self,
        fb: FourierBackend,
        cpu: bool,
        sig_shape: tuple[int, int],
        real_mask: Any,
        weights: Any,
        input_dtype: Any,
        double: bool = False,
    ) -> None:
        rows, cols = (int(d) for d in sig_shape)
        self.complex = np.dtype(input_dtype).kind == "c"
        grid = _host(weights).astype(np.float64)
        want = (rows, cols if self.complex else half_width(cols))
        if grid.shape != want:
            raise ShapeMismatchError(
                f"weights must have shape {want} for {'complex' if self.complex else 'real'} "
                f"frames of {(rows, cols)}, got {grid.shape}"
            )
        if real_mask is not None and tuple(np.shape(real_mask)) != (rows, cols):
            raise ShapeMismatchError(
                f"real_mask must have the frame shape {(rows, cols)}, got {np.shape(real_mask)}"
            )
        self.strategy = choose_strategy(grid, (rows, cols), self.complex, cpu)
        self._fb, self._cpu, self._shape = fb, cpu, (rows, cols)
        self._real = work_dtype(input_dtype, double)
        # centre real frames transformed in float32 (see the module's docstring)
        self._centred = not self.complex and self._real == np.float32
        host_mask = None if real_mask is None else _host(real_mask).astype(np.float64)
        self._real64 = np.zeros(0) if host_mask is None else host_mask.reshape(-1)
        if self.strategy == "dft":
            self._dft = _DFT.make(grid, cols, self._real)
        if self.strategy in ("dft", "none"):
            return
        r, c = np.nonzero(grid)  # only the pixels the weights touch are read (row-major)
        columns: Any = None
        flat = r * grid.shape[1] + c
        if self.strategy == "pruned":
            columns = np.unique(c)
            flat = r * len(columns) + np.searchsorted(columns, c)
            if cpu and columns[-1] - columns[0] == len(columns) - 1:
                columns = slice(int(columns[0]), int(columns[-1]) + 1)  # a view, no copy
        self._dc = bool(grid[0, 0] != 0)  # zero frequency weighted: it comes first in flat
        mask_dtype = np.float64 if self._centred else self._real
        self._mask = _device(fb, host_mask, mask_dtype)
        values = grid[r, c]
        if cpu:
            self._columns = columns
            self._runs = _runs(flat)
            self._weights = values
        else:
            self._columns = _device(fb, columns, np.intp)
            self._index = _device(fb, flat, np.intp)
            self._weights = _device(fb, values, np.float64)

    def __call__(self, tile: Any, out: Any) -> None:
        n = len(tile)
        if tuple(tile.shape[1:]) != self._shape:
            raise ShapeMismatchError(
                f"fft_mask_sum needs whole {self._shape[0]} x {self._shape[1]} frames, got a "
                f"tile of shape {tuple(tile.shape)}"
            )
        if tuple(out.shape) != (n,):
            raise ShapeMismatchError(f"out must have shape ({n},), got {tuple(out.shape)}")
        if n == 0 or self.strategy == "none":
            return
        if self.strategy == "dft":
            self._run_dft(tile, out)
        elif self._cpu:
            self._run_cpu(tile, out)
        else:
            self._run_gpu(tile, out)

    def _run_dft(self, tile: np.ndarray, out: np.ndarray) -> None:
        from libertem_gpu.kernels.fourier_cpu import fold

        ny, nx = self._shape
        a, _ = as_rows(tile.reshape(len(tile), -1))
        block = max(1, _DFT_BLOCK_BYTES // (self._real.itemsize * ny * nx))
        n = len(tile)
        means = np.empty(min(block, n))
        even = np.empty((len(means), ny, half_width(nx)), dtype=self._real)
        odd = np.empty_like(even)
        for i0 in range(0, n, block):
            i1 = min(n, i0 + block)
            e, o, m = even[: i1 - i0], odd[: i1 - i0], means[: i1 - i0]
            fold(a, i0, ny, nx, self._real64, e, o, m)
            out[i0:i1] += self._dft.amplitudes(e, o, m)

    def _run_cpu(self, tile: np.ndarray, out: np.ndarray) -> None:
        from libertem_gpu.kernels.fourier_cpu import centre, weigh

        fb, (ny, nx) = self._fb, self._shape
        chunks = fb.chunks(tile, self._real)
        if self._centred:
            a, _ = as_rows(tile.reshape(len(tile), -1))
            step = chunks[0].stop - chunks[0].start
            buf = np.empty((min(step, len(tile)), ny * nx), dtype=self._real)
            means = np.empty(len(buf))
        shift = np.zeros(len(tile) if self._centred and self._dc else 0)
        for part in chunks:
            m = len(range(*part.indices(len(tile))))
            if self._centred:
                centre(a, part.start, ny * nx, self._real64, buf[:m], means[:m])
                values = buf[:m].reshape(m, ny, nx)
                if len(shift):
                    shift[:m] = means[:m] * (ny * nx)
            else:
                values = fb.load(tile[part], self._mask, self._real)
            spectrum = fb.forward(values, self._columns)
            weigh(spectrum.reshape(m, -1), *self._runs, self._weights, shift, out[part])

    def _run_gpu(self, tile: Any, out: Any) -> None:
        fb, xp = self._fb, self._fb.xp
        for part in fb.chunks(tile, self._real):
            if self._centred:
                f = tile[part].astype(np.float64)
                if self._mask is not None:
                    f *= self._mask
                means = f.reshape(len(f), -1).mean(axis=1)
                values = (f - means[:, None, None]).astype(self._real)
            else:
                values = fb.load(tile[part], self._mask, self._real)
            spectrum = fb.forward(values, self._columns)
            picked = spectrum.reshape(len(spectrum), -1)[:, self._index].astype(np.complex128)
            if self._centred and self._dc:
                picked[:, 0] += means * (self._shape[0] * self._shape[1])
            out[part] += (xp.abs(picked) @ self._weights).astype(out.dtype)


def prepare_mask_sum(
    sig_shape: tuple[int, int], real_mask: Any, weights: Any, input_dtype: Any, double: bool = False
) -> PreparedMaskSum:
    """The CPU strategy of ``fft_mask_sum``: partial DFT or SciPy's FFT (see
    :func:`choose_strategy`)."""
    return PreparedMaskSum(_cpu(), True, sig_shape, real_mask, weights, input_dtype, double)


def prepare_mask_sum_gpu(
    sig_shape: tuple[int, int], real_mask: Any, weights: Any, input_dtype: Any, double: bool = False
) -> PreparedMaskSum:
    """The GPU strategy of ``fft_mask_sum``: cuFFT through CuPy, batched over the tile."""
    return PreparedMaskSum(_gpu(), False, sig_shape, real_mask, weights, input_dtype, double)
