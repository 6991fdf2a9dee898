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


def test_partitions_grow_with_their_frame_shaped_results(data):
    """Each partition allocates, fills, merges and frees its sig buffers: with large frames,
    partitions hold at least ``partition_result_ratio`` times their bytes, as long as every
    worker still gets one."""
    from libertem_gpu import StdDevUDF

    big = np.repeat(data, 8, axis=0)  # 24 x 7 frames of 5 x 6 uint16: 60 bytes
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=big)
    sig_f8 = 5 * 6 * 8  # one float64 sig buffer: 240 bytes
    limits = {"min_partition_bytes": 1, "max_partition_bytes": 120, "tile_bytes_cpu": 60}
    with config.set(**limits, partition_result_ratio=0):
        small = plan_run(ds, [SumUDF()], backend="numpy", n_workers=4)
    assert {p.size for p in small.partitions} == {2}  # max_partition_bytes: two frames
    with config.set(**limits, partition_result_ratio=2):
        one = plan_run(ds, [SumUDF()], backend="numpy", n_workers=4)
        two = plan_run(ds, [SumUDF(), StdDevUDF()], backend="numpy", n_workers=4)
        capped = plan_run(ds, [SumUDF(), StdDevUDF()], backend="numpy", n_workers=40)
    assert one.partitions[0].size == 2 * sig_f8 // 60  # 8 frames
    assert two.partitions[0].size == 2 * 3 * sig_f8 // 60  # sum, varsum and sum: 24 frames
    assert {p.size for p in capped.partitions[:-1]} == {5}  # 168 frames over 40 workers
    assert one.settings["partition_result_ratio"] == 2


class _FloatFrames(udfs.UDF):
    """A plain UDF: float32 tiles (the default), a converted copy of uint16 data."""

    def get_backends(self):
        return ("numpy", "cupy")

    def get_result_buffers(self):
        return {"total": self.buffer(kind="sig", dtype="float64")}

    def process_tile(self, tile):
        self.results.total[...] += tile.sum(axis=0)

    def merge(self, dest, src):
        dest.total[...] += src.total


def test_converted_tiles_stay_cache_sized(monkeypatch, data):
    # Tiles a UDF gets in another element type (or corrected) are copies: the plan cuts them
    # to tile_bytes_cpu_converted of converted bytes. UDFs that read the stored type keep the
    # large (mapped) tiles; the GPU backend converts on the device and keeps its size.
    from libertem_gpu.backends import registry
    from libertem_gpu.corrections import CorrectionSet

    monkeypatch.setattr(registry, "_is_available", lambda name: (True, ""))
    big = np.repeat(data, 40, axis=0)  # 120 x 7 frames of 5 x 6 uint16
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=big)
    frame = ds.frame_bytes  # 60 bytes stored, 120 as float32
    settings = {
        "tile_bytes_cpu": 100 * frame,
        "tile_bytes_cpu_mapped": 200 * frame,
        "tile_bytes_cpu_converted": 10 * 2 * frame,
        "tile_bytes_gpu": 100 * frame,
    }
    with config.set(**settings):
        native = plan_run(ds, [SumUDF()], backend="numpy").scheme
        floats = plan_run(ds, [_FloatFrames()], backend="numpy").scheme
        mixed = plan_run(ds, [SumUDF(), _FloatFrames()], backend="numpy").scheme
        corrected = plan_run(
            ds, [SumUDF()], backend="numpy", corrections=CorrectionSet(dark=np.ones((5, 6)))
        ).scheme
        gpu = plan_run(ds, [_FloatFrames()], backend="cupy").scheme
    assert (native.depth, native.mapped_depth) == (100, 200)
    assert (floats.depth, floats.mapped_depth) == (10, 10)
    assert (mixed.depth, mixed.mapped_depth) == (10, 10)
    assert (corrected.depth, corrected.mapped_depth) == (10, 10)
    assert gpu.depth == 100
    monkeypatch.undo()  # the run below on the CPU, whether or not this machine has a GPU
    with config.set(**settings), Context("threads", n_threads=2) as ctx:
        ds = ctx.load("memory", data=big, num_partitions=3)
        total = ctx.run_udf(ds, _FloatFrames())["total"].data
    np.testing.assert_allclose(total, big.reshape(-1, 5, 6).sum(axis=0), rtol=1e-6)


