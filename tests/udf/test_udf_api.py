"""The UDF API that LiberTEM scripts use: task data, aux data, meta.slice, merge_all, masked
results, AutoUDF / ctx.map, Context.make_with."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import UDF, AutoUDF, Context, TilingScheme
from libertem_gpu.errors import ExecutorError, ShapeMismatchError, UDFResultError
from tests.conftest import random_data


class AuxUDF(UDF):
    """Per frame: sum(frame * sig_aux) * nav_aux + single_aux[0], by frames or by tiles."""

    def __init__(self, nav_aux, sig_aux, single_aux, sig_full=None):
        super().__init__(nav_aux=nav_aux, sig_aux=sig_aux, single_aux=single_aux, sig_full=sig_full)

    def get_result_buffers(self):
        return {"value": self.buffer(kind="nav", dtype="float64")}

    def get_task_data(self):
        return {"offset": float(self.params.single_aux[0])}

    def get_tiling_preferences(self):
        return {"depth": None, "total_size": None, "partial_frames": True}


class AuxFrameUDF(AuxUDF):
    def process_frame(self, frame):
        assert self.params.nav_aux.shape == (1,)
        weighted = (frame * self.params.sig_aux).sum(dtype=np.float64)
        self.results.value[:] = weighted * self.params.nav_aux + self.task_data.offset


class AuxTileUDF(AuxUDF):
    def process_tile(self, tile):
        n = tile.shape[0]
        assert self.params.nav_aux.shape == (n,)
        assert self.params.sig_aux.shape == tile.shape[1:]
        np.testing.assert_array_equal(
            self.meta.slice.get(self.params.sig_full, sig_only=True), self.params.sig_aux
        )
        weighted = (tile * self.params.sig_aux).reshape(n, -1).sum(axis=1, dtype=np.float64)
        # row slabs add up; the offset is added once per frame, with the first rows
        first = self.meta.slice.origin[1] == 0
        self.results.value[:] += weighted * self.params.nav_aux + (
            self.task_data.offset if first else 0.0
        )


@pytest.mark.parametrize("cls", [AuxFrameUDF, AuxTileUDF])
@pytest.mark.parametrize("tiling", [None, TilingScheme(depth=3, sig_rows=4)])
def test_aux_data_and_task_data(ctx, rng, cls, tiling):
    data = random_data(rng, (5, 7, 9, 11), np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=3)
    nav = rng.random((5, 7))
    sig = rng.random((9, 11))
    roi = rng.random((5, 7)) > 0.3
    udf = cls(
        nav_aux=UDF.aux_data(nav, kind="nav", dtype="float64"),
        sig_aux=UDF.aux_data(sig, kind="sig", dtype="float64"),
        single_aux=UDF.aux_data([2.5], kind="single", extra_shape=(1,), dtype="float64"),
        sig_full=sig,
    )
    got = ctx.run_udf(dataset=ds, udf=udf, roi=roi, tiling=tiling)["value"]
    want = (data.astype(np.float64) * sig).sum(axis=(2, 3)) * nav + 2.5
    np.testing.assert_allclose(got.raw_data, want[roi], rtol=1e-10)


def test_aux_data_of_the_wrong_size_is_refused_before_any_work(inline_ctx, rng):
    ds = inline_ctx.load("memory", data=random_data(rng, (4, 5, 6, 7), np.uint16))
    udf = AuxFrameUDF(
        nav_aux=UDF.aux_data(np.ones(19), kind="nav"),
        sig_aux=UDF.aux_data(np.ones((6, 7)), kind="sig"),
        single_aux=UDF.aux_data([0.0], kind="single", extra_shape=(1,)),
    )
    with pytest.raises(ShapeMismatchError, match="'nav_aux' holds 19 values.*20 positions"):
        inline_ctx.run_udf(dataset=ds, udf=udf)


class SliceUDF(UDF):
    """Records each tile's meta.slice origin and shape as a nav result."""

    def get_result_buffers(self):
        return {"where": self.buffer(kind="nav", extra_shape=(3,), dtype="int64")}

    def process_tile(self, tile):
        origin = self.meta.slice.origin
        shape = self.meta.slice.shape
        assert shape == tile.shape
        self.results.where[:] = (origin[0], shape[0], self.meta.slice.frames[-1])


