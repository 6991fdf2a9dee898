"""The compat data set classes take LiberTEM's parameters, come back initialised, and run."""

from __future__ import annotations

import numpy as np
import pytest

import libertem_gpu.compat.api as lt
from libertem_gpu.compat.io.dataset import get_dataset_cls
from libertem_gpu.compat.io.dataset.base import DataSet, DataSetException
from libertem_gpu.compat.io.dataset.hdf5 import H5DataSet
from libertem_gpu.compat.io.dataset.memory import MemoryDataSet
from libertem_gpu.compat.io.dataset.npy import NPYDataSet
from libertem_gpu.compat.io.dataset.raw import RawFileDataSet
from libertem_gpu.compat.udf.sum import SumUDF
from libertem_gpu.compat.udf.sumsigudf import SumSigUDF

RNG = np.random.default_rng(3)


@pytest.fixture
def lt_ctx():
    ctx = lt.Context.make_with("inline")
    yield ctx
    ctx.close()


def _sums(ctx, ds):
    total, per_frame = ctx.run_udf(dataset=ds, udf=[SumUDF(), SumSigUDF()])
    return total["intensity"].data, per_frame["intensity"].data


def test_memory_liberTEM_arguments(lt_ctx):
    data = RNG.integers(0, 100, (4, 6, 5, 7)).astype(np.uint16)
    ds = MemoryDataSet(
        data=data,
        tileshape=(3, 5, 7),
        num_partitions=3,
        sig_dims=2,
        check_cast=False,
        tiledelay=None,
        force_need_decode=True,
        array_backends=None,
    )
    assert isinstance(ds, DataSet) and ds.shape == (4, 6, 5, 7)
    total, per_frame = _sums(lt_ctx, ds)
    np.testing.assert_allclose(total, data.sum(axis=(0, 1)))
    np.testing.assert_allclose(per_frame, data.sum(axis=(2, 3)))
    assert ds.initialize(lt_ctx.executor) is ds


def test_memory_spectra_and_reshapes(lt_ctx):
    spectra = RNG.random((3, 4, 50)).astype(np.float32)
    ds = MemoryDataSet(data=spectra, sig_dims=1)
    assert ds.shape.sig.dims == 1 and tuple(ds.shape.nav) == (3, 4)
    np.testing.assert_allclose(_sums(lt_ctx, ds)[0], spectra.sum(axis=(0, 1)), rtol=1e-5)
    # sig_shape alone sets sig_dims, as in LiberTEM; nav_shape reshapes the scan
    frames = RNG.random((2, 6, 4, 5))
    flat = MemoryDataSet(data=frames, sig_shape=(20,), nav_shape=(3, 4))
    assert flat.shape == (3, 4, 20) and flat.shape.sig.dims == 1
    np.testing.assert_allclose(_sums(lt_ctx, flat)[1], frames.reshape(3, 4, 20).sum(axis=2))


def test_memory_datashape_sync_offset_and_errors(lt_ctx):
    empty = MemoryDataSet(datashape=(2, 3, 4, 4))
    assert empty.dtype == np.float32 and not _sums(lt_ctx, empty)[0].any()
    data = RNG.random((4, 4, 3, 3))
    shifted = MemoryDataSet(data=data, sync_offset=2)
    expected = data.reshape(16, 3, 3)[2:].sum(axis=(1, 2))
    np.testing.assert_allclose(_sums(lt_ctx, shifted)[1].reshape(-1)[:14], expected)
    with pytest.raises(ValueError, match="io_backend"):
        MemoryDataSet(data=data, io_backend=object())
    with pytest.raises(ValueError, match="data"):
        MemoryDataSet()
    with pytest.raises(ValueError, match="sig_dims"):
        MemoryDataSet(data=data, sig_dims=1, sig_shape=(3, 3))
    with pytest.raises(DataSetException):
        lt_ctx.load("memory", data=np.ones((2, 2, 2, 2), dtype=object))


def test_memory_three_d_signal(lt_ctx):
    data = RNG.random((3, 4, 5, 6, 7))
    ds = MemoryDataSet(data=data, sig_dims=3)
    np.testing.assert_allclose(_sums(lt_ctx, ds)[0], data.sum(axis=(0, 1)))


def test_raw_liberTEM_arguments(lt_ctx, tmp_path):
    data = RNG.integers(0, 4000, (5, 4, 6, 3)).astype(">u2")
    path = tmp_path / "data.raw"
    data.tofile(path)
    ds = RawFileDataSet(
        path=str(path),
        dtype=">u2",
        nav_shape=(5, 4),
        sig_shape=(6, 3),
        tileshape=(1, 6, 3),
        io_backend=object(),
        enable_direct=False,
        num_partitions=2,
    )
    np.testing.assert_allclose(_sums(lt_ctx, ds)[0], data.astype(np.float64).sum(axis=(0, 1)))
    with pytest.warns(FutureWarning, match="scan_size"):
        old = RawFileDataSet(str(path), ">u2", scan_size=(20,), detector_size=(6, 3))
    assert old.shape == (20, 6, 3)
    loaded = lt_ctx.load(
        "raw", path=str(path), dtype=">u2", nav_shape=(5, 4), sig_shape=(18,), io_backend=None
    )
    assert loaded.shape.sig.to_tuple() == (18,)
    with pytest.raises(ValueError, match="crop"):
        RawFileDataSet(
            str(path), ">u2", nav_shape=(5, 4), detector_size_raw=(6, 3), crop_detector_to=(5, 3)
        )


