"""A stand-in device whose copies and kernels really run asynchronously: each stream is a thread
that runs its queued work in order, with small random delays, and events are set when a stream
reaches them. A pipeline that forgets a wait reads a buffer before its copy landed, or overwrites
one still being computed on, and the results come out wrong."""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from libertem_gpu.io.gpu_pipeline import DeviceOps, aligned_empty


class Event:
    """Set when its stream reaches it; ``synchronize`` waits on the host."""

    def __init__(self) -> None:
        self._done = threading.Event()

    def set(self) -> None:
        self._done.set()

    def synchronize(self) -> None:
        if not self._done.wait(timeout=60):
            raise TimeoutError("a stand-in stream never reached this event")


class Stream:
    """Runs queued callables in order in its own thread."""

    def __init__(self, name: str, seed: int) -> None:
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._random = random.Random(seed)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            work = self._queue.get()
            if work is None:
                return
            time.sleep(self._random.uniform(0, 0.003))  # the device is busy elsewhere
            work()

    def put(self, work: Callable[[], None]) -> None:
        self._queue.put(work)

    def wait_for(self, event: Event) -> None:
        self.put(event.synchronize)

    def record(self) -> Event:
        event = Event()
        self.put(event.set)
        return event

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)


class AsyncOps(DeviceOps):
    """:class:`DeviceOps` whose copy stream and compute stream are threads (see module doc).

    ``compute(fn)`` queues "kernel" work on the compute stream, as CuPy code does on the current
    stream."""

    pinned = False

    def __init__(self, seed: int = 0) -> None:
        self.copy_stream = Stream("stand-in-copy", seed)
        self.compute_stream = Stream("stand-in-compute", seed + 1)

    def alloc_host(self, nbytes: int) -> np.ndarray:
        return aligned_empty(nbytes)

    def alloc_device(self, nbytes: int) -> np.ndarray:
        return np.zeros(nbytes, dtype=np.uint8)

    def free_device_bytes(self) -> int | None:
        return None

    def copy_h2d(self, dst: Any, src: np.ndarray, after: Any) -> Any:
        if after is not None:
            self.copy_stream.wait_for(after)

        def copy() -> None:  # in two halves, so that a racing reader sees torn buffers
            half = len(src) // 2
            np.copyto(dst[:half], src[:half])
            time.sleep(0.001)
            np.copyto(dst[half:], src[half:])

        self.copy_stream.put(copy)
        return self.copy_stream.record()

    def compute_wait(self, event: Any) -> None:
        self.compute_stream.wait_for(event)

    def record_compute(self) -> Any:
        return self.compute_stream.record()

    def compute(self, work: Callable[[], None]) -> None:
        self.compute_stream.put(work)

    def finish(self) -> None:
        """Wait until both streams have run everything queued so far."""
        self.compute_stream.record().synchronize()
        self.copy_stream.record().synchronize()

    def close(self) -> None:
        self.copy_stream.close()
        self.compute_stream.close()
