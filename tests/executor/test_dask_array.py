"""Dask array interop: data sets as dask arrays (chunks = partitions) and dask arrays as data
sets (format "dask"), on the local executors; the cluster cases are in test_dask.py."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from libertem_gpu import config
from libertem_gpu.errors import DataSetError, ShapeMismatchError
from libertem_gpu.io.dask_array import DaskDataSet, make_dask_array
from libertem_gpu.io.registry import get_format
from tests.conftest import random_data
from tests.io.contract import check_dataset


def _datasets(ctx, tmp_path, rng):
    """(data set, expected frames nav+sig) for raw (big-endian, sync_offset), npy and memory."""
    raw = random_data(rng, (30, 13, 17), ">u2")
    raw_path = tmp_path / "a.raw"
    raw.tofile(raw_path)
    yield (
        ctx.load(
            "raw", path=raw_path, nav_shape=(4, 7), sig_shape=(13, 17), dtype=">u2", sync_offset=2
        ),
        raw[2:30].reshape(4, 7, 13, 17),
    )
    blank = random_data(rng, (5, 13, 17), "<u2")
    yield (
        ctx.load(
            "raw",
            path=_write(tmp_path / "b.raw", blank),
            nav_shape=(7,),
            sig_shape=(13, 17),
            dtype="<u2",
            sync_offset=-2,
        ),
        np.concatenate([np.zeros((2, 13, 17), "<u2"), blank]),
    )
    npy = random_data(rng, (2, 3, 4, 11, 5), "float32")
    np.save(tmp_path / "c.npy", npy)
    yield ctx.load("npy", path=tmp_path / "c.npy"), npy
    mem = random_data(rng, (9, 6, 7), "int32")
    yield ctx.load("memory", data=mem), mem


def _write(path, array):
    array.tofile(path)
    return path


def test_make_dask_array_values_and_chunks(ctx, tmp_path, rng):
    for ds, expected in _datasets(ctx, tmp_path, rng):
        nav_size = ds.shape.nav_size
        flat = expected.reshape(nav_size, *ds.sig_shape)
        with config.set(partition_bytes=3 * ds.frame_bytes):
            parts = ds.get_partitions(ctx.executor.n_workers)
            array = ctx.make_dask_array(ds)
        assert len(parts) > 1
        assert array.chunks[0] == tuple(p.size for p in parts)
        assert array.chunks[1:] == tuple((d,) for d in ds.sig_shape)
        assert array.dtype == ds.dtype and array.dtype.isnative
        np.testing.assert_array_equal(array.compute(scheduler="sync"), flat)
        # slicing works as on NumPy
        np.testing.assert_array_equal(array[1:4, 2].compute(), flat[1:4, 2])
        # the scan shape back
        np.testing.assert_array_equal(
            array.reshape(*ds.nav_shape, *ds.sig_shape).sum(axis=-1).compute(),
            expected.sum(axis=-1),
        )


def test_make_dask_array_roi(inline_ctx, rng):
    data = random_data(rng, (4, 5, 6, 3), "uint8")
    ds = inline_ctx.load("memory", data=data, num_partitions=4)  # 5 frames each
    roi = rng.random((4, 5)) > 0.5
    roi[1] = False  # partition 1 has no selected frame: no chunk for it
    roi[0, 0] = True
    array = make_dask_array(ds, roi=roi)
    counts = [int(roi.reshape(-1)[i : i + 5].sum()) for i in range(0, 20, 5)]
    assert array.chunks[0] == tuple(c for c in counts if c)
    np.testing.assert_array_equal(array.compute(), data[roi])
    none = make_dask_array(ds, roi=np.zeros((4, 5), bool))
    assert none.shape == (0, 6, 3)
    with pytest.raises(ShapeMismatchError):
        make_dask_array(ds, roi=np.ones((3, 3), bool))


@pytest.mark.parametrize(
    ("shape", "chunks", "sig_dims"),
    [
        ((23, 13, 17), (5, 13, 17), 2),
        ((4, 6, 13, 17), (3, 2, 13, 17), 2),
        ((2, 3, 4, 7, 5), (1, 3, 4, 7, 5), 2),
        ((6, 5, 19), (4, 5, 7), 1),
    ],
)
def test_dask_dataset_contract(ctx, rng, shape, chunks, sig_dims):
    data = random_data(rng, shape, "float32")
    ds = ctx.load("dask", da.from_array(data, chunks=chunks), sig_dims=sig_dims)
    assert isinstance(ds, DaskDataSet)
    check_dataset(ctx, ds, data, dtype="float32", rng=rng)


def test_dask_dataset_big_endian_and_lazy_source(inline_ctx, rng):
    data = random_data(rng, (3, 4, 9, 7), ">i4")
    calls = []

    def block(x):
        calls.append(x.shape)
        return x

    array = da.from_array(data, chunks=(1, 4, 9, 7)).map_blocks(block, dtype=data.dtype)
    ds = inline_ctx.load("dask", array)
    assert ds.dtype == np.dtype("int32") and ds.storage_dtype == np.dtype(">i4")
    check_dataset(inline_ctx, ds, data, dtype="int32", rng=rng)
    assert calls  # computed through the graph, chunk by chunk
    assert all(shape[0] in (0, 1) for shape in calls)  # 0: dask probing the block's type


def test_partitions_follow_chunks(rng):
    data = random_data(rng, (40, 4, 4), "uint16")
    ds = DaskDataSet(da.from_array(data, chunks=(7, 4, 4))).initialize()
    with config.set(partition_bytes=10 * ds.frame_bytes):
        parts = ds.get_partitions(1)
    edges = [p.start for p in parts] + [parts[-1].stop]
    assert edges[0] == 0 and edges[-1] == 40
    assert all(e % 7 == 0 for e in edges[1:-1]), edges  # cut only at chunk boundaries
    assert [p.index for p in parts] == list(range(len(parts)))
    # 2-D scan chunked along the first axis only: boundaries are whole rows
    ds2 = DaskDataSet(da.from_array(data.reshape(8, 5, 4, 4), chunks=(3, 5, 4, 4))).initialize()
    assert ds2.chunk_boundaries() == [15, 30]
    # sync_offset shifts the chunk boundaries into scan positions
    ds3 = DaskDataSet(
        da.from_array(data, chunks=(7, 4, 4)), nav_shape=(30,), sync_offset=3
    ).initialize()
    with config.set(partition_bytes=5 * ds3.frame_bytes):
        parts3 = ds3.get_partitions(1)
    assert all((p.start + 3) % 7 == 0 for p in parts3[1:]), parts3
    # chunks across the scan's inner axes: sized as usual
    ds4 = DaskDataSet(da.from_array(data.reshape(8, 5, 4, 4), chunks=(3, 2, 4, 4))).initialize()
    assert ds4.chunk_boundaries() is None
    assert ds4.get_partitions(1)[-1].stop == 40


def test_dask_dataset_errors(rng):
    with pytest.raises(DataSetError, match="expected a dask.array.Array, got ndarray"):
        DaskDataSet(np.zeros((2, 3, 4)))
    with pytest.raises(DataSetError, match="need"):
        DaskDataSet()
    with pytest.raises(DataSetError, match="cannot be split"):
        DaskDataSet(da.zeros((3, 4), chunks=2), sig_dims=2).initialize()
    with pytest.raises(DataSetError, match="unsupported dtype"):
        DaskDataSet(da.zeros((3, 4, 4), dtype=object, chunks=2)).initialize()
    unknown = da.from_array(random_data(rng, (6, 3, 3), "uint8"), chunks=2)
    unknown = unknown[unknown[:, 0, 0] > 10]
    with pytest.raises(DataSetError, match="compute_chunk_sizes"):
        DaskDataSet(unknown).initialize()
    assert get_format("dask") is DaskDataSet
    assert not DaskDataSet.guess_can_open("x.npy")
