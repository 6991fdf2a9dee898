"""The GPU backend: CuPy arrays, CuPy / Numba-CUDA kernels, tiles streamed into device memory.

Tiles come from one of three data paths, chosen per partition:

- **resident**: a memory data set made from a CuPy array is sliced in place (no host round trip);
- **kvikio** (``io_backend="kvikio"``, or ``"auto"`` where GPUDirect Storage is active): file
  bytes read straight into device buffers (:mod:`libertem_gpu.io.transports.kvikio`);
- **pinned** (``io_backend="pread"``/``"direct"``, the default otherwise): the overlapped
  pipeline of :mod:`libertem_gpu.io.gpu_pipeline`, raw bytes in pinned buffers, copied on a
  copy stream, byte-swapped on the device where big-endian.

Work runs on a compute stream that the backend makes CuPy's current stream in its worker thread
for the length of a partition task, so that UDF code (``self.xp``) and kernels queue behind the
copies without host synchronisation.
"""

from __future__ import annotations

import itertools
import logging
import threading
import warnings
from collections.abc import Generator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu import config
from libertem_gpu.backends import device as _device
from libertem_gpu.backends.base import Backend
from libertem_gpu.io.gpu_pipeline import DeviceOps, DeviceRing, StreamingPipeline, aligned_empty
from libertem_gpu.io.host_tiles import HostStackReader
from libertem_gpu.io.transports import TransportChoice, choose_transport
from libertem_gpu.io.transports.base import Transport, log_once

if TYPE_CHECKING:
    from libertem_gpu.io.dataset import DataSet
    from libertem_gpu.io.tiles import TilePlan, TileSlice

log = logging.getLogger(__name__)

__all__ = ["CupyBackend", "CupyOps"]


def _device_id(array: Any, default: int) -> int:
    """The device a CuPy array lives on (``default`` for arrays that do not say)."""
    device = getattr(array, "device", None)
    return default if device is None else int(device.id)


_thread_device = threading.local()
_round_robin = itertools.count()


class CupyOps(DeviceOps):
    """CUDA implementation of the pipeline's :class:`~libertem_gpu.io.gpu_pipeline.DeviceOps`:
    pinned host buffers from CuPy's pinned pool, device buffers from its memory pool, copies on
    a copy stream, ordering by events."""

    def __init__(self, cp: ModuleType, compute_stream: Any, copy_stream: Any = None) -> None:
        self.cp = cp
        self.compute = compute_stream
        self.copy_stream = copy_stream or cp.cuda.Stream(non_blocking=True)
        self.pinned = True
        self._host_mem: list[Any] = []

    def alloc_host(self, nbytes: int) -> np.ndarray:
        if self.pinned:
            try:
                mem = self.cp.cuda.alloc_pinned_memory(nbytes)
                self._host_mem.append(mem)
                # cudaHostAlloc returns page-aligned memory.
                return np.frombuffer(mem, dtype=np.uint8, count=nbytes)
            except Exception as e:
                self.pinned = False
                warnings.warn(
                    f"cannot allocate {nbytes / 2**20:.1f} MiB of pinned host memory ({e!r}); "
                    "using pageable buffers (host-to-device copies will not overlap)",
                    RuntimeWarning,
                    stacklevel=2,
                )
        return aligned_empty(nbytes)

    def alloc_device(self, nbytes: int) -> Any:
        cp = self.cp
        try:
            return cp.empty(nbytes, dtype=cp.uint8)
        except cp.cuda.memory.OutOfMemoryError as e:
            cp.get_default_memory_pool().free_all_blocks()
            try:
                return cp.empty(nbytes, dtype=cp.uint8)
            except cp.cuda.memory.OutOfMemoryError:
                raise MemoryError(str(e)) from e

    def free_device_bytes(self) -> int | None:
        free, _ = self.cp.cuda.runtime.memGetInfo()
        pool = self.cp.get_default_memory_pool()
        return int(free) + int(pool.free_bytes())

    def copy_h2d(self, dst: Any, src: np.ndarray, after: Any) -> Any:
        stream = self.copy_stream
        if after is not None:
            stream.wait_event(after)
        dst.set(src, stream=stream)
        return stream.record()

    def compute_wait(self, event: Any) -> None:
        self.compute.wait_event(event)

    def record_compute(self) -> Any:
        return self.compute.record()

    def release(self) -> None:
        self.copy_stream.synchronize()
        self._host_mem.clear()  # back to CuPy's pinned pool, reused by the next partition


