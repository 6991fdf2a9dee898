"""The GPU (CuPy / Numba-CUDA) implementations of the mask operations, and the GPU ``prepare``
of ``apply_masks``: one mask is a fused Numba-CUDA dot product, several a cuBLAS GEMM over the
converted frames; sparse masks a Numba-CUDA kernel reading only their pixels, or cuSPARSE SpMM.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.gpu_common import BLOCK, CHUNK
from libertem_gpu.kernels.masks import AppliedMasks, MaskStack

__all__ = ["DeviceCSR", "gpu_dense", "gpu_sparse", "gpu_sparse_csr", "prepare"]

# ``numba.cuda`` in the kernel bodies: bound by ``bind_cuda`` when they are compiled, so that
# importing this module imports no CUDA.
cuda: Any = None

# Floats of the converted block handed to one GEMM (256 MiB of float64 at most in flight).
_GPU_GEMM_ELEMS = 1 << 25
# From this many sparse masks on, cuSPARSE SpMM over a converted tile beats one block per
# (frame, mask) pair reading only the masks' pixels.
_GPU_SPMM_MIN_MASKS = 8


def _rowdot_kernel(a, w, out):
    # Numba-CUDA kernel body; compiled through _cuda_rowdot().
    i = cuda.blockIdx.x
    t = cuda.threadIdx.x
    c0 = cuda.blockIdx.y * CHUNK
    c1 = min(c0 + CHUNK, a.shape[1])
    s = 0.0
    for p in range(c0 + t, c1, BLOCK):
        s += float(a[i, p]) * float(w[p])
    sm = cuda.shared.array(BLOCK, "float64")
    sm[t] = s
    cuda.syncthreads()
    step = BLOCK // 2
    while step > 0:
        if t < step:
            sm[t] += sm[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        cuda.atomic.add(out, (i, 0), sm[0])


def _cuda_rowdot():
    """Numba-CUDA kernel factory: ``out[i, 0] += sum_p a[i, p] * w[p]`` (one mask, raw tile
    converted on load, shared-memory tree per block, one atomic per block)."""
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_rowdot_kernel)


def _sparse_rowdot_kernel(a, indptr, indices, data, out):
    # Numba-CUDA kernel body; compiled through _cuda_sparse_rowdot().
    i = cuda.blockIdx.x
    j = cuda.blockIdx.y
    t = cuda.threadIdx.x
    s = 0.0
    for z in range(indptr[j] + t, indptr[j + 1], BLOCK):
        s += float(a[i, indices[z]]) * float(data[z])
    sm = cuda.shared.array(BLOCK, "float64")
    sm[t] = s
    cuda.syncthreads()
    step = BLOCK // 2
    while step > 0:
        if t < step:
            sm[t] += sm[t + step]
        cuda.syncthreads()
        step //= 2
    if t == 0:
        out[i, j] += sm[0]


def _cuda_sparse_rowdot():
    """Numba-CUDA kernel factory: block ``(i, j)`` adds ``sum_z a[i, indices[z]] * data[z]``
    over CSR row ``j`` to ``out[i, j]``; only the masks' pixels are read."""
    from libertem_gpu.kernels.gpu_common import bind_cuda

    return bind_cuda(_sparse_rowdot_kernel)


def _gpu_check_out(out, n: int, k: int) -> None:
    if tuple(out.shape) != (n, k):
        raise ShapeMismatchError(f"out must have shape ({n}, {k}), got {tuple(out.shape)}")
    if out.dtype not in (np.float64, np.float32):
        raise TypeError(f"out must be float64 or float32, got {out.dtype}")


