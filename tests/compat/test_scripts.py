"""LiberTEM-style scripts, written against LiberTEM 0.16's API with ``libertem`` replaced by
``libertem_gpu.compat``, each checked against NumPy on random data.

Where a script meets a difference that another part of issue 17 removes, the case is a strict
xfail naming that part, so that it flips when the part lands.
"""

from __future__ import annotations

import numpy as np
import pytest

import libertem_gpu.compat.api as lt
from libertem_gpu.compat.udf import UDF

RNG = np.random.default_rng(2024)
DTYPES = [np.uint8, np.uint16, np.int32, np.float32]
# unsigned frames wrap around in integer arithmetic where LiberTEM's float32 frames do not
WRAPPING_DTYPES = [
    np.uint8,
    np.uint16,
    np.int32,
    np.float32,
]


@pytest.fixture(params=["inline", "threads", "dask"])
def lt_ctx(request: pytest.FixtureRequest):
    """A compat Context on each executor (the dask one shares the session's cluster)."""
    if request.param == "dask":
        yield lt.Context(executor=request.getfixturevalue("dask_ctx").executor)
        return
    ctx = lt.Context.make_with(request.param)
    yield ctx
    ctx.close()


def _random(shape: tuple[int, ...], dtype) -> np.ndarray:
    high = {np.uint8: 255, np.uint16: 60000}.get(dtype, 1000)
    data = RNG.integers(0, high, shape)
    if dtype == np.int32:
        data -= 500
    return data.astype(dtype)


class SquareSumUDF(UDF):
    """A user's UDF as written for LiberTEM: relies on float32 frames."""

    def get_result_buffers(self):
        return {"sq": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        self.results.sq[:] = np.sum(frame**2)


class MinusFiveUDF(UDF):
    def get_result_buffers(self):
        return {"low": self.buffer(kind="nav", dtype="float32")}

    def process_frame(self, frame):
        self.results.low[:] = np.min(frame - 5)


class TileSumUDF(UDF):
    """Sums over each frame from tiles; a sig buffer sums over the scan."""

    def get_result_buffers(self):
        return {
            "per_frame": self.buffer(kind="nav", dtype="float64"),
            "per_pixel": self.buffer(kind="sig", dtype="float64"),
        }

    def process_tile(self, tile):
        self.results.per_frame[:] += np.sum(tile, axis=tuple(range(1, tile.ndim)))
        self.results.per_pixel[:] += np.sum(tile, axis=0)

    def merge(self, dest, src):
        dest.per_pixel[:] += src.per_pixel
        dest.per_frame[:] = src.per_frame


class PartitionMaxUDF(UDF):
    def get_result_buffers(self):
        return {"max": self.buffer(kind="sig", dtype="float64")}

    def preprocess(self):
        self.results.max[:] = -np.inf

    def process_partition(self, partition):
        self.results.max[:] = np.maximum(self.results.max, np.max(partition, axis=0))

    def merge(self, dest, src):
        dest.max[:] = np.maximum(dest.max, src.max)


@pytest.mark.parametrize("dtype", DTYPES)
def test_builtins_script(lt_ctx, dtype):
    """Sum, sum over the frame, standard deviation and pick in one pass."""
    from libertem_gpu.compat.io.dataset.memory import MemoryDataSet
    from libertem_gpu.compat.udf.raw import PickUDF
    from libertem_gpu.compat.udf.stddev import StdDevUDF
    from libertem_gpu.compat.udf.sum import SumUDF
    from libertem_gpu.compat.udf.sumsigudf import SumSigUDF

    data = _random((5, 6, 9, 7), dtype)
    ds = MemoryDataSet(data=data, tileshape=(2, 9, 7), num_partitions=3, sig_dims=2)
    roi = np.zeros((5, 6), dtype=bool)
    roi[2, 3] = True
    sums, sumsig, std = lt_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF(), StdDevUDF()])
    pick = lt_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=roi)
    f = data.astype(np.float64)
    np.testing.assert_allclose(sums["intensity"].data, f.sum(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(sumsig["intensity"].data, f.sum(axis=(2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std["std"].data, f.reshape(30, 9, 7).std(axis=0), rtol=1e-6)
    np.testing.assert_array_equal(pick["intensity"].data[0], data[2, 3])


@pytest.mark.parametrize("dtype", DTYPES)
def test_user_udfs_any_method(lt_ctx, dtype):
    data = _random((4, 7, 8, 6), dtype)
    ds = lt_ctx.load("memory", data=data, num_partitions=3)
    tiles, parts = lt_ctx.run_udf(dataset=ds, udf=[TileSumUDF(), PartitionMaxUDF()])
    f = data.astype(np.float64)
    np.testing.assert_allclose(tiles["per_frame"].data, f.sum(axis=(2, 3)), rtol=1e-9)
    np.testing.assert_allclose(tiles["per_pixel"].data, f.sum(axis=(0, 1)), rtol=1e-9)
    np.testing.assert_array_equal(parts["max"].data, f.max(axis=(0, 1)))


@pytest.mark.parametrize("dtype", WRAPPING_DTYPES)
def test_udf_sees_float32(dtype):
    """``frame ** 2`` overflows integer frames: LiberTEM hands the UDF float32."""
    data = _random((3, 4, 16, 16), dtype)
    ctx = lt.Context.make_with("inline")
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=SquareSumUDF())
    expected = (data.astype(np.float32) ** 2).sum(axis=(2, 3))
    np.testing.assert_allclose(res["sq"].data, expected, rtol=1e-5)


@pytest.mark.parametrize("dtype", WRAPPING_DTYPES)
def test_udf_subtraction_goes_negative(dtype):
    data = _random((3, 4, 5, 5), dtype)
    data[..., 0, 0] = 2  # below 5 in every frame: unsigned frames wrap around
    ctx = lt.Context.make_with("inline")
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=MinusFiveUDF())
    expected = (data.astype(np.float32) - 5).min(axis=(2, 3))
    np.testing.assert_allclose(res["low"].data, expected)


def test_use_native_dtype():
    class NativeUDF(UDF):
        def get_preferred_input_dtype(self):
            return self.USE_NATIVE_DTYPE

        def get_result_buffers(self):
            return {"kind": self.buffer(kind="nav", dtype="int64")}

        def process_frame(self, frame):
            self.results.kind[:] = frame.dtype.itemsize

    class DefaultUDF(NativeUDF):
        def get_preferred_input_dtype(self):
            return np.float32

    data = _random((2, 3, 4, 4), np.uint16)
    ctx = lt.Context.make_with("inline")
    native, default = ctx.run_udf(
        dataset=ctx.load("memory", data=data), udf=[NativeUDF(), DefaultUDF()]
    )
    assert (native["kind"].data == 2).all() and (default["kind"].data == 4).all()


def test_complex64_data():
    data = (RNG.random((2, 3, 4, 4)) + 1j * RNG.random((2, 3, 4, 4))).astype(np.complex64)
    from libertem_gpu.compat.udf.sum import SumUDF

    ctx = lt.Context.make_with("inline")
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=SumUDF())
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)


