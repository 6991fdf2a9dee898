"""The mask operation: apply a stack of masks, ``out[i, j] += sum_p tile[i, p] * mask_j[p]``.

This module owns the choice among the strategies: runs of pixels (drawn masks on integer
frames, :mod:`.spans`), dense masks (one fused dot product, a blocked kernel on packed masks,
or Intel AMX; :mod:`.masks_cpu`), CSR masks, and on the GPU cuBLAS GEMM or cuSPARSE
(:mod:`.masks_gpu`). :func:`prepare` makes that choice once per partition and returns an
:class:`AppliedMasks` that the caller calls for every tile. A light module: it imports no
Numba and no CuPy until a backend's strategy is prepared.

The stack is a :class:`MaskStack`: dense ``(npix, k)`` or CSR ``(k, npix)`` masks, as the UDF
laid them out; it caches the layouts the strategies make of it (runs, packed masks).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from libertem_gpu.kernels.registry import get_kernel

__all__ = [
    "AppliedMasks",
    "MaskStack",
    "amx_takes",
    "cpu_runs",
    "outer_takes",
    "prepare",
    "prepare_reference",
    "reference",
    "reference_sparse",
    "runs_pay",
]


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
    return reference(tile, _csr_to_dense(indptr, indices, data, npix))


def _csr_to_dense(indptr: Any, indices: Any, data: Any, npix: int) -> np.ndarray:
    k = len(indptr) - 1
    dense = np.zeros((k, npix))
    for j in range(k):
        sl = slice(indptr[j], indptr[j + 1])
        np.add.at(dense[j], indices[sl], data[sl])
    return dense


# Held while a row slab's layout is made (:meth:`MaskStack.slab`).
_SLABS_LOCK = threading.Lock()


@dataclass
class MaskStack:
    """A stack of masks laid out for the kernels (NumPy, on the host).

    Complex masks are stored as ``2k`` real masks: the real parts, then the imaginary parts.

    Attributes
    ----------
    count : int
        Number of (complex or real) masks.
    is_complex : bool
        Whether the masks are complex (stored as real and imaginary parts).
    compute_dtype : numpy.dtype
        float32 or float64: the masks' type and that of the sums.
    dense_t : numpy.ndarray or None
        ``(npix, k or 2k)``, F-contiguous (masks as C-contiguous rows), or None for CSR masks.
    csr : tuple of numpy.ndarray or None
        ``(indptr, indices, data)`` of a CSR ``(k or 2k, npix)`` matrix, or None.
    """

    count: int
    is_complex: bool
    compute_dtype: np.dtype
    dense_t: np.ndarray | None
    csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    _runs: dict[tuple[int, ...], Any] = field(default_factory=dict, repr=False, compare=False)
    _packed: Any = field(default=None, repr=False, compare=False)
    _counts: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _slabs: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)
    _labels: dict[int, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def width(self) -> int:
        """Number of real masks the kernels apply (``2 * count`` for complex masks)."""
        if self.dense_t is not None:
            return int(self.dense_t.shape[1])
        assert self.csr is not None
        return len(self.csr[0]) - 1

    @property
    def nbytes(self) -> int:
        """Bytes held by the laid-out masks, the CPU kernel's packed copies (whole and of row
        slabs) included once made."""
        arrays = [self.dense_t] if self.dense_t is not None else list(self.csr or ())
        packed = self._packed.nbytes if self._packed is not None else 0
        slabs = sum(int(getattr(v, "nbytes", 0)) for v in self._slabs.values())
        labels = sum(a.nbytes for found in self._labels.values() if found for a in found)
        return sum(a.nbytes for a in arrays) + packed + slabs + labels

    def slab(self, p0: int, p1: int, layout: Callable[[np.ndarray], Any]) -> Any:
        """``layout(dense_t[p0:p1])``: the dense masks of pixels ``[p0, p1)`` (a row slab of
        split frames) laid out for a kernel, made once per stack and layout. A stack shared by
        a run's partitions thus lays out each slab once, not once per partition (16 masks of
        4096 x 4096: packing them took 60 % of a run). The layouts are kept in a dict replaced
        whole, under a lock: threads that need one at once wait for it instead of each
        making a copy."""
        assert self.dense_t is not None
        key = (p0, p1, layout)
        found = self._slabs.get(key)
        if found is None:
            with _SLABS_LOCK:
                found = self._slabs.get(key)
                if found is None:
                    found = layout(self.dense_t[p0:p1])
                    self._slabs = {**self._slabs, key: found}
        return found

    def covers(self, fraction: float) -> bool:
        """Whether the dense masks hold at least ``fraction`` non-zero values per pixel, summed
        over the masks: what their runs would read per pixel of a frame (runs cover exactly the
        non-zero values). Counted mask by mask until the answer is known (dense weights
        answer after one mask; all 16 masks of 256 x 256 take 0.7 ms, which in every
        partition cost 4 % of a run). The counts so far are kept as a tuple, replaced whole:
        threads preparing partitions at once each keep a correct prefix."""
        assert self.dense_t is not None
        need = fraction * self.dense_t.shape[0]
        counts = self._counts
        total = sum(counts)
        while total < need and len(counts) < self.dense_t.shape[1]:
            count = int(np.count_nonzero(self.dense_t[:, len(counts)]))
            counts = (*counts, count)
            total += count
        self._counts = counts
        return total >= need

    def runs(self, sig_shape: tuple[int, ...]) -> Any:
        """The dense masks as runs (:func:`libertem_gpu.kernels.spans.encode`), or None where
        they are not compact; encoded once per stack."""
        key = tuple(sig_shape)
        if key not in self._runs:
            from libertem_gpu.kernels import spans

            assert self.dense_t is not None
            rows, cols = key if len(key) == 2 else (1, key[0])
            self._runs[key] = spans.encode(self.dense_t.T.reshape(-1, rows, cols))
        return self._runs[key]

    def packed(self) -> Any:
        """The dense masks packed for the CPU's multi-mask kernel
        (:func:`libertem_gpu.kernels.masks_cpu.pack_dense`); packed once per stack."""
        if self._packed is None:
            from libertem_gpu.kernels.masks_cpu import pack_dense

            assert self.dense_t is not None
            self._packed = pack_dense(self.dense_t)
        return self._packed

    def labels(self, npix: int) -> tuple[np.ndarray, np.ndarray] | None:
        """CSR masks that share no pixel as a label and a weight per pixel
        (:func:`libertem_gpu.kernels.labels.from_csr`), or None; found once per stack."""
        if self.csr is None:
            return None
        if npix not in self._labels:
            from libertem_gpu.kernels import labels

            # Replaced whole: threads preparing partitions at once each see a complete dict.
            self._labels = {**self._labels, npix: labels.from_csr(*self.csr, npix)}
        return self._labels[npix]  # type: ignore[no-any-return]

    def csr_columns(self, p0: int, p1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The CSR restricted to pixels ``[p0, p1)``, re-indexed from 0 (for row slabs)."""
        assert self.csr is not None
        indptr, indices, data = self.csr
        starts, stops = indptr[:-1], indptr[1:]
        rows = len(starts)
        keep_i, keep_d, new_ptr = [], [], [0]
        for j in range(rows):
            idx = indices[starts[j] : stops[j]]
            a, b = np.searchsorted(idx, (p0, p1))
            keep_i.append(idx[a:b] - p0)
            keep_d.append(data[starts[j] + a : starts[j] + b])
            new_ptr.append(new_ptr[-1] + (b - a))
        return (
            np.asarray(new_ptr, dtype=np.int64),
            np.concatenate(keep_i) if keep_i else indices[:0],
            np.concatenate(keep_d) if keep_d else data[:0],
        )


