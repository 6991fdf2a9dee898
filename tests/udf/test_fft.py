"""SumFFTUDF and ApplyFFTMaskUDF against NumPy references written from their definitions:
random data of odd shapes, nav of 1 to 3 dims, rois, several partitions, every executor,
complex data, and parameter errors raised before any data is read."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import ApplyFFTMaskUDF, Context, SumFFTUDF
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.io.tiles import TilingScheme


def disk(shape, cy, cx, r):
    y, x = np.mgrid[: shape[0], : shape[1]]
    return (y - cy) ** 2 + (x - cx) ** 2 <= r**2


def frames_of(data, roi, nav_dims):
    sig = data.shape[nav_dims:]
    flat = data.reshape(-1, *sig).astype(np.complex128 if data.dtype.kind == "c" else np.float64)
    return flat if roi is None else flat[np.asarray(roi).reshape(-1)]


def power_reference(frames, real_mask=None, shift=True):
    weights = 1.0 if real_mask is None else real_mask
    total = sum(np.abs(np.fft.fft2(f * weights)) ** 2 for f in frames)
    return np.fft.fftshift(total) if shift else total


def ring_reference(frames, rad_in, rad_out, real_mask=None):
    """LiberTEM's crystallinity: |rfft2| summed over its half of a centred ring."""
    rows, cols = frames.shape[1:]
    centre = (rows * 0.5, cols * 0.5)
    ring = disk((rows, cols), *centre, rad_out) & ~disk((rows, cols), *centre, rad_in)
    half = np.fft.fftshift(ring.astype(float))[:, : cols // 2 + 1]
    weights = 1.0 if real_mask is None else real_mask
    return np.array([np.sum(np.abs(np.fft.rfft2(f * weights)) * half) for f in frames])


def check(actual, expected, rtol=2e-5):
    scale = np.abs(expected).max()
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
@pytest.mark.parametrize("use_roi", [False, True])
def test_both_against_numpy_every_executor(ctx: Context, rng, dtype, use_roi):
    nav, sig = (5, 4), (13, 10)
    data = (rng.random(nav + sig) * 4000).astype(dtype)
    roi = rng.random(nav) > 0.4 if use_roi else None
    ds = ctx.load("memory", data=data, num_partitions=3)
    udfs = [
        SumFFTUDF(real_center=(6, 4.5), real_rad=2.5),
        ApplyFFTMaskUDF(rad_in=1.5, rad_out=4),
    ]
    power, ring = ctx.run_udf(dataset=ds, udf=udfs, roi=roi)
    frames = frames_of(data, roi, 2)
    blank = 1.0 - disk(sig, 6, 4.5, 2.5)
    check(power["intensity"].data, power_reference(frames, blank))
    got = ring["intensity"].data
    assert got.shape == nav and got.dtype == np.float32
    if roi is not None:
        assert np.isnan(got[~roi]).all()
        got = got[roi]
    check(got.reshape(-1), ring_reference(frames, 1.5, 4))


@pytest.mark.parametrize(
    "nav, sig", [((7,), (9, 9)), ((2, 3, 4), (6, 11)), ((3, 3), (1, 5))], ids=str
)
def test_nav_dims_partitions_and_small_tiles(inline_ctx: Context, rng, nav, sig):
    data = rng.integers(0, 3000, nav + sig).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=4)
    mask = rng.random(sig)
    udfs = [SumFFTUDF(fftshift=False), ApplyFFTMaskUDF(fourier_mask=mask)]
    power, masked = inline_ctx.run_udf(
        dataset=ds, udf=udfs, tiling=TilingScheme(depth=2, sig_rows=3)
    )
    frames = frames_of(data, None, len(nav))
    check(power["intensity"].data, power_reference(frames, shift=False))
    # a Fourier mask shown centred (fftshift) weighs the whole spectrum's amplitude
    weights = np.fft.ifftshift(mask)
    want = np.array([np.sum(np.abs(np.fft.fft2(f)) * weights) for f in frames])
    check(masked["intensity"].data.reshape(-1), want)


def test_complex_data(inline_ctx: Context, rng):
    shape = (3, 4, 8, 7)
    data = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    mask = rng.random(shape[2:])
    power, ring, masked = inline_ctx.run_udf(
        dataset=ds,
        udf=[SumFFTUDF(), ApplyFFTMaskUDF(rad_in=0, rad_out=3), ApplyFFTMaskUDF(fourier_mask=mask)],
    )
    frames = frames_of(data, None, 2)
    check(power["intensity"].data, power_reference(frames))
    centre = (4.0, 3.5)
    ring_full = np.fft.fftshift(disk((8, 7), *centre, 3).astype(float))
    want = [np.sum(np.abs(np.fft.fft2(f)) * ring_full) for f in frames]
    check(ring["intensity"].data.reshape(-1), np.array(want))
    want = [np.sum(np.abs(np.fft.fft2(f)) * np.fft.ifftshift(mask)) for f in frames]
    check(masked["intensity"].data.reshape(-1), np.array(want))


def test_power_spectrum_known_answer(inline_ctx: Context):
    """Fringes of period 4 along the rows: power only at zero and at +-rows/4."""
    y = np.arange(16)[:, None] * np.ones((1, 12))
    frame = 3 + np.cos(2 * np.pi * y / 4)
    ds = inline_ctx.load("memory", data=np.stack([frame, 2 * frame]).reshape(2, 1, 16, 12))
    power = inline_ctx.run_udf(dataset=ds, udf=SumFFTUDF())["intensity"].data
    want = np.zeros((16, 12))
    npix = 16 * 12
    want[8, 6] = (1 + 4) * (3 * npix) ** 2
    want[8 + 4, 6] = want[8 - 4, 6] = (1 + 4) * (npix / 2) ** 2
    np.testing.assert_allclose(power, want, atol=1e-6 * want.max())


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ApplyFFTMaskUDF(), "either a ring"),
        (lambda: ApplyFFTMaskUDF(rad_in=2, rad_out=1), "rad_in < rad_out"),
        (lambda: ApplyFFTMaskUDF(rad_in=1, rad_out=2, fourier_mask=np.ones((4, 4))), "either"),
        (lambda: ApplyFFTMaskUDF(fourier_mask=np.ones(4)), "2-D"),
        (lambda: ApplyFFTMaskUDF(fourier_mask=np.ones((4, 5))), r"frame's shape \(6, 5\)"),
        (lambda: SumFFTUDF(real_center=(1, 2, 3), real_rad=1), "real_center"),
        (lambda: SumFFTUDF(real_center=(1, 2), real_rad=-1), "real_rad"),
    ],
)
def test_bad_parameters(inline_ctx: Context, make, match):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 6, 5), dtype=np.uint16))
    with pytest.raises(InvalidParameterError, match=match):
        inline_ctx.run_udf(dataset=ds, udf=make())


def test_one_signal_dimension_refused(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((2, 3, 7), dtype=np.float32), sig_dims=1)
    with pytest.raises(InvalidParameterError, match="two signal dimensions"):
        inline_ctx.run_udf(dataset=ds, udf=SumFFTUDF())
