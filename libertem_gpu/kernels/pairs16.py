"""Squares and values of two frames of 16-bit integers at once, from inside a Numba kernel, with
AVX2's ``vpmaddwd``.

``vpmaddwd`` multiplies adjacent pairs of signed 16-bit values and adds each pair's two
products into one 32-bit lane. Given the same pixel of two frames side by side, it gives that
pixel's two squares summed, and, against ones, its two values summed: two frames' worth of
the moments' multiplies and adds in one instruction each, without widening a value first.
LLVM does not form it from a loop over two rows, so :func:`madd_pair` (two frames) and
:func:`madd_pairs4` (eight) emit the vector code themselves, sixteen pixels per call.

Its ``vpunpcklwd``/``vpunpckhwd`` interleave within each 128-bit half of the vector, so the
lanes come out in the order :data:`PAIR_ORDER` gives.
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["PAIR_ORDER", "PIXELS", "in_pixel_order", "madd_pair", "madd_pairs4"]

#: Pixels of one call.
PIXELS = 16

_I8 = ir.IntType(8)
_I16 = ir.IntType(16)
_I32 = ir.IntType(32)
_V16 = ir.VectorType(_I16, 16)
_V8 = ir.VectorType(_I32, 8)
# vpunpcklwd / vpunpckhwd of two 16 x i16 vectors: the low (high) four pixels of each 128-bit
# half, the two frames' values side by side.
_LOW = [0, 16, 1, 17, 2, 18, 3, 19, 8, 24, 9, 25, 10, 26, 11, 27]
_HIGH = [4, 20, 5, 21, 6, 22, 7, 23, 12, 28, 13, 29, 14, 30, 15, 31]

#: ``PAIR_ORDER[k]`` is the pixel, of a call's sixteen, that lane ``k`` holds: ``vpmaddwd``
#: adds each pair of the interleaved vectors, whose first element is the first frame's pixel.
PAIR_ORDER = np.array(_LOW[0::2] + _HIGH[0::2], dtype=np.intp)


def _pmaddwd(builder, a, b):  # type: ignore[no-untyped-def]
    fnty = ir.FunctionType(_V8, [_V16, _V16])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx2.pmadd.wd")
    return builder.call(fn, [a, b])


def _element_pointer(context, builder, aryty, ary, byte_offset, elem):  # type: ignore[no-untyped-def]
    """``ary``'s data pointer advanced by ``byte_offset`` bytes, as a pointer to ``elem``."""
    data = builder.bitcast(context.make_array(aryty)(context, builder, ary).data, _I8.as_pointer())
    return builder.bitcast(builder.gep(data, [byte_offset]), elem.as_pointer())


def _row_stride(context, builder, aryty, ary):  # type: ignore[no-untyped-def]
    strides = cgutils.unpack_tuple(
        builder, context.make_array(aryty)(context, builder, ary).strides
    )
    return strides[0]


def _make_madd(pairs: int, may_be_alone: bool):  # type: ignore[no-untyped-def]
    """An intrinsic ``(a, i, single, p, lanes, slot)`` that adds pixels ``p:p + 16`` of frames
    ``i`` to ``i + 2 * pairs - 1`` of the 2-D tile ``a`` (int16, or uint16 made signed by
    flipping the sign bit: ``v - 32768``) into lanes ``slot:slot + 16`` of the 2-D uint32 array
    ``lanes`` (Numba only; AVX2; no bounds checks; rows of ``a`` contiguous):

    - row 0: each pair's two squares summed (at most ``2**31``, exact as uint32), added modulo
      2**32;
    - row 1: those sums' upper 16 bits, added: with row 0 they give the exact sum of squares
      back (see :func:`libertem_gpu.kernels.moments_cpu._add_pair_sums`);
    - row 2: the values, added as int32.

    Lane ``slot + k`` holds pixel ``p + PAIR_ORDER[k]``. With ``may_be_alone``, a true
    ``single`` leaves the last frame unread, as zero.
    """

    def typer(typingctx, a, i, single, p, lanes, slot):  # type: ignore[no-untyped-def]
        if not (
            isinstance(a, types.Array)
            and a.ndim == 2
            and a.dtype in (types.int16, types.uint16)
            and isinstance(lanes, types.Array)
            and lanes.ndim == 2
            and lanes.dtype == types.uint32
        ):
            return None
        flip = a.dtype == types.uint16

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            ary, row, alone, pix, lns, at = args
            stride = _row_stride(context, builder, a, ary)
            row = context.cast(builder, row, signature.args[1], types.intp)
            pix = context.cast(builder, pix, signature.args[3], types.intp)
            at = context.cast(builder, at, signature.args[5], types.intp)
            alone = context.cast(builder, alone, signature.args[2], types.boolean)
            off = builder.add(builder.mul(row, stride), builder.mul(pix, ir.Constant(pix.type, 2)))
            rows = []
            for f in range(2 * pairs):
                if f == 2 * pairs - 1 and may_be_alone:  # the last frame may not exist
                    f_off = builder.select(alone, builder.sub(off, stride), off)
                else:
                    f_off = off
                x = builder.load(_element_pointer(context, builder, a, ary, f_off, _V16), align=1)
                if flip:
                    x = builder.xor(x, ir.Constant(_V16, [0x8000] * 16))
                if f == 2 * pairs - 1 and may_be_alone:
                    x = builder.select(alone, ir.Constant(_V16, [0] * 16), x)
                rows.append(x)
                off = builder.add(off, stride)
            ones = ir.Constant(_V16, [1] * 16)
            sixteen = ir.Constant(_V8, [16] * 8)
            lstride = _row_stride(context, builder, lanes, lns)
            for half, mask in enumerate((_LOW, _HIGH)):
                shuffle = ir.Constant(ir.VectorType(_I32, 16), mask)
                sq = cy = vx = None
                for k in range(pairs):
                    pair = builder.shuffle_vector(rows[2 * k], rows[2 * k + 1], shuffle)
                    q = _pmaddwd(builder, pair, pair)
                    v = _pmaddwd(builder, pair, ones)
                    c = builder.lshr(q, sixteen)
                    # modulo 2**32: the carries' sum gives back what wraps (see lanes32)
                    sq = q if sq is None else builder.add(sq, q)
                    cy = c if cy is None else builder.add(cy, c)
                    vx = v if vx is None else builder.add(vx, v)
                base = builder.mul(
                    builder.add(at, ir.Constant(at.type, 8 * half)), ir.Constant(at.type, 4)
                )
                for k, term in enumerate((sq, cy, vx)):
                    o = builder.add(builder.mul(ir.Constant(at.type, k), lstride), base)
                    ptr = _element_pointer(context, builder, lanes, lns, o, _V8)
                    builder.store(builder.add(builder.load(ptr, align=4), term), ptr, align=4)
            return context.get_dummy_value()

        return types.none(a, i, single, p, lanes, slot), codegen

    return intrinsic(typer)


#: Two frames, the second one optional (``single``).
madd_pair = _make_madd(1, True)
#: Eight frames; ``single`` is ignored.
madd_pairs4 = _make_madd(4, False)


@numba.njit(nogil=True, cache=True, inline="always")
def in_pixel_order(lanes, end):  # type: ignore[no-untyped-def]
    """Put the first ``end`` (a multiple of 16) of a 1-D array of lanes filled as
    :data:`PAIR_ORDER` says into pixel order, in place (Numba only): swap the middle two quads
    of each run of sixteen."""
    for c in range(0, end, PIXELS):
        for k in range(c + 4, c + 8):
            lanes[k], lanes[k + 4] = lanes[k + 4], lanes[k]
