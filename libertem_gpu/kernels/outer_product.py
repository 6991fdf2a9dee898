"""An outer-product micro-kernel for several masks, written in LLVM IR for Numba kernels.

``acc[f, :] += sum_p frames[f, p] * masks[p, :]`` for 6 frames and 16 masks: twelve 8-lane
float32 sums held in vector registers over the whole pixel range, each step one load of the
16 masks' values of a pixel (two vectors), six broadcasts of the frames' values and twelve
multiply-adds, as a BLAS sgemm kernel does. Written in Python, Numba's code for the same loop
stayed scalar (LLVM's SLP vectorizer does not form the vectors across 96 sums), and the kernel
that vectorizes along the pixels instead (:mod:`.masks_avx2_cpu`) reads every frame once per
two masks from L2 and ends each chunk with twelve lane reductions.

The frames come as float32 rows in a small buffer; converting the next block of frames into
the other buffer is interleaved with the multiply-adds of this one (a group of 8 pixels of each
of the 6 rows per 8 pixels of products), so that the reads of the tile from memory overlap
the arithmetic instead of stalling it.
"""

from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["FRAMES", "MASKS", "STEP", "outer_6x16"]

#: Frames per block, masks per group and pixels per unrolled step of :func:`outer_6x16`.
FRAMES = 6
MASKS = 16
STEP = 8

_F32 = ir.FloatType()
_V8 = ir.VectorType(_F32, 8)
_I8P = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
_LANES = 8
_FETCH_SKEW = 1024
_SPLAT = ir.Constant(ir.VectorType(_I32, _LANES), [0] * _LANES)


def _at(builder: ir.IRBuilder, base: Any, stride: Any, row: Any, offset: Any, elem: ir.Type) -> Any:
    """A pointer to ``elem`` at byte ``row * stride + offset`` from ``base`` (an i8*)."""
    address = builder.gep(base, [builder.add(builder.mul(stride, row), offset)])
    return builder.bitcast(address, elem.as_pointer())


def _convert(builder: ir.IRBuilder, vec: Any, dtype: types.Type) -> Any:
    """An 8-lane vector of ``dtype`` as float32 (exact for the narrow types taken)."""
    if dtype == types.float32:
        return vec
    if dtype in (types.uint8, types.uint16):
        return builder.uitofp(vec, _V8)
    return builder.sitofp(vec, _V8)


_SOURCE_TYPES = (types.uint8, types.uint16, types.int8, types.int16, types.float32)


def _is_rows(ty: Any, dtype: Any = None) -> bool:
    return isinstance(ty, types.Array) and ty.ndim == 2 and (dtype is None or ty.dtype == dtype)