def test_npy_and_hdf5(lt_ctx, tmp_path):
    h5py = pytest.importorskip("h5py")
    data = RNG.integers(-50, 50, (3, 5, 4, 6)).astype(np.int32)
    npy_path = tmp_path / "data.npy"
    np.save(npy_path, data)
    npy = NPYDataSet(str(npy_path), sig_dims=2, io_backend=object())
    np.testing.assert_allclose(_sums(lt_ctx, npy)[1], data.sum(axis=(2, 3)))
    h5_path = tmp_path / "data.h5"
    with h5py.File(h5_path, "w") as f:
        f.create_dataset("entry/data", data=data)
        f.create_dataset("small", data=np.zeros((2, 2)))
    h5 = H5DataSet(
        path=str(h5_path),
        ds_path="entry/data",
        tileshape=(1, 4, 6),
        target_size=2**20,
        min_num_partitions=2,
    )
    np.testing.assert_allclose(_sums(lt_ctx, h5)[0], data.sum(axis=(0, 1)))
    by_name = lt_ctx.load("hdf5", path=str(h5_path), ds_path="entry/data", tileshape=(1, 4, 6))
    assert by_name.shape == (3, 5, 4, 6)


def test_mib(lt_ctx, tmp_path):
    from tests.io import writers_mib as writers

    data = RNG.integers(0, 4000, (2, 3, 8, 8)).astype(np.uint16)
    hdr = writers.write_mib(tmp_path, data, depth=12)
    mib = str(tmp_path / "scan.mib") if hdr.endswith(".hdr") else hdr
    from libertem_gpu.compat.io.dataset.mib import MIBDataSet

    ds = MIBDataSet(path=hdr, tileshape=(1, 8, 8), nav_shape=(2, 3), io_backend=None)
    np.testing.assert_allclose(_sums(lt_ctx, ds)[0], data.sum(axis=(0, 1)))
    single = MIBDataSet(path=mib, disable_glob=True, nav_shape=(6,))
    assert tuple(single.shape.nav) == (6,)


def test_get_dataset_cls():
    assert get_dataset_cls("raw") is RawFileDataSet
    assert get_dataset_cls("HDF5") is H5DataSet
    from libertem_gpu.io import get_format

    assert get_dataset_cls("empad") is get_format("empad")


def test_executors_are_accepted(dask_ctx):
    from libertem_gpu.compat.executor.concurrent import ConcurrentJobExecutor
    from libertem_gpu.compat.executor.dask import DaskJobExecutor, cluster_spec
    from libertem_gpu.compat.executor.inline import InlineJobExecutor

    data = RNG.random((4, 5, 6, 6))
    expected = data.sum(axis=(0, 1))
    address = dask_ctx.executor.client.scheduler.address
    executors = [
        InlineJobExecutor(debug=True),
        ConcurrentJobExecutor.make_local(n_threads=2),
        DaskJobExecutor.connect(address),
    ]
    for executor in executors:
        ctx = lt.Context(executor=executor)
        ds = ctx.load("memory", data=data, num_partitions=3)
        np.testing.assert_allclose(ctx.run_udf(ds, SumUDF())["intensity"].data, expected)
        ctx.close()
    assert cluster_spec(cpus=range(3), cudas=(0,)) == {"n_workers": 3, "gpus": [0]}


def test_context_signatures(lt_ctx):
    from libertem_gpu.compat.corrections import CorrectionSet

    data = RNG.random((3, 4, 5, 5))
    ds = lt_ctx.load("memory", data=data)
    roi = np.zeros((3, 4), bool)
    roi[1] = True

    class Dense:  # a sparse roi (pydata sparse, scipy) offers todense
        def todense(self):
            return roi

    res = lt_ctx.run_udf(
        ds,
        SumUDF(),
        roi=Dense(),
        corrections=CorrectionSet(),
        progress=False,
        plots=None,
        backends=("numpy", "cuda"),
    )
    np.testing.assert_allclose(res["intensity"].data, data[1].sum(axis=0))
    partial = list(lt_ctx.run_udf_iter(dataset=ds, udf=SumUDF(), backends=["numpy"]))
    np.testing.assert_allclose(partial[-1].buffers[0]["intensity"].data, data.sum(axis=(0, 1)))
    with pytest.raises(ValueError, match="sync"):
        lt_ctx.run_udf(ds, SumUDF(), sync=False)
    with pytest.raises(ValueError, match="dark: expected the data set's frame shape"):
        lt_ctx.run_udf(ds, SumUDF(), corrections=CorrectionSet(dark=np.zeros((5, 4))))
    default = lt.Context()
    assert default.executor.n_workers >= 1
    default.close()


def test_raw_csr(lt_ctx, tmp_path):
    """LiberTEM's ``RawCSRDataSet(path, ..., io_backend)`` and ``ctx.load("raw_csr", ...)``."""
    import scipy.sparse

    from libertem_gpu.compat.io.dataset.raw_csr import RawCSRDataSet
    from tests.io.test_raw_csr import write_csr

    dense = RNG.integers(0, 9, (12, 20)) * (RNG.random((12, 20)) < 0.3)
    toml = write_csr(tmp_path, scipy.sparse.csr_matrix(dense.astype(np.uint16)), (3, 4), (4, 5))
    ds = RawCSRDataSet(str(toml), io_backend=object(), sync_offset=0)
    np.testing.assert_allclose(_sums(lt_ctx, ds)[1], dense.sum(axis=1).reshape(3, 4))
    loaded = lt_ctx.load("raw_csr", path=str(toml), nav_shape=(2, 6), io_backend=None)
    np.testing.assert_allclose(_sums(lt_ctx, loaded)[1], dense.sum(axis=1).reshape(2, 6))
