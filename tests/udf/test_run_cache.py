"""The per-run cache that the partitions of one run share in a worker."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from libertem_gpu.udf import run_cache


@pytest.fixture
def empty_cache(monkeypatch):
    monkeypatch.setattr(run_cache, "_ENTRIES", type(run_cache._ENTRIES)())
    return run_cache._ENTRIES


def test_evicts_earlier_runs_least_recently_used_by_count_and_bytes(empty_cache, monkeypatch):
    # Keys start with their run; each store here comes from a new run.
    monkeypatch.setattr(run_cache, "MAX_BYTES", 2 * 800)
    monkeypatch.setattr(run_cache, "MAX_ENTRIES", 4)

    def build(value):
        return np.full(100, value, dtype=np.float64)  # 800 bytes

    def size(a):
        return a.nbytes

    for i in range(3):
        run_cache.shared_for_run((i, "masks"), lambda i=i: build(i), size)
    assert run_cache.shared_for_run((0, "masks"), lambda: build(99), size)[0] == 0  # kept
    run_cache.shared_for_run((3, "masks"), lambda: build(3), size)  # others over the cap: 1 goes
    assert list(empty_cache) == [(2, "masks"), (0, "masks"), (3, "masks")]
    for i in range(5, 10):  # sizeless entries: the count caps them
        run_cache.shared_for_run((i, "runs"), lambda i=i: i)
    assert len(empty_cache) == 4
    assert list(empty_cache)[-1] == (9, "runs")


def test_the_latest_run_keeps_its_values_whatever_their_size(empty_cache, monkeypatch):
    # 16 masks of 4096 x 4096 frames are 1 GiB: built again in every partition, they cost a
    # fifth of the run. They stay until another run stores a value, or the run is forgotten.
    monkeypatch.setattr(run_cache, "MAX_BYTES", 1000)
    big = np.zeros(1000)
    assert run_cache.shared_for_run(("a", 0, "masks"), lambda: big, lambda v: v.nbytes) is big
    again = run_cache.shared_for_run(("a", 0, "masks"), lambda: np.ones(1000), lambda v: v.nbytes)
    assert again is big
    run_cache.shared_for_run(("a", 1, "runs"), lambda: 1)  # the same run: both stay
    assert list(empty_cache) == [("a", 0, "masks"), ("a", 1, "runs")]
    run_cache.shared_for_run(("b", 0, "masks"), lambda: np.zeros(10), lambda v: v.nbytes)
    assert list(empty_cache) == [("a", 1, "runs"), ("b", 0, "masks")]  # too big for an old run
    run_cache.forget_run("b")
    assert list(empty_cache) == [("a", 1, "runs")]
    run_cache.forget_run("not a run")
    assert list(empty_cache) == [("a", 1, "runs")]


def test_sizes_are_asked_again_for_values_that_grow(empty_cache, monkeypatch):
    monkeypatch.setattr(run_cache, "MAX_BYTES", 800)
    grows = {"n": 10}
    first = run_cache.shared_for_run(("a",), lambda: "first", lambda _: grows["n"])
    grows["n"] = 900  # the first value grew after it was stored
    run_cache.shared_for_run(("b",), lambda: "second", lambda _: 200)
    assert list(empty_cache) == [("b",)]
    assert run_cache.shared_for_run(("a",), lambda: "again", lambda _: 10) == "again" != first


def test_a_run_forgets_its_values_when_it_ends():
    from libertem_gpu import ApplyMasksUDF, Context

    data = np.random.default_rng(2).random((3, 4, 5, 6)).astype(np.float32)
    masks = np.random.default_rng(3).random((2, 5, 6)).astype(np.float32)
    before = set(run_cache._ENTRIES)
    with Context("threads", n_threads=2) as ctx:
        ds = ctx.load("memory", data=data, num_partitions=4)
        got = ctx.run_udf(dataset=ds, udf=ApplyMasksUDF(mask_factories=lambda: masks))
    np.testing.assert_allclose(
        got["intensity"].data, np.einsum("abij,kij->abk", data, masks), rtol=1e-5
    )
    assert set(run_cache._ENTRIES) <= before


def test_concurrent_partitions_build_once(empty_cache):
    start = threading.Barrier(4)
    builds = []
    got = []

    def build():
        builds.append(1)
        time.sleep(0.05)  # the others ask meanwhile
        return object()

    def partition():
        start.wait()
        got.append(run_cache.shared_for_run(("k",), build))

    threads = [threading.Thread(target=partition) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) == 1
    assert len({id(v) for v in got}) == 1
    assert not run_cache._BUILDING


def test_a_failed_build_raises_and_the_next_partition_tries_again(empty_cache):
    def fails():
        raise RuntimeError("no masks")

    with pytest.raises(RuntimeError, match="no masks"):
        run_cache.shared_for_run(("k",), fails)
    assert run_cache.shared_for_run(("k",), lambda: 5) == 5
    assert not run_cache._BUILDING


def test_no_device_on_the_cpu():
    class Meta:
        device_class = "cpu"

    assert run_cache.backend_device(Meta()) is None


def test_array_bytes_finds_arrays_in_containers_and_attributes():
    class Slotted:
        __slots__ = ("a", "b")

        def __init__(self):
            self.a = np.zeros(10)  # 80
            self.b = (np.zeros(3, np.float32), "text", 7)  # 12

    class Plain:
        def __init__(self):
            self.inner = Slotted()
            self.table = {"x": np.zeros(2, np.uint8)}  # 2

    assert run_cache.array_bytes((Plain(), [np.zeros(5)], None)) == 80 + 12 + 2 + 40
