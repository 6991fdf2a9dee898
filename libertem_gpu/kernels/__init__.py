"""Numerical kernels: one module per operation, each with a NumPy reference, a Numba CPU and a
CuPy / Numba-CUDA GPU implementation, declared together in :mod:`.catalog`.

Tiles are ``(n, npix)`` arrays (n whole or partial frames, flattened signal, last axis
contiguous, first axis possibly strided); kernels accumulate into caller-provided float64 output
buffers and never copy a tile to float. Use :func:`get_kernel` to look kernels up by
``(op, backend)``, :func:`backends_for` to ask which backends implement some operations, and
the ``prepare`` of :mod:`.masks` and :mod:`.com` for operations that choose a strategy once per
partition. Importing this package imports no kernel module, no Numba, and compiles nothing.
"""

from libertem_gpu.kernels.registry import (
    backends_for,
    get_impl,
    get_kernel,
    reads_stored_order,
    register_kernel,
)

__all__ = ["backends_for", "get_impl", "get_kernel", "reads_stored_order", "register_kernel"]
