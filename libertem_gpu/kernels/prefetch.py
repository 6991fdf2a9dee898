"""Software prefetch from inside a Numba kernel.

Kernels that read a tile in chunk order (a chunk of pixels of several frames, then the next
frames) leave the hardware prefetchers little to follow, and their loads stall on memory
while the arithmetic waits. :func:`prefetch_bytes` asks for a cache line of the *next* block
ahead of time, spread over the current block's work, so that reading overlaps computing.
A prefetch never faults, whatever the address.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["prefetch_bytes"]

_I8P = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
# llvm.prefetch(address, rw=read, locality, cache=data): locality 2 keeps the line in L2 and
# outer levels (x86 prefetcht1), which measured best for the multi-mask kernel.
_LOCALITY = 2


@intrinsic
def prefetch_bytes(typingctx, array, offset):  # type: ignore[no-untyped-def]
    """Prefetch the cache line at ``offset`` bytes from the start of ``array``'s data.

    Call it from an ``@njit`` function; it compiles to one ``prefetcht1`` on x86 and returns
    nothing.
    """
    if not isinstance(array, types.Array) or not isinstance(offset, types.Integer):
        return None
    sig = types.none(array, types.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        base = builder.ptrtoint(ary.data, _I64)
        address = builder.inttoptr(builder.add(base, args[1]), _I8P)
        fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        builder.call(fn, [address, _I32(0), _I32(_LOCALITY), _I32(1)])
        return context.get_dummy_value()

    return sig, codegen
