"""Numerical kernels: one module per reduction, each with a NumPy reference and a Numba CPU
implementation (GPU implementations are registered alongside).

Tiles are ``(n, npix)`` arrays (n whole or partial frames, flattened signal, last axis
contiguous, first axis possibly strided); kernels accumulate into caller-provided float64 output
buffers and never copy a tile to float. Use :func:`get_kernel` to look kernels up by
``(op, backend)``; importing this package imports no kernel module and compiles nothing.
"""

from libertem_gpu.kernels.registry import get_kernel

__all__ = ["get_kernel"]
