"""Compute backends: where tiles are processed (NumPy on the CPU, CuPy on a GPU).

A backend gives the array module UDFs compute with (``xp``), allocates result buffers, moves
results back to NumPy, and owns the data path that turns a partition into tiles. Backends are
looked up by name in a table whose entries are imported only when used, so that planning a CPU
run never imports CuPy.
"""

from libertem_gpu.backends.base import Backend
from libertem_gpu.backends.registry import (
    available_backends,
    get_backend,
    register_backend,
    resolve_backend,
)

__all__ = ["Backend", "available_backends", "get_backend", "register_backend", "resolve_backend"]
