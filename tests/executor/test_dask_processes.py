"""Processes of a dask cluster: workers killed, stopped and restarted mid-run, a killed
scheduler, ``libertem-gpu worker`` joining a cluster and leaving no orphans, and a killed client
taking its local cluster with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

from libertem_gpu import Context, TilingScheme, config
from libertem_gpu.errors import ExecutorError, RunTimeoutError
from tests.conftest import random_data
from tests.executor import udfs
from tests.executor.clusters import (
    BIN,
    WAIT_S,
    assert_same,
    cli_env,
    start_process,
    start_scheduler,
    stop,
)


@pytest.fixture(scope="module")
def ref_ctx():
    ctx = Context("inline")
    yield ctx
    ctx.close()


def test_killed_worker_run_completes_and_equals_inline(ref_ctx):
    data = random_data(np.random.default_rng(17), (24, 12, 10), "uint16")
    with Context("dask", n_workers=2) as ctx:
        client = ctx.executor.client
        client.wait_for_workers(2, timeout=WAIT_S)
        pids = client.run(os.getpid)
        ds = ctx.load("memory", data=data, num_partitions=12)
        udf = udfs.SlowSumUDF(delay=0.1)
        killed = None
        with config.set(task_timeout_s=WAIT_S):
            for partial in ctx.run_udf_iter(dataset=ds, udf=udf, tiling=TilingScheme(depth=1)):  # noqa: B007
                if killed is None:
                    busy = [w for w, keys in client.processing().items() if keys]
                    killed = busy[0] if busy else next(iter(pids))
                    os.kill(pids[killed], signal.SIGKILL)
            result = partial.buffers[0]
        assert killed is not None
        assert partial.damage.data.all()
        expected = ref_ctx.run_udf(dataset=ref_ctx.load("memory", data=data), udf=udf)
        assert_same(result, expected)
        # the nanny restarted the worker: the cluster is whole and usable again
        client.wait_for_workers(2, timeout=WAIT_S)
        again = ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF())
        assert_same(again, expected)


# --- libertem-gpu worker -------------------------------------------------------------------------


def test_libertem_gpu_worker_joins_a_cluster(tmp_path, ref_ctx):
    script = BIN / "libertem-gpu"
    try:
        import libertem_gpu.cli  # noqa: F401

        cmd = [str(script), "worker"] if script.exists() else None
    except ImportError:
        cmd = None
    if cmd is None:  # the command line front end is not there: call worker_main directly
        cmd = [sys.executable, "-m", "libertem_gpu.cluster_cli"]
    sched, address = start_scheduler(tmp_path)
    worker = start_process([*cmd, address, "--nworkers", "1", "--host", "127.0.0.1"])
    try:
        with Context.connect(address) as ctx:
            ctx.executor.client.wait_for_workers(1, timeout=WAIT_S)
            [info] = ctx.executor.client.scheduler_info(n_workers=-1)["workers"].values()
            assert info["resources"] == {"CPU": 1}
            assert info["nthreads"] == 1
            data = random_data(np.random.default_rng(23), (2, 5, 7, 6), "float32")
            ds = ctx.load("memory", data=data, num_partitions=3)
            got = ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF())
            assert_same(got, ref_ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF()))
        # SIGTERM reaches the dask worker through libertem-gpu worker, which then exits
        worker.terminate()
        assert worker.wait(timeout=WAIT_S) is not None
    finally:
        stop([worker, sched])


def _children(pid: int) -> list[int]:
    import psutil

    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _gone(pids: list[int], within: float) -> bool:
    import psutil

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != "zombie"]:
            return True
        time.sleep(0.2)
    return False


def test_killed_libertem_gpu_worker_leaves_no_orphan(tmp_path):
    sched, address = start_scheduler(tmp_path)
    worker = start_process(
        [sys.executable, "-m", "libertem_gpu.cluster_cli", address, "--nworkers", "1"]
    )
    try:
        with Context.connect(address) as ctx:
            ctx.executor.client.wait_for_workers(1, timeout=WAIT_S)
            [addr] = ctx.executor.client.scheduler_info(n_workers=-1)["workers"]
            assert addr.startswith("tcp://127.0.0.1:")  # loopback unless told otherwise
        children = _children(worker.pid)
        assert children
        worker.kill()  # SIGKILL: no handler runs
        worker.wait(timeout=WAIT_S)
        assert _gone(children, within=WAIT_S), "the dask worker outlived libertem-gpu worker"
    finally:
        stop([worker, sched])


def test_worker_for_a_remote_scheduler_needs_host():
    from libertem_gpu.cluster_cli import build_parser, worker_command

    args = build_parser().parse_args(["tcp://10.1.2.3:8786"])
    with pytest.raises(SystemExit, match="--host"):
        worker_command(args)
    args = build_parser().parse_args(["tcp://10.1.2.3:8786", "--host", "10.1.2.4"])
    cmd = worker_command(args)
    assert cmd[cmd.index("--host") + 1] == "10.1.2.4"
    local = worker_command(build_parser().parse_args(["tcp://127.0.0.1:8786"]))
    assert local[local.index("--host") + 1] == "127.0.0.1"


def test_scheduler_killed_mid_run_is_an_executor_error(tmp_path):
    sched, address = start_scheduler(tmp_path)
    worker = start_process(
        [str(BIN / "dask"), "worker", address, "--nworkers", "1", "--host", "127.0.0.1"]
    )
    try:
        with Context.connect(address) as ctx:
            ctx.executor.client.wait_for_workers(1, timeout=WAIT_S)
            data = random_data(np.random.default_rng(3), (8, 5, 6, 7), np.uint16)
            ds = ctx.load("memory", data=data, num_partitions=8)
            run = ctx.run_udf_iter(dataset=ds, udf=udfs.SlowSumUDF(delay=1.0))
            with config.set(task_timeout_s=WAIT_S), pytest.raises((ExecutorError, RunTimeoutError)):
                next(run)
                sched.kill()
                for _ in run:
                    pass
    finally:
        stop([worker, sched])


def test_a_stopped_worker_does_not_block_a_run(ref_ctx):
    """SIGSTOP one of two workers mid-run: the scheduler restarts it after worker_ttl and the
    run finishes with every partition merged once."""
    with Context("dask", n_workers=2, worker_ttl=1.0) as ctx:
        client = ctx.executor.client
        client.wait_for_workers(2, timeout=WAIT_S)
        data = random_data(np.random.default_rng(8), (6, 4, 5, 7), np.uint16)
        ds = ctx.load("memory", data=data, num_partitions=6)
        pids = list(client.run(os.getpid).values())
        stopped = None
        try:
            with config.set(task_timeout_s=WAIT_S):
                run = ctx.run_udf_iter(dataset=ds, udf=udfs.SlowSumUDF(delay=0.5))
                partial = next(run)
                stopped = pids[0]
                os.kill(stopped, signal.SIGSTOP)
                for partial in run:  # noqa: B007
                    pass
        finally:
            if stopped is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stopped, signal.SIGCONT)
        want = ref_ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF())
        got = partial.buffers[0]
        for name in want:
            np.testing.assert_allclose(got[name].data, want[name].data)


_CLIENT = """
import os, sys, time
from libertem_gpu import Context
if __name__ == "__main__":
    ctx = Context("dask", n_workers=1)
    ctx.executor.client.wait_for_workers(1, timeout=60)
    print("ready", flush=True)
    time.sleep(600)
"""


def test_killed_client_leaves_no_local_cluster_behind(tmp_path):
    """SIGKILL of a process running Context("dask"): its local cluster's processes end too."""
    script = tmp_path / "client.py"
    script.write_text(_CLIENT)
    proc = subprocess.Popen(
        [sys.executable, str(script)], env=cli_env(), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        children = _children(proc.pid)
        assert children
        proc.kill()
        proc.wait(timeout=WAIT_S)
        assert _gone(children, within=WAIT_S), "local cluster processes outlived their client"
    finally:
        stop([proc])
