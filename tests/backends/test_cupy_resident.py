"""Resident data (a CuPy array) on the CuPy backend, with the fake CuPy kit: the compute stream
waits for the streams that filled the array, and a worker bound to another device gets its
tiles on its own device (issue 15, faults 4 and 8)."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.backends import device
from libertem_gpu.backends.numpy_backend import NumpyBackend
from libertem_gpu.io.memory import MemoryDataSet
from libertem_gpu.io.tiles import TilePlan, TilingScheme
from tests.backends.fake_cupy import dev, fake_cupy
from tests.conftest import random_data


@pytest.fixture
def cp(monkeypatch):
    cp = fake_cupy(n_devices=2)
    monkeypatch.setattr(device, "require_cupy", lambda: cp)
    yield cp
    with cp.cuda.Device(0):
        cp.cuda.Stream.null.use()


def _backend(devices=None):
    from libertem_gpu.backends.cupy_backend import CupyBackend

    return CupyBackend(devices)


def _plans(ds, roi, scheme):
    return [TilePlan.for_partition(p, roi, scheme, ds.sig_shape) for p in ds.get_partitions()]


def test_compute_stream_waits_for_the_producers_before_the_first_tile(cp, rng):
    data = random_data(rng, (12, 5, 7), "uint16")
    ds = MemoryDataSet(data=dev(data), num_partitions=2).initialize()
    user = cp.cuda.Stream(non_blocking=True).use()  # the caller's stream when the run starts
    backend = _backend()
    try:
        for plan in _plans(ds, None, TilingScheme(depth=3)):
            before = len(backend.stream.log)
            tiles = backend.iter_tiles(ds, plan)
            next(tiles)  # the first tile is handed out: no kernel has been queued before it
            waited = [e for kind, e in backend.stream.log[before:] if kind == "wait"]
            assert {e.stream for e in waited} == {cp.cuda.Stream.null, user}
            for e in waited:  # each event was recorded on its producer's stream
                assert ("record", e) in e.stream.log
            tiles.close()
    finally:
        backend.close()
    assert cp.cuda.get_current_stream() is user  # the caller's stream is current again


def test_resident_data_on_another_device_reaches_the_workers_device(cp, rng):
    data = random_data(rng, (20, 5, 7), "float32")
    roi = rng.random(20) > 0.4
    with cp.cuda.Device(0):
        on_0 = dev(data)
    backend = _backend(devices=(1,))
    try:
        assert backend.device_index == 1
        for sync_offset in (0, 3):
            host = MemoryDataSet(data=data, sync_offset=sync_offset, num_partitions=3)
            host.initialize()
            ds = MemoryDataSet(data=on_0, sync_offset=sync_offset, num_partitions=3)
            ds.initialize()
            for r in (None, roi):
                for scheme in (TilingScheme(depth=4), TilingScheme(depth=3, sig_rows=2)):
                    want = [
                        np.array(d)
                        for plan in _plans(host, r, scheme)
                        for _, d in NumpyBackend().iter_tiles(host, plan)
                    ]
                    got = []
                    for plan in _plans(ds, r, scheme):
                        for _, d in backend.iter_tiles(ds, plan):
                            assert d.device.id == 1  # never device 0's memory
                            got.append(np.array(d))
                    assert len(got) == len(want) > 0
                    for a, b in zip(got, want, strict=True):
                        np.testing.assert_array_equal(a, b)
        # the producers waited for are the data's device's
        assert {e.device for kind, e in backend.stream.log if kind == "wait"} == {0}
    finally:
        backend.close()
