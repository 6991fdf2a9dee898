"""A contract test kit for data sets: every format's tests call these checks with a data set and
the NumPy array its frames should equal.

Usage in a format's test module::

    from tests.io.contract import check_dataset

    def test_contract(tmp_path, ctx):
        expected = ...  # numpy array, nav + sig
        ds = ctx.load("myformat", path=write_my_file(tmp_path, expected))
        check_dataset(ctx, ds, expected)
"""

from __future__ import annotations

import numpy as np

from libertem_gpu import UDF, Context, config
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.tiles import TilingScheme


class CollectFramesUDF(UDF):
    """Copies every frame into a nav buffer (for small test data only)."""

    def get_result_buffers(self):
        return {
            "frames": self.buffer(
                kind="nav", extra_shape=self.meta.dataset_shape.sig, dtype="float64"
            )
        }

    def process_tile(self, tile):
        self.results.frames[:] = tile


class SumPartialUDF(UDF):
    """Sum over frames, accepting partial frames (exercises row-split tiles)."""

    def get_result_buffers(self):
        return {"intensity": self.buffer(kind="sig", dtype="float64")}

    def get_tiling_preferences(self):
        return {"partial_frames": True}

    def process_tile(self, tile):
        self.results.intensity[:] += tile.sum(axis=0, dtype=np.float64)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity


def check_dataset(
    ctx: Context,
    ds: DataSet,
    expected: np.ndarray,
    dtype: np.dtype | str | None = None,
    rng: np.random.Generator | None = None,
) -> None:
    """Check shape, dtype, frame-by-frame equality (all frames, an roi, several partitions, tiles
    that do not divide the frame count, split frames) of ``ds`` against ``expected``."""
    rng = rng or np.random.default_rng(1)
    nav_ndim = len(ds.nav_shape)
    assert ds.nav_shape + ds.sig_shape == expected.shape, (ds.shape, expected.shape)
    if dtype is not None:
        assert ds.dtype == np.dtype(dtype).newbyteorder("="), (ds.dtype, dtype)
    ref = expected.astype(np.float64)
    # Positions without data (sync_offset past either end of the file) are never processed:
    # their frames read as NaN in the float64 frames result.
    source = np.arange(ds.shape.nav_size) + ds.sync_offset
    no_data = ((source < 0) | (source >= ds.image_count)).reshape(ds.nav_shape)
    ref[no_data] = np.nan

    frames = ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, ref)

    # Several partitions, of sizes that do not divide the frame count.
    with config.set(partition_bytes=3 * ds.frame_bytes):
        assert len(ds.get_partitions()) > 1 or ds.shape.nav_size <= 3
        frames = ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, ref)

    roi = rng.random(ds.nav_shape) > 0.4
    roi.flat[0] = True
    result = ctx.run_udf(dataset=ds, udf=CollectFramesUDF(), roi=roi, tiling=TilingScheme(depth=3))[
        "frames"
    ]
    np.testing.assert_array_equal(result.raw_data, ref[roi])
    assert np.isnan(result.data[~roi]).all()

    split = TilingScheme(depth=2, sig_rows=max(1, ds.sig_shape[0] // 3))
    total = ctx.run_udf(dataset=ds, udf=SumPartialUDF(), tiling=split)["intensity"].data
    np.testing.assert_allclose(total, np.nansum(ref, axis=tuple(range(nav_ndim))), rtol=1e-12)