def gpu_dense(tile, masks_t, out) -> None:
    """CUDA twin of :func:`~libertem_gpu.kernels.masks_cpu.cpu_dense` on CuPy arrays:
    ``out += tile @ masks_t``.

    One mask is a fused Numba-CUDA dot product over the raw tile; several masks are one cuBLAS
    GEMM per block of frames (frames x pixels @ pixels x masks) after converting the block on
    the device, in float32 where ``masks_t`` and ``out`` are both float32, else float64.
    ``masks_t`` should already be a CuPy array (it is uploaded on every call otherwise).
    """
    import cupy as cp

    from libertem_gpu.kernels import gpu_common as g

    a = g.rows2d(tile)
    n, npix = a.shape
    masks_t = cp.asarray(masks_t)
    if masks_t.ndim != 2 or masks_t.shape[0] != npix:
        raise ShapeMismatchError(f"masks_t must have shape ({npix}, k), got {masks_t.shape}")
    if masks_t.dtype not in (np.float64, np.float32):
        raise TypeError(f"masks_t must be float32 or float64, got {masks_t.dtype}")
    k = masks_t.shape[1]
    _gpu_check_out(out, n, k)
    if n == 0 or k == 0 or npix == 0:
        return
    if k == 1:
        g.launch(_cuda_rowdot, (n, g.row_chunks(npix)), (g.BLOCK,), a, masks_t[:, 0], out)
        return
    ft = np.float32 if (masks_t.dtype == np.float32 and out.dtype == np.float32) else np.float64
    m = masks_t.astype(ft, copy=False)
    step = max(1, _GPU_GEMM_ELEMS // npix)
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        prod = a[i0:i1].astype(ft) @ m
        out[i0:i1] += prod


class DeviceCSR:
    """CSR masks ``(k, npix)`` moved to the device and checked once, for :func:`gpu_sparse_csr`.

    Checking indices against ``npix`` reads them: on host arrays (what ``prepare`` hands in)
    that costs no device synchronisation; on device arrays it costs two, once. The cuSPARSE
    matrix of each float type is built on first use and kept, so that per-tile calls neither
    synchronise with the host nor rebuild it.

    Parameters
    ----------
    indptr, indices, data : array_like
        The CSR arrays, on the host or the device.
    npix : int
        Pixels per frame (columns of the matrix).

    Raises
    ------
    ShapeMismatchError
        If the arrays are inconsistent or an index is outside ``[0, npix)``.
    """

    __slots__ = ("_matrices", "data", "indices", "indptr", "k", "npix")

    def __init__(self, indptr: Any, indices: Any, data: Any, npix: int) -> None:
        import cupy as cp

        from libertem_gpu.kernels import gpu_common as g

        self.k = len(indptr) - 1
        if self.k < 0:
            raise ShapeMismatchError("indptr must have at least one element")
        if len(indices) != len(data):
            raise ShapeMismatchError("inconsistent CSR arrays (indptr, indices, data)")
        self.npix = int(npix)
        if len(indices):
            # min and max of device indices are host syncs: done here, once, not per tile.
            ix = indices if g.is_device_array(indices) else np.asarray(indices)
            if int(ix.min()) < 0 or int(ix.max()) >= self.npix:
                raise ShapeMismatchError(f"mask indices out of range for npix={self.npix}")
        self.indptr = cp.asarray(indptr)
        self.indices = cp.asarray(indices)
        self.data = cp.asarray(data)
        self._matrices: dict[Any, Any] = {}

    def matrix(self, ft: Any) -> Any:
        """The masks as a ``cupyx.scipy.sparse.csr_matrix`` of ``ft`` values (built once)."""
        m = self._matrices.get(ft)
        if m is None:
            import cupyx.scipy.sparse as csp

            m = csp.csr_matrix(
                (self.data.astype(ft), self.indices, self.indptr), shape=(self.k, self.npix)
            )
            self._matrices[ft] = m
        return m


def gpu_sparse(tile, indptr, indices, data, out) -> None:
    """CUDA twin of :func:`~libertem_gpu.kernels.masks_cpu.cpu_sparse` on CuPy arrays (CSR
    ``(k, npix)`` masks).

    Few masks: a Numba-CUDA kernel reads only the masks' pixels of the raw tile. Many masks
    (8 or more): ``cupyx.scipy.sparse`` SpMM, CSR masks times the converted frame block. Each
    call checks and lays out the masks anew: for many tiles, make a :class:`DeviceCSR` once
    and call :func:`gpu_sparse_csr` (what ``prepare`` does).
    """
    from libertem_gpu.kernels import gpu_common as g

    a = g.rows2d(tile)
    k = len(indptr) - 1
    if k >= 0:  # the output's shape is checked before the masks' contents, as it always was
        _gpu_check_out(out, a.shape[0], k)
    gpu_sparse_csr(a, DeviceCSR(indptr, indices, data, a.shape[1]), out)


def gpu_sparse_csr(tile, masks: DeviceCSR, out) -> None:
    """:func:`gpu_sparse` with masks prepared once: no host synchronisation, no rebuilt
    matrix per call."""
    from libertem_gpu.kernels import gpu_common as g

    a = g.rows2d(tile)
    n, npix = a.shape
    if npix != masks.npix:
        raise ShapeMismatchError(f"masks have {masks.npix} pixels, the tile {npix}")
    k = masks.k
    _gpu_check_out(out, n, k)
    if n == 0 or k == 0:
        return
    if k < _GPU_SPMM_MIN_MASKS:
        g.launch(
            _cuda_sparse_rowdot,
            (n, k),
            (g.BLOCK,),
            a,
            masks.indptr,
            masks.indices,
            masks.data,
            out,
        )
        return
    ft = np.float32 if (masks.data.dtype == np.float32 and out.dtype == np.float32) else np.float64
    matrix = masks.matrix(ft)
    step = max(1, _GPU_GEMM_ELEMS // max(1, npix))
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        out[i0:i1] += (matrix @ a[i0:i1].T.astype(ft)).T


def prepare(stack: MaskStack, sig_shape: tuple[int, ...], input_dtype: Any) -> AppliedMasks:
    """Move the masks to the device once per partition (and each pixel slab of split frames
    once); dense masks go to :func:`gpu_dense`, CSR masks (a :class:`DeviceCSR`) to
    :func:`gpu_sparse_csr`."""
    import cupy as cp

    npix = int(np.prod(sig_shape))
    if stack.dense_t is None:
        csr = stack.csr
        assert csr is not None
        # Checked on the host and moved once per layout (whole frames, each pixel slab).
        return AppliedMasks(
            gpu_sparse_csr,
            lambda: DeviceCSR(*csr, npix),
            lambda p0, p1: DeviceCSR(*stack.csr_columns(p0, p1), p1 - p0),
            npix,
        )
    dense_t = stack.dense_t
    device = cp.asarray(dense_t)
    return AppliedMasks(
        gpu_dense,
        lambda: device,
        # A pixel slab of every mask, copied once so that the masks stay rows.
        lambda p0, p1: cp.asfortranarray(cp.asarray(dense_t[p0:p1])),
        npix,
    )
