"""Applying a stack of masks to every frame (virtual detectors): :class:`ApplyMasksUDF`."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.kernels import masks as masks_op
from libertem_gpu.kernels.masks import MaskStack
from libertem_gpu.masks import SparseMask, to_sparse
from libertem_gpu.udf._common import (
    allowed_backends,
    flat_tile,
    kernel_input_dtype,
    on_worker,
    pixel_range,
    preferences,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.mask_shifts import (
    ByShift,
    as_shifts,
    check_shifts,
    frame_shifts,
    shift_groups,
    shift_stack,
)
from libertem_gpu.udf.run_cache import shared_for_run


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
        if math.prod(m.shape) == npix:
            return [(m.indices, m.values)]
        which, pix = np.divmod(m.indices, npix)  # a stack: ascending indices, mask by mask
        bounds = np.searchsorted(which, np.arange(math.prod(m.shape) // npix + 1))
        return [(pix[a:b], m.values[a:b]) for a, b in itertools.pairwise(bounds)]
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
    shifts : array_like or AuxData, optional
        Move the masks relative to the frames (descan compensation), in whole pixels: a
        positive shift moves them down (rows) and right (columns), and a frame's value sums
        the pixels where frame and moved mask overlap (0 where they do not). Either one shift
        for every frame, ``(dy, dx)``, or one per scan position: an array ``(*nav_shape, 2)``
        (or ``(nav_size, 2)``), or LiberTEM's ``UDF.aux_data(shifts, kind="nav",
        extra_shape=(2,))``. Floats are cast to integers towards zero, as in LiberTEM: round
        them first (:func:`~libertem_gpu.udf.mask_shifts.descan_shifts` does, from a fitted
        descan plane). Each shift's masks are laid out once per run and process; neighbouring
        frames of the same shift are applied together.

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
        shifts = as_shifts(shifts)
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
        run (see :func:`libertem_gpu.udf.run_cache.shared_for_run`)."""
        stack = self.__dict__.get("_mask_stack")
        if stack is None:
            assert self.meta is not None, "masks are known only while the UDF runs"
            sig = tuple(self.meta.dataset_shape.sig)

            def build() -> MaskStack:
                return build_mask_stack(*self._mask_source(sig))

            run_key = self.meta.run_key
            if run_key is None:
                stack = build()
            else:
                # Laid out once per run: with 16 dense masks, building the stack in every
                # partition took about a tenth of a 256 MiB partition's time.
                key = (*run_key, "masks", sig)
                stack = shared_for_run(key, build, nbytes=lambda s: s.nbytes)
            self.__dict__["_mask_stack"] = stack
        return stack

    def _mask_source(self, sig: tuple[int, ...]) -> tuple[Any, tuple[int, ...], Any, Any, Any]:
        """The arguments of :func:`build_mask_stack` for frames of shape ``sig``: factories,
        frame shape, ``use_sparse``, mask dtype and mask count (subclasses that make their own
        masks override this)."""
        p = self.params
        return p.mask_factories, sig, p.use_sparse, p.mask_dtype, p.mask_count

    def _shifted_stack(self, sig: tuple[int, ...], shift: tuple[int, ...]) -> MaskStack:
        """The mask stack moved by ``shift`` (subclasses whose masks depend on more than
        their position, such as pixels left out, override this)."""
        return shift_stack(self.masks, sig, shift)

    @property
    def _shifts(self) -> Any:
        """``shifts`` as given (None, a constant tuple or nav aux data), whole on every side
        (the parameter itself reads as a tile's slice while tiles are processed)."""
        return self._kwargs.get("shifts")

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the kernels read directly (float32 where they cannot)."""
        return kernel_input_dtype(self.meta, "masks_dense", "masks_sparse", complex_ok=True)

    @property
    def _complex_data(self) -> bool:
        return self.meta is not None and self.meta.input_dtype.kind == "c"

    def get_backends(self) -> tuple[str, ...]:
        """Where the mask operation runs (the CPU and, where a GPU is, CuPy), or the subset
        given in ``backends``."""
        return allowed_backends("apply_masks", self.params.backends)

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs (the matching mask rows are used); big-endian
        integers unswapped where the operation's strategy swaps as it reads (masks as runs)."""
        if self._complex_data:  # parts are split off after the plan converted the byte order
            return preferences(stored_byteorder=False)
        return preferences(stored_byteorder=self._prepare().reads_stored_order)

    def _prepare(self, stack: MaskStack | None = None) -> masks_op.AppliedMasks:
        """The mask operation for ``stack`` (default: the masks) prepared for this run's
        backend and data (its strategy chosen)."""
        assert self.meta is not None
        meta = self.meta
        # Complex frames reach the kernels as their real and imaginary parts.
        dtype = np.finfo(meta.input_dtype).dtype if self._complex_data else meta.input_dtype
        stack = self.masks if stack is None else stack
        return masks_op.prepare(meta.kernels, stack, tuple(meta.dataset_shape.sig), dtype)

    def _result_dtype(self) -> np.dtype:
        assert self.meta is not None
        stack = self.masks
        if stack.compute_dtype == np.float32:
            real = np.result_type(self.meta.input_dtype, np.float32)
        else:
            real = np.dtype(np.float64)
        if stack.is_complex or self._complex_data:
            return np.result_type(real, np.complex64)
        return np.dtype(real)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity``: nav, one value per mask. Complex masks accumulate real and imaginary
        parts in a private buffer; complex data in two (masks applied to the real parts of the
        frames, and to the imaginary parts)."""
        assert self.meta is not None
        check_shifts(self._shifts, tuple(self.meta.dataset_shape.sig))
        stack = self.masks
        dtype = self._result_dtype()
        if self._complex_data:
            real = np.empty(0, dtype).real.dtype
            shape = (stack.width,)
            return {
                "parts_re": self.buffer(kind="nav", extra_shape=shape, dtype=real, use="private"),
                "parts_im": self.buffer(kind="nav", extra_shape=shape, dtype=real, use="private"),
                "intensity": self.buffer(
                    kind="nav", extra_shape=(stack.count,), dtype=dtype, use="result_only"
                ),
            }
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
        """Prepare the mask operation (strategy, masks on the backend), once per partition."""
        if on_worker(self.meta):
            self._apply = self._prepare()
            if self._shifts is not None:
                self._moved_by_run = self._moved_stacks()
                # (operation, its masks): the masks' bytes stand for the operation's layouts
                self._moved = ByShift(self._prepare_moved, lambda found: found[1].nbytes)

    def _moved_stacks(self) -> ByShift:
        """The moved mask stacks, shared by the partitions of a run in a process: each
        shift's masks are laid out (and packed by the kernels) once per run."""
        assert self.meta is not None
        sig = tuple(self.meta.dataset_shape.sig)

        def build() -> ByShift:
            return ByShift(lambda shift: self._shifted_stack(sig, shift), lambda s: s.nbytes)

        run_key = self.meta.run_key
        if run_key is None:
            return build()
        return shared_for_run((*run_key, "moved masks", sig), build, nbytes=lambda m: m.nbytes)

    def _prepare_moved(self, shift: tuple[int, ...]) -> tuple[masks_op.AppliedMasks, MaskStack]:
        """The mask operation for masks moved by ``shift``, and those masks."""
        stack = self._moved_by_run(shift)
        return self._prepare(stack), stack

    def process_tile(self, tile: Any) -> None:
        """Accumulate the tile's dot products with the masks (or their rows for a slab)."""
        self._masks_into(tile, "parts" if self.masks.is_complex else "intensity")

    def _masks_into(self, tile: Any, name: str = "", out: Any = None) -> None:
        """Add the tile's dot products with the masks (or their rows for a slab) to the nav
        buffer ``name`` (or to the array ``out``, a row per frame of the tile); for complex
        data to the private ``parts_re`` and ``parts_im`` instead (see
        :meth:`_complex_data_results`). Subclasses with buffers of their own call this."""
        assert self.meta is not None
        p0, p1 = pixel_range(self.meta)
        flat = flat_tile(tile)
        xp = self.xp
        if self._complex_data:
            # Masks are linear: apply them to the real and the imaginary parts (contiguous
            # copies, which the kernels read) and combine in get_results.
            parts = [
                (xp.ascontiguousarray(flat.real), self.results.parts_re),
                (xp.ascontiguousarray(flat.imag), self.results.parts_im),
            ]
            swapped = False
        else:
            parts = [(flat, getattr(self.results, name) if out is None else out)]
            swapped = self.meta.byteswapped
        if self._shifts is None:
            for data, into in parts:
                self._apply(data, into, p0, p1, swapped)
            return
        assert self.meta.tile is not None
        shifts = frame_shifts(self._shifts, self.meta.tile.frames)
        for shift, rows in shift_groups(shifts):
            apply = self._moved(shift)[0] if any(shift) else self._apply
            for data, into in parts:
                if isinstance(rows, slice):
                    apply(data[rows], into[rows], p0, p1, swapped)
                else:  # frames of this shift among others: gather them, add back
                    sums = xp.zeros((len(rows), into.shape[1]), dtype=into.dtype)
                    apply(xp.ascontiguousarray(data[xp.asarray(rows)]), sums, p0, p1, swapped)
                    into[xp.asarray(rows)] += sums

    def get_results(self) -> dict[str, Any]:
        """``intensity``; for complex masks or data assembled from real and imaginary parts."""
        if self._complex_data:
            return {"intensity": self._complex_data_results()}
        if not self.masks.is_complex:
            return {"intensity": self.results.intensity}
        k = self.masks.count
        parts = self.results.parts
        dtype = self._result_dtype()
        out = np.empty((*parts.shape[:-1], k), dtype=dtype)
        out.real = parts[..., :k]
        out.imag = parts[..., k:]
        return {"intensity": out}

    def _complex_data_results(self) -> np.ndarray:
        """``(A + iB)(x + iy) = (Ax - By) + i(Ay + Bx)`` from the masks' parts ``A, B`` (B = 0
        for real masks) applied to the frames' real parts ``x`` and imaginary parts ``y``."""
        k = self.masks.count
        re, im = self.results.parts_re, self.results.parts_im
        out = np.empty((*re.shape[:-1], k), dtype=self._result_dtype())
        if self.masks.is_complex:
            out.real = re[..., :k] - im[..., k:]
            out.imag = im[..., :k] + re[..., k:]
        else:
            out.real = re
            out.imag = im
        return out
