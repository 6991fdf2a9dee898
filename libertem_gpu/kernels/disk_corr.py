"""Correlation of frames with a disk template: full-frame (FFT) and sparse (direct, in small
windows around expected positions). The definitions are those of
:mod:`libertem_gpu.disks.peaks`, whose plain NumPy functions are the references.

Two operations, each a ``prepare`` per backend that lays the template out once per partition
and returns what the UDF calls per tile ``(n, rows, cols)`` of whole frames:

- ``disk_correlate``: ``out[i] = C(frame_i)``, the circular correlation, ``out`` float32
  ``(n, rows, cols)`` (float64 where :func:`~libertem_gpu.kernels.fourier.work_dtype` says);
  ``irfft2(rfft2(frames) * conj(rfft2(template placed at the origin)))``, batched: SciPy's FFT
  on the CPU (one thread: the executors run a partition per core), cuFFT through CuPy on the
  GPU, with the same code.
- ``disk_correlate_sparse``: ``out[i, k]``, the ``M x M`` correlation map around expected
  position ``k`` (``M = 2 half + 1``), frame pixels outside the frame zero. A direct sum: on
  the CPU a Numba loop reading the stored integers (a window of a few hundred pixels per
  shift is cheaper to sum than to transform), on the GPU a Numba-CUDA kernel with one block
  per (frame, position) and a thread per shift.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np

from libertem_gpu.kernels.fourier import FourierBackend, _cpu, _gpu, _host, work_dtype
from libertem_gpu.kernels.tiles import contiguous_read_only

__all__ = [
    "PreparedCorrelation",
    "PreparedSparse",
    "padded_template",
    "prepare_correlate",
    "prepare_correlate_gpu",
    "prepare_correlate_reference",
    "prepare_sparse",
    "prepare_sparse_gpu",
    "prepare_sparse_reference",
]

# ``numba.cuda`` in the kernel bodies: bound by ``bind_cuda`` when they are compiled.
cuda: Any = None


def padded_template(template: Any, sig_shape: tuple[int, int]) -> np.ndarray:
    """The template on a frame-sized float64 array, its centre at ``[0, 0]`` and the rest
    wrapped around (summed where a template is larger than the frame)."""
    t = np.asarray(template, np.float64)
    rows, cols = sig_shape
    out = np.zeros((rows, cols))
    qy, qx = np.mgrid[: t.shape[0], : t.shape[1]]
    np.add.at(out, ((qy - t.shape[0] // 2) % rows, (qx - t.shape[1] // 2) % cols), t)
    return out


# --- full frame: FFT -------------------------------------------------------------------------


class PreparedCorrelation:
    """``disk_correlate`` laid out for one backend: ``(tile, out)``."""

    def __init__(
        self,
        fb: FourierBackend,
        sig_shape: tuple[int, int],
        template: Any,
        input_dtype: Any,
        double: bool = False,
    ) -> None:
        self._fb = fb
        self._shape = (int(sig_shape[0]), int(sig_shape[1]))
        self._real = work_dtype(input_dtype, double)
        spec = np.conj(np.fft.rfft2(padded_template(_host(template), self._shape)))
        self._spec = fb.xp.asarray(spec.astype(np.result_type(self._real, np.complex64)))

    def __call__(self, tile: Any, out: Any) -> None:
        fb = self._fb
        kw = fb.fft_kwargs
        for part in fb.chunks(tile, self._real):
            spec = fb.fft.rfft2(fb.load(tile[part], None, self._real), axes=(-2, -1), **kw)
            spec *= self._spec
            out[part] = fb.fft.irfft2(spec, s=self._shape, axes=(-2, -1), **kw)


def prepare_correlate(
    sig_shape: tuple[int, int], template: Any, input_dtype: Any, double: bool = False
) -> PreparedCorrelation:
    """The CPU strategy of ``disk_correlate`` (SciPy's FFT, one thread)."""
    return PreparedCorrelation(_cpu(), sig_shape, template, input_dtype, double)


def prepare_correlate_gpu(
    sig_shape: tuple[int, int], template: Any, input_dtype: Any, double: bool = False
) -> PreparedCorrelation:
    """The GPU strategy of ``disk_correlate`` (cuFFT through CuPy, the whole tile at once)."""
    return PreparedCorrelation(_gpu(), sig_shape, template, input_dtype, double)


def prepare_correlate_reference(
    sig_shape: tuple[int, int], template: Any, input_dtype: Any, double: bool = False
) -> Callable[[Any, Any], None]:
    """:func:`libertem_gpu.disks.peaks.correlate` as a prepared operation."""
    from libertem_gpu.disks.peaks import correlate

    def kernel(tile: Any, out: Any) -> None:
        out[...] = correlate(tile, template)

    return kernel


# --- sparse: direct sums in windows ------------------------------------------------------------


@numba.njit(nogil=True, cache=True)
def _sparse_cpu(tile, template, pos, half, out):  # type: ignore[no-untyped-def]
    """``out[i, k, a, b] = sum_q f[i, y0 + a + qy, x0 + b + qx] t[qy, qx]`` with
    ``(y0, x0) = pos[k] - half - centre``, zero outside the frame."""
    n, rows, cols = tile.shape
    th, tw = template.shape
    m = 2 * half + 1
    acc = np.zeros(m, out.dtype)
    for i in range(n):
        for k in range(pos.shape[0]):
            y0 = pos[k, 0] - half - th // 2
            x0 = pos[k, 1] - half - tw // 2
            inside = y0 >= 0 and x0 >= 0 and y0 + m + th - 1 <= rows and x0 + m + tw - 1 <= cols
            for a in range(m):
                acc[:] = 0
                for qy in range(th):
                    r = y0 + a + qy
                    if r < 0 or r >= rows:
                        continue
                    for qx in range(tw):
                        tv = template[qy, qx]
                        c0 = x0 + qx
                        if inside:
                            for b in range(m):
                                acc[b] += tile[i, r, c0 + b] * tv
                        else:
                            for b in range(m):
                                c = c0 + b
                                if 0 <= c < cols:
                                    acc[b] += tile[i, r, c] * tv
                for b in range(m):
                    out[i, k, a, b] = acc[b]


def _sparse_kernel(tile, template, pos, half, out):  # type: ignore[no-untyped-def]
    # Numba-CUDA kernel body, compiled through _cuda_sparse(): block (i, k), a thread per shift.
    npos = pos.shape[0]
    i = cuda.blockIdx.x // npos
    k = cuda.blockIdx.x - i * npos
    rows = tile.shape[1]
    cols = tile.shape[2]
    th = template.shape[0]
    tw = template.shape[1]
    m = 2 * half + 1
    y0 = pos[k, 0] - half - th // 2
    x0 = pos[k, 1] - half - tw // 2
    for s in range(cuda.threadIdx.x, m * m, cuda.blockDim.x):
        a = s // m
        b = s - a * m
        acc = out[i, k, a, b] * 0  # out's type
        for qy in range(th):
            r = y0 + a + qy
            if r >= 0 and r < rows:
                for qx in range(tw):
                    c = x0 + b + qx
                    if c >= 0 and c < cols:
                        acc += tile[i, r, c] * template[qy, qx]
        out[i, k, a, b] = acc


def _cuda_sparse():
    """Numba-CUDA kernel factory of the sparse correlation."""
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_sparse_kernel)


