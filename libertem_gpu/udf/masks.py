"""Applying a stack of masks to every frame (virtual detectors): :class:`ApplyMasksUDF`."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.masks import SparseMask, to_sparse
from libertem_gpu.udf._common import (
    BUILTIN_BACKENDS,
    flat_tile,
    on_worker,
    pixel_range,
    preferences,
    runs_pay,
    swap_kwargs,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl


def _is_sparse(m: Any) -> bool:
    """scipy.sparse matrices/arrays, pydata ``sparse`` arrays and our :class:`SparseMask`."""
    if isinstance(m, SparseMask):
        return True
    if hasattr(m, "tocoo") and hasattr(m, "nnz"):
        return True
    return type(m).__module__.split(".")[0] == "sparse" and hasattr(m, "coords")


def _sparse_rows(m: Any, npix: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(flat indices, values)`` of each mask of a sparse mask or stack (last axes: a frame)."""
    if isinstance(m, SparseMask):
        return [(m.indices, m.values)]
    if hasattr(m, "coords"):  # pydata sparse: N-D COO
        coords = np.asarray(m.coords)
        data = np.asarray(m.data)
        shape = tuple(m.shape)
        flat = np.ravel_multi_index(tuple(coords), shape)
        k = math.prod(shape) // npix
        which, pix = np.divmod(flat, npix)
        out = []
        for j in range(k):
            sel = which == j
            order = np.argsort(pix[sel], kind="stable")
            out.append((pix[sel][order], data[sel][order]))
        return out
    csr = m.tocsr()  # scipy: 2-D, a frame or a (k, npix) stack
    if csr.shape[1] != npix:
        sm = to_sparse(m)
        return [(sm.indices, sm.values)]
    csr.sort_indices()
    return [
        (
            np.asarray(csr.indices[csr.indptr[j] : csr.indptr[j + 1]], dtype=np.int64),
            np.asarray(csr.data[csr.indptr[j] : csr.indptr[j + 1]]),
        )
        for j in range(csr.shape[0])
    ]


@dataclass
class MaskStack:
    """The masks of an :class:`ApplyMasksUDF`, ready for the kernels (NumPy, on the host).

    Complex masks are stored as ``2k`` real masks: the real parts, then the imaginary parts.
    """

    count: int
    is_complex: bool
    compute_dtype: np.dtype
    dense_t: np.ndarray | None  # (npix, k or 2k), F-contiguous: masks as C-contiguous rows
    csr: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # indptr, indices, data
    _runs: dict[tuple[int, ...], Any] = field(default_factory=dict, repr=False, compare=False)
    _packed: Any = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        """Bytes held by the laid-out masks, the CPU kernel's packed copy included once made."""
        arrays = [self.dense_t] if self.dense_t is not None else list(self.csr or ())
        packed = self._packed.nbytes if self._packed is not None else 0
        return sum(a.nbytes for a in arrays) + packed

    def runs(self, sig_shape: tuple[int, ...]) -> Any:
        """The dense masks as runs (:func:`libertem_gpu.kernels.spans.encode`), or None where
        they are not compact; encoded once per stack."""
        key = tuple(sig_shape)
        if key not in self._runs:
            assert self.dense_t is not None
            self._runs[key] = _encode_spans(self.dense_t, key)
        return self._runs[key]

    def packed(self) -> Any:
        """The dense masks packed for the CPU's multi-mask kernel
        (:func:`libertem_gpu.kernels.masks.pack_dense`); packed once per stack."""
        if self._packed is None:
            from libertem_gpu.kernels.masks import pack_dense

            assert self.dense_t is not None
            self._packed = pack_dense(self.dense_t)
        return self._packed

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


# Mask stacks built in this process for a run's partitions, keyed by UDFMeta.run_key: the
# partitions of one run share one stack instead of calling the factories and laying the masks
# out again each (with 16 dense masks that took ~10 % of a 256 MiB partition's time). Keys are
# unique per run, so a later run always calls the factories afresh.
_STACKS: OrderedDict[tuple[Any, ...], MaskStack] = OrderedDict()
_STACKS_LOCK = threading.Lock()
_STACKS_MAX_ENTRIES = 4
_STACKS_MAX_BYTES = 64 * 2**20