class _SlabShapes(udfs.UDF):
    """Records the deepest tile and the widest slab it got (stored type, partial frames)."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_tiling_preferences(self):
        return {"depth": None, "total_size": None, "partial_frames": True}

    def get_result_buffers(self):
        return {"seen": self.buffer(kind="single", dtype="int64", extra_shape=(2,))}

    def process_tile(self, tile):
        seen = self.results.seen
        seen[0] = max(seen[0], tile.shape[0])
        seen[1] = max(seen[1], tile.shape[1])

    def merge(self, dest, src):
        dest.seen[...] = np.maximum(dest.seen, src.seen)


def test_frames_larger_than_a_tile_come_in_stacks_of_slabs(tmp_path, rng):
    # Frames larger than a tile are split into row slabs; slabs of a mapped file come as many
    # frames deep as a partition holds, cut thin enough to fill a mapped tile. Results as from
    # whole frames, ROI included.
    from libertem_gpu import ApplyMasksUDF, StdDevUDF

    nav, sig = (3, 7), (37, 41)
    data = rng.integers(0, 4000, (*nav, *sig)).astype(np.uint16)
    path = tmp_path / "big_frames.raw"
    data.tofile(path)
    frame = data[0, 0].nbytes
    rows_bytes = 9 * 41 * 2  # slabs of 9 rows: 5 per frame, the last one ragged
    settings = {
        "tile_bytes_cpu": rows_bytes,
        "tile_bytes_cpu_mapped": 4 * rows_bytes + 1,
        "min_partition_bytes": 1,
        "max_partition_bytes": 6 * frame,  # partitions of 6 frames
        "partitions_per_worker": 1,
        "partition_result_ratio": 0,
    }
    stack = rng.standard_normal((16, *sig)).astype(np.float32)
    frames = data.reshape(-1, sig[0] * sig[1]).astype(np.float64)
    roi = rng.random(nav) < 0.6
    with config.set(**settings), Context("threads", n_threads=2) as ctx:
        ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype="uint16")
        scheme = plan_run(ds, [SumUDF()], backend="numpy").scheme
        # buffered: one frame's slabs of 9 rows; mapped: six frames' slabs of 6 rows (2953
        # bytes a tile: 6 x 6 rows x 82 bytes), the last one of a frame ragged
        shape = (scheme.depth, scheme.sig_rows, scheme.mapped_depth, scheme.mapped_sig_rows)
        assert shape == (1, 9, 6, 6)
        seen = ctx.run_udf(ds, _SlabShapes())["seen"].data
        assert tuple(seen) == (6, 6)
        got = ctx.run_udf(ds, [SumUDF(), StdDevUDF()])
        np.testing.assert_allclose(got[0]["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-12)
        np.testing.assert_allclose(got[1]["var"].data, data.var(axis=(0, 1)), rtol=1e-9)
        masked = ctx.run_udf(
            ds, ApplyMasksUDF(mask_factories=lambda: stack, mask_dtype=np.float32)
        )["intensity"].data
        expected = frames @ stack.reshape(16, -1).T.astype(np.float64)
        scale = np.abs(frames) @ np.abs(stack.reshape(16, -1).T.astype(np.float64))
        assert np.all(np.abs(masked.reshape(-1, 16) - expected) <= 1e-6 * scale)
        in_roi = ctx.run_udf(ds, SumUDF(), roi=roi)["intensity"].data
        np.testing.assert_allclose(in_roi, data[roi].sum(axis=0), rtol=1e-12)
