"""Apply a stack of masks: ``out[i, j] += sum_p tile[i, p] * mask_j[p]``.

Dense masks come transposed, ``masks_t`` of shape ``(npix, k)``; sparse masks as CSR arrays of a
``(k, npix)`` matrix.

Speed notes (2-core Sapphire Rapids, 2.6 GHz, uint16 256x256 frames): a single mask is a fused,
memory-bound dot product in Numba (with float32 masks in float32 lanes: twice the lanes per
vector, 0.7 -> 0.9 of the memory floor on uint16). For k > 1 the work is compute-bound (k
multiply-adds per input element): blocks of the tile are converted into a small cache-resident
float buffer and handed to BLAS (``np.dot``), which measured 2-4x faster than the best Numba
loop. ``np.dot`` releases the GIL; the caller should limit BLAS to one thread per worker
(``OPENBLAS_NUM_THREADS=1`` or threadpoolctl) when running partitions in parallel.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels.gpu_common import BLOCK, CHUNK
from libertem_gpu.kernels.tiles import as_rows

__all__ = ["cpu_dense", "cpu_sparse", "reference", "reference_sparse"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)

# Lanes of independent partial sums for the k == 1 dot (see sum_sig for why); 64 measured best.
_LANES = 64
# Frames sharing one pass over the mask: the mask (L2-resident) is loaded once per four frames
# instead of once per frame.
_FRAMES = 4
# Lane blocks summed in the compute type before the lane sums are flushed into float64: with
# float32 lanes each partial sum then holds at most 128 products (relative error ~1e-6 at worst,
# ~1e-8 typical), while the total over the frame is still formed in float64.
_FLUSH = 128
# BLAS path: at most this many frames and this many float elements per converted block (1 MiB
# of float64), shapes for which OpenBLAS's skinny GEMM measured near its best.
_BLAS_FRAMES = 128
_BLAS_ELEMS = 1 << 17


def reference(tile: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Apply dense masks in plain NumPy.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)``.
    masks : numpy.ndarray
        ``(k, npix)``, one mask per row.

    Returns
    -------
    numpy.ndarray
        float64 ``(n, k)``: ``tile @ masks.T``.
    """
    t = np.asarray(tile, dtype=np.float64)
    return t @ np.asarray(masks, dtype=np.float64).T


def reference_sparse(
    tile: np.ndarray, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray
) -> np.ndarray:
    """Apply CSR masks (``k = len(indptr) - 1`` rows of ``npix`` columns) in plain NumPy."""
    npix = np.asarray(tile).shape[1]
    k = len(indptr) - 1
    dense = np.zeros((k, npix))
    for j in range(k):
        sl = slice(indptr[j], indptr[j + 1])
        np.add.at(dense[j], indices[sl], data[sl])
    return reference(tile, dense)


def _make_dot1(lane_type):
    """Build the k == 1 dot product with partial sums in ``lane_type`` (numpy.float64 or
    numpy.float32), flushed into float64 every ``_FLUSH`` lane blocks."""

    # Fused multiply-add (contraction only; no reassociation): faster and, if anything, closer
    # to the exact product sums.
    @numba.njit(nogil=True, cache=True, fastmath={"contract"})
    def dot1(a, npix, m, out):
        # out[i, 0] += a[i, :npix] @ m, four frames per pass, _LANES lanes per frame.
        n = a.shape[0]
        nb = npix // _LANES
        end = nb * _LANES
        mb = m[:end].reshape((nb, _LANES))
        acc = np.empty((_FRAMES, _LANES), lane_type)
        tot = np.empty((_FRAMES, _LANES))
        for i0 in range(0, n, _FRAMES):
            nf = min(_FRAMES, n - i0)
            tot[:] = 0.0
            if nf == _FRAMES:
                x0 = a[i0, :end].reshape((nb, _LANES))
                x1 = a[i0 + 1, :end].reshape((nb, _LANES))
                x2 = a[i0 + 2, :end].reshape((nb, _LANES))
                x3 = a[i0 + 3, :end].reshape((nb, _LANES))
                c0 = acc[0]
                c1 = acc[1]
                c2 = acc[2]
                c3 = acc[3]
                for b0 in range(0, nb, _FLUSH):
                    acc[:] = 0.0
                    for b in range(b0, min(b0 + _FLUSH, nb)):
                        mv = mb[b]
                        y0 = x0[b]
                        y1 = x1[b]
                        y2 = x2[b]
                        y3 = x3[b]
                        for q in range(_LANES):
                            w = lane_type(mv[q])
                            c0[q] += lane_type(y0[q]) * w
                            c1[q] += lane_type(y1[q]) * w
                            c2[q] += lane_type(y2[q]) * w
                            c3[q] += lane_type(y3[q]) * w
                    for f in range(_FRAMES):
                        for q in range(_LANES):
                            tot[f, q] += acc[f, q]
            else:
                for f in range(nf):
                    xf = a[i0 + f, :end].reshape((nb, _LANES))
                    cf = acc[f]
                    for b0 in range(0, nb, _FLUSH):
                        cf[:] = 0.0
                        for b in range(b0, min(b0 + _FLUSH, nb)):
                            mv = mb[b]
                            yf = xf[b]
                            for q in range(_LANES):
                                cf[q] += lane_type(yf[q]) * lane_type(mv[q])
                        for q in range(_LANES):
                            tot[f, q] += cf[q]
            for f in range(nf):
                s = 0.0
                for q in range(_LANES):
                    s += tot[f, q]
                row = a[i0 + f]
                for p in range(end, npix):
                    s += np.float64(row[p]) * np.float64(m[p])
                out[i0 + f, 0] += s

    return dot1