def test_sync_offset_past_the_end_skips_positions():
    from libertem_gpu.compat.udf.stddev import run_stddev

    data = _random((8, 8, 4, 4), np.uint16)
    ctx = lt.Context.make_with("inline")
    ds = ctx.load("memory", data=data, sync_offset=62)
    result = run_stddev(ctx, ds)
    assert result["num_frames"] == 2
    np.testing.assert_allclose(result["mean"], data.reshape(64, 4, 4)[62:].mean(axis=0))


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_masks_and_com_script(lt_ctx, dtype):
    from libertem_gpu.compat import masks
    from libertem_gpu.compat.udf.com import CoMUDF, RegressionOptions
    from libertem_gpu.compat.udf.masks import ApplyMasksUDF

    data = _random((4, 5, 12, 10), dtype)
    ds = lt_ctx.load("memory", data=data, num_partitions=2)
    ny, nx = 12, 10
    udf = ApplyMasksUDF(
        mask_factories=[
            lambda: masks.circular(centerX=5, centerY=6, imageSizeX=nx, imageSizeY=ny, radius=3),
            lambda: masks.ring(5, 6, nx, ny, radius=5, radius_inner=2),
            lambda: masks.gradient_x(nx, ny),
        ]
    )
    com = CoMUDF.with_params(cy=6, cx=5, regression=RegressionOptions.SUBTRACT_MEAN)
    mres, cres = lt_ctx.run_udf(dataset=ds, udf=[udf, com])
    y, x = np.mgrid[:ny, :nx]
    d2 = (y - 6) ** 2 + (x - 5) ** 2
    stack = np.stack([d2 <= 9, (d2 > 4) & (d2 <= 25), x]).astype(np.float64)
    expected = np.einsum("abij,mij->abm", data.astype(np.float64), stack)
    np.testing.assert_allclose(mres["intensity"].data, expected, rtol=1e-5)
    f = data.astype(np.float64)
    total = f.sum(axis=(2, 3))
    sy = (f * y).sum(axis=(2, 3)) / total - 6
    np.testing.assert_allclose(cres["field_y"].data, sy - sy.mean(), rtol=1e-6, atol=1e-9)


def test_map_and_autoudf(lt_ctx):
    from libertem_gpu.compat.udf.auto import AutoUDF

    data = _random((3, 5, 6, 6), np.float32)
    ds = lt_ctx.load("memory", data=data)
    mapped = lt_ctx.map(dataset=ds, f=np.max)
    np.testing.assert_array_equal(mapped.data, data.max(axis=(2, 3)))
    auto = lt_ctx.run_udf(dataset=ds, udf=AutoUDF(f=lambda frame: frame[1:3].sum(axis=0)))
    np.testing.assert_allclose(auto["result"].data, data[:, :, 1:3].sum(axis=2), rtol=1e-6)


def test_file_data_set_script(tmp_path):
    """The LiberTEM idiom: build a data set, initialize it with an executor, run."""
    from libertem_gpu.compat.executor.inline import InlineJobExecutor
    from libertem_gpu.compat.io.dataset.raw import RawFileDataSet
    from libertem_gpu.compat.udf.sum import SumUDF

    data = _random((6, 5, 8, 7), np.uint16)
    path = tmp_path / "frames.raw"
    data.tofile(path)
    executor = InlineJobExecutor()
    ds = RawFileDataSet(
        path=str(path), nav_shape=(6, 5), sig_shape=(8, 7), dtype="uint16", tileshape=(1, 8, 7)
    )
    ds = ds.initialize(executor)
    ctx = lt.Context(executor=executor)
    res = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=np.ones((6, 5), dtype=bool))
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1), dtype=np.float64))
    assert tuple(ds.shape.nav) == (6, 5) and ds.shape.sig.size == 56


def test_analysis_script(lt_ctx):
    data = _random((4, 6, 10, 10), np.uint16)
    ds = lt_ctx.load("memory", data=data)
    result = lt_ctx.run(lt_ctx.create_ring_analysis(dataset=ds, cx=5, cy=5, ri=1, ro=4))
    y, x = np.mgrid[:10, :10]
    d2 = (y - 5) ** 2 + (x - 5) ** 2
    expected = (data * ((d2 > 1) & (d2 <= 16))).sum(axis=(2, 3))
    np.testing.assert_allclose(result.intensity.raw_data, expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(result["intensity_log"]), expected, rtol=1e-6)
