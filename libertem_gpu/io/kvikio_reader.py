"""Reading fixed-layout data sets straight into device memory with kvikio (``io_backend="kvikio"``).

``kvikio.CuFile.pread`` reads file bytes into a CuPy buffer: through GPUDirect Storage where the
system has it, else in kvikio's compat mode (POSIX reads into pinned bounce buffers, then copies;
it needs several threads and tasks of a few MiB to reach the page cache's speed). kvikio needs
the CUDA driver even for host destinations, so it is never the CPU path; and it is optional:
:func:`kvikio_status` says whether it can be used and why not.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import BackendError
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.host_tiles import contiguous_runs

log = logging.getLogger(__name__)

__all__ = ["KvikioStackSource", "KvikioUnusable", "configure_kvikio", "kvikio_status"]

#: kvikio thread pool size and task size used unless the caller sets others (compat mode wants
#: several threads and tasks of a few MiB; GDS is indifferent).
DEFAULT_THREADS = 8
DEFAULT_TASK_BYTES = 4 * 2**20


class KvikioUnusable(BackendError):
    """kvikio cannot read this data set here (not installed, layout, open or read failure)."""


def _import_kvikio() -> Any:
    return importlib.import_module("kvikio")


def kvikio_status() -> tuple[bool, str, bool | None]:
    """Whether kvikio imports, why not, and whether it runs in compat mode (None: unknown)."""
    try:
        kvikio = _import_kvikio()
    except Exception as e:
        return False, f"kvikio is not importable ({e!r}); install libertem_gpu[gpu]", None
    compat = None
    try:
        defaults = kvikio.defaults
        if hasattr(defaults, "get"):
            compat = bool(defaults.get("compat_mode"))
        elif hasattr(defaults, "compat_mode"):
            compat = bool(defaults.compat_mode())
    except Exception as e:  # older/newer APIs: the mode is informative only
        log.debug("kvikio compat mode unknown: %r", e)
    return True, "", compat


def configure_kvikio(
    num_threads: int = DEFAULT_THREADS, task_size: int = DEFAULT_TASK_BYTES
) -> dict[str, Any]:
    """Set kvikio's thread count and task size (across its API versions); return what it
    reports afterwards, for recording with benchmark figures."""
    kvikio = _import_kvikio()
    defaults = kvikio.defaults
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
            report[key] = defaults.get(key)
        except Exception:
            fn = getattr(defaults, f"get_{key}", None) or getattr(defaults, key, None)
            report[key] = fn() if callable(fn) else None
    return report


class KvikioStackSource:
    """Stacks of raw frames of one partition, read by kvikio into two rotating device buffers.

    Parameters
    ----------
    dataset : DataSet
        A fixed-layout data set (frames at fixed offsets, no per-frame headers).
    reader : FixedLayoutReader
        Its open reader (for the file segments).
    stacks : sequence of (int, int)
        ``(nav_start, nav_stop)`` of the stacks to read, in order.
    frames : numpy.ndarray
        The partition's selected flat navigation indices (``TilePlan.frames``).
    slot_bytes : int
        Bytes of the largest stack.
    task_size : int
        kvikio task size for each ``pread``.

    Raises
    ------
    KvikioUnusable
        If kvikio is missing or the layout does not suit it (the caller falls back).
    """

    def __init__(
        self,
        dataset: Any,
        reader: Any,
        stacks: Sequence[tuple[int, int]],
        frames: np.ndarray,
        slot_bytes: int,
        task_size: int = DEFAULT_TASK_BYTES,
    ) -> None:
        ok, reason, _ = kvikio_status()
        if not ok:
            raise KvikioUnusable(reason)
        if not isinstance(reader, FixedLayoutReader):
            raise KvikioUnusable(f"{type(dataset).__name__} is not a fixed-layout format")
        fb = reader.frame_bytes
        if any(s.frame_stride != fb for s in reader.segments):
            raise KvikioUnusable("frames have per-frame headers (not one contiguous run)")
        self.kvikio = _import_kvikio()
        import cupy as cp

        self.cp = cp
        self.dataset = dataset
        self.reader = reader
        self.stacks = list(stacks)
        self.sources = frames + dataset.sync_offset
        self.valid = (self.sources >= 0) & (self.sources < dataset.image_count)
        self.frame_bytes = fb
        self.slot_bytes = int(slot_bytes)
        self.task_size = int(task_size)
        self._starts = np.cumsum([0] + [s.num_frames for s in reader.segments]).tolist()
        self._files: dict[str, Any] = {}
        #: Stacks handed out so far (the fallback resumes after them).
        self.done = 0

    def _file(self, path: str) -> Any:
        f = self._files.get(path)
        if f is None:
            try:
                f = self.kvikio.CuFile(path, "r")
            except Exception as e:
                raise KvikioUnusable(f"{path}: kvikio cannot open the file ({e!r})") from e
            self._files[path] = f
        return f

    def _pieces(self, s0: int, s1: int) -> Iterator[tuple[str, int, int, int]]:
        """``(path, file_offset, nbytes, out_frame)`` of source frames ``[s0, s1)``."""
        pos = s0
        while pos < s1:
            k = int(np.searchsorted(self._starts, pos, side="right")) - 1
            seg = self.reader.segments[k]
            stop = min(s1, self._starts[k + 1])
            offset = seg.offset + (pos - self._starts[k]) * seg.frame_stride
            yield seg.path, offset, (stop - pos) * self.frame_bytes, pos - s0
            pos = stop

    def _issue(self, slot: Any, nav_start: int, nav_stop: int) -> list[tuple[Any, str, int]]:
        src = self.sources[nav_start:nav_stop]
        valid = self.valid[nav_start:nav_stop]
        futures = []
        positions = np.flatnonzero(valid)
        for a, b in contiguous_runs(src[positions]):
            p0 = int(positions[a])
            s0, s1 = int(src[p0]), int(src[int(positions[b - 1])]) + 1
            for path, offset, nbytes, rel in self._pieces(s0, s1):
                start = (p0 + rel) * self.frame_bytes
                target = slot[start : start + nbytes]
                try:
                    fut = self._file(path).pread(
                        target, nbytes, file_offset=offset, task_size=self.task_size
                    )
                except KvikioUnusable:
                    raise
                except Exception as e:
                    raise KvikioUnusable(f"{path}: kvikio read failed ({e!r})") from e
                futures.append((fut, path, nbytes))
        if not valid.all():  # frames outside the file (sync_offset) are blank
            n = nav_stop - nav_start
            frames = slot[: n * self.frame_bytes].reshape(n, self.frame_bytes)
            frames[self.cp.asarray(np.flatnonzero(~valid))] = 0
        return futures

    @staticmethod
    def _wait(futures: list[tuple[Any, str, int]]) -> None:
        for fut, path, nbytes in futures:
            try:
                got = fut.get()
            except Exception as e:
                raise KvikioUnusable(f"{path}: kvikio read failed ({e!r})") from e
            if got is not None and int(got) != nbytes:
                raise KvikioUnusable(f"{path}: kvikio read {got} of {nbytes} bytes")

    def __iter__(self) -> Iterator[tuple[tuple[int, int], Any]]:
        """Yield ``((nav_start, nav_stop), raw uint8 device buffer)``; the buffer stays valid
        until the next item is requested."""
        cp = self.cp
        if not self.stacks:
            return
        slots = [cp.empty(self.slot_bytes, dtype=cp.uint8) for _ in range(2)]
        computed: list[Any] = [None, None]
        stream = cp.cuda.get_current_stream()
        pending: list[tuple[Any, str, int]] = []
        try:
            pending = self._issue(slots[0], *self.stacks[0])
            for k, (a, b) in enumerate(self.stacks):
                self._wait(pending)
                pending = []
                if k + 1 < len(self.stacks):
                    nxt = (k + 1) % 2
                    if computed[nxt] is not None:  # kvikio writes outside our stream order
                        computed[nxt].synchronize()
                    pending = self._issue(slots[nxt], *self.stacks[k + 1])
                yield (a, b), slots[k % 2][: (b - a) * self.frame_bytes]
                computed[k % 2] = stream.record()
                self.done = k + 1
        finally:
            # Reads still in flight must end before their buffers go back to the pool.
            for fut, _, _ in pending:
                try:
                    fut.get()
                except Exception as e:  # already failing; the first error is the one to report
                    log.debug("kvikio read during shutdown failed: %r", e)
            stream.synchronize()
            slots.clear()

    def close(self) -> None:
        """Close the files kvikio opened."""
        for f in self._files.values():
            try:
                f.close()
            except Exception as e:
                log.debug("closing a kvikio file failed: %r", e)
        self._files.clear()
