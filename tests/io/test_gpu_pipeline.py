"""Scheduling of the GPU streaming pipeline, run on the CPU with host buffers standing in for
device ones (:class:`HostOps`): the same code as on a GPU."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from libertem_gpu.errors import BackendError, FileFormatError, RunTimeoutError
from libertem_gpu.io.gpu_pipeline import (
    ALIGNMENT,
    HostOps,
    StreamingPipeline,
    aligned_empty,
    choose_slots,
)


def _jobs(n: int, size: int = 64) -> list[tuple[int, int]]:
    return [(k, size - (k % 3)) for k in range(n)]  # (id, nbytes): sizes vary per job


def _fill(job: tuple[int, int], host: np.ndarray) -> None:
    host[:] = (np.arange(len(host)) * 7 + job[0] * 13) % 251


def _expected(job: tuple[int, int]) -> np.ndarray:
    out = np.empty(job[1], dtype=np.uint8)
    _fill(job, out)
    return out


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("libertem_gpu-pipeline")}


def test_order_contents_and_rotation():
    jobs = _jobs(11)
    pipe = StreamingPipeline(HostOps(), jobs, lambda j: j[1], _fill, slot_bytes=64, n_slots=3)
    seen = []
    buffers = set()
    for job, dev in pipe:
        np.testing.assert_array_equal(dev, _expected(job))
        seen.append(job)
        buffers.add(dev.__array_interface__["data"][0])
    assert seen == jobs
    assert len(buffers) == 3  # three device buffers, reused in rotation
    assert not _threads()
    assert pipe._device == [] and pipe._host == []  # released after the run


def test_host_buffers_are_page_aligned():
    for n in (1, 4095, 4096, 10000):
        assert aligned_empty(n).ctypes.data % ALIGNMENT == 0
        assert len(aligned_empty(n)) == n


def test_reading_overlaps_processing():
    """A slow reader and a slow consumer: job k+1 is read while job k is processed (shown by the
    pipeline's own trace, not by wall time, which a loaded machine stretches)."""
    delay = 0.05
    n = 6

    def slow_fill(job, host):
        time.sleep(delay)
        _fill(job, host)

    pipe = StreamingPipeline(HostOps(), _jobs(n), lambda j: j[1], slow_fill, 64, n_slots=2)
    for _job, _dev in pipe:
        time.sleep(delay)  # processing
    events = {(e, k): t for e, k, t in pipe.trace}
    overlapped = [events[("read_start", k + 1)] < events[("resume", k)] for k in range(n - 1)]
    assert all(overlapped), pipe.trace


def test_reader_never_overwrites_a_buffer_in_use():
    """With 2 slots, the reader may be at most 2 jobs ahead of the consumer."""
    n = 8
    pipe = StreamingPipeline(HostOps(), _jobs(n), lambda j: j[1], _fill, 64, n_slots=2)
    for job, dev in pipe:
        time.sleep(0.01)
        np.testing.assert_array_equal(dev, _expected(job))  # still intact after the pause
        started = [k for e, k, _ in pipe.trace if e == "read_start"]
        assert max(started) <= job[0] + 2


@pytest.mark.parametrize("fail_at", [0, 3])
def test_reader_errors_propagate(fail_at):
    def fill(job, host):
        if job[0] == fail_at:
            raise FileFormatError("data.raw: file ended early")
        _fill(job, host)

    pipe = StreamingPipeline(HostOps(), _jobs(6), lambda j: j[1], fill, 64)
    got = []
    with pytest.raises(FileFormatError, match="data.raw"):
        for job, _ in pipe:
            got.append(job[0])
    assert got == list(range(fail_at))
    assert not _threads()


def test_early_close_stops_the_reader():
    pipe = StreamingPipeline(HostOps(), _jobs(50), lambda j: j[1], _fill, 64)
    it = iter(pipe)
    next(it)
    it.close()
    assert not _threads()
    assert pipe._device == []


def test_consumer_error_shuts_down():
    pipe = StreamingPipeline(HostOps(), _jobs(10), lambda j: j[1], _fill, 64)
    with pytest.raises(ZeroDivisionError):
        for job, _ in pipe:
            if job[0] == 2:
                raise ZeroDivisionError
    assert not _threads()


def test_stalled_reader_times_out():
    release = threading.Event()

    def stuck(job, host):
        release.wait(60)  # without the timeout the run would end only when this returns

    pipe = StreamingPipeline(HostOps(), _jobs(3), lambda j: j[1], stuck, 64, timeout_s=0.3)
    with pytest.warns(RuntimeWarning, match="still busy"), pytest.raises(RunTimeoutError):
        for _ in pipe:
            pass
    assert not release.is_set()  # the timeout ended the run, not the reader
    release.set()
    # Let the released reader thread end, so that later tests count only their own threads
    # (under load it can still be running here).
    assert pipe._thread is not None
    pipe._thread.join(5)


def test_device_memory_limits():
    assert choose_slots(100, None) == 3
    assert choose_slots(100, 10_000) == 3
    assert choose_slots(100, 500) == 2
    with pytest.raises(BackendError, match="tile_bytes_gpu"):
        choose_slots(100, 150)
    # allocation failing after two buffers: the pipeline runs with two
    ops = HostOps(device_bytes=2 * 64 + 10)
    ops.free_device_bytes = lambda: None  # unknown free memory: the failure shows at allocation
    pipe = StreamingPipeline(ops, _jobs(5), lambda j: j[1], _fill, 64, n_slots=3)
    assert [j for j, _ in pipe] == _jobs(5)
    assert pipe.n_slots == 2
    ops = HostOps(device_bytes=64 + 10)
    ops.free_device_bytes = lambda: None
    with pytest.raises(BackendError, match="cannot allocate two device buffers"):
        list(StreamingPipeline(ops, _jobs(5), lambda j: j[1], _fill, 64))
    assert not _threads()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_asynchronous_streams_see_every_buffer_intact(seed):
    """Copies and kernels run asynchronously (tests/io/async_ops.py) over many more jobs than
    buffers: every kernel must see exactly its job's bytes. Without the compute stream's wait
    for the copy, a kernel reads a half-copied buffer; without the copy's wait for compute, a
    copy overwrites a buffer still being read; without the reader's wait for the copy, a
    buffer is refilled while it is being copied."""
    from tests.io.async_ops import AsyncOps

    ops = AsyncOps(seed)
    jobs = _jobs(40, size=4096)
    got: dict[int, np.ndarray] = {}
    try:
        pipe = StreamingPipeline(ops, jobs, lambda j: j[1], _fill, slot_bytes=4096, n_slots=3)
        for job, dev in pipe:

            def kernel(job=job, dev=dev):
                time.sleep(0.002)  # reads the buffer slowly, in two looks
                first = dev[: len(dev) // 2].copy()
                time.sleep(0.001)
                got[job[0]] = np.concatenate([first, dev[len(dev) // 2 :]])

            ops.compute(kernel)
        ops.finish()
    finally:
        ops.close()
    assert sorted(got) == [j[0] for j in jobs]
    bad = [j[0] for j in jobs if not np.array_equal(got[j[0]], _expected(j))]
    assert not bad, f"jobs whose buffer was not intact when computed on: {bad}"
