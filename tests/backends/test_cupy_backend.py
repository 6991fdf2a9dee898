"""Every built-in analysis on the ``cupy`` backend equals the ``numpy`` backend (``-m gpu``).

Skipped with the probe's reason where no usable CUDA device is present. Covers data on the GPU
(a CuPy memory data set, processed in place), raw files through the pinned pipeline (all
dtypes, big-endian, roi, several partitions, split frames, ``sync_offset``), and kvikio.
"""

from __future__ import annotations

import numpy as np
import pytest

import libertem_gpu as lg
from libertem_gpu import config
from libertem_gpu.backends import device
from libertem_gpu.io.tiles import TilingScheme
from tests.conftest import random_data
from tests.optional import import_or_skip

pytestmark = pytest.mark.gpu

_info = device.probe()
if not _info.available:
    pytest.skip(f"no usable GPU: {_info.reason}", allow_module_level=True)

import cupy as cp  # noqa: E402  (only where a device is usable)

DTYPES = ["uint8", "uint16", ">u2", "uint32", "int32", "float32", ">f4", "float64", "bool"]


def _udfs(ds):
    sig_shape, nav_shape = tuple(ds.sig_shape), tuple(ds.shape.nav)
    rows, cols = sig_shape
    disk = np.zeros(sig_shape, dtype=np.float32)
    yy, xx = np.mgrid[:rows, :cols]
    disk[(yy - rows / 2) ** 2 + (xx - cols / 2) ** 2 <= (min(rows, cols) / 3) ** 2] = 1
    rng = np.random.default_rng(3)
    moves = rng.integers(-2, 3, (*nav_shape, 2))
    stack = [lambda: disk] + [
        (lambda m=m: m) for m in rng.standard_normal((15, rows, cols)).astype(np.float64)
    ]
    found = {
        "sum": lg.SumUDF(),
        "sumsig": lg.SumSigUDF(),
        "std": lg.StdDevUDF(),
        "max": lg.MaxUDF(),
        "min": lg.MinUDF(),
        "masks1": lg.ApplyMasksUDF(mask_factories=[lambda: disk]),
        "masks16": lg.ApplyMasksUDF(mask_factories=stack),
        "masks_sparse": lg.ApplyMasksUDF(mask_factories=[lambda: disk], use_sparse=True),
        "com": lg.CoMUDF.with_params(r=min(rows, cols) / 3),
        # sparse masks that share no pixel: a label per pixel on the CPU, cuSPARSE on the GPU
        "polar": lg.RadialProfileUDF(n_bins=4, n_sectors=3),
        # masks moved per frame (descan): runs of frames in place, short runs gathered
        "masks_shifted": lg.ApplyMasksUDF(mask_factories=stack[:3], shifts=moves),
        "polar_shifted": lg.RadialProfileUDF(n_bins=4, n_sectors=3, shifts=moves),
        "aligned_sum": lg.AlignedSumUDF(shifts=moves),
        # frames weighed per position: cuBLAS, row slabs into their columns
        "weighted_sum": lg.WeightedSumUDF(rng.standard_normal((*nav_shape, 3))),
    }
    if len(nav_shape) == 2:  # shift-and-add of the bright-field pixels on a finer grid
        matrix = np.array([[0.6, 0.2], [-0.2, 0.6]])
        centre, radius = (rows / 2 - 0.3, cols / 2 + 0.4), min(rows, cols) / 3
        found["parallax"] = lg.ParallaxUDF(matrix, centre, radius, upsampling=2)
        # SSB: cuBLAS products and gathered Fourier factors, in float64 to compare closely
        found["ssb"] = lg.SSBUDF(
            wavelength=1.0,
            scan_step=1.0,
            semiconv=radius / 12,
            semiconv_pix=radius,
            center=centre,
            scan_rotation=20.0,
            defocus=3.0,
            double=True,
        )
    return found


def _compare(ctx, ds, roi=None, tiling=None):
    cpu = ctx.run_udf(
        dataset=ds, udf=list(_udfs(ds).values()), roi=roi, backends="numpy", tiling=tiling
    )
    gpu = ctx.run_udf(
        dataset=ds, udf=list(_udfs(ds).values()), roi=roi, backends="cupy", tiling=tiling
    )
    for name, a, b in zip(_udfs(ds), cpu, gpu, strict=True):
        for key in a:
            x, y = np.asarray(a[key].data), np.asarray(b[key].data)
            assert isinstance(y, np.ndarray), (name, key)  # results come back as NumPy
            np.testing.assert_allclose(
                y, x, rtol=1e-5, atol=1e-6, err_msg=f"{name}.{key}", equal_nan=True
            )