def shared_mask_stack(key: tuple[Any, ...], build: Callable[[], MaskStack]) -> MaskStack:
    """The stack cached under ``key``, or ``build()``'s, kept for the next partition (least
    recently used first out; at most ``_STACKS_MAX_BYTES`` of masks kept)."""
    with _STACKS_LOCK:
        stack = _STACKS.get(key)
        if stack is not None:
            _STACKS.move_to_end(key)
            return stack
    stack = build()
    if stack.nbytes <= _STACKS_MAX_BYTES:
        with _STACKS_LOCK:
            _STACKS[key] = stack
            total = sum(entry.nbytes for entry in _STACKS.values())
            while len(_STACKS) > _STACKS_MAX_ENTRIES or total > _STACKS_MAX_BYTES:
                _, old = _STACKS.popitem(last=False)
                total -= old.nbytes
    return stack


def build_mask_stack(
    factories: Any,
    sig_shape: tuple[int, ...],
    use_sparse: Any,
    mask_dtype: Any,
    mask_count: int | None,
) -> MaskStack:
    """Call the mask factories, check every mask against the frame shape, and lay the stack out
    for the kernels (dense ``(npix, k)`` or CSR ``(k, npix)``)."""
    npix = math.prod(sig_shape)
    if callable(factories):
        produced = [("mask_factories()", factories())]
    elif isinstance(factories, Sequence) and not isinstance(factories, str):
        if len(factories) == 0:
            raise InvalidParameterError("mask_factories is empty: give at least one mask")
        produced = [
            (f"mask_factories[{i}]", f() if callable(f) else f) for i, f in enumerate(factories)
        ]
    else:
        raise InvalidParameterError(
            "mask_factories must be a callable returning a mask or a stack of masks, or a list "
            f"of callables (or arrays), got {type(factories).__name__}"
        )

    dense_masks: list[np.ndarray | None] = []
    sparse_masks: list[tuple[np.ndarray, np.ndarray] | None] = []
    dtypes = []
    all_sparse = True
    for where, m in produced:
        shape = tuple(getattr(m, "shape", np.shape(m)))
        if shape == tuple(sig_shape) or shape == (npix,):
            k = 1
        elif len(shape) >= 2 and (shape[1:] == tuple(sig_shape) or shape[1:] == (npix,)):
            k = shape[0]
        else:
            raise ShapeMismatchError(
                f"{where} returned a mask of shape {shape}; expected the frame shape "
                f"{tuple(sig_shape)} of the data set, or a stack (k, *{tuple(sig_shape)})"
            )
        if _is_sparse(m):
            rows = _sparse_rows(m, npix)
            if len(rows) != k:
                raise ShapeMismatchError(f"{where}: could not split the sparse stack into {k}")
            for idx, val in rows:
                sparse_masks.append((np.asarray(idx, dtype=np.int64), np.asarray(val)))
                dense_masks.append(None)
                dtypes.append(np.asarray(val).dtype)
        else:
            all_sparse = False
            arr = np.asarray(m).reshape(k, npix)
            for j in range(k):
                dense_masks.append(arr[j])
                sparse_masks.append(None)
            dtypes.append(arr.dtype)
    count = len(dense_masks)
    if mask_count is not None and int(mask_count) != count:
        raise ShapeMismatchError(
            f"mask_count={mask_count}, but the mask factories produced {count} masks"
        )

    found = np.result_type(*dtypes) if dtypes else np.dtype(np.float64)
    wanted = np.dtype(mask_dtype) if mask_dtype is not None else found
    if wanted.kind not in "biufc":
        raise InvalidParameterError(f"mask dtype must be numeric, got {wanted}")
    is_complex = wanted.kind == "c" or found.kind == "c"
    single = mask_dtype is not None and wanted in (np.dtype(np.float32), np.dtype(np.complex64))
    compute = np.dtype(np.float32 if single else np.float64)

    if use_sparse is None:
        sparse = all_sparse
    elif isinstance(use_sparse, str):
        if not use_sparse.lower().startswith(("scipy.sparse", "sparse.pydata")):
            raise InvalidParameterError(
                f"use_sparse must be None, True, False, 'scipy.sparse...' or 'sparse.pydata...', "
                f"got {use_sparse!r}"
            )
        sparse = True
    else:
        sparse = bool(use_sparse)

    def parts(values: np.ndarray) -> list[np.ndarray]:
        values = values.astype(wanted, copy=False) if mask_dtype is not None else values
        if is_complex:
            return [np.real(values).astype(compute), np.imag(values).astype(compute)]
        return [values.astype(compute)]

    if sparse:
        per_part: list[list[tuple[np.ndarray, np.ndarray]]] = [[], []] if is_complex else [[]]
        for d, s in zip(dense_masks, sparse_masks, strict=True):
            if s is None:
                assert d is not None
                idx = np.flatnonzero(d)
                s = (idx, d[idx])
            idx, val = s
            for slot, v in zip(per_part, parts(val), strict=True):
                keep = v != 0
                slot.append((idx[keep], v[keep]))
        rows = [r for slot in per_part for r in slot]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(i) for i, _ in rows])
        indices = np.concatenate([i for i, _ in rows]) if rows else np.zeros(0, np.int64)
        data = np.concatenate([v for _, v in rows]) if rows else np.zeros(0, compute)
        return MaskStack(count, is_complex, compute, None, (indptr, indices, data.astype(compute)))

    width = count * (2 if is_complex else 1)
    # One mask per C-contiguous row: the layout the run encoder and the CPU's packing read; its
    # transpose is the (npix, k) operand of a GEMM, which cuBLAS takes without a copy.
    dense = np.zeros((width, npix), dtype=compute)
    for j, (d, s) in enumerate(zip(dense_masks, sparse_masks, strict=True)):
        if d is None:
            assert s is not None
            d = np.zeros(npix, dtype=s[1].dtype)
            d[s[0]] = s[1]
        for p, v in enumerate(parts(np.asarray(d))):
            dense[j + p * count] = v
    return MaskStack(count, is_complex, compute, dense.T, None)


