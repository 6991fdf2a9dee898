"""The streaming sum of single side band (SSB) ptychography: each frame's chosen pixels weighed
by one complex weight per scan frequency, and the frame's share of each frequency's Fourier
sum over the scan.

For frames ``tile[i]`` at scan positions ``positions[i]`` (row, column, whole scan steps), the
pixels ``pixels`` (flat indices into a frame), the weights ``weights[m, j]`` of pixel ``m`` for
frequency ``freqs[j]`` (cycles per scan step, row and column) and
``e[i, j] = exp(-2 pi i freqs[j] . positions[i])``, one call adds::

    w[i, j] = sum_m tile[i, pixels[m]] * weights[m, j]
    acc[0, j] += sum_i e[i, j] * w[i, j]
    acc[1, j] += sum_i e[i, j]
    acc[2, j] += sum_i w[i, j]
    pixel_sum[m] += sum_i tile[i, pixels[m]]

``acc[0]`` is the weighted sum over the pixels of the scan's Fourier transform of each pixel's
intensity; ``acc[1]`` and ``acc[2]`` let the caller count the scan positions it did not see as
the mean frame (:class:`~libertem_gpu.udf.ssb.SSBUDF`).

The reference computes in complex128 from the definition. The CPU and GPU implementations are
the same array code (NumPy with BLAS, or CuPy with cuBLAS): the weights as a real matrix of
interleaved real and imaginary parts, one matrix product per block of frames, and the
exponentials as the product of a row table and a column table, in float32 (complex64) unless
``double``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["PreparedSSB", "prepare", "prepare_gpu", "prepare_reference", "reference"]

#: Bytes of the temporaries of one block of frames (products, exponentials): the block's frame
#: count follows from the number of frequencies.
_BLOCK_BYTES = 32 * 2**20


def reference(
    tile: np.ndarray,
    pixels: np.ndarray,
    weights: np.ndarray,
    freqs: np.ndarray,
    positions: np.ndarray,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(acc (3, k) complex128, pixel_sum (m,) float64)`` of one tile, from the definition
    (module docstring), in double precision; ``valid`` (``(m,)`` 0 or 1) zeroes the pixels
    it marks 0 (pixels moved off the frame)."""
    values = np.asarray(tile, dtype=np.float64).reshape(len(tile), -1)[:, pixels]
    if valid is not None:
        values = values * valid
    phases = np.exp(-2j * np.pi * (np.asarray(positions, np.float64) @ np.asarray(freqs).T))
    weighed = values @ np.asarray(weights, dtype=np.complex128)
    acc = np.stack([(phases * weighed).sum(axis=0), phases.sum(axis=0), weighed.sum(axis=0)])
    return acc, values.sum(axis=0)


