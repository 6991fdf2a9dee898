"""Run-time settings: changed with :func:`set` (for a ``with`` block or from then on), read with
:func:`get`.

Every setting has a default; some also have an environment variable that overrides it at the
edges (``LIBERTEM_GPU_BACKEND=numpy`` keeps the GPU out of every run). Environment variables are
read when a setting is read, never at import. :func:`snapshot` captures what a run started with;
the run plan carries it to every thread and worker, which apply it with :func:`applied`, so
that ``config.set(...)`` around ``run_udf`` reaches every partition task wherever it runs.
The table in ``docs/settings.md`` lists every setting and variable.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 0/1, true/false, yes/no or on/off, got {text!r}")


def _auto_flag(text: str) -> bool | str:
    return "auto" if text.strip().lower() == "auto" else _flag(text)


def _name(text: str) -> str:
    return text.strip().lower()


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also refuses NaN
        raise ValueError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(f"expected a whole number >= 0, got {text!r}")
    return value


def _bytes(text: str) -> int:
    if text.strip() == "0":
        return 0
    from libertem_gpu.sizes import parse_size

    return parse_size(text)


@dataclass(frozen=True)
class Setting:
    """One setting: its default, the environment variable that overrides it, and its meaning.

    Attributes
    ----------
    default : Any
        The value when neither :func:`set` nor the environment says otherwise.
    doc : str
        What it controls (one sentence, shown in the docs' settings table).
    env : str or None
        Environment variable that overrides the setting where it is set and not empty.
    parse : callable or None
        Turns the variable's text into a value.
    """

    default: Any
    doc: str
    env: str | None = None
    parse: Callable[[str], Any] | None = None


SETTINGS: dict[str, Setting] = {
    "partition_bytes": Setting(
        None, "Bytes of raw data per partition; None sizes partitions from the workers."
    ),
    "max_partition_bytes": Setting(256 * 2**20, "Upper bound of the automatic partition size."),
    # Each partition costs about 0.5 ms of a thread (its tiles' plan, buffers, mapping, the
    # merge on the client; StdDevUDF more): partitions of 16 MiB, which 16 threads made of
    # 1 GiB, spent a third of their time on it. Measured, 1 GiB of 256 x 256 uint16 cut for
    # 16 workers on 2 threads: 16 -> 32 MiB partitions 1.16x (sum) to 1.21x (std, CoM).
    "min_partition_bytes": Setting(
        32 * 2**20, "Lower bound of the automatic partition size (small data: one partition)."
    ),
    # Two, not four: fewer partitions' fixed costs, and two per worker still balance. 1 GiB of
    # 256 x 256 frames on 2 threads, alternated: every analysis 1.015-1.056x (best of 7),
    # 1.023-1.079x (median); one per worker was no faster.
    "partitions_per_worker": Setting(
        2, "Partitions per worker the automatic size aims for, so that work balances."
    ),
    # Each partition allocates, fills, merges and frees its frame-shaped result buffers; with
    # large frames (4096 x 4096: 128 MiB per float64 buffer) that cost more than reading its
    # frames. Measured, 2 GiB of 4096 x 4096 uint16 on 2 threads, 8 -> 2 partitions: SumUDF
    # 5.6 -> 8.3 GB/s, StdDevUDF 1.2 -> 2.1 GB/s.
    "partition_result_ratio": Setting(
        16,
        "Automatic partitions hold at least this many times the bytes of the frame-shaped "
        "result buffers each one fills, but no fewer than one partition per worker.",
    ),
    # 16 MiB amortise the per-tile Python cost (measured: 4 MiB tiles lose about 8% on 2 cores).
    "tile_bytes_cpu": Setting(16 * 2**20, "Raw bytes of a tile filled into a CPU buffer."),
    # Mapped tiles cost no memory; larger ones mean fewer kernel calls (measured: +4-7%).
    "tile_bytes_cpu_mapped": Setting(
        64 * 2**20, "Raw bytes of a CPU tile that is a view of a memory-mapped file."
    ),
    # A UDF that gets tiles in another element type (float32 frames of uint16 data, as most
    # do) reads a converted copy: one that stays in the cache is read back at cache speed.
    # Measured on 1 GiB of uint16, 2 cores: a NumPy UDF summing frames 3.4 GB/s with 128 MiB
    # float32 tiles (64 MiB mapped), 6.7 with 4 MiB (no better with 2 or 8).
    "tile_bytes_cpu_converted": Setting(
        4 * 2**20,
        "Bytes of a CPU tile converted to another element type or corrected (a copy, not a "
        "view): such tiles are cut to this size so that the copy stays in the cache.",
    ),
    "tile_bytes_gpu": Setting(64 * 2**20, "Raw bytes of a tile on a GPU."),
    "backend": Setting(
        "auto",
        "Backend of runs that name none: 'auto', 'numpy' or 'cupy'. The environment variable "
        "overrides even a backend named by the run.",
        env="LIBERTEM_GPU_BACKEND",
        parse=_name,
    ),
    "io_backend": Setting(
        "auto",
        "How the GPU path reads files: 'auto', 'pread', 'direct' (O_DIRECT) or 'kvikio'.",
        env="LIBERTEM_GPU_IO_BACKEND",
        parse=_name,
    ),
    # A new process pays ~0.3 s to import Numba and ~0.65 s to load its typing registries
    # before the first cached kernel runs; plain NumPy reads 32 MiB in well under that.
    "small_run_bytes": Setting(
        32 * 2**20,
        "CPU runs that read at most this many bytes (selected frames times the stored frame "
        "size) use the plain-NumPy kernels instead of the Numba ones: no Numba start-up for "
        "small data; 0: always Numba.",
        env="LIBERTEM_GPU_SMALL_RUN_BYTES",
        parse=_bytes,
    ),
    # Off by default: kept pages count in the process's resident memory (as page cache shared
    # with every reader of the file, which the kernel can reclaim), and a run over a large file
    # must not look like it holds the file. Mapping per run costs page faults and unmapping:
    # 20-35 % of a memory-bound run on a 2-vCPU Zen 3 VM, 1 GiB in the page cache.
    "keep_mapped_bytes": Setting(
        0,
        "Keep whole files of up to this many bytes in all mapped between runs (least recently "
        "used dropped first), so that repeated runs over the same files skip the page faults "
        "and unmapping; 0: map each run's windows anew.",
        env="LIBERTEM_GPU_KEEP_MAPPED_BYTES",
        parse=_bytes,
    ),
    # Large accumulators cut from reused blocks skip the kernel's zeroing of fresh pages (see
    # host_memory): 1 GiB holds every buffer of a SumUDF run over 4096 x 4096 frames on two
    # threads, and most of a StdDevUDF run's. What it costs: freed buffers stay resident.
    "host_pool_bytes": Setting(
        2**30,
        "Host arrays of 4 MiB or more (partition and merged result buffers) are cut from reused "
        "blocks of at most this many bytes in all, whose pages are already mapped; 0: fresh "
        "memory for each.",
        env="LIBERTEM_GPU_HOST_POOL_BYTES",
        parse=_bytes,
    ),
    # The last merge and get_results run on the client after every partition is done (see
    # host_threads): over 4096 x 4096 frames, StdDevUDF's took a fifth of the run on one thread.
    "client_threads": Setting(
        0,
        "Threads the client spreads element-wise work on large result buffers over (merges, "
        "final results); 0: one per available core, up to 8 and up to the executor's workers; 1: "
        "the calling thread only.",
        env="LIBERTEM_GPU_CLIENT_THREADS",
        parse=_count,
    ),
    "task_timeout_s": Setting(
        None, "Seconds a run waits for the next partition result before it fails (None: no limit)."
    ),
    "amx": Setting(
        True,
        "Use the AMX mask kernel where the CPU has AMX-INT8 (False: the vector kernels).",
        env="LIBERTEM_GPU_AMX",
        parse=_flag,
    ),
    # Software prefetch keeps two threads' row streams coming on Intel (sum over frames on
    # Sapphire Rapids, kernel alone: 0.83 -> 0.88 of the floor), but on AMD's Zen 4 the same
    # kernels read 0.59-0.74 of the floor with it and 0.93-1.0 without.
    "software_prefetch": Setting(
        "auto",
        "Whether the streaming CPU kernels (sum over frames, one mask) prefetch their rows in "
        "software: 'auto' (where the CPU gains from it: not on AMD), True or False.",
        env="LIBERTEM_GPU_SOFTWARE_PREFETCH",
        parse=_auto_flag,
    ),
    # A redraw of a large image costs tens of milliseconds in a notebook: 4 per second keep the
    # plots live without slowing the run.
    "plot_interval_s": Setting(
        0.25,
        "Least seconds between two redraws of the live plots of run_udf(plots=...); the final "
        "redraw always happens.",
        env="LIBERTEM_GPU_PLOT_INTERVAL_S",
        parse=_seconds,
    ),
    "cuda_simulator": Setting(
        False,
        "Numba-CUDA runs kernels in its simulator (read by Numba itself at import; GPU kernels "
        "then use small blocks).",
        env="NUMBA_ENABLE_CUDASIM",
        parse=_flag,
    ),
}

_DEFAULTS: dict[str, Any] = {name: s.default for name, s in SETTINGS.items()}

_current: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar(
    "libertem_gpu_config", default=_DEFAULTS
)


def _unknown(keys: list[str]) -> KeyError:
    return KeyError(f"unknown setting(s) {keys}; valid settings: {sorted(SETTINGS)}")


def env_override(key: str) -> Any:
    """The value the environment forces for ``key``, or None where it forces none.

    Raises
    ------
    ValueError
        If the variable is set to text the setting cannot take; the message names the variable.
    """
    setting = SETTINGS[key]
    if setting.env is None:
        return None
    text = os.environ.get(setting.env, "").strip()
    if not text:
        return None
    parse = setting.parse or str
    try:
        return parse(text)
    except ValueError as e:
        raise ValueError(f"environment variable {setting.env}={text!r}: {e}") from None


def get(key: str) -> Any:
    """Return the current value of the setting ``key`` (an environment override wins).

    Raises
    ------
    KeyError
        If ``key`` is not a setting; the message lists the valid ones.
    """
    if key not in SETTINGS:
        raise _unknown([key])
    forced = env_override(key)
    return _current.get()[key] if forced is None else forced


def defaults() -> dict[str, Any]:
    """A copy of all current settings as set in this context (without environment overrides)."""
    return dict(_current.get())


def snapshot() -> dict[str, Any]:
    """All settings as :func:`get` reads them now: what a run carries to its workers."""
    return {key: get(key) for key in SETTINGS}


class set:  # noqa: A001 - a function to its callers; mirrors dask.config.set
    """Change settings: for a ``with`` block, or from here on (in this thread or task only;
    runs carry them to their workers).

    The change takes effect when ``set`` is called. Used as a context manager, the settings
    as they were before come back when the block ends; called on its own, the change stays
    for the rest of the thread (in a script or a notebook: the session).

    Raises
    ------
    KeyError
        If a name is not a setting; the message lists the valid ones.

    Examples
    --------
    >>> import libertem_gpu.config as config
    >>> with config.set(tile_bytes_cpu=2**20):
    ...     config.get("tile_bytes_cpu")
    1048576
    >>> config.get("tile_bytes_cpu") == 2**20
    False
    """

    __slots__ = ("_token",)

    def __init__(self, **settings: Any) -> None:
        unknown = sorted(k for k in settings if k not in SETTINGS)
        if unknown:
            raise _unknown(unknown)
        self._token = _current.set({**_current.get(), **settings})

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        _current.reset(self._token)


@contextlib.contextmanager
def applied(values: Mapping[str, Any]) -> Iterator[None]:
    """Apply a :func:`snapshot` taken elsewhere (in a worker thread or process) for a block.

    Keys this version does not know are ignored, so that a client and workers of slightly
    different versions still run.
    """
    with set(**{k: v for k, v in values.items() if k in SETTINGS}):
        yield
