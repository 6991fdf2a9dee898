"""The dask executor: local clusters and clusters started with the real dask CLI, equality with
the inline executor, errors, cancellation, time-outs, security, settings on the workers. Processes
killed or stopped mid-run and ``libertem-gpu worker``: ``test_dask_processes.py``."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

import libertem_gpu
from libertem_gpu import Context, TilingScheme, config
from libertem_gpu.errors import ExecutorError, RunTimeoutError
from libertem_gpu.executor import get_executor_class
from libertem_gpu.executor.dask import DaskCUDAExecutor, DaskExecutor, _try_cuda_cluster
from tests.conftest import random_data
from tests.executor import udfs
from tests.executor.clusters import (
    BIN,
    WAIT_S,
    assert_same,
    start_process,
    start_scheduler,
    stop,
)


@pytest.fixture(scope="module")
def local_ctx():
    """A Context on a LocalCluster of 2 worker processes."""
    ctx = Context("dask", n_workers=2)
    ctx.executor.client.wait_for_workers(2, timeout=WAIT_S)
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def cli_ctx(tmp_path_factory):
    """`dask scheduler` plus two `dask worker` processes on loopback, reached by
    Context.connect, as on a multi-node cluster."""
    tmp = tmp_path_factory.mktemp("cli_cluster")
    sched, address = start_scheduler(tmp)
    workers = [
        start_process(
            [
                *(str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard"),
                *("--host", "127.0.0.1", "--name", f"cli-{i}"),
            ]
        )
        for i in range(2)
    ]
    ctx = None
    try:
        ctx = Context.connect(address)
        ctx.executor.client.wait_for_workers(2, timeout=WAIT_S)
        yield ctx
    finally:
        if ctx is not None:
            ctx.close()
        stop([*workers, sched])


@pytest.fixture(scope="module")
def ref_ctx():
    ctx = Context("inline")
    yield ctx
    ctx.close()


@pytest.fixture(scope="module")
def threads_ctx():
    ctx = Context("threads", n_threads=2)
    yield ctx
    ctx.close()


# --- results equal inline ------------------------------------------------------------------------


def _mask_factories(sig_shape, n=3):
    masks = np.random.default_rng(5).random((n, *sig_shape)).astype(np.float32)
    # functools.partial of a NumPy function pickles by reference: no closures cross processes.
    return [functools.partial(np.array, m) for m in masks]


def _make_builtin(name: str, sig_shape):
    cls = getattr(libertem_gpu, name)  # every built-in must be there: a missing one fails
    if name == "ApplyMasksUDF":
        return cls(mask_factories=_mask_factories(sig_shape))
    return cls()


BUILTINS = [
    "SumUDF",
    "SumSigUDF",
    "StdDevUDF",
    "MaxUDF",
    "MinUDF",
    "ApplyMasksUDF",
    "PickUDF",
    "CoMUDF",
]


@pytest.fixture(scope="module")
def data4d():
    rng = np.random.default_rng(20261125)
    return random_data(rng, (3, 7, 13, 17), "uint16")


@pytest.mark.parametrize("where", ["threads", "local", "cli"])
@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_udfs_equal_inline(request, name, where, data4d, ref_ctx):
    ctx = request.getfixturevalue(
        {"threads": "threads_ctx", "local": "local_ctx"}.get(where, "cli_ctx")
    )
    ds = ctx.load("memory", data=data4d, num_partitions=4)  # 21 frames: 6, 6, 6, 3
    roi = np.random.default_rng(3).random(ds.nav_shape) > 0.4
    for r in (None, roi):
        udf = _make_builtin(name, ds.sig_shape)
        expected = ref_ctx.run_udf(dataset=ds, udf=udf, roi=r)
        got = ctx.run_udf(dataset=ds, udf=_make_builtin(name, ds.sig_shape), roi=r)
        assert_same(got, expected)


@pytest.mark.parametrize("nav_shape", [(23,), (4, 5), (2, 3, 4)])
def test_helper_udfs_equal_inline_on_clusters(nav_shape, local_ctx, cli_ctx, ref_ctx):
    rng = np.random.default_rng(7)
    data = random_data(rng, (*nav_shape, 13, 17), "float32")
    payload = udfs.CountedPayload(rng.random((4, 13, 17)))
    for ctx in (local_ctx, cli_ctx):
        ds = ctx.load("memory", data=data, num_partitions=5)
        roi = rng.random(nav_shape) > 0.5
        tiling = TilingScheme(depth=2)
        for r in (None, roi):
            run = [udfs.SlowSumUDF(), udfs.MaskStackUDF(masks=payload)]
            got = ctx.run_udf(dataset=ds, udf=run, roi=r, tiling=tiling)
            ref = ref_ctx.run_udf(dataset=ds, udf=run, roi=r, tiling=tiling)
            for g, e in zip(got, ref, strict=True):
                assert_same(g, e)
        # and against NumPy itself
        res = ctx.run_udf(dataset=ds, udf=udfs.MaskStackUDF(masks=payload))["dots"].data
        flat = data.reshape(*nav_shape, -1).astype(np.float64)
        np.testing.assert_allclose(res, flat @ payload.array.reshape(4, -1).T, rtol=1e-10)


def test_raw_file_on_cli_cluster(tmp_path, cli_ctx, ref_ctx):
    """Workers open the file themselves (big-endian raw, sync_offset): only metadata travels."""
    data = random_data(np.random.default_rng(9), (31, 11, 9), ">u2")
    path = tmp_path / "data.raw"
    data.tofile(path)
    ds = cli_ctx.load(
        "raw", path=path, nav_shape=(5, 6), sig_shape=(11, 9), dtype=">u2", sync_offset=1
    )
    ds_ref = ref_ctx.load(
        "raw", path=path, nav_shape=(5, 6), sig_shape=(11, 9), dtype=">u2", sync_offset=1
    )
    with config.set(partition_bytes=7 * ds.frame_bytes):
        got = cli_ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF())
    np.testing.assert_array_equal(got["per_frame"].data.reshape(-1), data[1:].sum(axis=(1, 2)))
    assert_same(got, ref_ctx.run_udf(dataset=ds_ref, udf=udfs.SlowSumUDF()))


# --- the executor itself -------------------------------------------------------------------------


def _listening_addresses(worker_pids) -> set[tuple[str, int]]:
    """Addresses this process (scheduler, nannies) and the worker processes listen on."""
    psutil = pytest.importorskip("psutil")
    found = set()
    for pid in [os.getpid(), *worker_pids]:
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port))
    return found


def test_registered_names():
    assert get_executor_class("dask") is DaskExecutor
    assert get_executor_class("dask-cuda") is DaskCUDAExecutor


def test_default_cluster_is_loopback_only(local_ctx):
    executor = local_ctx.executor
    assert executor.client.scheduler.address.startswith("tcp://127.0.0.1:")
    workers = executor.client.scheduler_info(n_workers=-1)["workers"]
    assert len(workers) == 2
    assert all(addr.startswith("tcp://127.0.0.1:") for addr in workers)
    # no dashboard, and every socket the scheduler, the nannies and the workers listen on is
    # loopback (the scheduler's metrics HTTP server too)
    assert not executor.cluster.scheduler.http_application.applications
    listening = _listening_addresses(executor.client.run(os.getpid).values())
    assert listening, "found no listening socket"
    assert all(ip in ("127.0.0.1", "::1") for ip, _ in listening), listening
    assert executor.n_workers == 2
    assert all(w["resources"] == {"CPU": 1} for w in workers.values())
    assert executor.worker_backends == ("numpy",)


def test_constant_inputs_travel_once_per_worker(local_ctx):
    client = local_ctx.executor.client
    before = client.run(udfs.unpickled_count)
    rng = np.random.default_rng(11)
    data = random_data(rng, (40, 8, 8), "float32")
    ds = local_ctx.load("memory", data=data, num_partitions=12)
    payload = udfs.CountedPayload(rng.random((3, 8, 8)))
    res = local_ctx.run_udf(dataset=ds, udf=udfs.MaskStackUDF(masks=payload))
    np.testing.assert_allclose(
        res["dots"].data, data.reshape(40, -1) @ payload.array.reshape(3, -1).T, rtol=1e-6
    )
    after = client.run(udfs.unpickled_count)
    per_worker = {w: after[w] - before.get(w, 0) for w in after}
    # 12 tasks, 2 workers: the UDF parameters arrive once in each, not once per task.
    assert all(n <= 1 for n in per_worker.values()), per_worker


def test_udf_error_raises_and_cluster_stays_usable(local_ctx, data4d):
    ds = local_ctx.load("memory", data=data4d, num_partitions=5)
    with pytest.raises(ValueError, match="frame 8 is cursed"):
        local_ctx.run_udf(dataset=ds, udf=udfs.FailingUDF(bad_frame=8))
    _wait_idle(local_ctx.executor.client)
    res = local_ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF())
    np.testing.assert_allclose(res["intensity"].data, data4d.sum(axis=(0, 1), dtype=np.float64))


def _wait_idle(client, timeout=WAIT_S):
    """Wait until the scheduler holds no partition task and no worker processes one."""

    def ours(dask_scheduler):
        return [str(k) for k in dask_scheduler.tasks if str(k).startswith("libertem-")]

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        processing = client.processing()
        if not any(processing.values()) and not client.run_on_scheduler(ours):
            return
        time.sleep(0.05)
    raise AssertionError(f"tasks left: {client.processing()} {client.run_on_scheduler(ours)}")


def test_cancel_midway_leaves_no_tasks(local_ctx):
    data = random_data(np.random.default_rng(13), (40, 16, 16), "float32")
    ds = local_ctx.load("memory", data=data, num_partitions=20)
    gen = local_ctx.run_udf_iter(
        dataset=ds, udf=udfs.SlowSumUDF(delay=0.1), tiling=TilingScheme(depth=1)
    )
    first = next(gen)
    assert 0 < first.damage.data.sum() < 40
    gen.close()  # what an exception or Ctrl-C in the caller does
    client = local_ctx.executor.client
    _wait_idle(client, timeout=WAIT_S)
    res = local_ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF())
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=0, dtype=np.float64), rtol=1e-6)


def test_timeout_raises_and_cancels(local_ctx):
    data = random_data(np.random.default_rng(14), (8, 4, 4), "float32")
    ds = local_ctx.load("memory", data=data, num_partitions=4)
    with config.set(task_timeout_s=0.2), pytest.raises(RunTimeoutError, match="0.2 s"):
        local_ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF(delay=1.0), tiling=TilingScheme(1))
    _wait_idle(local_ctx.executor.client, timeout=WAIT_S)


def test_dask_cuda_falls_back_to_cpu_cluster(caplog):
    pytest.importorskip("distributed")
    if _cuda_available():
        pytest.skip("a GPU and dask-cuda are present: no fallback to test")
    with caplog.at_level(logging.WARNING, logger="libertem_gpu.executor.dask"):
        assert _try_cuda_cluster(2, {}) is None
        with Context("dask-cuda", n_workers=1) as ctx:
            assert type(ctx.executor.cluster).__name__ == "LocalCluster"
            assert ctx.executor.client.scheduler.address.startswith("tcp://127.0.0.1:")
            assert ctx.executor.n_workers == 1
            data = random_data(np.random.default_rng(2), (5, 3, 4), "float32")
            res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=udfs.SlowSumUDF())
            np.testing.assert_allclose(res["intensity"].data, data.sum(axis=0, dtype=np.float64))
    assert "starting a CPU LocalCluster instead" in caplog.text


def _cuda_available() -> bool:
    try:
        import dask_cuda  # noqa: F401

        from libertem_gpu.backends.registry import available_backends
    except ImportError:
        return False
    return "cupy" in available_backends()


def test_executor_on_a_given_client_leaves_it_open(local_ctx):
    client = local_ctx.executor.client
    executor = DaskExecutor(client=client)
    assert executor.n_workers == 2
    executor.close()
    with pytest.raises(ExecutorError, match="closed"):
        list(executor.run_tasks([]))
    assert client.status == "running"


def test_connect_to_nothing_fails_quickly():
    with pytest.raises((OSError, TimeoutError)), config_timeout("2s"):
        Context.connect("tcp://127.0.0.1:9")


@contextlib.contextmanager
def config_timeout(value):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": value}):
        yield


# --- dask arrays on a cluster --------------------------------------------------------------------


def test_dask_array_dataset_on_cluster(local_ctx, ref_ctx):
    da = pytest.importorskip("dask.array")
    data = random_data(np.random.default_rng(19), (6, 5, 9, 7), "int16")
    array = da.from_array(data, chunks=(2, 5, 9, 7))
    ds = local_ctx.load("dask", array)
    res = local_ctx.run_udf(dataset=ds, udf=udfs.SlowSumUDF(), tiling=TilingScheme(depth=3))
    np.testing.assert_array_equal(res["per_frame"].data, data.sum(axis=(2, 3)))
    back = local_ctx.make_dask_array(ds)
    np.testing.assert_array_equal(back.compute(), data.reshape(30, 9, 7))


def test_settings_reach_dask_workers(local_ctx):
    """What ``config.set`` holds when a run starts is what the worker processes use."""
    data = random_data(np.random.default_rng(21), (4, 5, 6, 7), np.uint16)
    ds = local_ctx.load("memory", data=data, num_partitions=4)
    with config.set(io_backend="direct", task_timeout_s=123.0, tile_bytes_cpu=4096):
        seen = local_ctx.run_udf(dataset=ds, udf=udfs.SettingsUDF())["seen"].data
    want = (udfs.IO_BACKENDS.index("direct"), 123.0, 4096)
    assert (seen.reshape(-1, 3) == want).all()
    # and the run after it, outside the block, sees the defaults again
    seen = local_ctx.run_udf(dataset=ds, udf=udfs.SettingsUDF())["seen"].data
    defaults = config.defaults()
    assert (seen.reshape(-1, 3)[:, 2] == defaults["tile_bytes_cpu"]).all()
