"""The I/O path that served each partition, recorded per partition by the backend and summed
per run on the client (issue 15, fault 7), with the fake CuPy kit."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

import libertem_gpu as lg
from libertem_gpu import config
from libertem_gpu.backends import device
from libertem_gpu.backends.numpy_backend import NumpyBackend
from libertem_gpu.io.formats.raw import RawFileDataSet
from libertem_gpu.io.gpu_pipeline import aligned_empty
from libertem_gpu.io.memory import MemoryDataSet
from libertem_gpu.io.tiles import TilePlan, TilingScheme
from tests.backends.fake_cupy import fake_cupy

ROOT = Path(__file__).resolve().parents[2]
SIG = (16, 128)  # uint16 frames of 4096 bytes: O_DIRECT can read whole frames


@pytest.fixture
def cp(monkeypatch):
    cp = fake_cupy()
    monkeypatch.setattr(device, "require_cupy", lambda: cp)
    return cp


@pytest.fixture
def raw(tmp_path, rng):
    data = rng.integers(0, 4096, size=(4, 6, *SIG)).astype(np.uint16)
    path = tmp_path / "d.raw"
    data.tofile(path)
    return RawFileDataSet(
        path=str(path), nav_shape=(4, 6), sig_shape=SIG, dtype="uint16", num_partitions=3
    ).initialize()


def _per_partition(ds):
    """``(io_path, io_paths())`` of a CuPy backend after each partition of ``ds``."""
    from libertem_gpu.backends.cupy_backend import CupyBackend

    backend = CupyBackend()
    out = []
    try:
        for p in ds.get_partitions():
            plan = TilePlan.for_partition(p, None, TilingScheme(depth=2), ds.sig_shape)
            for _ in backend.iter_tiles(ds, plan):
                pass
            out.append((backend.io_path, backend.io_paths(), (p.stop - p.start) * ds.frame_bytes))
    finally:
        backend.close()
    return out


def test_direct_refused_reports_the_page_cache(cp, raw, monkeypatch):
    # O_DIRECT unavailable: io_backend="direct" reads through the page cache, and says so.
    monkeypatch.delattr(os, "O_DIRECT", raising=False)
    with config.set(io_backend="direct"):
        parts = _per_partition(raw)
    assert len(parts) == 3
    for path, paths, nbytes in parts:
        assert path == "pinned" and paths == {"pinned": nbytes}


def test_direct_taken_reports_direct(cp, raw, tmp_path):
    try:
        os.close(os.open(raw.path, os.O_RDONLY | os.O_DIRECT))
    except (OSError, AttributeError) as e:
        pytest.skip(f"no O_DIRECT on this file system: {e!r}")
    cp.cuda.alloc_pinned_memory = aligned_empty  # page-aligned, as cudaHostAlloc's
    with config.set(io_backend="direct"):
        parts = _per_partition(raw)
    for path, paths, nbytes in parts:
        assert path == "direct" and paths == {"direct": nbytes}
    with config.set(io_backend="pread"):
        assert all(p == {"pinned": n} for _, p, n in _per_partition(raw))


def test_resident_reports_resident(cp, rng):
    data = cp.asarray(rng.random((10, *SIG)).astype(np.float32))
    ds = MemoryDataSet(data=data, num_partitions=2).initialize()
    parts = _per_partition(ds)
    assert [(p, d) for p, d, _ in parts] == [("resident", {"resident": n}) for _, _, n in parts]


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_run_sums_the_partitions_paths(monkeypatch, rng, executor):
    # The partition results carry what the backend recorded; the client sums them per run.
    monkeypatch.setattr(NumpyBackend, "io_paths", lambda self: {"a": 3, "b": 1}, raising=False)
    ds = lg.Context(executor).load("memory", data=rng.random((4, 6, 5, 7)), num_partitions=3)
    with lg.Context(executor) as ctx:
        results = list(ctx.run_udf_iter(dataset=ds, udf=lg.SumUDF(), backends="numpy"))
    assert [r.io_paths for r in results] == [{"a": 3 * k, "b": k} for k in (1, 2, 3)]


def test_benchmark_row_takes_the_runs_paths(monkeypatch, rng, tmp_path):
    spec = importlib.util.spec_from_file_location("_bench_gpu", ROOT / "benchmarks" / "gpu.py")
    assert spec is not None and spec.loader is not None
    gpu = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu)
    sig = (16, 20)
    monkeypatch.setattr(gpu, "SIG", sig)
    data = rng.integers(0, 4096, size=(40, *sig)).astype(np.uint16)
    path = tmp_path / "d.raw"
    data.tofile(path)
    sample = gpu.Sample(np.memmap(path, dtype=np.uint16, mode="r", shape=data.shape), rng)
    monkeypatch.setattr(NumpyBackend, "io_paths", lambda self: {"pinned": 10}, raising=False)
    with lg.Context("inline") as ctx:
        ds = ctx.load("memory", data=data.reshape(4, 10, *sig), num_partitions=2)
        row = gpu.measure(ctx, ds, "sumsig", "pinned", None, sample, 1, data.nbytes, "numpy")
    assert row["io_path"] == "pinned" and row["io_bytes"] == {"pinned": 20}
    assert row["ok"], row.get("problem")