# --- the rule: which strategy the CPU takes ----------------------------------------------------

# Where runs read at least this fraction of the frame's pixels (summed over the masks), the
# AMX kernel, which reads every pixel, is faster. Measured on 2-core Sapphire Rapids, uint16,
# 16 float32 masks' worth of work (GB/s, runs against AMX): read fraction 0.20 (4 rings)
# 20.6 vs 11.6, 0.43 (bright-field disk and annulus) 13.1 vs 11.4, 0.79 (8 rings) 7.9 vs 11.1,
# 0.79 (16 rings) 6.9 vs 10.0.
_RUNS_READ_LIMIT_AMX = 0.5


# Runs shorter than this on average (masks whose values change every pixel or two, e.g. the
# angular modulation of the radial Fourier masks) cost more per pixel than the dense kernels:
# measured on a 2-core EPYC (AVX-512), uint16 256 x 256 frames, 72 real masks with runs of 1.06
# pixels on average, runs 1,760 frames/s against 8,200 dense (one thread each).
_MIN_MEAN_RUN = 4.0


def runs_pay(dtype: Any) -> bool:
    """Whether run-length mask kernels beat the dense ones for frames of ``dtype``: integers,
    which they sum exactly and vectorised; floats go through BLAS or the dense loops."""
    dtype = np.dtype(dtype)
    return dtype.kind in "uib" and dtype.itemsize <= 4


def amx_takes(frame_dtype: Any, k: int) -> bool:
    """Whether the AMX kernel runs here and takes ``k`` float32 masks on frames of
    ``frame_dtype``: 2 to 16 masks on uint8/uint16 frames, where :func:`.amx.available`."""
    if not 2 <= k <= 16:
        return False
    # Imported here: the AMX module loads Numba, and most callers stop at the test above.
    from libertem_gpu.kernels import amx

    return np.dtype(frame_dtype) in amx.FRAME_DTYPES and amx.available()


