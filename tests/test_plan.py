"""The run plan: one place decides backend, devices, partitions, tiling, byte order and the
settings every worker uses."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from libertem_gpu import Context, SumUDF, config
from libertem_gpu.errors import UDFDefinitionError
from libertem_gpu.plan import RunPlan, plan_run
from tests.conftest import random_data
from tests.executor import udfs


@pytest.fixture
def data():
    return random_data(np.random.default_rng(5), (3, 7, 5, 6), np.uint16)


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_settings_reach_every_worker(executor, data):
    with Context(executor, n_threads=2) if executor == "threads" else Context(executor) as ctx:
        ds = ctx.load("memory", data=data, num_partitions=5)
        with config.set(io_backend="kvikio", task_timeout_s=77.0, tile_bytes_cpu=1000):
            seen = ctx.run_udf(dataset=ds, udf=udfs.SettingsUDF())["seen"].data
        assert (seen.reshape(-1, 3) == (udfs.IO_BACKENDS.index("kvikio"), 77.0, 1000)).all()
        seen = ctx.run_udf(dataset=ds, udf=udfs.SettingsUDF())["seen"].data
        assert (seen.reshape(-1, 3)[:, 1] == -1.0).all()  # default: no timeout


def test_environment_overrides_settings(monkeypatch, data):
    monkeypatch.setenv("LIBERTEM_GPU_IO_BACKEND", "Pread")
    with config.set(io_backend="kvikio"):
        assert config.get("io_backend") == "pread"
        assert config.snapshot()["io_backend"] == "pread"
    monkeypatch.setenv("LIBERTEM_GPU_AMX", "0")
    assert config.get("amx") is False
    monkeypatch.setenv("LIBERTEM_GPU_AMX", "maybe")
    with pytest.raises(ValueError, match="LIBERTEM_GPU_AMX='maybe'"):
        config.get("amx")
    monkeypatch.setenv("LIBERTEM_GPU_AMX", "")
    assert config.get("amx") is True


def test_every_environment_variable_is_documented():
    from pathlib import Path

    table = (Path(__file__).parents[1] / "docs" / "settings.md").read_text()
    for name, setting in config.SETTINGS.items():
        assert f"`{name}`" in table
        if setting.env:
            assert f"`{setting.env}`" in table


def test_plan_holds_every_decision(data):
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=4)
    roi = np.random.default_rng(1).random(ds.nav_shape) > 0.4
    with config.set(tile_bytes_cpu=3 * ds.frame_bytes):
        plan = plan_run(ds, [SumUDF()], roi=roi, backend="numpy", n_workers=2)
    assert isinstance(plan, RunPlan)
    assert plan.backend == "numpy" and plan.devices is None and plan.worker_resource == "CPU"
    assert [p.size for p in plan.partitions] == [6, 6, 6, 3]
    assert plan.selected == tuple(
        int(roi.reshape(-1)[p.start : p.stop].sum()) for p in plan.partitions
    )
    assert plan.nav_offsets[-1] == plan.n_selected == int(roi.sum())
    assert plan.settings["tile_bytes_cpu"] == 3 * ds.frame_bytes
    assert plan.scheme.depth == 3
    assert len(plan.tasks()) == sum(1 for c in plan.selected if c)
    clone = pickle.loads(pickle.dumps(plan))
    assert clone.scheme == plan.scheme and clone.settings == plan.settings
    with pytest.raises(AttributeError):
        plan.backend = "cupy"  # frozen


def test_plan_refuses_what_is_not_a_udf(data):
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data)
    with pytest.raises(UDFDefinitionError, match="at least one UDF"):
        plan_run(ds, [])
    with pytest.raises(UDFDefinitionError, match="expected UDF instances"):
        plan_run(ds, [SumUDF])  # the class, not an instance


def test_gpu_partitions_hold_many_tiles(monkeypatch, data):
    """A GPU run's partitions are sized for its pipeline (several tiles each), not for the
    CPU threads (planning needs no GPU: the backend is only asked for its facts)."""
    from libertem_gpu.backends import registry
    from libertem_gpu.backends.cupy_backend import CupyBackend

    monkeypatch.setattr(registry, "_is_available", lambda name: (True, ""))
    big = np.repeat(data, 8, axis=0)  # 24 x 7 frames
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=big)
    frame = ds.frame_bytes
    with config.set(tile_bytes_gpu=2 * frame, tile_bytes_cpu=2 * frame, min_partition_bytes=1):
        gpu = plan_run(ds, [SumUDF()], backend="cupy", n_workers=16)
        cpu = plan_run(ds, [SumUDF()], backend="numpy", n_workers=16)
    tiles = CupyBackend.min_tiles_per_partition
    assert all(p.size >= tiles * 2 for p in gpu.partitions[:-1])
    assert gpu.scheme.depth == 2
    assert len(cpu.partitions) > len(gpu.partitions)
    assert gpu.settings["min_partition_bytes"] == 1  # the user's settings travel unchanged
