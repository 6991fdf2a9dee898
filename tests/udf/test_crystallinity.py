"""CrystallinityUDF against a NumPy reference written from LiberTEM's definition: random data,
odd shapes, rois, sync offsets, partitions, every executor; both CPU strategies; a simulated
crystalline/amorphous mix; parameter errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context, CrystallinityUDF
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels import fourier_mask
from tests.udf.builtin_cases import CASES_2D_SIG, assert_nav, case_params, load_case


def disk(shape, cy, cx, r):
    y, x = np.ogrid[: shape[0], : shape[1]]
    return (y - cy) ** 2.0 + (x - cx) ** 2.0 <= r * r


def reference(frames, rad_in, rad_out, real_center=None, real_rad=None):
    """``sum(|rfft2(frame * blank)| * band)``: the band a ring around ``(ny / 2, nx / 2)``
    moved to zero frequency and cut to the half spectrum; the blank 0 in the disk."""
    ny, nx = frames.shape[1:]
    centred = disk((ny, nx), ny / 2, nx / 2, rad_out) & ~disk((ny, nx), ny / 2, nx / 2, rad_in)
    band = np.fft.fftshift(centred)[:, : nx // 2 + 1]
    f = frames.astype(np.float64)
    if real_center is not None and real_rad is not None:
        f = f * ~disk((ny, nx), *real_center, real_rad)
    return (np.abs(np.fft.rfft2(f)) * band).sum(axis=(1, 2))


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG))
def test_crystallinity_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    params = dict(rad_in=1.5, rad_out=4.0, real_center=(6, 7.5), real_rad=2.5)
    res = loaded.run(ctx, CrystallinityUDF(**params))["intensity"]
    assert res.data.dtype == np.float64
    # float32 transforms for up to 16-bit and float32 data (as LiberTEM), float64 otherwise
    dtype = np.dtype(case.dtype)
    narrow = dtype.itemsize <= 2 or dtype == np.dtype(np.float32).newbyteorder(dtype.byteorder)
    assert_nav(res, reference(loaded.selected, **params), loaded, rtol=1e-6 if narrow else 1e-10)


@pytest.mark.parametrize("strategy", ["dft", "fft"])
@pytest.mark.parametrize("blank", [False, True])
def test_both_strategies_in_a_run(inline_ctx: Context, rng, monkeypatch, strategy, blank):
    monkeypatch.setattr(fourier_mask, "_DFT_COLUMNS_PER_LOG2", 100 if strategy == "dft" else 0)
    data = rng.poisson(30, (3, 4, 20, 17)).astype(np.uint16)
    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    params = dict(rad_in=2, rad_out=7, real_center=(10, 8) if blank else None, real_rad=3)
    res = inline_ctx.run_udf(ds, CrystallinityUDF(**params))["intensity"].data
    want = reference(data.reshape(-1, 20, 17), **params).reshape(3, 4)
    np.testing.assert_allclose(res, want, rtol=1e-6)


def simulated_mix(rng, nav=(4, 6), n=64):
    """Diffraction patterns of a scan whose left half is crystalline (a lattice of sharp spots,
    period 8 px) and right half amorphous (a broad ring), both with a bright central beam, the
    same total intensity and Poisson noise."""
    y, x = np.mgrid[:n, :n].astype(np.float64)
    r = np.hypot(y - n / 2, x - n / 2)
    spots = sum(
        np.exp(-((y - cy - 4) ** 2 + (x - cx - 4) ** 2) / 2.0)
        for cy in range(0, n, 8)
        for cx in range(0, n, 8)
    ) * np.exp(-((r / 25) ** 2))
    ring = np.exp(-(((r - 14) / 6) ** 2))
    spots *= ring.sum() / spots.sum()
    beam = 500 * np.exp(-((r / 2.5) ** 2))
    crystalline = np.zeros(nav, bool)
    crystalline[:, : nav[1] // 2] = True
    frames = np.empty((*nav, n, n), np.uint16)
    for idx in np.ndindex(nav):
        pattern = spots if crystalline[idx] else ring
        frames[idx] = rng.poisson(300 * pattern + beam + 1)
    return frames, crystalline


def test_crystalline_positions_stand_out(inline_ctx: Context, rng):
    """Criterion: the band around the lattice's frequency (64 / 8 = 8) gives every crystalline
    position at least 5x the value of every amorphous one (the simulation gives ~20x)."""
    frames, crystalline = simulated_mix(rng)
    ds = inline_ctx.load("memory", data=frames, num_partitions=2)
    udf = CrystallinityUDF(rad_in=6, rad_out=10, real_center=(32, 32), real_rad=6)
    value = inline_ctx.run_udf(ds, udf)["intensity"].data
    assert value[crystalline].min() > 5 * value[~crystalline].max()


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(rad_in=5, rad_out=3), "rad_in < rad_out"),
        (dict(rad_in=-1, rad_out=3), "rad_in < rad_out"),
        (dict(rad_in=1, rad_out=3, real_center=(40, 2), real_rad=2), "outside"),
        (dict(rad_in=1, rad_out=3, real_center=(4, 2), real_rad=-2), "real_rad"),
        (dict(rad_in=1, rad_out=3, real_center=4, real_rad=2), "two numbers"),
        (dict(rad_in=0.2, rad_out=0.5), "holds no frequency"),
    ],
)
def test_bad_parameters_fail_before_reading(inline_ctx: Context, params, match):
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 16, 12), np.float32))
    with pytest.raises(InvalidParameterError, match=match):
        inline_ctx.run_udf(ds, CrystallinityUDF(**params))


def test_needs_two_signal_dimensions(inline_ctx: Context):
    ds = inline_ctx.load("memory", data=np.ones((4, 5, 16), np.float32), sig_dims=1)
    with pytest.raises(InvalidParameterError, match="two signal dimensions"):
        inline_ctx.run_udf(ds, CrystallinityUDF(1, 3))