# Float32 masks on frames of these types are exact in float32 lanes (the outer-product kernel).
_OUTER_FRAME_DTYPES = frozenset(
    np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.float32)
)
# With 8 masks or fewer, half of a group of 16 or more would be zeros: the 6 x 2 kernel.
_OUTER_MIN_MASKS = 8
# Where runs read at least this fraction of the frame's pixels per group of 16 masks (summed
# over the masks), the outer-product kernel, which reads every pixel once per group, is
# faster. Measured, 16 drawn rings (read fraction 0.87) on uint16, two threads, GB/s runs
# against outer product: Sapphire Rapids compiled for haswell 7.7 vs 8.8; the runs' speed
# scales as 1 / read fraction (see above), so they cross near 0.65 there and near 0.6 on a
# Zen 3 EPYC (runs 5.7 at 0.87, the dense kernel 1.3 x 6.5).
_RUNS_READ_LIMIT_OUTER = 0.7


def outer_takes(frame_dtype: Any, k: int) -> bool:
    """Whether the outer-product kernel (:mod:`.masks_outer_cpu`) takes ``k`` > 8 float32 masks
    on frames of ``frame_dtype`` (8/16-bit integers or float32) here: targets with AVX2 and
    FMA but without AVX-512, for which it is written."""
    if k <= _OUTER_MIN_MASKS or np.dtype(frame_dtype) not in _OUTER_FRAME_DTYPES:
        return False
    from libertem_gpu.kernels.cpu_target import target_has

    return target_has("avx2", "fma") and not target_has("avx512f")


