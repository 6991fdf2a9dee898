import multiprocessing
import threading

import numpy as np
import pytest

import libertem_gpu as lg
from libertem_gpu import Context, config, host_threads
from libertem_gpu.host_threads import MIN_CHUNK_ELEMENTS

# Enough elements for three chunks; not a multiple of the chunks' alignment.
N = 3 * MIN_CHUNK_ELEMENTS + 1234


def _recorder(together):
    calls = []
    lock = threading.Lock()
    # the chunks wait for each other: they run at the same time, or this times out
    barrier = threading.Barrier(together, timeout=30)

    def fn(*pieces):
        barrier.wait()
        with lock:
            calls.append((threading.get_ident(), [p.shape for p in pieces]))
        dest, src = pieces
        np.add(dest, src, out=dest)

    return calls, fn


def test_large_contiguous_arrays_are_cut_over_threads(rng):
    dest = rng.standard_normal(N)
    src = rng.standard_normal(dest.shape)
    want = dest + src
    calls, fn = _recorder(together=3)
    with config.set(client_threads=3):
        host_threads.map_flat(fn, dest, src)
    assert len(calls) == 3
    assert len({ident for ident, _ in calls}) == 3
    assert sum(shapes[0][0] for _, shapes in calls) == N  # every element once
    np.testing.assert_array_equal(dest, want)


@pytest.mark.parametrize(
    "case", ["one thread", "small", "strided", "different sizes", "not numpy", "no arrays"]
)
def test_otherwise_one_call_with_the_arrays_whole(rng, case):
    threads = 1 if case == "one thread" else 4
    size = 2 * MIN_CHUNK_ELEMENTS - 1 if case == "small" else N
    dest = rng.standard_normal(2 * size if case == "strided" else size)
    if case == "strided":
        dest = dest[::2]
    src = rng.standard_normal(1 if case == "different sizes" else size)
    seen = []

    def fn(*arrays):
        seen.append(arrays)

    args = (dest, list(src)) if case == "not numpy" else (dest, src)
    if case == "no arrays":
        args = ()
    with config.set(client_threads=threads):
        host_threads.map_flat(fn, *args)
    assert len(seen) == 1
    assert all(a is b for a, b in zip(seen[0], args, strict=True))


def test_an_error_in_a_chunk_is_raised_after_every_chunk_finished(rng):
    dest = rng.standard_normal(N)
    done = []
    lock = threading.Lock()

    def fn(piece):
        if piece[0] == dest[0]:
            raise ValueError("first chunk")
        threading.Event().wait(0.05)
        with lock:
            done.append(piece.size)

    with config.set(client_threads=3), pytest.raises(ValueError, match="first chunk"):
        host_threads.map_flat(fn, dest)
    assert len(done) == 2  # the other two chunks were not abandoned while running


def test_a_call_from_a_helper_thread_stays_on_that_thread(rng):
    # Each chunk of the outer call makes an inner one. A helper thread's runs whole on it (its
    # waiting on other helpers could deadlock the pool); the calling thread's is cut again.
    outer = rng.standard_normal(N)
    main = threading.get_ident()
    inner_calls = []

    def fn(piece):
        caller = threading.get_ident()
        host_threads.map_flat(lambda a: inner_calls.append((caller, threading.get_ident())), outer)

    with config.set(client_threads=2):
        host_threads.map_flat(fn, outer)
    from_helpers = [(c, t) for c, t in inner_calls if c != main]
    assert len(from_helpers) == 1 and from_helpers[0][0] == from_helpers[0][1]
    assert len([c for c, _ in inner_calls if c == main]) == 2


def test_threads_setting():
    with config.set(client_threads=5):
        assert host_threads.threads() == 5
    with config.set(client_threads=0):
        assert 1 <= host_threads.threads() <= host_threads.MAX_AUTO_THREADS
    with config.set(client_threads=-1), pytest.raises(ValueError, match="client_threads"):
        host_threads.threads()


