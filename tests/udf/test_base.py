"""The UDF model: declaration, process methods, buffers and their views, merge, results, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from libertem_gpu import UDF, TilingScheme
from libertem_gpu.errors import UDFDefinitionError, UDFResultError
from tests.conftest import random_data


class FrameStats(UDF):
    """Per frame: sum and (max, min), in the stored type; uses process_frame."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="nav", dtype="float64"),
            "extrema": self.buffer(kind="nav", extra_shape=(2,), dtype=self.meta.input_dtype),
        }

    def process_frame(self, frame):
        self.results.total[:] = frame.sum(dtype=np.float64)
        self.results.extrema[:] = (frame.max(), frame.min())


class TileSum(UDF):
    """Sum over frames plus a count of frames in a single buffer; uses process_tile and
    accepts partial frames."""

    def __init__(self, scale=1.0):
        super().__init__(scale=scale)

    def get_result_buffers(self):
        return {
            "intensity": self.buffer(kind="sig", dtype="float64"),
            "count": self.buffer(kind="single", dtype="int64"),
            "rowsum": self.buffer(kind="nav", dtype="float64"),
        }

    def get_tiling_preferences(self):
        return {"partial_frames": True}

    def process_tile(self, tile):
        assert tile.shape[1:] == self.results.intensity.shape
        self.results.intensity[:] += self.params.scale * tile.sum(axis=0, dtype=np.float64)
        self.results.rowsum[:] += tile.reshape(len(tile), -1).sum(axis=1, dtype=np.float64)
        if self.meta.sig_slice[0].start == 0:  # count each frame once, on its first slab
            self.results.count[:] += len(tile)

    def merge(self, dest, src):
        dest.intensity[:] += src.intensity
        dest.count[:] += src.count
        dest.rowsum[:] = src.rowsum


class PartitionMean(UDF):
    """Mean frame via process_partition, with a private sum and a result_only mean."""

    def get_result_buffers(self):
        return {
            "sum": self.buffer(kind="sig", dtype="float64", use="private"),
            "n": self.buffer(kind="single", dtype="int64", use="private"),
            "mean": self.buffer(kind="sig", dtype="float64", use="result_only"),
            "coords": self.buffer(kind="nav", extra_shape=(2,), dtype="int64"),
        }

    def process_partition(self, partition):
        self.results.sum[:] += partition.sum(axis=0, dtype=np.float64)
        self.results.n[:] += len(partition)
        self.results.coords[:] = self.meta.coordinates

    def merge(self, dest, src):
        dest.sum[:] += src.sum
        dest.n[:] += src.n
        dest.coords[:] = src.coords

    def get_results(self):
        return {"mean": self.results.sum / self.results.n[0], "coords": self.results.coords}


def _dataset(ctx, rng, nav=(5, 7), sig=(13, 17), dtype="uint16", **kw):
    data = random_data(rng, nav + sig, dtype)
    return data, ctx.load("memory", data=data, num_partitions=3, sig_dims=len(sig), **kw)


@pytest.mark.parametrize("tiling", [None, TilingScheme(depth=3), TilingScheme(2, sig_rows=5)])
@pytest.mark.parametrize("use_roi", [False, True])
def test_three_methods_in_one_pass(ctx, rng, tiling, use_roi):
    data, ds = _dataset(ctx, rng)
    roi = rng.random((5, 7)) > 0.3 if use_roi else None
    sel = data[roi] if use_roi else data.reshape(-1, 13, 17)
    frame, tile, part = ctx.run_udf(
        dataset=ds, udf=[FrameStats(), TileSum(scale=2.0), PartitionMean()], roi=roi, tiling=tiling
    )
    flat = sel.astype(np.float64)
    np.testing.assert_allclose(frame["total"].raw_data, flat.sum(axis=(1, 2)))
    np.testing.assert_array_equal(frame["extrema"].raw_data[:, 0], sel.max(axis=(1, 2)))
    assert frame["extrema"].dtype == np.uint16
    np.testing.assert_allclose(tile["intensity"].data, 2 * flat.sum(axis=0))
    np.testing.assert_allclose(tile["rowsum"].raw_data, flat.sum(axis=(1, 2)))
    assert tile["count"].data.tolist() == [len(sel)]
    np.testing.assert_allclose(part["mean"].data, flat.mean(axis=0))
    assert "sum" not in part and "n" not in part
    expected_coords = np.argwhere(roi) if use_roi else np.argwhere(np.ones((5, 7), bool))
    np.testing.assert_array_equal(part["coords"].raw_data, expected_coords)


def test_nav_results_outside_roi(inline_ctx, rng):
    data, ds = _dataset(inline_ctx, rng)
    roi = np.zeros((5, 7), dtype=bool)
    roi[1, 2:5] = True
    res = inline_ctx.run_udf(dataset=ds, udf=FrameStats(), roi=roi)
    assert np.isnan(res["total"].data[~roi]).all()
    assert (res["extrema"].data[~roi] == 0).all()  # integers: 0 outside the roi
    assert res["total"].raw_data.shape == (3,)
    assert res["total"].data.shape == (5, 7)
    assert res["total"].valid_mask.sum() == 3
    np.testing.assert_allclose(np.asarray(res["total"])[roi], data[roi].sum(axis=(1, 2)))


