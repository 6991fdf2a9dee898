"""Unsigned integers as float64 without a conversion instruction, from inside a Numba kernel.

AVX2 has no vector conversion from 64-bit integers to float64, and its 32-bit one takes a
widening step and a shuffle-heavy ``vcvtdq2pd``. For ``0 <= x < 2**52`` the float64 with the
exponent of ``2**52`` and ``x`` as its mantissa bits *is* ``2**52 + x``, exactly: one integer OR
makes it. Subtracting ``2**52 + c`` (exact for whole ``c`` with ``|c| < 2**52``) then gives
``x - c`` exactly, so a kernel can fold the offset into a shift it subtracts anyway.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import intrinsic, register_jitable

__all__ = ["TWO_52", "two52_plus"]

#: ``2.0**52``: what :func:`two52_plus` adds.
TWO_52 = float(2**52)
_EXPONENT_2_52 = np.uint64(0x4330000000000000)


@intrinsic
def _bits_as_float64(typingctx, bits):  # type: ignore[no-untyped-def]
    """The float64 whose bits are the uint64 ``bits`` (an LLVM bitcast: no instruction)."""
    if bits != types.uint64:
        return None

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.uint64), codegen


@register_jitable(inline="always")
def two52_plus(x):  # type: ignore[no-untyped-def]
    """``2.0**52 + x`` as float64, exact, for an unsigned integer ``x < 2**52`` (Numba only):
    zero-extend, OR in the exponent, reinterpret."""
    return _bits_as_float64(np.uint64(x) | _EXPONENT_2_52)