def test_meta_slice(ctx, rng):
    data = random_data(rng, (4, 5, 6, 7), np.float32)
    ds = ctx.load("memory", data=data, num_partitions=2)
    where = ctx.run_udf(dataset=ds, udf=SliceUDF(), tiling=TilingScheme(depth=3))["where"]
    first, count, last = np.moveaxis(where.data.reshape(-1, 3), 1, 0)
    assert (last - first + 1 == count).all()
    assert (np.arange(20) >= first).all() and (np.arange(20) <= last).all()


class MergeAllUDF(UDF):
    """Sum of frames merged with merge_all, plus a per-frame maximum (placed by the framework)."""

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="sig", dtype="float64"),
            "peak": self.buffer(kind="nav", dtype="float64"),
        }

    def process_frame(self, frame):
        self.results.total[:] += frame
        self.results.peak[:] = frame.max()

    def merge_all(self, ordered_results):
        assert list(ordered_results) == sorted(ordered_results)
        return {"total": np.sum([part.total for part in ordered_results.values()], axis=0)}


def test_merge_all(ctx, rng):
    data = random_data(rng, (3, 7, 5, 6), np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=4)
    roi = rng.random((3, 7)) > 0.4
    got = ctx.run_udf(dataset=ds, udf=MergeAllUDF(), roi=roi)
    np.testing.assert_allclose(got["total"].data, data[roi].sum(axis=0, dtype=np.float64))
    np.testing.assert_allclose(got["peak"].raw_data, data[roi].max(axis=(1, 2)))


class BadMergeAllUDF(MergeAllUDF):
    def merge_all(self, ordered_results):
        return {"total": np.zeros(3)}


def test_merge_all_with_a_wrong_shape_is_an_error(inline_ctx, rng):
    ds = inline_ctx.load("memory", data=random_data(rng, (3, 4, 5, 6), np.uint16))
    with pytest.raises(UDFResultError, match="'total'.*shape"):
        inline_ctx.run_udf(dataset=ds, udf=BadMergeAllUDF())


def test_masked_data_of_partial_results(inline_ctx, rng):
    data = random_data(rng, (4, 6, 5, 5), np.float32)
    ds = inline_ctx.load("memory", data=data, num_partitions=4)
    roi = rng.random((4, 6)) > 0.3
    partials = list(inline_ctx.run_udf_iter(dataset=ds, udf=AutoUDF(f=np.sum), roi=roi))
    first = partials[0].buffers[0]["result"]
    masked = first.masked_data
    assert masked.shape == (4, 6)
    np.testing.assert_array_equal(~masked.mask, first.valid_mask)
    assert 0 < first.valid_mask.sum() < roi.sum()
    np.testing.assert_allclose(
        masked.compressed(), data.sum(axis=(2, 3))[first.valid_mask], rtol=1e-5
    )
    last = partials[-1].buffers[0]["result"]
    np.testing.assert_array_equal(~last.masked_data.mask, roi)


def test_map_and_auto_udf(ctx, rng):
    data = random_data(rng, (3, 5, 7, 8), np.uint16)
    ds = ctx.load("memory", data=data, num_partitions=2)
    got = ctx.map(dataset=ds, f=_row_max)
    assert got.data.shape == (3, 5, 7)
    np.testing.assert_array_equal(got.data, data.max(axis=3))


def _row_max(frame):
    return frame.max(axis=1)


def test_make_with():
    with Context.make_with("threads", cpus=2) as ctx:
        assert ctx.executor.n_workers == 2
    with Context.make_with("inline") as ctx:
        assert ctx.executor.n_workers == 1
    with pytest.raises(ExecutorError, match="'pipelined'.*no equivalent"):
        Context.make_with("pipelined")
    ctx = Context.make_with("inline", gpus=1)
    assert ctx.backend == "cupy" and ctx.devices == [0]
