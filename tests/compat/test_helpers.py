"""The helper functions LiberTEM's UDF modules export, and the compat UDFs written here."""

from __future__ import annotations

import numpy as np
import pytest

import libertem_gpu.compat.api as lt
from libertem_gpu.compat.common.buffers import BufferWrapper
from libertem_gpu.compat.common.shape import Shape
from libertem_gpu.compat.corrections import coordinates
from libertem_gpu.compat.udf import UDF, check_cast
from libertem_gpu.compat.udf.com import center_shifts, curl_2d, divergence, magnitude
from libertem_gpu.compat.udf.crystallinity import CrystallinityUDF, run_analysis_crystall
from libertem_gpu.compat.udf.FEM import FEMUDF, run_fem
from libertem_gpu.compat.udf.logsum import LogsumUDF, run_logsum
from libertem_gpu.compat.udf.stddev import consolidate_result, run_stddev
from libertem_gpu.compat.udf.sumsigudf import run_sumsig

RNG = np.random.default_rng(8)


@pytest.fixture
def setup():
    ctx = lt.Context.make_with("inline")
    data = RNG.integers(0, 3000, (4, 5, 12, 10)).astype(np.uint16)
    yield ctx, ctx.load("memory", data=data, num_partitions=3), data
    ctx.close()


def _ring(cy, cx, rin, rout, shape=(12, 10)):
    y, x = np.mgrid[: shape[0], : shape[1]]
    d2 = (y - cy) ** 2 + (x - cx) ** 2
    return (d2 <= rout**2) & ~(d2 <= rin**2)


def test_run_helpers(setup):
    ctx, ds, data = setup
    roi = RNG.random((4, 5)) > 0.5
    f = data.astype(np.float64)
    std = run_stddev(ctx, ds, roi=roi)
    assert std["num_frames"] == roi.sum() and isinstance(std["num_frames"], int)
    np.testing.assert_allclose(std["var"], f[roi].var(axis=0), rtol=1e-9)
    np.testing.assert_allclose(std["mean"], f[roi].mean(axis=0), rtol=1e-9)
    again = consolidate_result(ctx.run_udf(ds, lt_stddev()))
    assert again["num_frames"] == 20
    np.testing.assert_allclose(run_sumsig(ctx, ds)["intensity"].data, f.sum(axis=(2, 3)))
    assert isinstance(run_sumsig(ctx, ds)["intensity"], BufferWrapper)


def lt_stddev():
    from libertem_gpu.compat.udf.stddev import StdDevUDF

    return StdDevUDF()


def test_logsum_fem_crystallinity(setup):
    ctx, ds, data = setup
    f = data.astype(np.float32)
    logsum = run_logsum(ctx, ds)["logsum"].data
    expected = np.log(f - f.min(axis=(2, 3), keepdims=True) + 1).sum(axis=(0, 1))
    np.testing.assert_allclose(logsum, expected, rtol=1e-5)
    fem = run_fem(ctx, ds, center=(6, 5), rad_in=1, rad_out=4)["intensity"].data
    np.testing.assert_allclose(fem, f[..., _ring(6, 5, 1, 4)].std(axis=-1), rtol=1e-5)
    cryst = run_analysis_crystall(ctx, ds, 1, 4, real_center=(6, 5), real_rad=2)
    yy, xx = np.mgrid[:12, :10]
    blank = 1 - ((yy - 6) ** 2 + (xx - 5) ** 2 <= 4)
    ring = np.fft.fftshift(_ring(6, 5, 1, 4))[:, :6]
    spectra = np.abs(np.fft.rfft2(f * blank))
    np.testing.assert_allclose(
        cryst["intensity"].data, (spectra * ring).sum(axis=(2, 3)), rtol=1e-4
    )
    assert isinstance(LogsumUDF(), UDF) and FEMUDF((1, 1), 1, 2).params.rad_out == 2
    plain = ctx.run_udf(ds, CrystallinityUDF(rad_in=1, rad_out=4))
    expected = (np.abs(np.fft.rfft2(f)) * ring).sum(axis=(2, 3))
    np.testing.assert_allclose(plain["intensity"].data, expected, rtol=1e-4)


def test_com_helpers_and_coordinates():
    total = np.array([[2.0, 0.0]])
    sy, sx = center_shifts(total, np.array([[6.0, 0.0]]), np.array([[2.0, 0.0]]), 1.0, 0.5)
    np.testing.assert_allclose(sy, [[2.0, 0.0]])
    np.testing.assert_allclose(sx, [[0.5, 0.0]])
    y = RNG.random((4, 5))
    x = RNG.random((4, 5))
    np.testing.assert_allclose(divergence(y, x), np.gradient(y)[0] + np.gradient(x)[1])
    np.testing.assert_allclose(curl_2d(y, x), np.gradient(y)[1] - np.gradient(x)[0])
    np.testing.assert_allclose(magnitude(y, x), np.sqrt(y**2 + x**2))
    np.testing.assert_allclose(coordinates.rotate_deg(90) @ [1.0, 0.0], [0.0, -1.0], atol=1e-12)
    np.testing.assert_array_equal(coordinates.flip_y() @ [1.0, 2.0], [-1.0, 2.0])
    np.testing.assert_array_equal(coordinates.flip_x() @ [1.0, 2.0], [1.0, -2.0])
    np.testing.assert_array_equal(coordinates.scale(2) @ coordinates.identity(), 2 * np.eye(2))


def test_udf_base_names():
    class Hybrid(UDF):
        def get_backends(self):
            return (self.BACKEND_NUMPY, self.BACKEND_CUPY, self.BACKEND_CUDA)

    assert set(Hybrid().get_backends()) == {"numpy", "cupy", "cuda"}
    assert Hybrid().forbuf(3, None) == 3
    check_cast(np.zeros(1, np.uint8), np.zeros(1, np.float32))
    with pytest.raises(TypeError):
        check_cast(np.zeros(1, np.float64), np.zeros(1, np.int32))
    s = Shape((16, 16, 128, 128), sig_dims=2)
    assert s.nav.size == 256 and s.sig.dims == 2 and s.flatten_sig().to_tuple() == (16, 16, 16384)


def test_math_and_viz():
    from libertem_gpu.compat.common.math import count_nonzero, flat_nonzero, prod
    from libertem_gpu.compat.viz import rgb_from_2dvector, visualize_simple

    assert prod((256, 256, 2**20)) == 2**36 and prod(()) == 1
    a = np.array([[0, 2], [3, 0]])
    assert count_nonzero(a) == 2 and list(flat_nonzero(a)) == [1, 2]
    scipy_sparse = pytest.importorskip("scipy.sparse")
    assert count_nonzero(scipy_sparse.csr_matrix(a)) == 2
    assert visualize_simple(a).shape == (2, 2, 3)
    assert rgb_from_2dvector(a, a).shape == (2, 2, 3)
