"""UDFs get float32 frames unless they ask otherwise, as in LiberTEM (issue 17, point 1)."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import UDF, MaxUDF, PickUDF, StdDevUDF, SumSigUDF, SumUDF
from libertem_gpu.errors import UDFDefinitionError
from tests.conftest import random_data

DTYPES = ["uint8", "uint16", "int32", "float32", "complex64"]


def _data(rng, shape, dtype):
    if np.dtype(dtype).kind == "c":
        return (
            random_data(rng, shape, np.float32) + 1j * random_data(rng, shape, np.float32)
        ).astype(dtype)
    return random_data(rng, shape, dtype)


class SquareSumUDF(UDF):
    """A user's UDF as written for LiberTEM: sum of squares and the minimum of frame - 5."""

    def get_result_buffers(self):
        dtype = np.result_type(self.meta.input_dtype, np.float64)
        return {
            "squares": self.buffer(kind="nav", dtype=dtype),
            "low": self.buffer(kind="nav", dtype=dtype),
            "seen": self.buffer(kind="nav", dtype="int64"),
        }

    def process_frame(self, frame):
        self.results.squares[:] = np.sum(frame**2)
        self.results.low[:] = np.min((frame - 5).real)
        self.results.seen[:] = np.dtype(frame.dtype).num


class NativeUDF(UDF):
    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {"seen": self.buffer(kind="nav", dtype="int64")}

    def process_tile(self, tile):
        assert tile.dtype == self.meta.input_dtype
        self.results.seen[:] = np.dtype(tile.dtype).num


class Float64UDF(NativeUDF):
    def get_preferred_input_dtype(self):
        return np.float64


@pytest.mark.parametrize("dtype", DTYPES)
def test_user_udfs_get_float32_semantics(ctx, rng, dtype):
    data = _data(rng, (3, 5, 6, 7), dtype)
    ds = ctx.load("memory", data=data, num_partitions=3)
    udfs = [SquareSumUDF(), NativeUDF(), Float64UDF()]
    squares, native, wide = ctx.run_udf(dataset=ds, udf=udfs)
    want = np.result_type(np.float32, dtype)  # float32, or wider where the data needs it
    frames = data.astype(want)
    np.testing.assert_allclose(squares["squares"].data, np.sum(frames**2, axis=(2, 3)), rtol=1e-5)
    np.testing.assert_allclose(squares["low"].data, np.min((frames - 5).real, axis=(2, 3)))
    assert (squares["seen"].data == want.num).all()
    assert (native["seen"].data == np.dtype(dtype).num).all()
    assert (wide["seen"].data == np.result_type(np.float64, dtype).num).all()


def test_unsigned_frames_do_not_wrap(inline_ctx, rng):
    """The two silent errors of a UDF ported from LiberTEM when frames came as stored uint16."""
    data = rng.integers(40_000, 65_535, size=(2, 3, 8, 8)).astype(np.uint16)
    res = inline_ctx.run_udf(dataset=inline_ctx.load("memory", data=data), udf=SquareSumUDF())
    assert res["low"].data.min() >= 40_000 - 5
    assert res["squares"].data.min() > 64 * 40_000.0**2 * 0.99


def test_float16_data_runs(ctx, rng):
    data = random_data(rng, (3, 4, 5, 6), np.float32).astype(np.float16)
    ds = ctx.load("memory", data=data)
    squares, total = ctx.run_udf(dataset=ds, udf=[SquareSumUDF(), SumUDF()])
    frames = data.astype(np.float32)
    np.testing.assert_allclose(squares["squares"].data, np.sum(frames**2, axis=(2, 3)), rtol=1e-5)
    np.testing.assert_allclose(total["intensity"].data, frames.sum(axis=(0, 1)), rtol=1e-5)


def test_complex_data_with_builtins(inline_ctx, rng):
    data = _data(rng, (2, 3, 4, 5), np.complex64)
    ds = inline_ctx.load("memory", data=data)
    picked = inline_ctx.run_udf(dataset=ds, udf=PickUDF(), roi=np.eye(2, 3, dtype=bool))
    np.testing.assert_array_equal(picked["intensity"].raw_data, data[np.eye(2, 3, dtype=bool)])
    total, per_frame = inline_ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    np.testing.assert_allclose(total["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(per_frame["intensity"].data, data.sum(axis=(2, 3)), rtol=1e-5)
    std = inline_ctx.run_udf(dataset=ds, udf=StdDevUDF())  # more in test_complex.py
    np.testing.assert_allclose(std["mean"].data, data.mean(axis=(0, 1)), rtol=1e-5, atol=1e-6)
    with pytest.raises(UDFDefinitionError, match="MaxUDF.*complex64"):
        inline_ctx.run_udf(dataset=ds, udf=MaxUDF())


class _StoredTypeSum(SumUDF):
    def process_tile(self, tile):
        assert tile.dtype == self.meta.dataset_dtype, tile.dtype  # no copy to float
        super().process_tile(tile)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32"])
def test_builtins_keep_the_stored_type(ctx, rng, dtype):
    data = random_data(rng, (2, 3, 4, 5), dtype)
    res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=_StoredTypeSum())
    np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1), dtype=np.float64))