def _in_forked_child(queue):
    data = np.arange(N, dtype=np.float64)
    other = np.ones(N)
    with config.set(client_threads=2):
        host_threads.combine_into(np.add, data, other)
    queue.put(float(data.sum()))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs the fork start method"
)
def test_a_forked_child_starts_its_own_threads():
    with config.set(client_threads=2):  # the parent's helper threads exist before the fork
        host_threads.map_flat(lambda a: None, np.zeros(N))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_in_forked_child, args=(queue,))
    child.start()
    try:
        total = queue.get(timeout=60)  # with the parent's executor, the child's work never ran
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    assert total == N * (N - 1) / 2 + N


@pytest.mark.parametrize("ufunc", [np.add, np.maximum, np.minimum])
def test_combine_into_equals_the_ufunc(rng, ufunc):
    dest = rng.standard_normal((640, N // 640))
    src = rng.standard_normal(dest.shape)
    want = ufunc(dest, src)
    with config.set(client_threads=3):
        host_threads.combine_into(ufunc, dest, src)
    np.testing.assert_array_equal(dest, want)


def test_merges_and_results_are_the_same_bits_on_any_number_of_threads(rng):
    # Frames of 768 x 700 (537,600 pixels): the merges and StdDevUDF's results are cut in
    # chunks on the client; two partitions, so that merges combine real partial results.
    data = rng.integers(0, 4000, (5, 768, 700)).astype(np.uint16)
    frames = data.astype(np.float64)
    udfs = [lg.SumUDF, lg.StdDevUDF, lg.MaxUDF, lg.MinUDF, lg.LogsumUDF]
    got = {}
    with Context("threads") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        for threads in (1, 3):
            with config.set(client_threads=threads):
                got[threads] = ctx.run_udf(dataset=ds, udf=[u() for u in udfs])
    for one, three in zip(got[1], got[3], strict=True):
        for name in one:
            np.testing.assert_array_equal(one[name].data, three[name].data)
    total, stats, high, low, logsum = got[3]
    np.testing.assert_allclose(total["intensity"].data, frames.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats["var"].data, frames.var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(stats["std"].data, frames.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(stats["mean"].data, frames.mean(axis=0), rtol=1e-12)
    np.testing.assert_array_equal(high["intensity"].data, data.max(axis=0))
    np.testing.assert_array_equal(low["intensity"].data, data.min(axis=0))
    lows = frames.min(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(
        logsum["logsum"].data, np.log(frames - lows + 1).sum(axis=0), rtol=1e-6
    )


def test_the_automatic_count_stays_within_a_limit():
    with config.set(client_threads=0):
        with host_threads.limited_to(1):
            assert host_threads.threads() == 1
        with host_threads.limited_to(None):
            assert host_threads.threads() == min(
                host_threads.MAX_AUTO_THREADS, host_threads._available_cores()
            )
    with config.set(client_threads=3), host_threads.limited_to(1):
        assert host_threads.threads() == 3  # a count the caller set wins


@pytest.mark.parametrize(("executor", "helpers"), [("inline", False), ("threads", True)])
def test_a_run_uses_no_more_client_threads_than_its_executor_has_workers(
    rng, monkeypatch, executor, helpers
):
    # Frames large enough for chunks; one worker (inline, or one thread) keeps merges and
    # results on the calling thread, two let them use a helper.
    data = rng.integers(0, 4000, (4, 768, 700)).astype(np.uint16)
    asked = []
    real = host_threads._POOL.executor
    monkeypatch.setattr(host_threads._POOL, "executor", lambda n: asked.append(n) or real(n))
    monkeypatch.setattr(host_threads, "_available_cores", lambda: 4)
    kwargs = {"n_threads": 2} if executor == "threads" else {}
    with config.set(client_threads=0), Context(executor, **kwargs) as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        result = ctx.run_udf(dataset=ds, udf=lg.StdDevUDF())
    np.testing.assert_allclose(result["var"].data, data.astype(np.float64).var(axis=0), rtol=1e-9)
    assert (asked != []) is helpers
    assert all(n == 1 for n in asked)  # two workers: one helper beside the calling thread
