"""Fourier amplitude of each frame summed over a band of spatial frequencies (crystallinity).

For each whole frame ``f`` (``ny x nx``), with an optional real-space weight ``w`` (a blanked
disk) and weights ``m`` on the half spectrum that ``rfft2`` returns (``ny x (nx // 2 + 1)``,
zero frequency at ``[0, 0]``)::

    out += sum(|rfft2(f * w)| * m)

:func:`prepare` picks one of two strategies per backend, once per partition:

* ``"dft"`` (CPU): only the frequencies where ``m`` is non-zero, as two matrix products: the
  frame's rows times the cosines and sines of the needed columns' frequencies (BLAS, the
  frame read once), then the needed rows' frequencies of that small result. A band of a few
  pixels' radius around zero frequency (what crystallinity uses) costs ``2 * k`` multiply-adds
  per pixel for ``k`` needed column frequencies: 4-13x less than the FFT for bands up to ~20
  pixels on 256 x 256 frames (measured, see ``_DFT_COLUMNS_PER_LOG2``).
* ``"fft"``: the whole half spectrum by ``scipy.fft.rfft2`` (one worker thread: partitions
  already run one per core) on blocks of frames; on the GPU always, by ``cupy.fft.rfft2``
  batched over a block of frames.

The CPU computes in float64; the GPU in float32 for frames of up to 16 bits and float32 (as
LiberTEM does on the CPU), else float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.tiles import as_rows

__all__ = ["PreparedBand", "prepare", "prepare_gpu", "prepare_reference", "reference"]

#: The DFT runs where its needed column frequencies ``k`` satisfy
#: ``2 * k <= _DFT_COLUMNS_PER_LOG2 * log2(npix)``. Measured on 256 x 256 float64 frames, one
#: thread: the blocked DFT costs ~9 us per needed column (BLAS dgemm), the FFT ~460 us per
#: frame, i.e. the DFT is faster up to ~50 columns = 3 * log2(65536).
_DFT_COLUMNS_PER_LOG2 = 3.0
#: Bytes of float64 frames converted per block (fits L2 beside the weights).
_BLOCK_BYTES = 2 * 2**20


def reference(
    frames: np.ndarray, half_mask: np.ndarray, real_mask: np.ndarray | None
) -> np.ndarray:
    """``sum(|rfft2(frame * real_mask)| * half_mask)`` per frame, plain NumPy float64.

    Parameters
    ----------
    frames : numpy.ndarray
        ``(n, ny, nx)``.
    half_mask : numpy.ndarray
        ``(ny, nx // 2 + 1)`` weights on the half spectrum.
    real_mask : numpy.ndarray or None
        ``(ny, nx)`` real-space weights, or None for none.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)``.
    """
    f = np.asarray(frames, dtype=np.float64)
    if real_mask is not None:
        f = f * real_mask
    return (np.abs(np.fft.rfft2(f)) * half_mask).sum(axis=(-2, -1))


def _check(half_mask: np.ndarray, real_mask: np.ndarray | None, sig_shape: Any) -> tuple[int, int]:
    """``(ny, nx)`` after checking the masks' shapes against the frame's."""
    shape = tuple(int(d) for d in sig_shape)
    if len(shape) != 2:
        raise ShapeMismatchError(f"the Fourier band needs 2-D frames, got sig_shape {shape}")
    ny, nx = shape
    if tuple(half_mask.shape) != (ny, nx // 2 + 1):
        raise ShapeMismatchError(
            f"half_mask must have shape ({ny}, {nx // 2 + 1}) for frames of {shape}, "
            f"got {tuple(half_mask.shape)}"
        )
    if real_mask is not None and tuple(real_mask.shape) != shape:
        raise ShapeMismatchError(
            f"real_mask must have the frame shape {shape}, got {tuple(real_mask.shape)}"
        )
    return ny, nx


@dataclass
class PreparedBand:
    """A band laid out for one backend: call it as ``(tile (n, npix), out (n,))`` to add each
    whole frame's band amplitude to ``out``.

    Attributes
    ----------
    kernel : callable
        ``kernel(tile, out)``.
    strategy : str
        ``"dft"``, ``"fft"`` or ``"reference"``.
    """

    kernel: Any
    strategy: str

    def __call__(self, tile: Any, out: Any) -> None:
        self.kernel(tile, out)


def _check_tile(npix: int, ny: int, nx: int) -> None:
    if npix != ny * nx:
        raise ShapeMismatchError(
            f"the Fourier band needs whole {ny} x {nx} frames, got tiles of {npix} pixels"
        )


def _check_out(out: Any, n: int) -> None:
    if tuple(out.shape) != (n,) or out.dtype != np.float64:
        raise ShapeMismatchError(
            f"out must be float64 of shape ({n},), got {out.dtype} {out.shape}"
        )


def prepare_reference(
    half_mask: np.ndarray, real_mask: np.ndarray | None, sig_shape: Any, input_dtype: Any
) -> PreparedBand:
    """The plain NumPy strategy (what tests compare every backend's with)."""
    ny, nx = _check(half_mask, real_mask, sig_shape)

    def kernel(tile: Any, out: Any) -> None:
        n, npix = tile.shape
        _check_out(out, n)
        _check_tile(npix, ny, nx)
        out += reference(np.asarray(tile).reshape(n, ny, nx), half_mask, real_mask)

    return PreparedBand(kernel, "reference")


def _dft_weights(
    half_mask: np.ndarray, nx: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """Column weights ``(nx, kc + ks)`` (cosines, then minus sines where not all zero), which
    columns have sines, row phases ``(kr, ny)`` and the band's weights ``(kr, kc)``."""
    ny = half_mask.shape[0]
    rows = np.flatnonzero(half_mask.any(axis=1))
    cols = np.flatnonzero(half_mask.any(axis=0))
    x = np.arange(nx)
    phase_x = 2 * np.pi * np.outer(x, cols) / nx
    with_sine = np.flatnonzero((cols != 0) & (2 * cols != nx))
    wx = np.concatenate([np.cos(phase_x), -np.sin(phase_x[:, with_sine])], axis=1)
    ey = np.exp(-2j * np.pi * np.outer(rows, np.arange(ny)) / ny)
    return np.ascontiguousarray(wx), with_sine, ey, half_mask[np.ix_(rows, cols)], len(cols)


def _block_frames(npix: int) -> int:
    return max(1, _BLOCK_BYTES // max(1, 8 * npix))


def prepare(
    half_mask: np.ndarray, real_mask: np.ndarray | None, sig_shape: Any, input_dtype: Any
) -> PreparedBand:
    """The CPU strategy for this band: the DFT of the needed frequencies where it is cheaper
    than the FFT, else blocked ``scipy.fft.rfft2`` (float64, one worker)."""
    half_mask = np.asarray(half_mask, dtype=np.float64)
    real = None if real_mask is None else np.asarray(real_mask, dtype=np.float64)
    ny, nx = _check(half_mask, real, sig_shape)
    cols = int(half_mask.any(axis=0).sum())
    dft = 2 * cols <= _DFT_COLUMNS_PER_LOG2 * math.log2(max(ny * nx, 2))
    if dft:
        wx, with_sine, ey, band, kc = _dft_weights(half_mask, nx)

    def kernel(tile: np.ndarray, out: np.ndarray) -> None:
        a, npix = as_rows(tile)
        n = a.shape[0]
        _check_out(out, n)
        if n == 0 or npix == 0:
            return
        _check_tile(npix, ny, nx)
        block = _block_frames(npix)
        buf = np.empty((min(block, n), npix), dtype=np.float64)
        for i0 in range(0, n, block):
            i1 = min(n, i0 + block)
            b = buf[: i1 - i0]
            if real is None:
                b[...] = a[i0:i1, :npix]
            else:
                np.multiply(a[i0:i1, :npix], real.reshape(-1), out=b, casting="unsafe")
            if dft:
                g = b.reshape(-1, nx) @ wx  # (frames * rows, columns)
                gc = g[:, :kc].astype(np.complex128)
                gc[:, with_sine] += 1j * g[:, kc:]
                spectrum = ey @ gc.reshape(i1 - i0, ny, kc)  # (frames, band rows, band cols)
                out[i0:i1] += (np.abs(spectrum) * band).sum(axis=(1, 2))
            else:
                import scipy.fft

                spectrum = scipy.fft.rfft2(b.reshape(-1, ny, nx), workers=1)
                out[i0:i1] += (np.abs(spectrum) * half_mask).sum(axis=(1, 2))

    return PreparedBand(kernel, "dft" if dft else "fft")


def prepare_gpu(
    half_mask: np.ndarray, real_mask: np.ndarray | None, sig_shape: Any, input_dtype: Any
) -> PreparedBand:
    """The GPU strategy: ``cupy.fft.rfft2`` on blocks of frames converted on the device."""
    from libertem_gpu.kernels import gpu_common as g

    cp = g.cupy()
    ny, nx = _check(np.asarray(half_mask), real_mask, sig_shape)
    dt = np.dtype(input_dtype)
    narrow = (dt.kind in "uib" and dt.itemsize <= 2) or dt == np.float32
    ft = np.float32 if narrow else np.float64
    mask_d = cp.asarray(np.asarray(half_mask, dtype=ft))
    real_d = None if real_mask is None else cp.asarray(np.asarray(real_mask, dtype=ft))

    def kernel(tile: Any, out: Any) -> None:
        a = g.rows2d(tile)
        n, npix = a.shape
        _check_out(out, n)
        if n == 0 or npix == 0:
            return
        _check_tile(npix, ny, nx)
        block = max(1, (64 * 2**20) // (npix * 16))  # ~64 MiB of spectra per block
        for i0 in range(0, n, block):
            i1 = min(n, i0 + block)
            f = a[i0:i1].astype(ft)
            if real_d is not None:
                f *= real_d.reshape(-1)
            spectrum = cp.fft.rfft2(f.reshape(-1, ny, nx))
            out[i0:i1] += (cp.abs(spectrum) * mask_d).sum(axis=(1, 2))

    return PreparedBand(kernel, "fft")
