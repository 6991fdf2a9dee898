"""The in-memory data set."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.errors import DataSetError, ShapeMismatchError
from tests.conftest import random_data
from tests.io.contract import check_dataset


@pytest.mark.parametrize(
    ("dtype", "shape", "sig_dims"),
    [
        ("uint16", (5, 7, 13, 17), 2),
        (">u4", (4, 6, 9, 5), 2),
        ("float64", (2, 3, 4, 5, 7), 2),
        ("int32", (9, 31), 1),
        ("bool", (3, 4, 5, 6), 2),
    ],
)
def test_contract(ctx, rng, dtype, shape, sig_dims):
    data = random_data(rng, shape, dtype)
    ds = ctx.load("memory", data=data, sig_dims=sig_dims)
    check_dataset(ctx, ds, data, dtype=dtype)


def test_non_contiguous_array(ctx, rng):
    data = random_data(rng, (6, 8, 13, 17), "uint16")[::2, :, ::-1]
    ds = ctx.load("memory", data=data)
    check_dataset(ctx, ds, data)


def test_reshape(inline_ctx, rng):
    data = random_data(rng, (12, 5, 6), "uint16")
    ds = inline_ctx.load("memory", data=data, nav_shape=(3, 4), sig_shape=(30,))
    check_dataset(inline_ctx, ds, data.reshape(3, 4, 30))


def test_sig_shape_must_keep_pixel_count(inline_ctx, rng):
    with pytest.raises(ShapeMismatchError, match="pixels"):
        inline_ctx.load("memory", data=random_data(rng, (4, 5, 6), "u1"), sig_shape=(4, 7))


def test_needs_data(inline_ctx):
    with pytest.raises(DataSetError, match="data="):
        inline_ctx.load("memory")


def test_complex_loads_and_object_refused(inline_ctx):
    ds = inline_ctx.load("memory", data=np.ones((2, 3, 4, 5), dtype=np.complex64))
    assert ds.dtype == np.complex64
    with pytest.raises(DataSetError, match="dtype"):
        inline_ctx.load("memory", data=np.ones((2, 3, 4, 5), dtype=object))


@pytest.mark.parametrize("roi_shape", [(3, 4), (34,), (5, 8)])
def test_roi_shape_mismatch(inline_ctx, rng, roi_shape):
    from libertem_gpu import UDF

    class Nav(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            self.results.x[:] = frame.sum()

    ds = inline_ctx.load("memory", data=random_data(rng, (5, 7, 4, 4), "u2"))
    with pytest.raises(ShapeMismatchError, match=r"roi has shape .*expected the scan shape"):
        inline_ctx.run_udf(dataset=ds, udf=Nav(), roi=np.ones(roi_shape, dtype=bool))


def test_roi_must_be_boolean(inline_ctx, rng):
    from tests.io.contract import CollectFramesUDF

    ds = inline_ctx.load("memory", data=random_data(rng, (5, 7, 4, 4), "u2"))
    with pytest.raises(ShapeMismatchError, match="boolean"):
        inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF(), roi=np.ones((5, 7), dtype=int))
