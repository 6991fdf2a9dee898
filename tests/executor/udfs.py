"""UDFs for executor tests. They live in an importable module (``tests.executor.udfs``) so that
dask worker processes unpickle them by reference, as they would a user's package."""

from __future__ import annotations

import os
import time

import numpy as np

from libertem_gpu import UDF

#: How many ``CountedPayload`` objects this process has unpickled (read from workers by tests).
UNPICKLED = 0


def _restore_payload(array: np.ndarray) -> CountedPayload:
    global UNPICKLED
    UNPICKLED += 1
    return CountedPayload(array)


def unpickled_count() -> int:
    """This process's count of unpickled payloads (run on workers with ``client.run``)."""
    return UNPICKLED


class CountedPayload:
    """A large constant UDF input that counts how often it is unpickled in each process."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __reduce__(self):
        return (_restore_payload, (self.array,))


class SlowSumUDF(UDF):
    """Sum over frames and per-frame sums, sleeping ``delay`` seconds per tile (to keep tasks in
    flight long enough to kill a worker or cancel a run)."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__(delay=delay)

    def get_result_buffers(self):
        return {
            "intensity": self.buffer(kind="sig", dtype="float64"),
            "per_frame": self.buffer(kind="nav", dtype="float64"),
            "pid": self.buffer(kind="single", extra_shape=(1,), dtype="int64", use="private"),
        }

    def process_tile(self, tile):
        if self.params.delay:
            time.sleep(self.params.delay)
        self.results.intensity[:] += tile.sum(axis=0, dtype=np.float64)
        self.results.per_frame[:] = tile.reshape(len(tile), -1).sum(axis=1, dtype=np.float64)
        self.results.pid[:] = os.getpid()

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity
        dest.per_frame[:] = src.per_frame


class MaskStackUDF(UDF):
    """Dot product of each frame with each of a stack of masks, the stack a UDF parameter (the
    large constant input that must travel once per worker)."""

    def __init__(self, masks: CountedPayload) -> None:
        super().__init__(masks=masks)

    def get_result_buffers(self):
        n = len(self.params.masks.array)
        return {"dots": self.buffer(kind="nav", extra_shape=(n,), dtype="float64")}

    def process_tile(self, tile):
        masks = self.params.masks.array
        flat = tile.reshape(len(tile), -1).astype(np.float64)
        self.results.dots[:] = flat @ masks.reshape(len(masks), -1).T


class FailingUDF(UDF):
    """Raises in the partition that holds frame ``bad_frame``."""

    def __init__(self, bad_frame: int = 0) -> None:
        super().__init__(bad_frame=bad_frame)

    def get_result_buffers(self):
        return {"n": self.buffer(kind="nav", dtype="float64")}

    def process_tile(self, tile):
        frames = self.meta.tile.frames
        if self.params.bad_frame in frames:
            raise ValueError(f"frame {self.params.bad_frame} is cursed")
        self.results.n[:] = 1


class EmptyUDF(UDF):
    """Does nothing per tile: measures the framework's per-task cost."""

    def get_result_buffers(self):
        return {"n": self.buffer(kind="single", dtype="int64")}

    def process_partition(self, partition):
        pass

    def merge(self, dest, src):
        dest.n[:] += src.n


#: Settings that :class:`SettingsUDF` reports, and the choices of the string-valued one.
IO_BACKENDS = ("auto", "pread", "direct", "kvikio")


class SettingsUDF(UDF):
    """Reports, per frame, the settings its worker saw: ``io_backend`` (as an index into
    :data:`IO_BACKENDS`), ``task_timeout_s`` and ``tile_bytes_cpu``."""

    def get_result_buffers(self):
        return {"seen": self.buffer(kind="nav", extra_shape=(3,), dtype="float64")}

    def process_frame(self, frame):
        from libertem_gpu import config

        timeout = config.get("task_timeout_s")
        self.results.seen[:] = (
            IO_BACKENDS.index(config.get("io_backend")),
            -1.0 if timeout is None else timeout,
            config.get("tile_bytes_cpu"),
        )
