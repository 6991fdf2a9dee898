"""Device discovery and backend choice without a GPU: CuPy missing, CuPy without a device,
a broken CUDA install, the environment override, explicit requests."""

from __future__ import annotations

import logging
import subprocess
import sys
import types

import numpy as np
import pytest

from libertem_gpu import UDF, Context
from libertem_gpu.backends import device
from libertem_gpu.backends.numpy_backend import NumpyBackend
from libertem_gpu.backends.registry import resolve_backend
from libertem_gpu.errors import BackendUnavailableError


@pytest.fixture(autouse=True)
def _fresh_probe():
    device.clear_cache()
    yield
    device.clear_cache()


def _fake_cupy(available=True, fail=None):
    cp = types.ModuleType("cupy")
    cp.__version__ = "0.fake"
    cuda = types.SimpleNamespace()

    def is_available():
        if fail == "is_available":
            raise RuntimeError("cudaErrorInsufficientDriver")
        return available

    cuda.is_available = is_available
    cuda.runtime = types.SimpleNamespace(
        getDeviceCount=lambda: 1,
        getDeviceProperties=lambda i: {"name": b"Fake GPU", "major": 9, "minor": 0},
        memGetInfo=lambda: (1 << 30, 2 << 30),
    )

    class Device:
        def __init__(self, i=0):
            self.id = i

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    cuda.Device = Device
    cp.cuda = cuda

    def arange(n, dtype=None):
        if fail == "first_call":
            raise RuntimeError("nvrtc: libnvrtc.so.13 not found")
        return np.arange(n, dtype=dtype)

    cp.arange = arange
    cp.float64 = np.float64
    return cp


def _use(monkeypatch, module):
    monkeypatch.setattr(device, "import_cupy", lambda: module)


def test_cupy_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes ``import cupy`` raise ImportError
    info = device.probe()
    assert not info.available
    assert "not installed" in info.reason


def test_cupy_without_device(monkeypatch):
    _use(monkeypatch, _fake_cupy(available=False))
    info = device.probe()
    assert not info.available and "no usable CUDA device" in info.reason


@pytest.mark.parametrize("fail", ["is_available", "first_call"])
def test_broken_cuda_is_reported_not_raised(monkeypatch, fail):
    _use(monkeypatch, _fake_cupy(fail=fail))
    info = device.probe()
    assert not info.available
    assert "CUDA failed" in info.reason


def test_fake_device_found(monkeypatch):
    _use(monkeypatch, _fake_cupy())
    info = device.probe()
    assert info.available
    assert info.devices[0].name == "Fake GPU"
    assert info.devices[0].compute_capability == (9, 0)
    assert device.check_devices(0) == (0,)
    with pytest.raises(BackendUnavailableError, match=r"devices=\[3\]"):
        device.check_devices([3])


def test_explicit_cupy_without_gpu_raises(monkeypatch):
    _use(monkeypatch, _fake_cupy(available=False))
    with pytest.raises(BackendUnavailableError, match="cupy.*cannot run here.*no usable CUDA"):
        resolve_backend("cupy", [("numpy", "cupy")])


def test_auto_falls_back_with_one_log_line(monkeypatch, caplog):
    _use(monkeypatch, _fake_cupy(available=False))
    with caplog.at_level(logging.INFO, logger="libertem_gpu"):
        assert resolve_backend("auto", [("numpy", "cupy")]) == "numpy"
    lines = [r for r in caplog.records if "using backend" in r.getMessage()]
    assert len(lines) == 1
    assert "no usable CUDA device" in lines[0].getMessage()


def test_env_forces_numpy(monkeypatch):
    _use(monkeypatch, _fake_cupy())  # a (fake) GPU is there, but the override wins
    monkeypatch.setenv("LIBERTEM_GPU_BACKEND", "numpy")
    assert resolve_backend("auto", [("numpy", "cupy")]) == "numpy"
    assert resolve_backend("cupy", [("numpy", "cupy")]) == "numpy"


def test_run_falls_back_to_cpu(monkeypatch, rng):
    _use(monkeypatch, _fake_cupy(available=False))
    from libertem_gpu.udf.base import UDF

    class SumSig(UDF):
        def get_result_buffers(self):
            return {"s": self.buffer("nav", dtype="float64")}

        def get_backends(self):
            return ("numpy", "cupy")

        def process_tile(self, tile):
            self.results.s[:] += tile.reshape(len(tile), -1).sum(axis=1)

    data = rng.integers(0, 1000, size=(3, 4, 13, 17)).astype(np.uint16)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data)
        res = ctx.run_udf(dataset=ds, udf=SumSig())
        np.testing.assert_allclose(res["s"].data, data.sum(axis=(2, 3)))
        with pytest.raises(BackendUnavailableError):
            ctx.run_udf(dataset=ds, udf=SumSig(), backends="cupy")


def test_import_does_not_pull_gpu_modules():
    code = (
        "import sys, libertem_gpu, libertem_gpu.backends.cupy_backend, "
        "libertem_gpu.io.gpu_pipeline, libertem_gpu.io.transports.kvikio, "
        "libertem_gpu.kernels.com, libertem_gpu.kernels.masks\n"
        "bad = [m for m in ('cupy', 'numba.cuda', 'kvikio') if m in sys.modules]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_context_devices_reach_the_cupy_backend(monkeypatch):
    """``Context(devices=...)`` is checked when a GPU run is planned and handed to the cupy
    backend in every task (a stand-in probe and backend here, since CI has no GPU)."""
    from libertem_gpu.backends import cupy_backend, registry

    seen = []

    class _Stand(NumpyBackend):
        name = "cupy"
        select_devices = cupy_backend.CupyBackend.select_devices

        def __init__(self, devices=None):
            seen.append(("set", devices))

    monkeypatch.setattr(device, "check_devices", lambda d: (seen.append(d), (1,))[1])
    monkeypatch.setitem(registry._BACKENDS, "cupy", _Stand)
    monkeypatch.setattr(registry, "_is_available", lambda name: (True, ""))
    ctx = Context("inline", devices=[1], backend="cupy")
    ds = ctx.load("memory", data=np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5))
    ctx.run_udf(dataset=ds, udf=_AnywhereUDF())
    assert seen == [[1], ("set", (1,))]


class _AnywhereUDF(UDF):
    def get_result_buffers(self):
        return {"n": self.buffer(kind="single", dtype="int64")}

    def get_backends(self):
        return ("numpy", "cupy")

    def process_frame(self, frame):
        self.results.n[:] += 1

    def merge(self, dest, src):
        dest.n[:] += src.n