@intrinsic
def outer_6x16(typingctx, cur, masks, lo, hi, acc, src, dst, ahead):  # type: ignore[no-untyped-def]
    """``acc[f, :] += cur[f, lo:hi] @ masks[lo:hi, :]``; meanwhile ``dst[:, c] = src[:, c]``
    (as float32) for the pixels ``c`` in ``[lo, lo + 8 * ((hi - lo) // 8))``.

    ``cur`` and ``dst``: C-contiguous float32 ``(6, w)``; ``masks``: C-contiguous float32
    ``(n, 16)``; ``acc``: C-contiguous float32 ``(6, 16)``; ``src``: ``(6, w')`` of a type in
    ``_SOURCE_TYPES`` with contiguous rows and at least that range of columns (a scratch array
    where there is nothing to convert). Indices are not checked.
    """
    if not (
        _is_rows(cur, types.float32)
        and _is_rows(masks, types.float32)
        and _is_rows(acc, types.float32)
        and _is_rows(dst, types.float32)
        and _is_rows(src)
        and src.dtype in _SOURCE_TYPES
        and _is_rows(ahead)
    ):
        return None
    sig = types.void(cur, masks, types.intp, types.intp, acc, src, dst, ahead)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        cur_t, masks_t, _, _, acc_t, src_t, dst_t, ahead_t = signature.args
        arrays = [
            context.make_array(ty)(context, builder, value)
            for ty, value in zip(
                (cur_t, masks_t, acc_t, src_t, dst_t, ahead_t),
                (args[0], args[1], args[4], args[5], args[6], args[7]),
                strict=True,
            )
        ]
        strides = [cgutils.unpack_tuple(builder, ary.strides)[0] for ary in arrays]
        data = [builder.bitcast(ary.data, _I8P) for ary in arrays]
        lo, hi = args[2], args[3]
        src_elem = context.get_data_type(src_t.dtype)
        src_vec = ir.VectorType(src_elem, _LANES)
        fmuladd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_V8, [_V8, _V8, _V8]), "llvm.fmuladd.v8f32"
        )
        cur_rows = [
            _at(builder, data[0], strides[0], _I64(f), _I64(0), _F32) for f in range(FRAMES)
        ]
        # The sums live in allocas that LLVM promotes to registers across the loop.
        sums = []
        for f in range(FRAMES):
            for v in range(MASKS // _LANES):
                ptr = _at(builder, data[2], strides[2], _I64(f), _I64(4 * _LANES * v), _V8)
                slot = cgutils.alloca_once(builder, _V8)
                builder.store(builder.load(ptr, align=4), slot)
                sums.append((ptr, slot))

        pin_fn = ir.InlineAsm(ir.FunctionType(_V8, [_V8]), "", "=x,0,~{memory}", side_effect=True)

        def pin(value: Any) -> Any:
            # An empty asm statement that takes a sum in a register and may touch memory: the
            # multiply-add that forms the sum stays before it and no load moves across it.
            # Without it, LLVM's scheduler loaded all six broadcasts first, and 12 sums + 2
            # weights + 6 broadcasts do not fit in 16 registers: it spilled.
            return builder.call(pin_fn, [value])

        def products(p: Any) -> None:
            weights = [
                builder.load(
                    _at(builder, data[1], strides[1], p, _I64(4 * _LANES * v), _V8), align=4
                )
                for v in range(MASKS // _LANES)
            ]
            for f in range(FRAMES):
                x = builder.load(builder.gep(cur_rows[f], [p]), align=4)
                xs = builder.insert_element(ir.Constant(_V8, ir.Undefined), x, _I32(0))
                xs = builder.shuffle_vector(xs, ir.Constant(_V8, ir.Undefined), _SPLAT)
                for v, w in enumerate(weights):
                    slot = sums[f * len(weights) + v][1]
                    total = builder.call(fmuladd, [xs, w, builder.load(slot)])
                    builder.store(pin(total), slot)

        src_size = src_t.dtype.bitwidth // 8
        ahead_size = ahead_t.dtype.bitwidth // 8
        prefetch = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32]),
            "llvm.prefetch.p0",
        )

        def convert_and_fetch(t: Any) -> None:
            # Pixels t..t+7 of each row of src into dst; and a prefetch of a line of each row of
            # the block after next, 1 KiB on from pixel t (wrapping round the range): at the
            # same offset as the converted pixels it is in the same L1 set, since the frames
            # are a power of two apart, and 12 lines in one set do not fit its 8 ways (AMD
            # fetches into L1 at every prefetch level). Measured: 69 against 90 GFLOP/s.
            fetch_at = builder.add(builder.mul(t, _I64(ahead_size)), _I64(_FETCH_SKEW))
            fetch_at = builder.select(
                builder.icmp_signed(">=", fetch_at, end_bytes),
                builder.sub(fetch_at, span_bytes),
                fetch_at,
            )
            src_at = builder.mul(t, _I64(src_size))
            dst_at = builder.mul(t, _I64(4))
            for f in range(FRAMES):
                row = _I64(f)
                vec = builder.load(
                    _at(builder, data[3], strides[3], row, src_at, src_vec), align=src_size
                )
                dst_ptr = _at(builder, data[4], strides[4], row, dst_at, _V8)
                builder.store(_convert(builder, vec, src_t.dtype), dst_ptr, align=4)
                ap = _at(builder, data[5], strides[5], row, fetch_at, ir.IntType(8))
                builder.call(prefetch, [ap, _I32(0), _I32(2), _I32(1)])

        count = builder.sub(hi, lo)
        end_bytes = builder.mul(hi, _I64(ahead_size))
        span_bytes = builder.mul(count, _I64(ahead_size))
        steps = builder.sdiv(count, _I64(STEP))
        steps = builder.select(builder.icmp_signed(">", steps, _I64(0)), steps, _I64(0))
        with cgutils.for_range(builder, steps) as loop:
            t = builder.add(lo, builder.mul(loop.index, _I64(STEP)))
            for u in range(STEP):
                products(builder.add(t, _I64(u)))
            convert_and_fetch(t)
        tail = builder.add(lo, builder.mul(steps, _I64(STEP)))
        with cgutils.for_range_slice(builder, tail, hi, _I64(1), inc=True) as (p, _):
            products(p)
        for ptr, slot in sums:
            builder.store(builder.load(slot), ptr, align=4)
        return context.get_dummy_value()

    return sig, codegen
