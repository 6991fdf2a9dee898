"""The streaming pipeline of the GPU data path: read, copy and compute overlap.

A reader thread fills page-aligned (pinned) host buffers with raw frames as stored; the consuming
thread queues each buffer's host-to-device copy on a copy stream, makes the compute stream wait
for it (an event, no host synchronisation) and hands the device buffer out. ``n_slots`` buffer
pairs rotate, so while tile ``k`` is computed, tile ``k + 1`` is copied and tile ``k + 2`` read::

    reader thread:  read k+2 -> host[s2]        (waits until the copy out of host[s2] is done)
    copy stream:    host[s1] -> dev[s1]         (waits until compute on dev[s1] is done)
    compute stream: kernels on dev[s0]          (waits until the copy into dev[s0] is done)

Everything CUDA-specific sits behind :class:`DeviceOps`; :class:`HostOps` implements it with
plain host buffers, so that the scheduling (rotation, ordering, overlap, errors, shutdown) is
tested on machines without a GPU with the very code that runs on one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import BackendError, RunTimeoutError
from libertem_gpu.io.transports.direct import ALIGNMENT as DIRECT_ALIGNMENT

log = logging.getLogger(__name__)

__all__ = [
    "DeviceOps",
    "DeviceRing",
    "HostOps",
    "StreamingPipeline",
    "aligned_empty",
    "choose_slots",
]

#: Alignment of host buffers: a page, as O_DIRECT and fast DMA want.
ALIGNMENT = DIRECT_ALIGNMENT


def aligned_empty(nbytes: int, alignment: int = ALIGNMENT) -> np.ndarray:
    """A uint8 host buffer of ``nbytes`` whose address is a multiple of ``alignment``."""
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    skip = (-raw.ctypes.data) % alignment
    return raw[skip : skip + nbytes]


class DeviceOps(ABC):
    """What the pipeline needs from a device: buffers, an asynchronous copy, events.

    Events are opaque objects with a ``synchronize()`` method (host wait). ``None`` stands for
    "nothing to wait for".
    """

    #: Whether :meth:`alloc_host` gives page-locked memory (False after a fallback).
    pinned: bool = False

    @abstractmethod
    def alloc_host(self, nbytes: int) -> np.ndarray:
        """A page-aligned uint8 host buffer of ``nbytes`` (pinned where possible)."""

    @abstractmethod
    def alloc_device(self, nbytes: int) -> Any:
        """A uint8 device buffer of ``nbytes``; raises :class:`MemoryError` when out of memory."""

    @abstractmethod
    def free_device_bytes(self) -> int | None:
        """Free device memory, or None where unknown."""

    @abstractmethod
    def copy_h2d(self, dst: Any, src: np.ndarray, after: Any) -> Any:
        """Queue ``dst[:] = src`` on the copy stream once event ``after`` has happened; return
        an event that marks the copy's end."""

    @abstractmethod
    def compute_wait(self, event: Any) -> None:
        """Make the compute stream wait for ``event`` (no host wait)."""

    @abstractmethod
    def record_compute(self) -> Any:
        """An event marking the end of the work queued on the compute stream so far."""

    def release(self) -> None:  # noqa: B027 - optional hook
        """Give buffers back (to pools) after the run; also called after failures."""


class _Done:
    """An event that has already happened."""

    @staticmethod
    def synchronize() -> None:
        return None


class HostOps(DeviceOps):
    """:class:`DeviceOps` with host memory for both sides and synchronous copies.

    Used by tests (and usable as a CPU staging path): copies and compute are synchronous, so all
    events are already complete; reading still overlaps with compute through the reader thread.
    """

    pinned = False

    def __init__(self, device_bytes: int | None = None) -> None:
        self.device_bytes = device_bytes
        self.allocated: list[int] = []

    def alloc_host(self, nbytes: int) -> np.ndarray:
        return aligned_empty(nbytes)

    def alloc_device(self, nbytes: int) -> np.ndarray:
        if self.device_bytes is not None and sum(self.allocated) + nbytes > self.device_bytes:
            raise MemoryError(f"fake device out of memory allocating {nbytes} bytes")
        self.allocated.append(nbytes)
        return np.empty(nbytes, dtype=np.uint8)

    def free_device_bytes(self) -> int | None:
        if self.device_bytes is None:
            return None
        return self.device_bytes - sum(self.allocated)

    def copy_h2d(self, dst: Any, src: np.ndarray, after: Any) -> Any:
        if after is not None:
            after.synchronize()
        np.copyto(dst, src)
        return _Done()

    def compute_wait(self, event: Any) -> None:
        if event is not None:
            event.synchronize()

    def record_compute(self) -> Any:
        return _Done()

    def release(self) -> None:
        self.allocated.clear()