class CupyBackend(Backend):
    """Process tiles on a CUDA GPU with CuPy and Numba-CUDA kernels."""

    name = "cupy"
    device_class = "cuda"
    worker_resource = "CUDA"
    tile_bytes_setting = "tile_bytes_gpu"
    # The pinned pipeline keeps three tiles in flight: eight per partition spend most of the
    # partition in steady state rather than filling and draining.
    min_tiles_per_partition = 8

    @classmethod
    def is_available(cls) -> bool:
        return _device.probe().available

    @classmethod
    def unavailable_reason(cls) -> str:
        return _device.probe().reason or "backend 'cupy' is not available"

    @classmethod
    def select_devices(cls, devices: Any) -> tuple[int, ...] | None:
        """The devices named in ``Context(devices=...)``, checked against those CUDA finds."""
        return _device.check_devices(devices)

    def __init__(self, devices: tuple[int, ...] | None = None) -> None:
        self.cp = _device.require_cupy()
        cp = self.cp
        if devices:
            # Each worker thread keeps one device per device list, taken round-robin, so that
            # its streams and memory pool stay on that device from task to task.
            chosen = _thread_device.__dict__.setdefault("chosen", {})
            key = tuple(devices)
            if key not in chosen:
                chosen[key] = key[next(_round_robin) % len(key)]
            cp.cuda.Device(chosen[key]).use()
        self.device_index = int(cp.cuda.Device().id)
        self._prev_stream = cp.cuda.get_current_stream()
        # One compute and one copy stream per worker thread and device, reused by every task:
        # CuPy's memory pool keeps freed blocks per stream, so fresh streams would strand them.
        streams = _thread_device.__dict__.setdefault("streams", {})
        if self.device_index not in streams:
            streams[self.device_index] = (
                cp.cuda.Stream(non_blocking=True),
                cp.cuda.Stream(non_blocking=True),
            )
        self.stream, self.copy_stream = streams[self.device_index]
        self.stream.use()
        #: The data path that served most bytes of the last partition ("resident", "peer",
        #: "pinned", "direct", "kvikio"); :meth:`io_paths` has the bytes of each.
        self.io_path = ""
        self._io_bytes: dict[str, int] = {}

    @property
    def xp(self) -> ModuleType:
        return self.cp

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self.cp.zeros(shape, dtype=dtype)

    def to_numpy(self, array: Any) -> np.ndarray:
        if isinstance(array, self.cp.ndarray):
            return self.cp.asnumpy(array, stream=self.stream)
        return np.asarray(array)

    def free_device_bytes(self) -> int | None:
        """The device's free memory and the blocks CuPy's pool holds free."""
        free, _ = self.cp.cuda.runtime.memGetInfo()
        return int(free) + int(self.cp.get_default_memory_pool().free_bytes())

    def close(self) -> None:
        try:
            self.stream.synchronize()
        finally:
            self._prev_stream.use()

    # --- tiles ---------------------------------------------------------------------------------

    def io_paths(self) -> dict[str, int]:
        """Bytes of the last partition's frame stacks by the path that brought them:
        ``"resident"`` (a CuPy array on this device), ``"peer"`` (one on another device),
        ``"kvikio"``, ``"direct"`` (pinned buffers filled with ``O_DIRECT``) or ``"pinned"``
        (pinned buffers filled through the page cache, ``O_DIRECT`` refused included)."""
        return dict(self._io_bytes)

    def _served(self, path: str, nbytes: int) -> None:
        self._io_bytes[path] = self._io_bytes.get(path, 0) + int(nbytes)
        self.io_path = max(self._io_bytes, key=self._io_bytes.__getitem__)

    def iter_tiles(self, dataset: DataSet, plan: TilePlan) -> Iterator[tuple[TileSlice, Any]]:
        reader = dataset.get_reader()
        self._io_bytes = {}
        try:
            if getattr(reader, "on_device", False):
                yield from self._resident_tiles(dataset, reader, plan)
            else:
                yield from self._streamed_tiles(dataset, reader, plan)
        finally:
            reader.close()

    @staticmethod
    def _split(plan: TilePlan, nav_start: int, nav_stop: int, stack: Any) -> Iterator[Any]:
        for tile in plan.tiles_of_stack(nav_start, nav_stop):
            if tile.sig_rows is None:
                yield tile, stack
            else:
                yield tile, stack[:, tile.sig_rows[0] : tile.sig_rows[1]]

    def _resident_tiles(self, dataset: DataSet, reader: Any, plan: TilePlan) -> Iterator[Any]:
        cp = self.cp
        sources = plan.frames + dataset.sync_offset
        valid = (sources >= 0) & (sources < dataset.image_count)
        everything = reader.device_view(0, dataset.image_count)
        home = _device_id(everything, self.device_index)
        self._wait_for_producers(home)
        path = "resident" if home == self.device_index else "peer"
        if home != self.device_index:
            log_once(
                f"resident-peer-{home}-{self.device_index}",
                "data on device %d read by a worker on device %d: copied stack by stack",
                home,
                self.device_index,
            )
        for a, b in plan.frame_stacks():
            src = sources[a:b]
            if valid[a:b].all() and src[-1] - src[0] == b - a - 1:
                # On another device, cp.asarray copies it to this one (peer copy).
                stack = cp.asarray(reader.device_view(int(src[0]), int(src[-1]) + 1))
            else:  # roi gaps or frames outside the source: gather on the device
                stack = cp.zeros((b - a, *dataset.sig_shape), dtype=dataset.dtype)
                keep = np.flatnonzero(valid[a:b])
                if len(keep):
                    stack[cp.asarray(keep)] = self._gather(everything, src[keep], home)
            self._served(path, (b - a) * dataset.frame_bytes)
            yield from self._split(plan, a, b, stack)

    def _wait_for_producers(self, home: int) -> None:
        """Make the compute stream wait for what is queued on the resident data's device.

        The array may have been filled on CuPy's default (null) stream or on the stream that
        was current when this backend was set up (a user's array, the benchmark's); the compute
        stream is non-blocking, so it would not wait for the null stream by itself.
        """
        cp = self.cp
        with cp.cuda.Device(home):
            producers = [cp.cuda.Stream.null]
            current = (
                self._prev_stream if home == self.device_index else cp.cuda.get_current_stream()
            )
            if current.ptr != producers[0].ptr:
                producers.append(current)
            events = [stream.record() for stream in producers]
        for event in events:
            self.stream.wait_event(event)

    def _gather(self, everything: Any, frames: np.ndarray, home: int) -> Any:
        """Frames ``frames`` of the resident array, on this backend's device."""
        cp = self.cp
        if home == self.device_index:
            return everything[cp.asarray(frames)]
        with cp.cuda.Device(home):  # gathered where the data lives, then one peer copy
            picked = everything[cp.asarray(frames)]
            ready = cp.cuda.get_current_stream().record()
        self.stream.wait_event(ready)
        local = cp.asarray(picked)
        # ``picked`` goes back to its device's pool when this returns: the copy must be done.
        self.stream.synchronize()
        return local

    def _to_native(self, raw: Any, dataset: DataSet, n: int) -> Any:
        """View the raw device bytes of ``n`` frames as native-order frames (swapping bytes on
        the device for big-endian data)."""
        storage = dataset.storage_dtype
        isz = storage.itemsize
        if not storage.isnative and isz > 1:
            raw = self.cp.ascontiguousarray(raw.reshape(-1, isz)[:, ::-1]).reshape(-1)
        return raw.view(dataset.dtype).reshape(n, *dataset.sig_shape)

    def _streamed_tiles(self, dataset: DataSet, reader: Any, plan: TilePlan) -> Iterator[Any]:
        choice = choose_transport(str(config.get("io_backend")), reader.raw_layout(), repr(dataset))
        reader.use_transport(choice.host)  # the reader owns it from here on, and closes it
        stacks = list(plan.frame_stacks())
        slot_bytes = plan.scheme.depth * dataset.frame_bytes
        if choice.device is not None:
            done = yield from self._kvikio_tiles(dataset, reader, plan, stacks, slot_bytes, choice)
            stacks = stacks[done:]
        if not stacks:
            return
        yield from self._pinned_tiles(dataset, reader, plan, stacks, slot_bytes, choice.host)

    def _kvikio_tiles(
        self,
        dataset: DataSet,
        reader: Any,
        plan: TilePlan,
        stacks: list[tuple[int, int]],
        slot_bytes: int,
        choice: TransportChoice,
    ) -> Generator[Any, None, int]:
        """Serve stacks through the device transport; return how many were served (all, or
        those before a failure, after which the pinned pipeline takes over with a warning)."""
        from libertem_gpu.io.transports.kvikio import KvikioUnusable

        transport = choice.device
        assert transport is not None
        host = HostStackReader(dataset, reader, plan, zero_copy=False)
        layout = reader.raw_layout()
        frame_bytes = dataset.frame_bytes

        def submit(job: tuple[int, int], slot: Any) -> Any:
            a, b = job
            pending = transport.submit(slot, host.byte_ranges(layout, a, b))
            blank = host.blank(a, b)
            if len(blank):  # frames outside the file (sync_offset) are zero
                slot[: (b - a) * frame_bytes].reshape(b - a, frame_bytes)[
                    self.cp.asarray(blank)
                ] = 0
            return pending

        ring = DeviceRing(
            self.cp, stacks, lambda job: (job[1] - job[0]) * frame_bytes, submit, slot_bytes
        )
        try:
            for (a, b), raw in ring:
                self._served("kvikio", (b - a) * frame_bytes)
                yield from self._split(plan, a, b, self._to_native(raw, dataset, b - a))
        except KvikioUnusable as e:
            warnings.warn(
                f"kvikio failed after {ring.done} of {len(stacks)} tile stacks: {e}; the "
                "pinned pread pipeline reads the rest",
                RuntimeWarning,
                stacklevel=2,
            )
        finally:
            transport.close()
        return ring.done

    def _pinned_tiles(
        self,
        dataset: DataSet,
        reader: Any,
        plan: TilePlan,
        stacks: list[tuple[int, int]],
        slot_bytes: int,
        transport: Transport,
    ) -> Iterator[Any]:
        host = HostStackReader(dataset, reader, plan, zero_copy=False)
        frame_bytes = dataset.frame_bytes
        storage = dataset.storage_dtype

        def fill(job: tuple[int, int], buf: np.ndarray) -> None:
            a, b = job
            host.read_stack(a, b, buf.view(storage).reshape(b - a, *dataset.sig_shape))

        timeout = config.get("task_timeout_s") or 600.0
        pipeline = StreamingPipeline(
            CupyOps(self.cp, self.stream, self.copy_stream),
            stacks,
            nbytes=lambda job: (job[1] - job[0]) * frame_bytes,
            fill=fill,
            slot_bytes=slot_bytes,
            timeout_s=float(timeout),
        )
        served = 0
        try:
            for (a, b), raw in pipeline:
                served += (b - a) * frame_bytes
                yield from self._split(plan, a, b, self._to_native(raw, dataset, b - a))
        finally:
            pipeline.close()
            # What O_DIRECT filled, as the transport counted it (it falls back to the page
            # cache where O_DIRECT is refused); the rest came through the page cache.
            direct = min(served, transport.bytes_read.get("direct", 0))
            for path, nbytes in (("direct", direct), ("pinned", served - direct)):
                if nbytes:
                    self._served(path, nbytes)
