"""The inline and threads executors."""

from __future__ import annotations

import threading
import time

import pytest

from libertem_gpu import Context
from libertem_gpu.errors import ExecutorError, RunTimeoutError
from libertem_gpu.executor import Executor, get_executor_class, make_executor
from libertem_gpu.executor.inline import InlineExecutor
from libertem_gpu.executor.threads import ThreadsExecutor


def test_registry():
    assert get_executor_class("inline") is InlineExecutor
    assert isinstance(make_executor("threads", n_threads=3), ThreadsExecutor)
    custom = InlineExecutor()
    assert make_executor(custom) is custom
    with pytest.raises(ExecutorError, match="valid executors: .*inline.*threads"):
        make_executor("mpi")


def test_inline_runs_in_order_in_this_thread():
    me = threading.get_ident()
    results = list(
        InlineExecutor().run_tasks([lambda i=i: (i, threading.get_ident()) for i in range(5)])
    )
    assert results == [(i, me) for i in range(5)]


def test_threads_yield_in_completion_order():
    """Tasks finish in an order set by events, not by sleeps (which a loaded machine reorders):
    all three run at once, and the next one in the chosen order may finish only once the
    previous one's result has been yielded."""
    order = [1, 2, 0]
    go = [threading.Event() for _ in order]

    def task(i):
        assert go[i].wait(timeout=60), "never released"
        return i

    ex = ThreadsExecutor(n_threads=3)
    out = []
    try:
        it = ex.run_tasks([lambda i=i: task(i) for i in range(3)])
        go[order[0]].set()
        for result in it:
            out.append(result)
            if len(out) < len(order):
                go[order[len(out)]].set()
    finally:
        ex.close()
    assert out == order


def test_threads_run_in_parallel():
    barrier = threading.Barrier(2, timeout=5)
    ex = ThreadsExecutor(n_threads=2)
    try:
        # Both tasks must be running at once to pass the barrier.
        assert sorted(ex.run_tasks([barrier.wait, barrier.wait])) == [0, 1]
    finally:
        ex.close()


def test_threads_exception_propagates_and_cancels_the_rest():
    started = []

    def task(i):
        started.append(i)
        if i == 0:
            raise ValueError("task 0 failed")
        time.sleep(0.05)
        return i

    ex = ThreadsExecutor(n_threads=1)
    try:
        with pytest.raises(ValueError, match="task 0 failed"):
            list(ex.run_tasks([lambda i=i: task(i) for i in range(50)]))
        assert list(ex.run_tasks([lambda: 7])) == [7]  # waits for the pool's queue to drain
        assert len(started) < 50  # queued tasks were cancelled
        assert list(ex.run_tasks([lambda: 7])) == [7]  # still usable
    finally:
        ex.close()


def test_closing_the_iterator_cancels_pending_tasks():
    ran = []
    ex = ThreadsExecutor(n_threads=1)
    try:
        it = ex.run_tasks([lambda i=i: (ran.append(i), time.sleep(0.02), i)[2] for i in range(40)])
        next(it)
        it.close()
        assert list(ex.run_tasks([lambda: 7])) == [7]  # one thread: runs after what was left
        assert len(ran) <= 4
    finally:
        ex.close()


def test_timeout():
    ex = ThreadsExecutor(n_threads=1)
    try:
        with pytest.raises(RunTimeoutError, match=r"within 0.05 s"):
            list(ex.run_tasks([lambda: time.sleep(0.5)], timeout=0.05))
    finally:
        ex.close()


def test_closed_executor_refuses_work():
    ex = ThreadsExecutor(n_threads=1)
    ex.close()
    with pytest.raises(ExecutorError, match="closed"):
        list(ex.run_tasks([lambda: 1]))


def test_context_accepts_an_executor_instance():
    class Recording(InlineExecutor):
        calls = 0

        def run_tasks(self, tasks, timeout=None):
            Recording.calls += 1
            return super().run_tasks(tasks, timeout)

    import numpy as np

    from tests.io.contract import CollectFramesUDF

    with Context(Recording()) as ctx:
        ds = ctx.load("memory", data=np.arange(24, dtype=np.uint8).reshape(2, 3, 2, 2))
        ctx.run_udf(dataset=ds, udf=CollectFramesUDF())
    assert Recording.calls == 1
    assert isinstance(ctx.executor, Executor)


def test_threads_limit_blas_to_one_thread_per_worker():
    # Workers already use every core: nested BLAS threads in mask GEMMs would oversubscribe.
    threadpoolctl = pytest.importorskip("threadpoolctl")
    blas = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        pytest.skip("no BLAS library loaded")
    ex = ThreadsExecutor(n_threads=2)
    try:
        for _ in range(2):  # the second run reuses the controller found on the first
            seen = list(
                ex.run_tasks(
                    [
                        lambda: [
                            i["num_threads"]
                            for i in threadpoolctl.threadpool_info()
                            if i["user_api"] == "blas"
                        ]
                    ]
                )
            )
            assert seen == [[1] * len(blas)]
    finally:
        ex.close()
    after = [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
    assert after == [i["num_threads"] for i in blas]
