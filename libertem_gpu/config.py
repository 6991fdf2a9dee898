"""Run-time defaults, set explicitly with :func:`set` (a context manager) or read with :func:`get`.

Environment variables are only overrides at the edges: ``LIBERTEM_GPU_BACKEND`` forces a backend
(``numpy`` to keep the GPU out of a run) and is read when a run is planned, never at import.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

_DEFAULTS: dict[str, Any] = {
    # Bytes of raw data per partition; None picks a size that gives every worker several partitions.
    "partition_bytes": None,
    # Upper bound of the automatic partition size.
    "max_partition_bytes": 256 * 2**20,
    # Lower bound of the automatic partition size (small data sets still get one partition).
    "min_partition_bytes": 8 * 2**20,
    # Partitions per worker the automatic size aims for, so that work balances.
    "partitions_per_worker": 4,
    # Bytes of a tile on the CPU (raw input bytes): 16 MiB amortise the per-tile Python cost
    # (measured: 4 MiB tiles lose about 8% of throughput on 2 cores).
    "tile_bytes_cpu": 16 * 2**20,
    # Bytes of a CPU tile that is a view of a memory-mapped file (no buffer is filled): larger
    # tiles mean fewer kernel calls (measured: 64 MiB gain 4-7% over 16 MiB on 2 cores).
    "tile_bytes_cpu_mapped": 64 * 2**20,
    # Bytes of a tile on a GPU.
    "tile_bytes_gpu": 64 * 2**20,
    # The backend used when a run does not name one: "auto", "numpy" or "cupy".
    "backend": "auto",
    # I/O backend for the GPU path: "auto", "pread" or "kvikio".
    "io_backend": "auto",
    # Seconds a run may wait for one partition result before it gives up (None: no limit).
    "task_timeout_s": None,
    # Dense masks on Intel AMX where the CPU has it (False: the vector kernels always).
    "amx": True,
}

_current: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "libertem_gpu_config", default=_DEFAULTS
)


def get(key: str) -> Any:
    """Return the current value of the setting ``key``.

    Raises
    ------
    KeyError
        If ``key`` is not a setting; the message lists the valid ones.
    """
    values = _current.get()
    if key not in values:
        raise KeyError(f"unknown setting {key!r}; valid settings: {sorted(values)}")
    return values[key]


def defaults() -> dict[str, Any]:
    """A copy of all current settings."""
    return dict(_current.get())


@contextlib.contextmanager
def set(**settings: Any) -> Iterator[None]:  # noqa: A001 - mirrors dask.config.set
    """Change settings inside a ``with`` block.

    Examples
    --------
    >>> import libertem_gpu.config as config
    >>> with config.set(tile_bytes_cpu=2**20):
    ...     config.get("tile_bytes_cpu")
    1048576
    """
    values = _current.get()
    unknown = sorted(k for k in settings if k not in values)
    if unknown:
        raise KeyError(f"unknown setting(s) {unknown}; valid settings: {sorted(values)}")
    token = _current.set({**values, **settings})
    try:
        yield
    finally:
        _current.reset(token)
