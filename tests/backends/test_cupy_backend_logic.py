"""The CuPy backend's data paths on the CPU: a stand-in ``cupy`` built on NumPy (device arrays
are NumPy arrays, streams and events are already complete) drives the real backend code, so
that tile contents, byte swapping, gaps, rois, split frames and the io_backend choice are
checked against the NumPy backend without a GPU. Kernels are not involved (see test_cuda_sim)."""

from __future__ import annotations

import os
import types

import numpy as np
import pytest

from libertem_gpu import config
from libertem_gpu.backends import device
from libertem_gpu.backends.numpy_backend import NumpyBackend
from libertem_gpu.io.formats.raw import RawFileDataSet
from libertem_gpu.io.memory import MemoryDataSet
from libertem_gpu.io.tiles import TilePlan, TilingScheme
from tests.backends.fake_cupy import dev as _dev
from tests.backends.fake_cupy import fake_cupy
from tests.conftest import random_data


@pytest.fixture
def backend(monkeypatch):
    cp = fake_cupy()
    monkeypatch.setattr(device, "require_cupy", lambda: cp)
    from libertem_gpu.backends.cupy_backend import CupyBackend

    b = CupyBackend()
    yield b
    b.close()


def _tiles(backend, ds, roi, scheme):
    out = []
    for p in ds.get_partitions():
        plan = TilePlan.for_partition(p, roi, scheme, ds.sig_shape)
        for tile, data in backend.iter_tiles(ds, plan):
            out.append((p.index, tile.nav_start, tile.sig_rows, np.array(data)))
    return out


def _compare(backend, ds, roi, scheme):
    want = _tiles(NumpyBackend(), ds, roi, scheme)
    got = _tiles(backend, ds, roi, scheme)
    assert len(got) == len(want) > 0
    for (p1, n1, r1, a), (p2, n2, r2, b) in zip(got, want, strict=True):
        assert (p1, n1, r1) == (p2, n2, r2)
        assert a.dtype == b.dtype and a.dtype.isnative
        np.testing.assert_array_equal(a, b)


def _raw_cases(tmp_path, rng, dtype):
    """``(data set, roi, tiling)`` cases of a raw file: sync offsets, row-split tiles."""
    data = random_data(rng, (4, 5, 13, 17), np.dtype(dtype).newbyteorder("=")).astype(dtype)
    path = tmp_path / "d.raw"
    data.tofile(path)
    roi = (rng.random(20) > 0.3).astype(bool)
    for sync_offset in (0, 3, -2):
        ds = RawFileDataSet(
            path=str(path),
            nav_shape=(4, 5),
            sig_shape=(13, 17),
            dtype=dtype,
            sync_offset=sync_offset,
            num_partitions=3,
        ).initialize()
        for scheme in (TilingScheme(depth=3), TilingScheme(depth=2, sig_rows=4)):
            yield ds, roi, scheme


@pytest.mark.parametrize("dtype", ["uint16", ">u2", ">i4", "float32", ">f8", "uint8"])
@pytest.mark.parametrize("io", ["pread", "direct", "kvikio"])
def test_file_paths_equal_cpu(tmp_path, rng, backend, dtype, io):
    with config.set(io_backend=io):
        for ds, roi, scheme in _raw_cases(tmp_path, rng, dtype):
            if io == "kvikio":  # not installed here: a warning, then the pinned pipeline
                with pytest.warns(RuntimeWarning, match="falling back"):
                    _compare(backend, ds, roi, scheme)
            else:
                _compare(backend, ds, None, scheme)
                _compare(backend, ds, roi, scheme)
    assert backend.io_path in ("pinned", "direct")


def test_resident_device_dataset(rng, backend):
    data = random_data(rng, (20, 13, 17), "int32")
    roi = rng.random(20) > 0.5
    for sync_offset in (0, 4, -3):
        host = MemoryDataSet(data=data, sync_offset=sync_offset, num_partitions=3).initialize()
        dev = MemoryDataSet(data=_dev(data), sync_offset=sync_offset, num_partitions=3)
        dev.initialize()
        assert dev.get_reader().on_device
        for scheme in (TilingScheme(depth=4), TilingScheme(depth=3, sig_rows=5)):
            want = _tiles(NumpyBackend(), host, roi, scheme)
            got = _tiles(backend, dev, roi, scheme)
            for (_, _, _, a), (_, _, _, b) in zip(got, want, strict=True):
                np.testing.assert_array_equal(a, b)
            # the CPU backend reads a device data set by device-to-host copies
            on_cpu = _tiles(NumpyBackend(), dev, roi, scheme)
            for (_, _, _, a), (_, _, _, b) in zip(on_cpu, want, strict=True):
                np.testing.assert_array_equal(a, b)
    assert backend.io_path == "resident"
    # in place: a full, contiguous stack is a view of the device array, not a copy
    dev = MemoryDataSet(data=_dev(data), num_partitions=1).initialize()
    plan = TilePlan.for_partition(dev.get_partitions()[0], None, TilingScheme(20), (13, 17))
    ((_, tile),) = list(backend.iter_tiles(dev, plan))
    assert np.shares_memory(tile, dev.data)


def test_unknown_io_backend(tmp_path, backend, rng):
    random_data(rng, (2, 3, 4), "uint16").tofile(tmp_path / "d.raw")
    ds = RawFileDataSet(
        path=str(tmp_path / "d.raw"), nav_shape=(2,), sig_shape=(3, 4), dtype="uint16"
    ).initialize()
    plan = TilePlan.for_partition(ds.get_partitions()[0], None, TilingScheme(2), (3, 4))
    with config.set(io_backend="nvme-magic"), pytest.raises(Exception, match="pread"):
        list(backend.iter_tiles(ds, plan))


class _FakeFuture:
    def __init__(self, n):
        self.n = n

    def get(self):
        return self.n


class _FakeCuFile:
    """kvikio.CuFile on the CPU: preads into the "device" (NumPy) buffer at once."""

    def __init__(self, path, mode):
        assert mode == "r"
        self.f = open(path, "rb")

    def pread(self, buf, size, file_offset=0, task_size=None):
        got = os.preadv(self.f.fileno(), [memoryview(np.asarray(buf))[:size]], file_offset)
        return _FakeFuture(got)

    def close(self):
        self.f.close()


@pytest.mark.parametrize("dtype", ["uint16", ">i4"])
def test_kvikio_path_with_fake_kvikio(tmp_path, rng, backend, monkeypatch, dtype):
    from libertem_gpu.io.transports import kvikio as kvikio_transport

    fake = types.SimpleNamespace(CuFile=_FakeCuFile, defaults=types.SimpleNamespace())
    monkeypatch.setattr(kvikio_transport, "_import_kvikio", lambda: fake)
    with config.set(io_backend="kvikio"):
        for ds, roi, scheme in _raw_cases(tmp_path, rng, dtype):
            _compare(backend, ds, None, scheme)
            _compare(backend, ds, roi, scheme)
    assert backend.io_path == "kvikio"