_dot1 = _make_dot1(np.float64)
# Single precision (float32 masks and results): twice the lanes per vector register.
_dot1_single = _make_dot1(np.float32)


@_jit
def _to_float(a, i0, i1, p0, p1, buf):
    # buf[:i1-i0, :p1-p0] = a[i0:i1, p0:p1], converting element by element.
    for i in range(i1 - i0):
        r = a[i0 + i, p0:p1]
        b = buf[i]
        for p in range(p1 - p0):
            b[p] = r[p]


def _dense_blas(a: np.ndarray, npix: int, masks_t: np.ndarray, out: np.ndarray) -> None:
    n = a.shape[0]
    k = masks_t.shape[1]
    # float32 only when the caller asked for it on both sides; float64 otherwise.
    ft = np.float32 if (masks_t.dtype == np.float32 and out.dtype == np.float32) else np.float64
    m = masks_t if masks_t.dtype == ft else masks_t.astype(ft)
    if a.dtype == ft and a.shape[1] == npix:
        # Frames already in the compute type and contiguous: one GEMM, no conversion.
        out += np.dot(a, m)
        return
    fb = min(n, _BLAS_FRAMES)
    pb = min(npix, max(256, _BLAS_ELEMS // fb))
    buf = np.empty((fb, pb), ft)
    tmp = np.empty((fb, k), ft)
    acc = np.empty((fb, k), ft)
    for i0 in range(0, n, fb):
        i1 = min(i0 + fb, n)
        nf = i1 - i0
        acc_v = acc[:nf]
        acc_v[:] = 0
        tmp_v = tmp[:nf]
        for p0 in range(0, npix, pb):
            p1 = min(p0 + pb, npix)
            b = buf[:nf, : p1 - p0]
            _to_float(a, i0, i1, p0, p1, b)
            np.dot(b, m[p0:p1], out=tmp_v)
            acc_v += tmp_v
        out[i0:i1] += acc_v


def _check_out(out: np.ndarray, n: int, k: int) -> None:
    if out.shape != (n, k):
        raise ShapeMismatchError(f"out must have shape ({n}, {k}), got {out.shape}")
    if out.dtype not in (np.float64, np.float32):
        raise TypeError(f"out must be float64 or float32, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")


def cpu_dense(tile: np.ndarray, masks_t: np.ndarray, out: np.ndarray) -> None:
    """Accumulate dense mask products: ``out += tile @ masks_t``.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    masks_t : numpy.ndarray
        ``(npix, k)`` C-contiguous float32 or float64: the transposed mask stack.
    out : numpy.ndarray
        ``(n, k)`` float64 or float32, updated in place.

    Notes
    -----
    Products are accumulated in float64, except where ``masks_t`` *and* ``out`` are float32:
    then k > 1 runs single-precision GEMM (about twice as fast, relative error ~1e-6 per block
    sum), and k == 1 forms partial sums of at most 128 products in float32 lanes before adding
    them up in float64 (frames of up to 16-bit integers or float32). Float frames of the same
    dtype as ``masks_t`` and ``out`` go to BLAS as they are, without conversion, for k > 1.
    """
    a, npix = as_rows(tile)
    if masks_t.ndim != 2 or masks_t.shape[0] != npix:
        raise ShapeMismatchError(f"masks_t must have shape ({npix}, k), got {masks_t.shape}")
    if masks_t.dtype not in (np.float64, np.float32):
        raise TypeError(f"masks_t must be float32 or float64, got {masks_t.dtype}")
    if not masks_t.flags.c_contiguous:
        raise ValueError("masks_t must be C-contiguous")
    n = a.shape[0]
    k = masks_t.shape[1]
    _check_out(out, n, k)
    if n == 0 or k == 0 or npix == 0:
        return
    single = masks_t.dtype == out.dtype == np.float32
    same_float = a.dtype == masks_t.dtype == out.dtype and a.dtype.kind == "f"
    if k == 1 and single and (a.dtype.itemsize <= 2 or a.dtype == np.float32):
        # float32 lanes: exact for frames of up to 16-bit integers or float32.
        _dot1_single(a, npix, masks_t[:, 0], out)
    elif k == 1 and not (same_float and a.shape[1] == npix):
        _dot1(a, npix, masks_t[:, 0], out)
    else:
        # Several masks, or float frames in the masks' own precision: BLAS.
        _dense_blas(a, npix, masks_t, out)


@_jit
def _sparse(a, npix, indptr, indices, data, out):
    k = indptr.shape[0] - 1
    for i in range(a.shape[0]):
        row = a[i, :npix]
        for j in range(k):
            s = 0.0
            for z in range(indptr[j], indptr[j + 1]):
                s += np.float64(row[indices[z]]) * np.float64(data[z])
            out[i, j] += s


def cpu_sparse(
    tile: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    out: np.ndarray,
) -> None:
    """Accumulate sparse mask products; masks are the rows of a CSR ``(k, npix)`` matrix.

    Parameters
    ----------
    tile : numpy.ndarray
        ``(n, npix)`` tile, last axis contiguous, any supported dtype.
    indptr, indices, data : numpy.ndarray
        CSR arrays (as in ``scipy.sparse.csr_array``): integer ``indptr`` of length ``k + 1``,
        integer column ``indices`` in ``[0, npix)`` and float32/float64 ``data``. Indices are
        not bounds-checked per element: they are validated once here.
    out : numpy.ndarray
        ``(n, k)`` float64 or float32, updated in place; sums are formed in float64.
    """
    a, npix = as_rows(tile)
    n = a.shape[0]
    k = len(indptr) - 1
    if k < 0:
        raise ShapeMismatchError("indptr must have at least one element")
    _check_out(out, n, k)
    if len(indices) != len(data) or (k >= 0 and indptr[-1] > len(indices)):
        raise ShapeMismatchError("inconsistent CSR arrays (indptr, indices, data)")
    if len(indices) and (indices.min() < 0 or indices.max() >= npix):
        raise ShapeMismatchError(f"mask indices out of range for npix={npix}")
    if n == 0 or k == 0:
        return
    _sparse(a, npix, indptr, indices, data, out)


# --- GPU --------------------------------------------------------------------------------------

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
    """CUDA twin of :func:`cpu_dense` on CuPy arrays: ``out += tile @ masks_t``.

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


def gpu_sparse(tile, indptr, indices, data, out) -> None:
    """CUDA twin of :func:`cpu_sparse` on CuPy arrays (CSR ``(k, npix)`` masks).

    Few masks: a Numba-CUDA kernel reads only the masks' pixels of the raw tile. Many masks
    (8 or more): ``cupyx.scipy.sparse`` SpMM, CSR masks times the converted frame block.
    """
    import cupy as cp

    from libertem_gpu.kernels import gpu_common as g

    a = g.rows2d(tile)
    n, npix = a.shape
    indptr = cp.asarray(indptr)
    indices = cp.asarray(indices)
    data = cp.asarray(data)
    k = len(indptr) - 1
    if k < 0:
        raise ShapeMismatchError("indptr must have at least one element")
    _gpu_check_out(out, n, k)
    if len(indices) != len(data):
        raise ShapeMismatchError("inconsistent CSR arrays (indptr, indices, data)")
    if len(indices) and (int(indices.min()) < 0 or int(indices.max()) >= npix):
        raise ShapeMismatchError(f"mask indices out of range for npix={npix}")
    if n == 0 or k == 0:
        return
    if k < _GPU_SPMM_MIN_MASKS:
        g.launch(_cuda_sparse_rowdot, (n, k), (g.BLOCK,), a, indptr, indices, data, out)
        return
    import cupyx.scipy.sparse as csp

    ft = np.float32 if (data.dtype == np.float32 and out.dtype == np.float32) else np.float64
    masks = csp.csr_matrix((data.astype(ft), indices, indptr), shape=(k, npix))
    step = max(1, _GPU_GEMM_ELEMS // max(1, npix))
    for i0 in range(0, n, step):
        i1 = min(n, i0 + step)
        out[i0:i1] += (masks @ a[i0:i1].T.astype(ft)).T