@pytest.mark.parametrize("dtype", DTYPES)
def test_raw_file_pinned(tmp_path, rng, dtype):
    data = random_data(rng, (3, 5, 13, 17), np.dtype(dtype).newbyteorder("="))
    data = data.astype(dtype)
    path = tmp_path / "data.raw"
    data.tofile(path)
    roi = rng.random((3, 5)) > 0.4
    with lg.Context("threads") as ctx, config.set(io_backend="pread"):
        ds = ctx.load(
            "raw",
            path=str(path),
            nav_shape=(3, 5),
            sig_shape=(13, 17),
            dtype=dtype,
            num_partitions=3,
        )
        _compare(ctx, ds)
        _compare(ctx, ds, roi=roi)
        _compare(ctx, ds, tiling=TilingScheme(depth=2, sig_rows=5))


def test_resident_cupy_dataset_in_place(rng):
    data = random_data(rng, (4, 3, 13, 17), "uint16")
    with lg.Context("inline") as ctx:
        ds_gpu = ctx.load("memory", data=cp.asarray(data), num_partitions=2)
        ds_cpu = ctx.load("memory", data=data, num_partitions=2)
        gpu = ctx.run_udf(dataset=ds_gpu, udf=list(_udfs(ds_cpu).values()), backends="cupy")
        cpu = ctx.run_udf(dataset=ds_cpu, udf=list(_udfs(ds_cpu).values()), backends="numpy")
        for a, b in zip(cpu, gpu, strict=True):
            for key in a:
                np.testing.assert_allclose(
                    b[key].data, a[key].data, rtol=1e-5, atol=1e-6, equal_nan=True
                )
        # the same CuPy data set on the CPU backend: copied to the host frame by frame
        res = ctx.run_udf(dataset=ds_gpu, udf=lg.SumUDF(), backends="numpy")
        np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-6)


def test_sync_offset_and_roi_resident(rng):
    data = random_data(rng, (20, 13, 17), "float32")
    roi = rng.random(20) > 0.5
    with lg.Context("inline") as ctx:
        for off in (-3, 4):
            ds_gpu = ctx.load("memory", data=cp.asarray(data), sync_offset=off)
            ds_cpu = ctx.load("memory", data=data, sync_offset=off)
            a = ctx.run_udf(dataset=ds_cpu, udf=lg.SumSigUDF(), roi=roi, backends="numpy")
            b = ctx.run_udf(dataset=ds_gpu, udf=lg.SumSigUDF(), roi=roi, backends="cupy")
            np.testing.assert_allclose(
                b["intensity"].data, a["intensity"].data, rtol=1e-6, equal_nan=True
            )


def test_kvikio_path(tmp_path, rng):
    import_or_skip("kvikio")
    data = random_data(rng, (6, 5, 32, 32), "uint16")
    path = tmp_path / "data.raw"
    data.tofile(path)
    with lg.Context("inline") as ctx, config.set(io_backend="kvikio"):
        ds = ctx.load(
            "raw",
            path=str(path),
            nav_shape=(6, 5),
            sig_shape=(32, 32),
            dtype="uint16",
            num_partitions=2,
        )
        _compare(ctx, ds)
        _compare(ctx, ds, roi=rng.random((6, 5)) > 0.5)


def test_kvikio_failure_falls_back(tmp_path, rng, monkeypatch):
    import_or_skip("kvikio")
    from libertem_gpu.io.transports import kvikio as kvikio_reader

    def broken(self, path):
        raise kvikio_reader.KvikioUnusable(f"{path}: simulated open failure")

    monkeypatch.setattr(kvikio_reader.KvikioTransport, "_file", broken)
    data = random_data(rng, (4, 4, 16, 16), "uint16")
    path = tmp_path / "data.raw"
    data.tofile(path)
    with lg.Context("inline") as ctx, config.set(io_backend="kvikio"):
        ds = ctx.load("raw", path=str(path), nav_shape=(4, 4), sig_shape=(16, 16), dtype="uint16")
        with pytest.warns(RuntimeWarning, match="pinned pread pipeline"):
            res = ctx.run_udf(dataset=ds, udf=lg.SumUDF(), backends="cupy")
        np.testing.assert_allclose(res["intensity"].data, data.sum(axis=(0, 1)), rtol=1e-6)


def test_kernels_on_strided_device_tiles(rng):
    """Row slabs of frames are strided views; the CUDA kernels read them in place."""
    from libertem_gpu.kernels import com, sum_frames

    frames = cp.asarray(random_data(rng, (5, 13, 17), "uint16"))
    slab = frames[:, 3:9]
    out = cp.zeros(6 * 17)
    sum_frames.gpu(slab.reshape(5, -1), out)
    np.testing.assert_allclose(out.get(), cp.asnumpy(slab).reshape(5, -1).sum(axis=0))
    w = cp.ones((13, 17))
    t, y, x = cp.zeros(5), cp.zeros(5), cp.zeros(5)
    com.gpu(slab, w, 3, t, y, x)
    np.testing.assert_allclose(t.get(), cp.asnumpy(slab).sum(axis=(1, 2)).astype(float))