def _encode_spans(dense_t: np.ndarray, sig_shape: tuple[int, ...]) -> Any:
    """Run-length encoding of the dense masks, or None where they are not compact."""
    from libertem_gpu.kernels import spans

    rows, cols = sig_shape if len(sig_shape) == 2 else (1, sig_shape[0])
    return spans.encode(dense_t.T.reshape(-1, rows, cols))


# Where runs read at least this fraction of the frame's pixels (summed over the masks), the
# AMX kernel, which reads every pixel, is faster. Measured on 2-core Sapphire Rapids, uint16,
# 16 float32 masks' worth of work (GB/s, runs against AMX): read fraction 0.20 (4 rings)
# 20.6 vs 11.6, 0.43 (bright-field disk and annulus) 13.1 vs 11.4, 0.79 (8 rings) 7.9 vs 11.1,
# 0.79 (16 rings) 6.9 vs 10.0.
_RUNS_READ_LIMIT_AMX = 0.5


class ApplyMasksUDF(UDF):
    """Dot product of every frame with each of a stack of masks (virtual detectors).

    Parameters
    ----------
    mask_factories : callable or list
        Either one callable returning a stack ``(k, *sig_shape)`` (or a single frame-shaped
        mask), or a list whose entries are callables returning one frame-shaped mask each, or
        the masks themselves. A mask is a NumPy array, a :class:`~libertem_gpu.masks.SparseMask`,
        a scipy.sparse matrix (2-D frames) or a pydata ``sparse`` array. Callables are called in
        each worker, so that large masks need not travel.
    use_sparse : None, bool or str
        ``None``: sparse processing if every mask is sparse, else dense. ``True`` (or LiberTEM's
        ``'scipy.sparse'``, ``'sparse.pydata'``...): sparse (CSR, masks x pixels). ``False``:
        dense.
    mask_count : int, optional
        Number of masks, checked against what the factories produce.
    mask_dtype : dtype, optional
        Masks are converted to this type. ``float32`` (or ``complex64``) selects
        single-precision arithmetic, faster for many masks, with results of
        ``numpy.result_type(input dtype, mask_dtype)``; otherwise masks and results are float64
        (complex128 for complex masks).
    preferred_dtype : dtype, optional
        Accepted for LiberTEM compatibility; frames are never converted before the kernels.
    use_torch : bool
        Accepted for LiberTEM compatibility; ignored.
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.
    shifts : None
        Per-frame mask shifts are not supported; anything but None is refused.

    Results
    -------
    intensity : nav, extra_shape ``(k,)``, float64 (see ``mask_dtype``)
        For each frame, one value per mask in the last axis.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import ApplyMasksUDF, Context, masks
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 16, 16), dtype=np.uint16))
    >>> bf = lambda: masks.disk((16, 16), 8, 8, 3)
    >>> adf = lambda: masks.ring((16, 16), 8, 8, 7, 3)
    >>> res = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=[bf, adf]))
    >>> res["intensity"].data.shape
    (2, 3, 2)
    """

    def __init__(
        self,
        mask_factories: Callable[[], Any] | Sequence[Any],
        use_torch: bool = True,
        use_sparse: bool | str | None = None,
        mask_count: int | None = None,
        mask_dtype: Any = None,
        preferred_dtype: Any = None,
        backends: Sequence[str] | None = None,
        shifts: Any = None,
        **kwargs: Any,
    ) -> None:
        if shifts is not None:
            raise InvalidParameterError(
                "ApplyMasksUDF(shifts=...) is not supported by libertem_gpu; shift the masks "
                "per frame in a UDF of your own, or run once per shift with shifted masks"
            )
        super().__init__(
            mask_factories=mask_factories,
            use_torch=use_torch,
            use_sparse=use_sparse,
            mask_count=mask_count,
            mask_dtype=mask_dtype,
            preferred_dtype=preferred_dtype,
            backends=backends,
            shifts=shifts,
            **kwargs,
        )

    @property
    def masks(self) -> MaskStack:
        """The mask stack, built on first use; in a worker, shared by the partitions of one
        run (see :func:`shared_mask_stack`)."""
        stack = self.__dict__.get("_mask_stack")
        if stack is None:
            assert self.meta is not None, "masks are known only while the UDF runs"
            p = self.params
            sig = tuple(self.meta.dataset_shape.sig)

            def build() -> MaskStack:
                return build_mask_stack(
                    p.mask_factories, sig, p.use_sparse, p.mask_dtype, p.mask_count
                )

            run_key = self.meta.run_key
            stack = build() if run_key is None else shared_mask_stack((*run_key, sig), build)
            self.__dict__["_mask_stack"] = stack
        return stack

    def get_backends(self) -> tuple[str, ...]:
        """CPU and CuPy, or the subset given in ``backends``."""
        if self.params.backends is None:
            return BUILTIN_BACKENDS
        return tuple(b for b in BUILTIN_BACKENDS if b in tuple(self.params.backends))

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs (the matching mask rows are used); big-endian
        integers unswapped where the masks are runs (the run kernels swap as they read)."""
        return preferences(stored_byteorder=self._cpu_runs() is not None)

    def _cpu_runs(self) -> Any:
        """The masks as runs where the CPU sums them that way, else None: drawn masks on
        integer frames, unless the AMX kernel would read every pixel faster (8/16-bit frames,
        2 to 16 single-precision masks that cover at least half of the frame between them)."""
        meta = self.meta
        stack = self.masks
        if meta is None or stack.dense_t is None or not runs_pay(meta.input_dtype):
            return None
        runs = stack.runs(tuple(meta.dataset_shape.sig))
        if runs is None or runs.read_fraction < _RUNS_READ_LIMIT_AMX:
            return runs
        # Imported here: the kernels (and Numba) load only when a run needs them.
        from libertem_gpu.kernels import amx

        single = stack.compute_dtype == np.float32 and not stack.is_complex
        return None if single and amx.takes(meta.input_dtype, stack.count) else runs

    def _result_dtype(self) -> np.dtype:
        assert self.meta is not None
        stack = self.masks
        if stack.compute_dtype == np.float32:
            real = np.result_type(self.meta.input_dtype, np.float32)
        else:
            real = np.dtype(np.float64)
        return np.result_type(real, np.complex64) if stack.is_complex else np.dtype(real)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity``: nav, one value per mask. Complex masks accumulate real and imaginary
        parts in a private buffer."""
        stack = self.masks
        dtype = self._result_dtype()
        if not stack.is_complex:
            return {"intensity": self.buffer(kind="nav", extra_shape=(stack.count,), dtype=dtype)}
        real = np.empty(0, dtype).real.dtype
        return {
            "parts": self.buffer(
                kind="nav", extra_shape=(2 * stack.count,), dtype=real, use="private"
            ),
            "intensity": self.buffer(
                kind="nav", extra_shape=(stack.count,), dtype=dtype, use="result_only"
            ),
        }

    def preprocess(self) -> None:
        """Look the kernel up and move the masks to the backend, once per partition."""
        if not on_worker(self.meta):
            return
        assert self.meta is not None
        stack = self.masks
        xp = self.xp
        self._slabs: dict[tuple[int, int], Any] = {}
        self._spans = None
        if stack.dense_t is not None:
            self._kernel = get_kernel("masks_dense", self.meta.backend)
            # On the CPU, several masks go to the kernel packed (once per process and run,
            # when a tile first needs them: masks summed as runs never do).
            self._pack = self.meta.backend == "numpy" and stack.dense_t.shape[1] > 1
            self._dense_t = None if self._pack else xp.asarray(stack.dense_t)
            if self.meta.backend == "numpy":
                # Masks drawn as disks, rings or rectangles: sum runs of pixels instead.
                self._spans = self._cpu_runs()
                if self._spans is not None:
                    self._spans_kernel = get_kernel("masks_spans", "numpy")
        else:
            self._kernel = get_kernel("masks_sparse", self.meta.backend)
            self._csr = tuple(xp.asarray(a) for a in stack.csr)  # type: ignore[union-attr]
        self._npix = self.meta.dataset_shape.sig_size

    def _masks_for(self, p0: int, p1: int) -> Any:
        if (p0, p1) == (0, self._npix):
            if self.masks.dense_t is None:
                return self._csr
            return self.masks.packed() if self._pack else self._dense_t
        key = (p0, p1)
        part = self._slabs.get(key)
        if part is None:
            dense_t = self.masks.dense_t
            if dense_t is not None and self._pack:
                from libertem_gpu.kernels.masks import pack_dense

                part = pack_dense(dense_t[p0:p1])
            elif dense_t is not None:
                # A pixel slab of every mask, copied once so that the masks stay rows.
                part = self.xp.asfortranarray(self.xp.asarray(dense_t[p0:p1]))
            else:
                part = tuple(self.xp.asarray(a) for a in self.masks.csr_columns(p0, p1))
            self._slabs[key] = part
        return part

    def process_tile(self, tile: Any) -> None:
        """Accumulate the tile's dot products with the masks (or their rows for a slab)."""
        assert self.meta is not None
        out = self.results.parts if self.masks.is_complex else self.results.intensity
        p0, p1 = pixel_range(self.meta)
        flat = flat_tile(tile)
        if self._spans is not None and (p0, p1) == (0, self._npix):
            self._spans_kernel(flat, self._spans, out, **swap_kwargs(self.meta))
            return
        if self.meta.byteswapped:  # not expected (runs are planned alike): swap a copy
            flat = flat.byteswap()
        m = self._masks_for(p0, p1)
        if self.masks.dense_t is not None:
            self._kernel(flat, m, out)
        else:
            self._kernel(flat, *m, out)

    def get_results(self) -> dict[str, Any]:
        """``intensity``; for complex masks assembled from real and imaginary parts."""
        if not self.masks.is_complex:
            return {"intensity": self.results.intensity}
        k = self.masks.count
        parts = self.results.parts
        dtype = self._result_dtype()
        out = np.empty((*parts.shape[:-1], k), dtype=dtype)
        out.real = parts[..., :k]
        out.imag = parts[..., k:]
        return {"intensity": out}