class PreparedSSB:
    """The prepared operation of one backend: call it with ``(tile (n, npix), positions (n, 2)
    int, acc (3, k) complex128, pixel_sum (m,) float64)``, all on the backend.

    Parameters
    ----------
    xp : module
        NumPy or CuPy.
    pixels : numpy.ndarray
        int64 ``(m,)``: the flat pixel indices that count.
    weights : numpy.ndarray
        complex ``(m, k)``: each pixel's weight for each frequency.
    freqs : numpy.ndarray
        float64 ``(k, 2)``: the frequencies, cycles per scan step (row, column).
    nav_shape : sequence of int
        The scan's ``(rows, columns)``: positions index it.
    double : bool
        Products and exponentials in float64 instead of float32.
    """

    def __init__(
        self,
        xp: Any,
        pixels: np.ndarray,
        weights: np.ndarray,
        freqs: np.ndarray,
        nav_shape: Sequence[int],
        double: bool = False,
    ) -> None:
        real = np.dtype(np.float64 if double else np.float32)
        self._xp = xp
        self._real = real
        self._complex = np.result_type(real, np.complex64)
        weights = np.asarray(weights)
        m, k = weights.shape
        interleaved = np.empty((m, 2 * k), dtype=real)
        interleaved[:, 0::2] = weights.real
        interleaved[:, 1::2] = weights.imag
        self._weights = xp.asarray(interleaved)
        self._pixels = xp.asarray(np.asarray(pixels, dtype=np.int64))
        freqs = np.asarray(freqs, dtype=np.float64).reshape(k, 2)
        rows, cols = (int(s) for s in nav_shape)
        # exp(-2 pi i (fy y + fx x)) = row table[y] * column table[x]; the tables are exact in
        # float64 before the cast, whatever the scan's size.
        self._row_table = xp.asarray(
            np.exp(-2j * np.pi * np.outer(np.arange(rows), freqs[:, 0])).astype(self._complex)
        )
        self._col_table = xp.asarray(
            np.exp(-2j * np.pi * np.outer(np.arange(cols), freqs[:, 1])).astype(self._complex)
        )
        per_frame = k * (2 * real.itemsize + 3 * self._complex.itemsize) + m * real.itemsize
        self.block = max(1, _BLOCK_BYTES // max(per_frame, 1))

    @property
    def nbytes(self) -> int:
        """Bytes the prepared constants hold."""
        return int(self._weights.nbytes + self._row_table.nbytes + self._col_table.nbytes)

    def __call__(
        self,
        tile: Any,
        positions: Any,
        acc: Any,
        pixel_sum: Any,
        pixels: Any = None,
        valid: Any = None,
    ) -> None:
        """Add the tile's sums to ``acc`` and ``pixel_sum`` (module docstring); ``pixels`` and
        ``valid`` (on the backend) read other pixels in place of the prepared ones, for frames
        whose disk has moved, those marked 0 in ``valid`` (moved off the frame) as 0."""
        n = int(tile.shape[0])
        flat = tile.reshape(n, -1)
        chosen = self._pixels if pixels is None else pixels
        for a in range(0, n, self.block):
            b = min(n, a + self.block)
            values = flat[a:b][:, chosen].astype(self._real, copy=False)
            if valid is not None:
                values = values * valid
            pixel_sum += values.sum(axis=0, dtype=np.float64)
            weighed = (values @ self._weights).view(self._complex)
            phases = self._row_table[positions[a:b, 0]] * self._col_table[positions[a:b, 1]]
            acc[0] += (phases * weighed).sum(axis=0)
            acc[1] += phases.sum(axis=0)
            acc[2] += weighed.sum(axis=0)


def prepare(
    pixels: np.ndarray,
    weights: np.ndarray,
    freqs: np.ndarray,
    nav_shape: Sequence[int],
    double: bool = False,
) -> PreparedSSB:
    """The CPU implementation (NumPy and its BLAS)."""
    return PreparedSSB(np, pixels, weights, freqs, nav_shape, double)


def prepare_gpu(
    pixels: np.ndarray,
    weights: np.ndarray,
    freqs: np.ndarray,
    nav_shape: Sequence[int],
    double: bool = False,
) -> PreparedSSB:
    """The GPU implementation (CuPy and cuBLAS); arguments on the host."""
    from libertem_gpu.kernels import gpu_common as g

    return PreparedSSB(g.cupy(), pixels, weights, freqs, nav_shape, double)


def prepare_reference(
    pixels: np.ndarray,
    weights: np.ndarray,
    freqs: np.ndarray,
    nav_shape: Sequence[int],
    double: bool = False,
) -> Any:
    """The reference with the prepared signature (``double`` is moot: it always is)."""

    prepared = pixels

    def step(
        tile: Any,
        positions: Any,
        acc: Any,
        pixel_sum: Any,
        pixels: Any = None,
        valid: Any = None,
    ) -> None:
        chosen = prepared if pixels is None else pixels
        more, sums = reference(tile, chosen, weights, freqs, positions, valid)
        acc += more
        pixel_sum += sums

    return step
