"""The kvikio transport: file bytes straight into device memory (``io_backend="kvikio"``).

``kvikio.CuFile.pread`` reads file bytes into a CuPy buffer: through GPUDirect Storage where the
system has it, else in kvikio's compat mode (POSIX reads into pinned bounce buffers, then copies;
it needs several threads and tasks of a few MiB to reach the page cache's speed). kvikio needs
the CUDA driver even for host destinations, so it is never the CPU path; and it is optional:
:func:`kvikio_status` says whether it can be used and why not.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

from libertem_gpu.errors import BackendError
from libertem_gpu.io.layout import ByteRange
from libertem_gpu.io.transports.base import Transport

log = logging.getLogger(__name__)

__all__ = [
    "KvikioTransport",
    "KvikioUnusable",
    "PendingReads",
    "configure_kvikio",
    "kvikio_status",
]

#: kvikio thread pool size and task size used unless the caller sets others (compat mode wants
#: several threads and tasks of a few MiB; GDS is indifferent).
DEFAULT_THREADS = 8
DEFAULT_TASK_BYTES = 4 * 2**20


class KvikioUnusable(BackendError):
    """kvikio cannot read this data set here (not installed, layout, open or read failure)."""


def _import_kvikio() -> Any:
    """kvikio with its ``defaults`` submodule, which ``import kvikio`` does not import (26.10)."""
    importlib.import_module("kvikio.defaults")
    return importlib.import_module("kvikio")


def _defaults(kvikio: Any) -> Any:
    defaults = getattr(kvikio, "defaults", None)
    return defaults if defaults is not None else importlib.import_module("kvikio.defaults")


def _compat_preferred(defaults: Any) -> bool | None:
    """Whether kvikio reads in compat mode (POSIX plus a copy) rather than through GPUDirect
    Storage; None where its API does not say.

    kvikio's ``compat_mode`` setting is ON, OFF or AUTO, and AUTO (the default, truthy) means
    "GDS where cuFile finds it usable": only ``is_compat_mode_preferred()`` (kvikio >= 24.12)
    resolves AUTO. Older kvikio had ``compat_mode()`` returning the effective mode as a bool.
    """
    query = getattr(defaults, "is_compat_mode_preferred", None)
    if not callable(query):
        query = getattr(defaults, "compat_mode", None)
    if not callable(query):
        return None
    return bool(query())


def kvikio_status() -> tuple[bool, str, bool | None]:
    """Whether kvikio imports, why not, and whether it runs in compat mode (None: unknown).

    Any failure to import counts as "not usable": without the cuFile library ``import kvikio``
    raises cuda-pathfinder's ``DynamicLibNotFoundError``, a ``RuntimeError``.
    """
    try:
        kvikio = _import_kvikio()
    except Exception as e:
        return False, f"kvikio is not importable ({e!r}); install libertem_gpu[gpu]", None
    try:
        compat = _compat_preferred(_defaults(kvikio))
    except Exception as e:  # the mode is informative; unknown counts as compat mode for "auto"
        log.debug("kvikio compat mode unknown: %r", e)
        compat = None
    return True, "", compat


def configure_kvikio(
    num_threads: int = DEFAULT_THREADS, task_size: int = DEFAULT_TASK_BYTES
) -> dict[str, Any]:
    """Set kvikio's thread count and task size (across its API versions); return what it
    reports afterwards, for recording with benchmark figures."""
    defaults = _defaults(_import_kvikio())
    try:
        defaults.set({"num_threads": int(num_threads), "task_size": int(task_size)})
    except Exception:
        for name, value in (("num_threads_reset", num_threads), ("task_size_reset", task_size)):
            fn = getattr(defaults, name, None)
            if fn is not None:
                fn(int(value))
    report: dict[str, Any] = {}
    for key in ("num_threads", "task_size", "compat_mode"):
        try:
            got = defaults.get(key)
        except Exception:
            fn = getattr(defaults, f"get_{key}", None) or getattr(defaults, key, None)
            got = fn() if callable(fn) else None
        # kvikio's enums (CompatMode.AUTO) as their names: the report goes into JSON.
        report[key] = getattr(got, "name", got)
    try:
        report["compat_mode_preferred"] = _compat_preferred(defaults)
    except Exception as e:
        report["compat_mode_preferred"] = f"unknown ({e!r})"
    return report


class PendingReads:
    """kvikio reads in flight into one destination buffer."""

    def __init__(self, futures: list[tuple[Any, str, int]]) -> None:
        self.futures = futures

    def wait(self) -> None:
        """Wait for every read; raise :class:`KvikioUnusable` on a failed or short read."""
        futures, self.futures = self.futures, []
        for fut, path, nbytes in futures:
            try:
                got = fut.get()
            except Exception as e:
                raise KvikioUnusable(f"{path}: kvikio read failed ({e!r})") from e
            if got is not None and int(got) != nbytes:
                raise KvikioUnusable(f"{path}: kvikio read {got} of {nbytes} bytes")

    def drain(self) -> None:
        """Wait for the reads still in flight, ignoring their errors (at shutdown, so that no
        read writes into a buffer that went back to its pool)."""
        futures, self.futures = self.futures, []
        for fut, _, _ in futures:
            try:
                fut.get()
            except Exception as e:  # already failing; the first error is the one to report
                log.debug("kvikio read during shutdown failed: %r", e)


class KvikioTransport(Transport):
    """Reads packed byte ranges into a device buffer (a CuPy uint8 array) with kvikio.

    :meth:`submit` starts the reads and returns at once, so that the next buffer is read while
    the current one is computed; :meth:`fill` waits for them.

    Parameters
    ----------
    task_size : int
        kvikio task size for each ``pread``.

    Raises
    ------
    KvikioUnusable
        If kvikio is missing; later, if a file cannot be opened or read, or a range has
        per-frame headers (the caller falls back to another transport).
    """

    name = "kvikio"

    def __init__(self, task_size: int = DEFAULT_TASK_BYTES) -> None:
        super().__init__()
        ok, reason, _ = kvikio_status()
        if not ok:
            raise KvikioUnusable(reason)
        self.kvikio = _import_kvikio()
        self.task_size = int(task_size)
        self._files: dict[str, Any] = {}

    def _file(self, path: str) -> Any:
        f = self._files.get(path)
        if f is None:
            try:
                f = self.kvikio.CuFile(path, "r")
            except Exception as e:
                raise KvikioUnusable(f"{path}: kvikio cannot open the file ({e!r})") from e
            self._files[path] = f
        return f

    def submit(self, dest: Any, ranges: Sequence[ByteRange]) -> PendingReads:
        """Start reading ``ranges`` into ``dest``; the reads run until waited for."""
        pending = PendingReads([])
        try:
            for r in ranges:
                if not r.packed:
                    raise KvikioUnusable(
                        f"{r.path}: frames have per-frame headers (not one contiguous run)"
                    )
                target = dest[r.dest_offset : r.dest_offset + r.nbytes]
                try:
                    fut = self._file(r.path).pread(
                        target, r.nbytes, file_offset=r.offset, task_size=self.task_size
                    )
                except KvikioUnusable:
                    raise
                except Exception as e:
                    raise KvikioUnusable(f"{r.path}: kvikio read failed ({e!r})") from e
                pending.futures.append((fut, r.path, r.nbytes))
        except BaseException:
            pending.drain()
            raise
        return pending

    def fill(self, dest: Any, ranges: Sequence[ByteRange]) -> None:
        self.submit(dest, ranges).wait()

    def close(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except Exception as e:
                log.debug("closing a kvikio file failed: %r", e)
        self._files.clear()
        super().close()
