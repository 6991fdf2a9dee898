"""Per-frame Fourier transforms of a tile: power spectra and off-axis hologram reconstruction,
and the backends and layout helpers they share with ``fft_mask_sum``
(:mod:`libertem_gpu.kernels.fourier_mask`).

Two operations, each with a plain NumPy reference (one frame at a time, complex128, written
from the definition) and a ``prepare`` per backend that lays its constants out once per
partition and returns what the UDF calls per tile ``(n, rows, cols)`` of whole frames:

- ``power_spectrum``: ``out += sum over frames of |FFT2(frame * real_mask)|**2``;
- ``holo_reconstruct``: ``out[i] = IFFT2(aperture * window(FFT2(frame_i)))``, the window
  being the sideband moved to zero frequency and cut to the output shape.

The CPU implementation is SciPy's FFT (``scipy.fft``, one thread: the executors already run a
partition per core), the GPU one CuPy's batched cuFFT, with the same code over ``xp``. Both
transform a whole tile of frames at once. Real frames take the real-input transform
(``rfft2``), half the work, and read the other half of the spectrum from its Hermitian
symmetry ``F(-k) = conj(F(k))``; complex frames take ``fft2``. Frames are converted to float32
(complex64), or float64 (complex128) where the data need it (32- and 64-bit integers, float64)
or the caller asks for double precision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

__all__ = [
    "FourierBackend",
    "PreparedHolo",
    "PreparedPower",
    "full_spectrum",
    "half_width",
    "hermitian_fold",
    "holo_window",
    "prepare_holo",
    "prepare_holo_gpu",
    "prepare_holo_reference",
    "prepare_power",
    "prepare_power_gpu",
    "prepare_power_reference",
    "reference_holo",
    "reference_power",
    "work_dtype",
]


# --- layout helpers (host, NumPy) --------------------------------------------------------------


def half_width(cols: int) -> int:
    """Columns of the real-input spectrum ``rfft2`` returns for frames ``cols`` wide."""
    return cols // 2 + 1


def work_dtype(input_dtype: Any, double: bool = False) -> np.dtype:
    """The real type frames are transformed in: float32, float64 where ``input_dtype`` needs it
    (as LiberTEM widens: 32/64-bit integers, float64, complex128) or ``double`` asks for it."""
    dtype = np.dtype(input_dtype)
    real = dtype.type(0).real.dtype if dtype.kind == "c" else dtype
    if double or np.result_type(real, np.float32) == np.float64:
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def full_spectrum(half: np.ndarray, cols: int) -> np.ndarray:
    """The full ``(rows, cols)`` power spectrum of real frames from its ``rfft2`` half.

    ``P(ky, kx) = P(-ky, -kx)`` for real frames, so the columns the half lacks are the mirrored
    ones it has.
    """
    half = np.asarray(half)
    rows, w = half.shape
    full = np.empty((rows, cols), dtype=half.dtype)
    full[:, :w] = half
    if cols > w:
        ky = (-np.arange(rows)) % rows
        kx = cols - np.arange(w, cols)
        full[:, w:] = half[ky][:, kx]
    return full


def hermitian_fold(weights: np.ndarray) -> np.ndarray:
    """Weights over the full unshifted spectrum of real frames, folded onto the half that
    ``rfft2`` returns: ``sum_k W(k) |F(k)| == sum_{k in half} H(k) |F(k)|``.

    The columns whose mirror ``-kx`` lies outside the half take the weight of the mirror too;
    column 0 (and ``cols / 2`` for even widths) holds both a frequency and its mirror already.
    """
    weights = np.asarray(weights)
    rows, cols = weights.shape
    w = half_width(cols)
    half = weights[:, :w].copy()
    folded = np.arange(1, (cols - 1) // 2 + 1)
    if folded.size:
        ky = (-np.arange(rows)) % rows
        half[:, folded] += weights[ky][:, cols - folded]
    return half


def holo_window(
    sig_shape: tuple[int, int], out_shape: tuple[int, int], sb_position: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel of the reconstruction's spectrum comes from in the frame's spectrum.

    LiberTEM's reconstruction rolls the spectrum by ``sb_position``, shifts zero frequency to
    the centre, cuts the centred ``out_shape`` window and shifts back; pixel ``(a, b)`` of the
    result is then ``F(ky[a], kx[b])``.

    Returns
    -------
    ky, kx : numpy.ndarray
        int64 row indices ``(out_rows,)`` and column indices ``(out_cols,)`` into the unshifted
        ``sig_shape`` spectrum.
    """
    out: list[np.ndarray] = []
    for s, o, p in zip(sig_shape, out_shape, sb_position, strict=True):
        start = int(s / 2 - o / 2)  # LiberTEM's window: int() of the float bounds
        a = np.arange(o)
        shifted = start + (a - o // 2) % o  # fftshift of the cut window
        out.append((shifted - s // 2 - int(p)) % s)  # undo fftshift, then the roll
    return out[0], out[1]


# --- references (NumPy, one frame at a time, complex128) ----------------------------------------


def _masked(frame: np.ndarray, real_mask: np.ndarray | None) -> np.ndarray:
    frame = np.asarray(frame)
    values = frame.astype(np.complex128 if frame.dtype.kind == "c" else np.float64)
    return values if real_mask is None else values * np.asarray(real_mask)


def reference_power(tile: np.ndarray, real_mask: np.ndarray | None = None) -> np.ndarray:
    """``sum_i |fft2(tile[i] * real_mask)|**2`` over the full unshifted spectrum, float64
    ``(rows, cols)``."""
    tile = np.asarray(tile)
    total = np.zeros(tile.shape[1:])
    for frame in tile:
        total += np.abs(np.fft.fft2(_masked(frame, real_mask))) ** 2
    return total


def reference_holo(
    tile: np.ndarray,
    out_shape: tuple[int, int],
    sb_position: tuple[int, int],
    aperture: np.ndarray,
) -> np.ndarray:
    """LiberTEM 0.14's reconstruction, step by step: ``fft2(frame) / N``, rolled by
    ``sb_position``, fftshifted, the centred ``out_shape`` window cut and fftshifted again,
    times ``aperture`` (``out_shape``, zero frequency at ``[0, 0]``), ``ifft2 * N``.
    complex128 ``(n, *out_shape)``."""
    tile = np.asarray(tile)
    sy, sx = tile.shape[1:]
    oy, ox = out_shape
    window = (
        slice(int(sy / 2 - oy / 2), int(sy / 2 + oy / 2)),
        slice(int(sx / 2 - ox / 2), int(sx / 2 + ox / 2)),
    )
    n = sy * sx
    waves = []
    for frame in tile:
        spectrum = np.fft.fft2(_masked(frame, None)) / n
        spectrum = np.roll(spectrum, [int(p) for p in sb_position], axis=(0, 1))
        spectrum = np.fft.fftshift(np.fft.fftshift(spectrum)[window])
        waves.append(np.fft.ifft2(spectrum * np.asarray(aperture)) * n)
    return np.array(waves, dtype=np.complex128).reshape(len(tile), oy, ox)


# --- implementations: the same code over NumPy + scipy.fft and CuPy + cupy.fft ----------------


@dataclass(frozen=True)
class FourierBackend:
    """An array module, its FFT functions (``rfft2``, ``fft2``, ``ifft2``), and how many bytes
    of frames one transform takes (None: the whole tile)."""

    xp: ModuleType
    fft: ModuleType
    fft_kwargs: dict[str, Any]
    chunk_bytes: int | None = None
    add_power: Callable[[Any, Any], None] | None = None

    def chunks(self, tile: Any, real: np.dtype) -> list[slice]:
        """The groups of frames transformed together: the whole tile on the GPU; on the CPU
        about :data:`_CPU_CHUNK_BYTES` of converted frames (see there)."""
        n = len(tile)
        step = n
        if self.chunk_bytes is not None:
            width = 2 if tile.dtype.kind == "c" else 1
            frame = int(np.prod(tile.shape[1:])) * real.itemsize * width
            step = max(1, self.chunk_bytes // max(frame, 1))
        return [slice(s, s + step) for s in range(0, n, max(step, 1))]

    def forward(self, values: Any, columns: Any = None) -> Any:
        """The spectrum of each frame of ``(n, rows, cols)`` values (``rfft2`` for real ones),
        or, given ``columns`` (indices into its last axis), only those columns: the rows are
        transformed, the columns picked, and only they transformed along the rows' axis."""
        fft, kw = self.fft, self.fft_kwargs
        if columns is None:
            if values.dtype.kind == "c":
                return fft.fft2(values, axes=(-2, -1), **kw)
            return fft.rfft2(values, axes=(-2, -1), **kw)
        rows = (
            fft.fft(values, axis=-1, **kw)
            if values.dtype.kind == "c"
            else fft.rfft(values, axis=-1, **kw)
        )
        return fft.fft(rows[..., columns], axis=-2, **kw)

    def load(self, tile: Any, real_mask: Any, real: np.dtype) -> Any:
        """The tile in the transform's type, times ``real_mask`` (one pass over the tile)."""
        xp = self.xp
        work = np.result_type(real, np.complex64) if tile.dtype.kind == "c" else real
        if real_mask is None:
            return tile.astype(work, copy=False)
        return xp.multiply(tile, real_mask, dtype=work)

    def power(self, spectrum: Any, out: Any) -> None:
        """``out += sum over frames of |spectrum|**2``."""
        if self.add_power is not None:
            self.add_power(spectrum, out)
            return
        power = spectrum.real**2
        power += spectrum.imag**2
        out += power.sum(axis=0, dtype=np.float64)


#: Bytes of converted frames the CPU transforms at once. Measured with 256 x 256 uint16 frames
#: on two threads: 1 MiB (four float32 frames) is 1.1-1.2x faster than one frame at a time
#: (each call's Python work holds the GIL; pocketfft releases it) and 1.3-1.5x faster than
#: 4 MiB or whole 16 MiB tiles (whose transforms' second pass goes to memory).
_CPU_CHUNK_BYTES = 2**20


def _cpu() -> FourierBackend:
    import scipy.fft

    from libertem_gpu.kernels.fourier_cpu import add_power

    # One thread: the executors already run one partition per core. No ``overwrite_x``: a
    # float tile may be the data set's own buffer, shared with the run's other UDFs.
    return FourierBackend(np, scipy.fft, {"workers": 1}, _CPU_CHUNK_BYTES, add_power)


def _gpu() -> FourierBackend:
    import cupy

    return FourierBackend(cupy, cupy.fft, {})


def _host(array: Any) -> np.ndarray:
    """A NumPy copy of ``array`` (a NumPy or CuPy array, or a sequence)."""
    get = getattr(array, "get", None)
    return np.asarray(get() if callable(get) else array)


def _device(fb: FourierBackend, array: Any, dtype: Any) -> Any:
    return None if array is None else fb.xp.asarray(_host(array).astype(dtype))


class PreparedPower:
    """``power_spectrum`` laid out for one backend: ``(tile, out)``, ``out`` float64 of
    :attr:`shape` (the ``rfft2`` half for real frames, the full spectrum for complex ones)."""

    def __init__(
        self,
        fb: FourierBackend,
        sig_shape: tuple[int, int],
        real_mask: Any,
        input_dtype: Any,
        double: bool = False,
    ) -> None:
        rows, cols = sig_shape
        self.complex = np.dtype(input_dtype).kind == "c"
        self.shape = (rows, cols) if self.complex else (rows, half_width(cols))
        self._fb = fb
        self._real = work_dtype(input_dtype, double)
        self._mask = _device(fb, real_mask, self._real)

    def __call__(self, tile: Any, out: Any) -> None:
        fb = self._fb
        for part in fb.chunks(tile, self._real):
            fb.power(fb.forward(fb.load(tile[part], self._mask, self._real)), out)


#: Transform only the columns of the spectrum an operation reads where they are at most this
#: share of them (two 1-D passes, the second over fewer columns, instead of one 2-D pass).
_PRUNE_SHARE = 0.5


def _pruned(rows: np.ndarray, cols: np.ndarray, width: int) -> tuple[Any, np.ndarray]:
    """``(columns, flat)``: the columns to transform (None: all) and the flat indices of
    ``(rows, cols)`` into the spectrum the operation's ``forward`` then returns."""
    used = np.unique(cols)
    if len(used) > _PRUNE_SHARE * width:
        return None, rows * width + cols
    return used, rows * len(used) + np.searchsorted(used, cols)


class PreparedHolo:
    """``holo_reconstruct`` laid out for one backend: ``(tile, out (n, *out_shape))``, complex;
    ``aperture`` of ``out_shape`` with zero frequency at ``[0, 0]``."""

    def __init__(
        self,
        fb: FourierBackend,
        sig_shape: tuple[int, int],
        out_shape: tuple[int, int],
        sb_position: tuple[int, int],
        aperture: Any,
        input_dtype: Any,
        double: bool = False,
    ) -> None:
        rows, cols = sig_shape
        ky, kx = holo_window(sig_shape, out_shape, sb_position)
        ky2, kx2 = np.meshgrid(ky, kx, indexing="ij")
        self.complex = np.dtype(input_dtype).kind == "c"
        if self.complex:
            width, sign = cols, np.ones(ky2.shape)
        else:  # columns past the half: the conjugate of the mirrored frequency
            width = half_width(cols)
            mirror = kx2 >= width
            ky2 = np.where(mirror, (-ky2) % rows, ky2)
            kx2 = np.where(mirror, (-kx2) % cols, kx2)
            sign = np.where(mirror, -1.0, 1.0)
        columns, flat = _pruned(ky2, kx2, width)
        self._fb = fb
        self._real = work_dtype(input_dtype, double)
        self._shape = tuple(out_shape)
        self._columns = _device(fb, columns, np.intp)
        self._index = _device(fb, flat.reshape(-1), np.intp)
        self._sign = _device(fb, sign.reshape(-1), self._real)
        self._aperture = _device(
            fb, _host(aperture).reshape(-1), np.result_type(self._real, np.complex64)
        )

    def __call__(self, tile: Any, out: Any) -> None:
        fb = self._fb
        for part in fb.chunks(tile, self._real):
            spectrum = fb.forward(fb.load(tile[part], None, self._real), self._columns)
            window = spectrum.reshape(len(spectrum), -1)[:, self._index]
            if not self.complex:
                window.imag *= self._sign
            window *= self._aperture
            window = window.reshape(len(window), *self._shape)
            out[part] = fb.fft.ifft2(window, axes=(-2, -1), **fb.fft_kwargs)


# --- the catalog's targets -----------------------------------------------------------------------


def prepare_power(
    sig_shape: tuple[int, int], real_mask: Any, input_dtype: Any, double: bool = False
) -> PreparedPower:
    """The CPU strategy of ``power_spectrum`` (SciPy's FFT)."""
    return PreparedPower(_cpu(), sig_shape, real_mask, input_dtype, double)


def prepare_power_gpu(
    sig_shape: tuple[int, int], real_mask: Any, input_dtype: Any, double: bool = False
) -> PreparedPower:
    """The GPU strategy of ``power_spectrum`` (cuFFT through CuPy)."""
    return PreparedPower(_gpu(), sig_shape, real_mask, input_dtype, double)


class _ReferencePower:
    """:func:`reference_power` as a prepared operation: ``shape`` as :class:`PreparedPower`'s."""

    def __init__(self, sig_shape: tuple[int, int], real_mask: Any, input_dtype: Any) -> None:
        complex_input = np.dtype(input_dtype).kind == "c"
        cols = sig_shape[1] if complex_input else half_width(sig_shape[1])
        self.shape = (sig_shape[0], cols)
        self._mask = real_mask

    def __call__(self, tile: Any, out: Any) -> None:
        out += reference_power(tile, self._mask)[:, : self.shape[1]]


def prepare_power_reference(
    sig_shape: tuple[int, int], real_mask: Any, input_dtype: Any, double: bool = False
) -> Callable[[Any, Any], None]:
    """:func:`reference_power`, cut to the half the prepared operation accumulates (its
    ``shape``, as :class:`PreparedPower`'s)."""
    return _ReferencePower(sig_shape, real_mask, input_dtype)


def prepare_holo(
    sig_shape: tuple[int, int],
    out_shape: tuple[int, int],
    sb_position: tuple[int, int],
    aperture: Any,
    input_dtype: Any,
    double: bool = False,
) -> PreparedHolo:
    """The CPU strategy of ``holo_reconstruct``."""
    return PreparedHolo(_cpu(), sig_shape, out_shape, sb_position, aperture, input_dtype, double)


def prepare_holo_gpu(
    sig_shape: tuple[int, int],
    out_shape: tuple[int, int],
    sb_position: tuple[int, int],
    aperture: Any,
    input_dtype: Any,
    double: bool = False,
) -> PreparedHolo:
    """The GPU strategy of ``holo_reconstruct``."""
    return PreparedHolo(_gpu(), sig_shape, out_shape, sb_position, aperture, input_dtype, double)


def prepare_holo_reference(
    sig_shape: tuple[int, int],
    out_shape: tuple[int, int],
    sb_position: tuple[int, int],
    aperture: Any,
    input_dtype: Any,
    double: bool = False,
) -> Callable[[Any, Any], None]:
    """:func:`reference_holo` as a prepared operation."""

    def kernel(tile: Any, out: Any) -> None:
        out[...] = reference_holo(tile, out_shape, sb_position, aperture)

    return kernel
