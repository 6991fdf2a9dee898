import gc
import sys

import numpy as np
import pytest

from libertem_gpu import Context, StdDevUDF, SumUDF, config, host_memory


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "uint16", "bool", "complex64"])
def test_zeros_is_zero_filled(dtype):
    out = host_memory.zeros((3, 70_001), dtype)
    assert out.shape == (3, 70_001)
    assert out.dtype == np.dtype(dtype)
    assert out.flags.c_contiguous and out.flags.owndata
    assert not out.any()


def test_zeros_of_int_shape_and_structured_dtype():
    assert host_memory.zeros(5).shape == (5,)
    structured = host_memory.zeros(4, [("a", "f8"), ("b", "i4")])
    assert structured["a"].sum() == 0 and structured["b"].sum() == 0


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_zeros_writes_its_pages():
    # numpy.zeros of this size only reserves pages; host_memory.zeros makes them resident.
    nbytes = 64 * 2**20
    gc.collect()  # nothing that earlier tests left behind is freed while this measures
    host_memory.release_pool()
    before = _resident_bytes()
    with config.set(host_pool_bytes=0):  # fresh memory, not a pooled block already resident
        out = host_memory.zeros(nbytes // 8)
    assert _resident_bytes() - before > nbytes // 2
    del out


BIG = host_memory.POOL_MIN_BYTES // 8 + 1001  # float64 elements: pooled, of an odd size


@pytest.fixture
def pool():
    """An empty pool before and after the test, with room for a few blocks."""
    host_memory.release_pool()
    with config.set(host_pool_bytes=4 * 8 * BIG):
        yield
    host_memory.release_pool()


def test_a_freed_block_is_cut_again_and_zeroed(pool):
    first = host_memory.zeros(BIG)
    address = first.ctypes.data
    first[:] = np.arange(BIG)
    del first
    again = host_memory.zeros((1, BIG))  # the same bytes, another shape
    assert again.ctypes.data == address
    assert again.shape == (1, BIG) and again.dtype == np.float64 and again.flags.c_contiguous
    assert again.flags.writeable and not again.any()
    assert host_memory.pooled_bytes() == 8 * BIG


def test_a_block_with_any_view_left_is_not_handed_out(pool):
    first = host_memory.zeros(BIG)
    first[:] = 7.0
    kept = first[10:20]  # a view of the block outlives the array
    del first
    second = host_memory.zeros(BIG)
    assert not second.any()
    np.testing.assert_array_equal(kept, 7.0)
    assert host_memory.pooled_bytes() == 2 * 8 * BIG
    del kept
    third = host_memory.zeros(BIG)  # now the first block is free again
    assert host_memory.pooled_bytes() == 2 * 8 * BIG
    assert not third.any() and not second.any()


def test_the_budget_bounds_the_blocks_and_zero_turns_the_pool_off(pool):
    held = [host_memory.empty(BIG) for _ in range(6)]  # four fit the budget, two do not
    assert host_memory.pooled_bytes() == 4 * 8 * BIG
    assert len({a.ctypes.data for a in held}) == 6
    del held
    # A request of another size drops free blocks, oldest first, to make room.
    other = host_memory.empty(2 * BIG)
    assert host_memory.pooled_bytes() == 2 * 8 * BIG + other.nbytes
    del other
    reusable = host_memory.pooled_bytes()
    with config.set(host_pool_bytes=0):
        fresh = host_memory.zeros(2 * BIG)  # off: not even a free block of the same size
        assert fresh.flags.owndata and host_memory.pooled_bytes() == reusable
    kept = host_memory.empty(2 * BIG)
    host_memory.release_pool()
    assert host_memory.pooled_bytes() == kept.nbytes  # still in use: kept


def test_small_and_structured_arrays_are_not_pooled(pool):
    assert host_memory.zeros(1000).flags.owndata
    assert host_memory.zeros(BIG, [("a", "f8"), ("b", "i4")]).flags.owndata
    assert host_memory.pooled_bytes() == 0


def test_results_held_by_the_caller_survive_later_runs(pool, rng):
    # Frame-sized buffers of 1024 x 1031 float64 (8 MiB) come from the pool: partition buffers
    # freed after their merge are cut again for the next partition, the next run and the
    # results; the results of the first run must not change under the second.
    with config.set(host_pool_bytes=2**30):
        data_a = rng.integers(0, 4000, (3, 2, 1024, 1031)).astype(np.uint16)
        data_b = rng.integers(0, 4000, (3, 2, 1024, 1031)).astype(np.uint16)
        with Context("threads") as ctx:
            ds_a = ctx.load("memory", data=data_a, num_partitions=3)
            ds_b = ctx.load("memory", data=data_b, num_partitions=3)
            first = ctx.run_udf(dataset=ds_a, udf=[SumUDF(), StdDevUDF()])
            want = [{k: np.array(v.data) for k, v in res.items()} for res in first]
            second = ctx.run_udf(dataset=ds_b, udf=[SumUDF(), StdDevUDF()])
        assert host_memory.pooled_bytes() > 0
    for res, kept in zip(first, want, strict=True):
        for name, array in kept.items():
            np.testing.assert_array_equal(res[name].data, array)
    for data, (sums, moments) in ((data_a, first), (data_b, second)):
        frames = data.reshape(-1, 1024, 1031).astype(np.float64)
        np.testing.assert_allclose(sums["intensity"].data, frames.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(moments["mean"].data, frames.mean(axis=0), rtol=1e-12)
        np.testing.assert_allclose(moments["var"].data, frames.var(axis=0), rtol=1e-9)
        np.testing.assert_allclose(moments["std"].data, frames.std(axis=0), rtol=1e-9)


def test_a_dask_worker_pools_at_most_an_eighth_of_its_memory_limit(pool, monkeypatch):
    import types

    class Worker:
        memory_manager = types.SimpleNamespace(memory_limit=2**30)

    def get_worker():
        return Worker()

    monkeypatch.setitem(sys.modules, "distributed", types.SimpleNamespace(get_worker=get_worker))
    with config.set(host_pool_bytes=2**31):
        assert host_memory._budget() == 2**27
        Worker.memory_manager = types.SimpleNamespace(memory_limit=None)  # no limit
        assert host_memory._budget() == 2**31

    def outside():
        raise ValueError("No worker found")

    monkeypatch.setitem(sys.modules, "distributed", types.SimpleNamespace(get_worker=outside))
    with config.set(host_pool_bytes=2**31):
        assert host_memory._budget() == 2**31


@pytest.mark.slow
def test_in_a_real_dask_worker_the_budget_follows_its_memory_limit(pool):
    pytest.importorskip("distributed")
    with Context("dask", n_workers=1, cluster_kwargs={"memory_limit": "1GiB"}) as ctx:
        budget = ctx.executor.client.submit(host_memory._budget, pure=False).result()
    assert budget == 2**30 // 8
