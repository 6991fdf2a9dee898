"""Unsigned 32-bit arithmetic that wraps, from inside a Numba kernel.

Numba widens integer arithmetic to 64 bits, and LLVM does not narrow every such chain back: a
loop that summed 16-bit values' squares in ``np.uint32`` came out in 64-bit lanes, four to an
AVX2 vector and with a 64-bit multiply. These helpers emit the 32-bit LLVM operations
themselves, so the vectoriser fills eight lanes of an AVX2 vector (sixteen of AVX-512) and
multiplies with ``vpmulld``. Sums wrap modulo ``2**32``: the caller bounds how many it adds.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = [
    "add_u32",
    "as_unsigned_biased",
    "below_2_31_as_float64",
    "high_half_u32",
    "square_u32",
    "sub_u32",
    "times_2_16_u32",
    "u32",
]

_I32 = ir.IntType(32)


def _narrow_unsigned(value_type, bits):  # type: ignore[no-untyped-def]
    """Whether ``value_type`` is an unsigned Numba integer of at most ``bits`` bits."""
    return (
        isinstance(value_type, types.Integer)
        and not value_type.signed
        and value_type.bitwidth <= bits
    )


def _widened(builder, value, value_type):  # type: ignore[no-untyped-def]
    return value if value_type.bitwidth == 32 else builder.zext(value, _I32)


@intrinsic
def as_unsigned_biased(typingctx, x):  # type: ignore[no-untyped-def]
    """A signed integer ``x`` of up to 16 bits plus ``2**(bits - 1)``, as the unsigned type of
    its width (its sign bit flipped: ``int16`` -32768..32767 becomes ``uint16`` 0..65535); an
    unsigned ``x`` as it is (Numba only)."""
    if not isinstance(x, types.Integer) or x.bitwidth > 16:
        return None
    unsigned = types.Integer.from_bitwidth(x.bitwidth, signed=False)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        if not x.signed:
            return args[0]
        return builder.xor(args[0], ir.Constant(ir.IntType(x.bitwidth), 1 << (x.bitwidth - 1)))

    return unsigned(x), codegen


@intrinsic
def u32(typingctx, x):  # type: ignore[no-untyped-def]
    """The unsigned integer ``x`` of up to 32 bits as ``np.uint32`` (Numba only)."""
    if not _narrow_unsigned(x, 32):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return _widened(builder, args[0], x)

    return types.uint32(x), codegen


@intrinsic
def square_u32(typingctx, x):  # type: ignore[no-untyped-def]
    """``x * x`` as ``np.uint32`` for an unsigned integer ``x`` of up to 16 bits: exact, as
    ``(2**16 - 1)**2 < 2**32`` (Numba only)."""
    if not _narrow_unsigned(x, 16):
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        wide = _widened(builder, args[0], x)
        return builder.mul(wide, wide)

    return types.uint32(x), codegen


@intrinsic
def add_u32(typingctx, a, b):  # type: ignore[no-untyped-def]
    """``(a + b) % 2**32`` for two ``np.uint32`` (Numba only)."""
    if a != types.uint32 or b != types.uint32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.add(args[0], args[1])

    return types.uint32(a, b), codegen


@intrinsic
def high_half_u32(typingctx, a):  # type: ignore[no-untyped-def]
    """``a >> 16`` for an ``np.uint32`` (Numba only)."""
    if a != types.uint32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.lshr(args[0], ir.Constant(_I32, 16))

    return types.uint32(a), codegen


@intrinsic
def sub_u32(typingctx, a, b):  # type: ignore[no-untyped-def]
    """``(a - b) % 2**32`` for two ``np.uint32`` (Numba only)."""
    if a != types.uint32 or b != types.uint32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.sub(args[0], args[1])

    return types.uint32(a, b), codegen


@intrinsic
def times_2_16_u32(typingctx, a):  # type: ignore[no-untyped-def]
    """``(a << 16) % 2**32`` for an ``np.uint32`` (Numba only)."""
    if a != types.uint32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.shl(args[0], ir.Constant(_I32, 16))

    return types.uint32(a), codegen


@intrinsic
def below_2_31_as_float64(typingctx, a):  # type: ignore[no-untyped-def]
    """An ``np.uint32`` below ``2**31`` as float64, exactly (Numba only): converted as a signed
    integer, which AVX2 does in one instruction for four lanes (it has no unsigned form). The
    caller guarantees the bound; a larger value comes out ``2**32`` too small."""
    if a != types.uint32:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.sitofp(args[0], ir.DoubleType())

    return types.float64(a), codegen