def test_empty_roi(inline_ctx, rng):
    _, ds = _dataset(inline_ctx, rng)
    res = inline_ctx.run_udf(dataset=ds, udf=TileSum(), roi=np.zeros((5, 7), dtype=bool))
    assert (res["intensity"].data == 0).all()
    assert np.isnan(res["rowsum"].data).all()


@pytest.mark.parametrize("nav", [(11,), (3, 4), (2, 3, 4)])
def test_nav_dims_and_1d_sig(ctx, rng, nav):
    data, ds = _dataset(ctx, rng, nav=nav, sig=(19,), dtype="float32")
    res = ctx.run_udf(dataset=ds, udf=FrameStats())
    np.testing.assert_allclose(res["total"].data, data.astype(np.float64).sum(axis=-1))


def test_run_udf_iter_yields_partial_results(inline_ctx, rng):
    data, ds = _dataset(inline_ctx, rng)
    parts = list(inline_ctx.run_udf_iter(dataset=ds, udf=[TileSum(), FrameStats()]))
    assert len(parts) == 3
    done = [p.damage.data.sum() for p in parts]
    assert done == sorted(done) and done[-1] == 35
    first = parts[0].buffers[1]["total"]
    assert first.valid_mask.sum() == done[0]
    final = parts[-1].buffers[0]["intensity"].data
    np.testing.assert_allclose(final, data.astype(np.float64).sum(axis=(0, 1)))


def test_udf_parameters_pickle(rng):
    udf = TileSum(scale=3.5)
    clone = pickle.loads(pickle.dumps(udf))
    assert clone.params.scale == 3.5
    assert clone.copy().params.scale == 3.5
    with pytest.raises(AttributeError, match="read-only"):
        udf.params.scale = 1


def test_no_process_method(inline_ctx, rng):
    class Nothing(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

    _, ds = _dataset(inline_ctx, rng)
    with pytest.raises(UDFDefinitionError, match="exactly one of.*found none"):
        inline_ctx.run_udf(dataset=ds, udf=Nothing())


def test_two_process_methods(inline_ctx, rng):
    class Two(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            pass

        def process_tile(self, tile):
            pass

    _, ds = _dataset(inline_ctx, rng)
    with pytest.raises(UDFDefinitionError, match=r"exactly one of.*process_frame.*process_tile"):
        inline_ctx.run_udf(dataset=ds, udf=Two())


def test_missing_get_result_buffers(inline_ctx, rng):
    class NoBuffers(UDF):
        def process_frame(self, frame):
            pass

    _, ds = _dataset(inline_ctx, rng)
    with pytest.raises(UDFDefinitionError, match="get_result_buffers"):
        inline_ctx.run_udf(dataset=ds, udf=NoBuffers())


def test_sig_buffer_needs_merge(inline_ctx, rng):
    class NoMerge(UDF):
        def get_result_buffers(self):
            return {"s": self.buffer(kind="sig")}

        def process_tile(self, tile):
            self.results.s[:] += tile.sum(axis=0)

    _, ds = _dataset(inline_ctx, rng)
    with pytest.raises(UDFDefinitionError, match="implement merge"):
        inline_ctx.run_udf(dataset=ds, udf=NoMerge())


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (np.zeros((4, 4)), r"result 'x' of kind 'nav' must have shape \(35,\), got \(4, 4\)"),
        (np.zeros(35, dtype=complex), "declared as float32, got complex128"),
        ("missing", "did not return the declared result 'x'"),
        ("extra", r"undeclared results \['y'\]"),
    ],
)
def test_wrong_results(inline_ctx, rng, value, match):
    class Bad(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav", dtype="float32")}

        def process_frame(self, frame):
            self.results.x[:] = 1

        def get_results(self):
            if isinstance(value, str):
                return {} if value == "missing" else {"x": self.results.x, "y": 1}
            return {"x": value}

    _, ds = _dataset(inline_ctx, rng)
    with pytest.raises(UDFResultError, match=match):
        inline_ctx.run_udf(dataset=ds, udf=Bad())


def test_bad_buffer_kind(inline_ctx, rng):
    class BadKind(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="frame")}

        def process_frame(self, frame):
            pass

    _, ds = _dataset(inline_ctx, rng)
    with pytest.raises(UDFDefinitionError, match="kind must be one of"):
        inline_ctx.run_udf(dataset=ds, udf=BadKind())


def test_not_a_udf(inline_ctx, rng):
    _, ds = _dataset(inline_ctx, rng)
    with pytest.raises(UDFDefinitionError, match="UDF instances"):
        inline_ctx.run_udf(dataset=ds, udf=[object()])


def test_exception_in_udf_propagates(ctx, rng):
    class Boom(UDF):
        def get_result_buffers(self):
            return {"x": self.buffer(kind="nav")}

        def process_frame(self, frame):
            raise RuntimeError("boom in process_frame")

    _, ds = _dataset(ctx, rng)
    with pytest.raises(RuntimeError, match="boom in process_frame"):
        ctx.run_udf(dataset=ds, udf=Boom())
    # the context stays usable
    res = ctx.run_udf(dataset=ds, udf=FrameStats())
    assert res["total"].data.shape == (5, 7)
