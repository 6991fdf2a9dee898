"""Software prefetch from inside a Numba kernel.

Kernels that read a tile in chunk order (a chunk of pixels of several frames, then the next
frames) leave the hardware prefetchers little to follow, and their loads stall on memory
while the arithmetic waits. :func:`prefetch_bytes` asks for a cache line of the *next* block
ahead of time, spread over the current block's work, so that reading overlaps computing.
:func:`prefetch_span` serves plain streaming kernels: at the start of each chunk it asks for
the chunk's lines into L1 at once, which keeps more reads in flight than the loads alone.
A prefetch never faults, whatever the address.

Whether the streaming kernels prefetch at all is :func:`enabled`'s decision: it pays on Intel
and costs on AMD, whose hardware prefetchers follow several row streams by themselves.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from libertem_gpu import config
from libertem_gpu.kernels.cpu_target import host_is_amd

__all__ = ["enabled", "prefetch_bytes", "prefetch_bytes_l1", "prefetch_span"]


_I8P = ir.IntType(8).as_pointer()
_I32 = ir.IntType(32)
_I64 = ir.IntType(64)
# llvm.prefetch(address, rw=read, locality, cache=data): locality 2 keeps the line in L2 and
# outer levels (x86 prefetcht1), which measured best for the multi-mask kernel.
_LOCALITY = 2
_L1 = 3  # prefetcht0
_LINE = 64


def _make_prefetch(locality: int, doc: str):  # type: ignore[no-untyped-def]
    @intrinsic
    def prefetch(typingctx, array, offset):  # type: ignore[no-untyped-def]
        if not isinstance(array, types.Array) or not isinstance(offset, types.Integer):
            return None
        sig = types.none(array, types.intp)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            base = builder.ptrtoint(ary.data, _I64)
            address = builder.inttoptr(builder.add(base, args[1]), _I8P)
            fnty = ir.FunctionType(ir.VoidType(), [_I8P, _I32, _I32, _I32])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
            builder.call(fn, [address, _I32(0), _I32(locality), _I32(1)])
            return context.get_dummy_value()

        return sig, codegen

    prefetch.__doc__ = doc
    return prefetch


prefetch_bytes = _make_prefetch(
    _LOCALITY,
    """Prefetch the cache line at ``offset`` bytes from the start of ``array``'s data into L2.

    Call it from an ``@njit`` function; it compiles to one ``prefetcht1`` on x86 and returns
    nothing.
    """,
)

prefetch_bytes_l1 = _make_prefetch(
    _L1,
    """Prefetch the cache line at ``offset`` bytes from the start of ``array``'s data into L1
    (``prefetcht0`` on x86); see :func:`prefetch_span`.""",
)


@njit(nogil=True, cache=True, inline="always")
def prefetch_span(row, start, stop):  # type: ignore[no-untyped-def]
    """Prefetch into L1 the cache lines of bytes ``start:stop`` of the 1-D array ``row``
    (Numba only; bytes past its end are fine: a prefetch never faults).

    Streaming kernels that convert or multiply as they read fall behind the hardware
    prefetchers once two threads share the memory bus: each thread keeps too few reads in
    flight. Asking for the lines a short way ahead (about 1 KiB per stream) keeps them coming.
    """
    for b in range(start, stop, _LINE):
        prefetch_bytes_l1(row, b)


def enabled() -> bool:
    """Whether the streaming CPU kernels prefetch their rows in software: the setting
    ``software_prefetch``, the one place that reads it. ``"auto"``: where the host's CPU gains
    from it, which AMD's do not (:func:`~libertem_gpu.kernels.cpu_target.host_is_amd`).

    Kernel alone on 1 GiB of page-cached uint16 (two threads, against the memory floor): on
    Sapphire Rapids the sum over frames read 0.83 without prefetch and 0.88 with it; on a
    Zen 4 EPYC 0.93-0.98 with eight frames a pass and no prefetch, 0.59-0.74 with it (the
    float32 sum 0.67-0.79 against 1.0). The host decides, not the CPU Numba compiles for: the
    memory system is the host's. Kernels with and without prefetch are compiled separately, so
    the choice applies to each call.
    """
    text = str(config.get("software_prefetch")).strip().lower()
    if text == "auto":
        return not host_is_amd()
    return text not in ("0", "false", "no", "off", "none")