class PreparedSparse:
    """``disk_correlate_sparse`` laid out for one backend: ``(tile, out (n, P, M, M))``."""

    def __init__(
        self,
        gpu: bool,
        template: Any,
        positions: Any,
        half: int,
        input_dtype: Any,
        double: bool = False,
    ) -> None:
        self.half = int(half)
        self.dtype = work_dtype(input_dtype, double)
        t = _host(template).astype(self.dtype)
        pos = np.ascontiguousarray(_host(positions), dtype=np.int64)
        self._gpu = gpu
        if gpu:
            from libertem_gpu.kernels.gpu_common import cupy

            cp = cupy()
            t, pos = cp.asarray(t), cp.asarray(pos)
        self._template = t
        self._pos = pos

    def __call__(self, tile: Any, out: Any) -> None:
        if tile.dtype == np.bool_:
            tile = tile.view(np.uint8)
        if not self._gpu:
            # the correlations cost far more than a copy
            _sparse_cpu(contiguous_read_only(tile), self._template, self._pos, self.half, out)
            return
        from libertem_gpu.kernels import gpu_common as g

        m = 2 * self.half + 1
        blocks = len(tile) * len(self._pos)
        if blocks:
            threads = min(m * m, 32 if g.config.get("cuda_simulator") else 256)
            g.launch(
                _cuda_sparse, (blocks,), (threads,), tile, self._template, self._pos, self.half, out
            )


def prepare_sparse(
    template: Any, positions: Any, half: int, input_dtype: Any, double: bool = False
) -> PreparedSparse:
    """The CPU strategy of ``disk_correlate_sparse`` (a Numba loop)."""
    return PreparedSparse(False, template, positions, half, input_dtype, double)


def prepare_sparse_gpu(
    template: Any, positions: Any, half: int, input_dtype: Any, double: bool = False
) -> PreparedSparse:
    """The GPU strategy of ``disk_correlate_sparse`` (a Numba-CUDA kernel)."""
    return PreparedSparse(True, template, positions, half, input_dtype, double)


def prepare_sparse_reference(
    template: Any, positions: Any, half: int, input_dtype: Any, double: bool = False
) -> Callable[[Any, Any], None]:
    """:func:`libertem_gpu.disks.peaks.correlate_sparse` as a prepared operation (``half`` is
    ``search + reach`` there)."""
    from libertem_gpu.disks.peaks import correlate_sparse

    def kernel(tile: Any, out: Any) -> None:
        out[...] = correlate_sparse(tile, template, positions, half - 1, 1)

    return kernel