def choose_slots(
    slot_bytes: int, free_bytes: int | None, n_slots: int = 3, max_fraction: float = 0.5
) -> int:
    """How many buffer pairs of ``slot_bytes`` to use: ``n_slots`` where they fit in
    ``max_fraction`` of the free device memory, down to 2 (the least that overlaps).

    Raises
    ------
    BackendError
        If even two buffers do not fit in the free device memory.
    """
    if free_bytes is None:
        return n_slots
    fitting = int(free_bytes * max_fraction) // max(1, slot_bytes)
    if fitting >= 2:
        return max(2, min(n_slots, fitting))
    if 2 * slot_bytes <= free_bytes:
        return 2
    raise BackendError(
        f"a tile of {slot_bytes / 2**20:.1f} MiB needs two device buffers, but only "
        f"{free_bytes / 2**20:.1f} MiB of device memory are free; lower the tile size with "
        "libertem_gpu.config.set(tile_bytes_gpu=...)"
    )


_END = object()


class StreamingPipeline:
    """Stream a sequence of jobs through reused host and device buffers.

    Parameters
    ----------
    ops : DeviceOps
        Buffers, copies and events (CUDA, or :class:`HostOps`).
    jobs : sequence
        One entry per buffer load (e.g. ``(nav_start, nav_stop)`` of a frame stack), in order.
    nbytes : callable
        ``nbytes(job)``: bytes the job fills (at most ``slot_bytes``).
    fill : callable
        ``fill(job, host)``: write the job's bytes into the uint8 host buffer ``host`` (called in
        the reader thread; exceptions propagate to the consumer).
    slot_bytes : int
        Size of each buffer.
    n_slots : int
        Buffer pairs in rotation (at least 2; fewer are used where device memory is short).
    timeout_s : float
        How long the consumer waits for one buffer before :class:`RunTimeoutError`; also the
        limit for joining the reader thread at shutdown.

    Iterating yields ``(job, device_buffer)``, where ``device_buffer`` is a uint8 view of
    ``nbytes(job)`` bytes. It is valid until the next item is requested: work on it must be
    queued on the compute stream before then (it is, for CuPy code on the current stream).
    Closing the iterator (or an error) stops the reader thread and releases the buffers.
    """

    def __init__(
        self,
        ops: DeviceOps,
        jobs: Sequence[Any],
        nbytes: Callable[[Any], int],
        fill: Callable[[Any, np.ndarray], None],
        slot_bytes: int,
        n_slots: int = 3,
        timeout_s: float = 600.0,
    ) -> None:
        if n_slots < 2:
            raise ValueError(f"the pipeline needs at least 2 buffers to overlap, got {n_slots}")
        self.ops = ops
        self.jobs = list(jobs)
        self.nbytes = nbytes
        self.fill = fill
        self.slot_bytes = int(slot_bytes)
        self.n_slots = choose_slots(self.slot_bytes, ops.free_device_bytes(), n_slots)
        self.timeout_s = float(timeout_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._host: list[np.ndarray] = []
        self._device: list[Any] = []
        # Per slot: end of the last copy out of the host buffer / of compute on the device one.
        self._copied: list[Any] = []
        self._computed: list[Any] = []
        self._free: queue.Queue[int] = queue.Queue()
        self._filled: queue.Queue[Any] = queue.Queue()
        #: ``(event, job index, monotonic time)`` log for tests and tuning:
        #: read_start/read_end (reader thread), yield/resume (consumer).
        self.trace: list[tuple[str, int, float]] = []

    # --- buffers ------------------------------------------------------------------------------

    def _allocate(self) -> None:
        """Allocate the buffer pairs; on device memory exhaustion use fewer (down to 2)."""
        n = self.n_slots
        while True:
            try:
                for _ in range(len(self._device), n):
                    self._device.append(self.ops.alloc_device(self.slot_bytes))
                break
            except MemoryError as e:
                if len(self._device) >= 2:
                    log.warning(
                        "device memory ran out after %d of %d buffers of %.1f MiB; using %d",
                        len(self._device),
                        n,
                        self.slot_bytes / 2**20,
                        len(self._device),
                    )
                    n = len(self._device)
                    break
                self._device.clear()
                self.ops.release()
                raise BackendError(
                    f"cannot allocate two device buffers of {self.slot_bytes / 2**20:.1f} MiB "
                    f"({e}); lower the tile size with "
                    "libertem_gpu.config.set(tile_bytes_gpu=...)"
                ) from e
        self.n_slots = n
        self._host = [self.ops.alloc_host(self.slot_bytes) for _ in range(n)]
        self._copied = [None] * n
        self._computed = [None] * n
        for slot in range(n):
            self._free.put(slot)

    def _release(self) -> None:
        self._host.clear()
        self._device.clear()
        self._copied.clear()
        self._computed.clear()
        self.ops.release()

    # --- the reader thread --------------------------------------------------------------------

    def _get_free_slot(self) -> int | None:
        while not self._stop.is_set():
            try:
                return self._free.get(timeout=0.05)
            except queue.Empty:
                continue
        return None

    def _read_loop(self) -> None:
        k = -1
        try:
            for k, job in enumerate(self.jobs):
                slot = self._get_free_slot()
                if slot is None:
                    return
                event = self._copied[slot]
                if event is not None:  # the host buffer may still be read by a copy
                    event.synchronize()
                n = self.nbytes(job)
                self.trace.append(("read_start", k, time.monotonic()))
                self.fill(job, self._host[slot][:n])
                self.trace.append(("read_end", k, time.monotonic()))
                self._filled.put((k, slot))
            self._filled.put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            self._filled.put((k, e))

    # --- the consumer -------------------------------------------------------------------------

    def _next_filled(self) -> Any:
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                return self._filled.get(timeout=0.05)
            except queue.Empty:
                pass
            thread = self._thread
            if thread is not None and not thread.is_alive() and self._filled.empty():
                raise BackendError("the pipeline's reader thread ended without a result")
            if time.monotonic() > deadline:
                raise RunTimeoutError(
                    f"no data from the reader thread within {self.timeout_s:.0f} s "
                    "(storage stalled?)"
                )

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        if not self.jobs:
            return
        self._allocate()
        self._thread = threading.Thread(
            target=self._read_loop, name="libertem_gpu-pipeline-reader", daemon=True
        )
        self._thread.start()
        try:
            for k, job in enumerate(self.jobs):
                item = self._next_filled()
                if item is _END:
                    raise BackendError(f"reader thread ended after {k} of {len(self.jobs)} jobs")
                got, payload = item
                if isinstance(payload, BaseException):
                    raise payload
                if got != k:
                    raise BackendError(f"pipeline out of order: expected job {k}, got {got}")
                slot = payload
                n = self.nbytes(job)
                dev = self._device[slot][:n]
                # The copy into dev[slot] waits on the GPU until compute on it has finished.
                event = self.ops.copy_h2d(dev, self._host[slot][:n], after=self._computed[slot])
                self._copied[slot] = event
                self._free.put(slot)
                self.ops.compute_wait(event)
                self.trace.append(("yield", k, time.monotonic()))
                yield job, dev
                self.trace.append(("resume", k, time.monotonic()))
                self._computed[slot] = self.ops.record_compute()
        finally:
            self.close()

    def close(self) -> None:
        """Stop the reader thread (joined with the timeout) and release the buffers."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.timeout_s)
            if thread.is_alive():
                # A read stuck in the kernel cannot be interrupted; the thread is a daemon, and
                # its buffers stay referenced by it, so they are not released under it.
                warnings.warn(
                    f"pipeline reader thread still busy {self.timeout_s:.0f} s after shutdown",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return
        self._thread = None
        if self._device or self._host:
            # Pending copies must end before host buffers go back to a pool.
            for event in self._copied:
                if event is not None:
                    event.synchronize()
            self._release()


class DeviceRing:
    """Stream jobs through two device buffers that an asynchronous transport fills directly
    (kvikio), without host staging: while job ``k`` is computed, job ``k + 1`` is read.

    Parameters
    ----------
    cp : module
        CuPy (or a stand-in): ``cp.empty`` and ``cp.cuda.get_current_stream``.
    jobs : sequence
        One entry per buffer load, in order.
    nbytes : callable
        ``nbytes(job)``: bytes the job fills (at most ``slot_bytes``).
    submit : callable
        ``submit(job, device_buffer)``: start filling the uint8 device buffer; returns an object
        with ``wait()`` (raise on failure) and ``drain()`` (wait, ignoring errors).
    slot_bytes : int
        Size of each buffer.

    Iterating yields ``(job, device_buffer)``; the buffer stays valid until the next item is
    requested. :attr:`done` counts the jobs handed out, so that a caller whose transport fails
    can hand the rest to another path.
    """

    def __init__(
        self,
        cp: Any,
        jobs: Sequence[Any],
        nbytes: Callable[[Any], int],
        submit: Callable[[Any, Any], Any],
        slot_bytes: int,
    ) -> None:
        self.cp = cp
        self.jobs = list(jobs)
        self.nbytes = nbytes
        self.submit = submit
        self.slot_bytes = int(slot_bytes)
        #: Jobs handed out so far.
        self.done = 0

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        cp = self.cp
        if not self.jobs:
            return
        slots = [cp.empty(self.slot_bytes, dtype=cp.uint8) for _ in range(2)]
        computed: list[Any] = [None, None]
        stream = cp.cuda.get_current_stream()
        pending: Any = None
        try:
            pending = self.submit(self.jobs[0], slots[0])
            for k, job in enumerate(self.jobs):
                pending.wait()
                pending = None
                if k + 1 < len(self.jobs):
                    nxt = (k + 1) % 2
                    if computed[nxt] is not None:  # the transport writes outside stream order
                        computed[nxt].synchronize()
                    pending = self.submit(self.jobs[k + 1], slots[nxt])
                yield job, slots[k % 2][: self.nbytes(job)]
                computed[k % 2] = stream.record()
                self.done = k + 1
        finally:
            # Reads still in flight must end before their buffers go back to the pool.
            if pending is not None:
                pending.drain()
            stream.synchronize()
            slots.clear()