def cpu_runs(stack: MaskStack, sig_shape: tuple[int, ...], input_dtype: Any) -> Any:
    """The masks as runs where the CPU sums them that way, else None: drawn masks (runs of
    :data:`_MIN_MEAN_RUN` pixels or more on average) on integer frames, unless a dense kernel
    that reads every pixel would be faster: AMX (8/16-bit frames, 2 to 16 single-precision
    masks that cover at least half of the frame between them) or the outer-product kernel
    (more than 8 single-precision masks that cover 0.7 of the frame per group of 16)."""
    if stack.dense_t is None or not runs_pay(input_dtype):
        return None
    if stack.compute_dtype == np.float32 and not stack.is_complex:
        # What the runs would read, without encoding them (20 ms for 16 masks of 256 x 256).
        if amx_takes(input_dtype, stack.count) and stack.covers(_RUNS_READ_LIMIT_AMX):
            return None
        groups = -(-stack.count // 16)
        limit = _RUNS_READ_LIMIT_OUTER * groups
        if outer_takes(input_dtype, stack.count) and stack.covers(limit):
            return None
    runs = stack.runs(tuple(sig_shape))
    if runs is None or runs.mean_run < _MIN_MEAN_RUN:
        return None
    return runs


# --- the prepared operation ----------------------------------------------------------------------


class AppliedMasks:
    """A mask stack laid out for one backend, its strategy chosen; call it for every tile.

    Parameters
    ----------
    kernel : callable
        The dense ``(tile, masks, out)`` or, with ``sparse``, CSR ``(tile, indptr, indices,
        data, out)`` kernel.
    whole : callable
        Makes the masks' layout for whole frames (called once, on first use).
    slab : callable
        ``slab(p0, p1)`` makes the layout for pixels ``[p0, p1)`` (row slabs; kept per slab).
    npix : int
        Pixels per frame.
    sparse : bool
        ``kernel`` takes the layout's arrays as separate arguments (CSR arrays, or labels and
        weights), not one dense array.
    runs, runs_kernel : optional
        Masks as runs and their kernel (``(tile, runs, out, swap)``), used for whole frames.
    """

    __slots__ = (
        "_layouts",
        "_slab",
        "_whole",
        "kernel",
        "npix",
        "reads_stored_order",
        "runs",
        "runs_kernel",
        "sparse",
    )

    def __init__(
        self,
        kernel: Callable[..., None],
        whole: Callable[[], Any],
        slab: Callable[[int, int], Any],
        npix: int,
        *,
        sparse: bool = False,
        runs: Any = None,
        runs_kernel: Callable[..., None] | None = None,
    ) -> None:
        self.kernel = kernel
        self._whole = whole
        self._slab = slab
        self.npix = npix
        self.sparse = sparse
        self.runs = runs if runs_kernel is not None else None
        self.runs_kernel = runs_kernel
        #: Tiles may come in stored byte order: only the run kernels swap as they read.
        self.reads_stored_order = self.runs is not None
        self._layouts: dict[tuple[int, int], Any] = {}

    def _masks_for(self, p0: int, p1: int) -> Any:
        key = (p0, p1)
        masks = self._layouts.get(key)
        if masks is None:
            masks = self._whole() if key == (0, self.npix) else self._slab(p0, p1)
            self._layouts[key] = masks
        return masks

    def __call__(self, tile: Any, out: Any, p0: int, p1: int, swapped: bool = False) -> None:
        """``out += tile @ masks[:, p0:p1].T`` for a ``(n, p1 - p0)`` tile of pixels
        ``[p0, p1)``; ``swapped``: the tile holds its integers in reversed byte order."""
        if self.runs is not None and p0 == 0 and p1 == self.npix:
            assert self.runs_kernel is not None
            self.runs_kernel(tile, self.runs, out, swap=swapped)
            return
        if swapped:  # not expected (the plan swaps for these strategies): swap a copy
            tile = tile.byteswap()
        masks = self._masks_for(p0, p1)
        if self.sparse:
            self.kernel(tile, *masks, out)
        else:
            self.kernel(tile, masks, out)


def prepare(
    backend: str, stack: MaskStack, sig_shape: tuple[int, ...], input_dtype: Any
) -> AppliedMasks:
    """Choose how ``backend`` applies ``stack`` to frames of ``sig_shape`` and ``input_dtype``.

    Parameters
    ----------
    backend : str
        ``"numpy"``, ``"cupy"``, ``"reference"`` or a registered backend.
    stack : MaskStack
        The masks.
    sig_shape : tuple of int
        Frame shape.
    input_dtype : numpy.dtype
        The tiles' (native) dtype.

    Returns
    -------
    AppliedMasks
        Call it per tile; its ``reads_stored_order`` says whether tiles may come unswapped.
    """
    preparer = get_kernel("apply_masks", backend)
    return preparer(stack, tuple(sig_shape), np.dtype(input_dtype))  # type: ignore[no-any-return]


def prepare_reference(
    stack: MaskStack, sig_shape: tuple[int, ...], input_dtype: Any
) -> AppliedMasks:
    """The plain NumPy strategy (what tests compare every backend's strategy with, and the
    small runs' kernel set): :func:`reference` on dense masks; sparse masks as they are
    (:func:`_csr_plain`), never made dense: 2304 polar bins of 256 x 256 pixels would be
    1.2 GB."""
    npix = int(np.prod(sig_shape))
    if stack.dense_t is None:
        csr = stack.csr
        assert csr is not None
        return AppliedMasks(_csr_plain, lambda: csr, stack.csr_columns, npix, sparse=True)
    dense = np.asarray(stack.dense_t).T

    def kernel(tile: np.ndarray, masks: np.ndarray, out: np.ndarray) -> None:
        out += reference(tile, masks).astype(out.dtype)

    return AppliedMasks(kernel, lambda: dense, lambda p0, p1: dense[:, p0:p1], npix)


#: Products (frames x stored values) the plain sparse kernel forms at once: 8 MiB of float64.
_PLAIN_BLOCK = 2**20


def _csr_plain(
    tile: np.ndarray, indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, out: np.ndarray
) -> None:
    """``out += tile @ csr.T`` in NumPy for CSR masks ``(k, npix)``, in float64, a block of
    frames at a time: each row's products summed by ``np.add.reduceat``."""
    rows = np.asarray(tile)
    nnz = len(indices)
    if len(indptr) < 2 or nnz == 0 or len(rows) == 0:
        return
    # A zero column after the last value: rows that end the matrix, or hold nothing, start
    # there or at a value of the next row; reduceat's sum of such a row is then zeroed.
    starts = np.asarray(indptr[:-1])
    empty = starts == np.asarray(indptr[1:])
    step = max(1, _PLAIN_BLOCK // (nnz + 1))
    for i0 in range(0, len(rows), step):
        block = rows[i0 : i0 + step]
        products = np.zeros((len(block), nnz + 1))
        np.multiply(block[:, indices], data, out=products[:, :nnz])  # complex: refused
        sums = np.add.reduceat(products, starts, axis=1)
        sums[:, empty] = 0.0
        out[i0 : i0 + step] += sums.astype(out.dtype, copy=False)


# The CPU and GPU kernels live in their own modules (Numba, CuPy); their public names stay
# reachable here for callers of the single module this once was.
_MOVED = {
    "PackedMasks": "masks_cpu",
    "cpu_dense": "masks_cpu",
    "cpu_sparse": "masks_cpu",
    "pack_dense": "masks_cpu",
    "gpu_dense": "masks_gpu",
    "gpu_sparse": "masks_gpu",
}


def __getattr__(name: str) -> Any:
    module = _MOVED.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"libertem_gpu.kernels.{module}"), name)
