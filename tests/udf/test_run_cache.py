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


def test_evicts_least_recently_used_by_count_and_bytes(empty_cache, monkeypatch):
    monkeypatch.setattr(run_cache, "MAX_BYTES", 3 * 800)
    monkeypatch.setattr(run_cache, "MAX_ENTRIES", 4)

    def build(value):
        return np.full(100, value, dtype=np.float64)  # 800 bytes

    def size(a):
        return a.nbytes

    for i in range(3):
        run_cache.shared_for_run(("run", i), lambda i=i: build(i), size)
    assert run_cache.shared_for_run(("run", 0), lambda: build(99), size)[0] == 0  # kept
    run_cache.shared_for_run(("run", 3), lambda: build(3), size)  # over the byte cap: 1 goes
    assert list(empty_cache) == [("run", 2), ("run", 0), ("run", 3)]
    big = np.zeros(1000)
    assert run_cache.shared_for_run(("run", 4), lambda: big, size) is big  # too big to keep
    assert ("run", 4) not in empty_cache
    for i in range(5, 10):  # sizeless entries: the count caps them
        run_cache.shared_for_run(("other", i), lambda i=i: i)
    assert len(empty_cache) == 4
    assert list(empty_cache)[-1] == ("other", 9)


def test_sizes_are_asked_again_for_values_that_grow(empty_cache, monkeypatch):
    monkeypatch.setattr(run_cache, "MAX_BYTES", 1000)
    grows = {"n": 10}
    first = run_cache.shared_for_run(("a",), lambda: "first", lambda _: grows["n"])
    grows["n"] = 900  # the first value grew after it was stored
    run_cache.shared_for_run(("b",), lambda: "second", lambda _: 200)
    assert list(empty_cache) == [("b",)]
    assert run_cache.shared_for_run(("a",), lambda: "again", lambda _: 10) == "again" != first


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
