"""RadialFourierUDF against a NumPy reference written from the definition: random data (float32,
uint16), odd frame shapes, rois, several partitions, dense and sparse masks, every executor,
and a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context, RadialFourierUDF
from libertem_gpu.errors import InvalidParameterError

RNG = np.random.default_rng(23)
NAV, SIG = (5, 7), (13, 11)


def reference(
    data: np.ndarray, cx: float, cy: float, ri: float, ro: float, n_bins: int, max_order: int
) -> np.ndarray:
    """``(*nav, n_bins, max_order + 1)`` coefficients in float64, from the definition."""
    ny, nx = data.shape[-2:]
    y, x = np.mgrid[:ny, :nx].astype(np.float64)
    r = np.hypot(y - cy, x - cx)
    phi = np.arctan2(y - cy, x - cx)
    width = (ro - ri) / n_bins
    weights = np.empty((n_bins, ny, nx))
    for b in range(n_bins):
        centre = ri + (b + 0.5) * width
        weights[b] = np.clip(width / 2 + 0.5 - np.abs(r - centre), 0.0, 1.0)
    if ri < 0.5:  # the centre pixel wholly in the first bin
        yy, xx = round(cy), round(cx)
        if 0 <= yy < ny and 0 <= xx < nx:
            weights[0, yy, xx] = 1 - ri
    orders = np.arange(max_order + 1)
    kernels = weights[:, None] * np.exp(1j * orders[None, :, None, None] * phi)
    return np.einsum("...ij,bnij->...bn", data.astype(np.float64), kernels)


def _check(actual: np.ndarray, expected: np.ndarray, roi=None) -> None:
    if roi is not None:
        assert np.isnan(actual[~roi]).all()
        actual, expected = actual[roi], expected[roi]
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=2e-6 * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
@pytest.mark.parametrize("use_roi", [False, True])
def test_against_numpy_every_executor(ctx: Context, dtype, use_roi: bool):
    data = (RNG.random(NAV + SIG) * 1000).astype(dtype)
    roi = RNG.random(NAV) > 0.4 if use_roi else None
    ds = ctx.load("memory", data=data, num_partitions=3)
    params = dict(cx=5.3, cy=6.1, ri=1.0, ro=5.5, n_bins=3, max_order=5)
    res = ctx.run_udf(dataset=ds, udf=RadialFourierUDF(**params), roi=roi)["complex"]
    assert res.data.shape == (*NAV, 3, 6)
    assert res.data.dtype == np.complex64
    _check(res.data, reference(data, **params), roi)


@pytest.mark.parametrize("use_sparse", [False, True, "scipy.sparse"])
@pytest.mark.parametrize("partitions", [1, 4])
def test_sparse_and_dense_agree(inline_ctx: Context, use_sparse, partitions: int):
    data = RNG.integers(0, 60000, (3, 4, 17, 15)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=partitions)
    params = dict(cx=7.0, cy=8.5, ri=0.0, ro=7.0, n_bins=4, max_order=7)
    udf = RadialFourierUDF(**params, use_sparse=use_sparse)
    res = inline_ctx.run_udf(dataset=ds, udf=udf)["complex"].data
    _check(res, reference(data, **params))


def test_defaults_as_libertem(inline_ctx: Context):
    """Centre ``size / 2``, ri 0, ro past every corner, one bin, orders 0..24."""
    data = RNG.random((2, 3, 13, 11)).astype(np.float32)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(dataset=ds, udf=RadialFourierUDF())["complex"].data
    assert res.shape == (2, 3, 1, 25)
    _check(res, reference(data, cx=5.5, cy=6.5, ri=0, ro=10, n_bins=1, max_order=24))


@pytest.mark.parametrize("k", [1, 2, 3, 6])
def test_pure_cosine_ring_has_its_energy_in_order_k(inline_ctx: Context, k: int):
    """A ring ``1 + cos(k * phi)``: order k holds half of order 0, every other order ~0."""
    ny, nx, cy, cx = 41, 39, 20.0, 19.0
    y, x = np.mgrid[:ny, :nx]
    r = np.hypot(y - cy, x - cx)
    phi = np.arctan2(y - cy, x - cx)
    frame = np.where((r > 10) & (r < 16), 1 + np.cos(k * phi), 0.0).astype(np.float32)
    ds = inline_ctx.load("memory", data=np.stack([frame, 3 * frame])[None])
    udf = RadialFourierUDF(cx=cx, cy=cy, ri=11, ro=15, n_bins=1, max_order=8)
    coeffs = inline_ctx.run_udf(dataset=ds, udf=udf)["complex"].data[0, :, 0]
    for c in coeffs:
        magnitude = np.abs(c)
        assert magnitude[k] == pytest.approx(magnitude[0] / 2, rel=0.03)
        assert np.angle(c[k]) == pytest.approx(0, abs=1e-3)  # cos: a real coefficient
        others = np.delete(magnitude[1:], k - 1)
        assert others.max() < 0.03 * magnitude[k]
    np.testing.assert_allclose(coeffs[1], 3 * coeffs[0], rtol=0, atol=1e-5 * abs(coeffs[1, 0]))


def test_rotated_pattern_turns_the_phase(inline_ctx: Context):
    """``cos(k * (phi - a))`` has the phase ``+k * a`` in order k: the masks are
    ``exp(+1j * n * phi)``, as LiberTEM's."""
    ny = nx = 48
    y, x = np.mgrid[:ny, :nx]
    phi = np.arctan2(y - 24.0, x - 24.0)
    r = np.hypot(y - 24.0, x - 24.0)
    k, a = 3, 0.2
    frame = np.where((r > 12) & (r < 20), np.cos(k * (phi - a)), 0.0).astype(np.float32)
    ds = inline_ctx.load("memory", data=frame[None, None])
    udf = RadialFourierUDF(cx=24, cy=24, ri=13, ro=19, max_order=4)
    c = inline_ctx.run_udf(dataset=ds, udf=udf)["complex"].data[0, 0, 0, k]
    assert np.angle(c) == pytest.approx(k * a, abs=1e-2)


def test_needs_two_signal_dimensions(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((4, 5, 16), np.float32), sig_dims=1)
    with pytest.raises(InvalidParameterError, match="two signal dimensions"):
        inline_ctx.run_udf(dataset=ds, udf=RadialFourierUDF())


@pytest.mark.parametrize("params", [dict(n_bins=0), dict(max_order=-1), dict(ri=5, ro=3)], ids=str)
def test_bad_parameters(inline_ctx: Context, params):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 8, 8), np.float32))
    with pytest.raises(InvalidParameterError):
        inline_ctx.run_udf(dataset=ds, udf=RadialFourierUDF(**params))
