"""Let one Numba kernel use the CPU's widest vectors.

LLVM tunes recent Intel CPUs to prefer 256-bit vectors even where AVX-512 is available (wide
vectors once lowered the clock of a whole core). For a compute-bound kernel that keeps its
operands in L1, 512-bit vectors pay: the blocked multi-mask kernel gains 10-25 %. Clang exposes
this per function as ``-mprefer-vector-width``; the same function attribute is set here from
inside a kernel, leaving every other kernel as LLVM tunes it. On CPUs without AVX-512 the
attribute changes nothing.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

__all__ = ["prefer_wide_vectors"]

_ATTRIBUTE = '"prefer-vector-width"="512"'


@intrinsic
def prefer_wide_vectors(typingctx):  # type: ignore[no-untyped-def]
    """Mark the calling kernel (compiled by Numba) as preferring 512-bit vectors.

    Call it first thing in an ``@njit`` function. It emits no code; if this llvmlite cannot
    carry the attribute the kernel compiles as before.
    """

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        attributes = builder.function.attributes
        try:
            # llvmlite accepts only the attributes it knows by name; LLVM also reads
            # string attributes, which are written out verbatim.
            set.add(attributes, _ATTRIBUTE)
        except TypeError:  # pragma: no cover - a future llvmlite without a set here
            pass
        return context.get_dummy_value()

    return types.none(), codegen
