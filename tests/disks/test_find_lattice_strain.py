"""find_lattice_strain end to end on simulated 4D-STEM data: disks of known lattices with
Poisson noise, through the correlation UDF and the per-frame fits, on every executor."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import find_lattice_strain
from libertem_gpu.disks.lattice import LatticeNotFoundError
from libertem_gpu.disks.simulate_strain import strained_basis, strained_lattice_frames
from libertem_gpu.errors import InvalidParameterError

A = np.array([0.9, 15.4])
B = np.array([15.1, -1.3])
ORIGIN = (47.6, 48.3)
SIG = (96, 96)
RADIUS = 4
NAMES = ("exx", "eyy", "exy", "rotation")


def frames(nav, rng, dose, noise=True, **strain):
    a, b = strained_basis(A, B, **strain)
    return strained_lattice_frames(nav, SIG, ORIGIN, a, b, RADIUS, dose=dose, rng=rng, noise=noise)


def test_uniform_strain_recovered_on_every_executor(ctx, rng):
    """1e-2 in each of exx, eyy, exy and rotation against an unstrained reference region,
    within 1e-3 at every position (at 50,000 electrons per disk a position's standard
    deviation is about 1e-4; at 1,000 it is about 6e-4, see the smooth field below)."""
    nav = (3, 4)
    strained = np.zeros(nav, bool)
    strained[:, 2:] = True
    imposed = dict.fromkeys(NAMES, 0.01)
    data = frames(nav, rng, 50_000, **{k: v * strained for k, v in imposed.items()})
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = find_lattice_strain(ctx, ds, RADIUS, reference_roi=~strained)
    for name in NAMES:
        got = getattr(res, name)
        assert got.shape == nav
        np.testing.assert_allclose(got[strained], imposed[name], atol=1e-3, err_msg=name)
        np.testing.assert_allclose(got[~strained], 0, atol=1e-3, err_msg=name)
        std = getattr(res, name + "_std")
        assert np.all((std > 1e-5) & (std < 3e-4)), name
        # the region's mean is closer still
        assert abs(got[strained].mean() - imposed[name]) < 3e-4, name
    assert np.all(res.fit.n_matched == len(res.hk)) and len(res.hk) >= 20
    assert res.peaks.shape == (*nav, len(res.hk), 2)
    assert res.fit.covariance.shape == (*nav, 6, 6)
    # the reference is the mean basis of the unstrained half: the true one, within noise
    np.testing.assert_allclose(
        np.stack([res.reference_a, res.reference_b]) @ np.linalg.inv(np.stack([A, B])),
        np.round(np.stack([res.reference_a, res.reference_b]) @ np.linalg.inv(np.stack([A, B]))),
        atol=2e-3,
    )


def test_smooth_strain_field_at_1000_electrons_per_disk(inline_ctx, rng):
    nav = (8, 8)
    y, x = np.mgrid[0:8, 0:8] / 7
    imposed = {
        "exx": 0.01 * np.sin(2 * y + 1),
        "eyy": -0.008 * np.cos(3 * x),
        "exy": 0.005 * (y - x),
        "rotation": 0.01 * x * y,
    }
    data = frames(nav, rng, 1000, **imposed)
    for refine in ("com", "upsampled"):
        res = find_lattice_strain(
            inline_ctx,
            inline_ctx.load("memory", data=data),
            RADIUS,
            reference=(A, B),
            refine=refine,
        )
        for name, want in imposed.items():
            err = getattr(res, name) - want
            rms = np.sqrt(np.mean(err**2))
            assert rms < 1e-3, (refine, name, rms)
            # the propagated uncertainty describes the errors
            std = np.sqrt(np.mean(getattr(res, name + "_std") ** 2))
            assert 0.5 < rms / std < 2.0, (refine, name, rms, std)


def test_frames_without_disks_have_no_lattice(inline_ctx, rng):
    nav = (2, 3)
    data = frames(nav, rng, 5000)
    data[0, 1] = 0  # nothing at all
    data[1, 2] = rng.poisson(2.0, SIG)  # background noise only
    data[1, 0] = rng.poisson(data[1, 0].astype(float) / 1e4 + 0.0)  # almost no electrons
    res = find_lattice_strain(inline_ctx, inline_ctx.load("memory", data=data), RADIUS)
    empty = np.zeros(nav, bool)
    empty[0, 1] = empty[1, 2] = empty[1, 0] = True
    assert np.all(res.fit.n_matched[empty] == 0)
    assert np.all(res.fit.n_matched[~empty] == len(res.hk))
    for name in NAMES:
        assert np.isnan(getattr(res, name)[empty]).all()
        assert np.isfinite(getattr(res, name)[~empty]).all()
    assert np.isnan(res.fit.a[empty]).all() and np.isnan(res.fit.covariance[empty]).all()


def disk(centre, dose):
    """Expected counts of one disk at ``centre``, as the simulator draws it."""
    y, x = np.mgrid[0 : SIG[0], 0 : SIG[1]]
    dist = np.hypot(y - centre[0], x - centre[1])
    return np.clip(RADIUS + 0.5 - dist, 0, 1) * dose / (np.pi * RADIUS**2)


def test_displaced_and_missing_disks_are_left_out(inline_ctx, rng):
    nav, dose = (2, 2), 10_000
    expected = frames(nav, rng, dose, exx=0.01, noise=False).astype(np.float64)
    a, b = strained_basis(A, B, exx=0.01)
    one = np.array(ORIGIN) + a + b
    other = np.array(ORIGIN) - a + 2 * b
    shift = np.array([1.2, -1.0])
    expected[0, 0] += disk(one + shift, dose) - disk(one, dose)  # an outlier
    expected[0, 1] -= disk(other, dose)  # a missing disk
    data = rng.poisson(expected.clip(0, None)).astype(np.uint16)  # float32 rounding
    res = find_lattice_strain(
        inline_ctx, inline_ctx.load("memory", data=data), RADIUS, reference=(A, B)
    )
    n = len(res.hk)
    assert res.fit.n_matched.tolist() == [[n - 1, n - 1], [n, n]]
    # the displaced disk was found where it is, and left out of the fit
    k = np.argmin(np.hypot(*(res.positions - one).T))
    np.testing.assert_allclose(res.peaks[0, 0, k], one + shift, atol=0.2)
    np.testing.assert_allclose(res.exx, 0.01, atol=1e-3)
    np.testing.assert_allclose(res.eyy, 0, atol=1e-3)


def test_roi_leaves_other_positions_empty(inline_ctx, rng):
    nav = (2, 3)
    data = frames(nav, rng, 5000, eyy=0.01)
    roi = np.array([[True, False, True], [False, True, True]])
    res = find_lattice_strain(
        inline_ctx,
        inline_ctx.load("memory", data=data),
        RADIUS,
        roi=roi,
        reference=(A, B),
        space="real",
    )
    assert np.isnan(res.exx[~roi]).all() and np.all(res.fit.n_matched[~roi] == 0)
    # the crystal contracts where the pattern expands
    np.testing.assert_allclose(res.eyy[roi], -0.01 / 1.01, atol=1e-3)
    np.testing.assert_allclose(res.exx[roi], 0, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"radius": 0}, "radius must be a positive"),
        ({"radius": 60}, "too large"),
        ({"n_peaks": 2}, "n_peaks"),
        ({"refine": "gauss"}, "refine must be one of"),
        ({"search": 0}, "search"),
        ({"min_height_fraction": 1.5}, "min_height_fraction"),
        ({"method": "green"}, "method must be one of"),
        ({"space": "k"}, "space must be one of"),
        ({"roi": np.ones((3, 3), bool)}, "roi must be a boolean array"),
        ({"reference_roi": np.zeros((2, 3), bool)}, "reference_roi selects no"),
        ({"reference": ((1.0, 0.0), (2.0, 0.0))}, "non-collinear"),
        ({"reference": (A, B), "reference_roi": np.ones((2, 3), bool)}, "not both"),
        ({"centre": (1.0,)}, "centre"),
        ({"outlier_sigma": -1.0}, "outlier_sigma"),
        ({"min_peaks": 2}, "min_peaks"),
        (
            {"roi": np.eye(2, 3, dtype=bool), "reference_roi": ~np.eye(2, 3, dtype=bool)},
            "no scan position in common",
        ),
    ],
)
def test_bad_parameters_fail_before_reading(inline_ctx, monkeypatch, kwargs, match):
    ds = inline_ctx.load("memory", data=np.ones((2, 3, 32, 32), np.float32))

    def no_run(*args, **kw):
        raise AssertionError("data was read")

    monkeypatch.setattr(inline_ctx, "run_udf", no_run)
    args = {"radius": 3, **kwargs}
    with pytest.raises(InvalidParameterError, match=match):
        find_lattice_strain(inline_ctx, ds, **args)


def test_reference_vectors_of_any_basis_of_the_lattice(inline_ctx, rng):
    data = frames((1, 2), rng, 20_000, exy=0.01)
    ds = inline_ctx.load("memory", data=data)
    res = find_lattice_strain(inline_ctx, ds, RADIUS, reference=(A, B))
    other = find_lattice_strain(inline_ctx, ds, RADIUS, reference=(A + B, -B))
    for name in NAMES:
        np.testing.assert_allclose(getattr(other, name), getattr(res, name), atol=1e-12)
    np.testing.assert_allclose(res.exy, 0.01, atol=1e-3)
    with pytest.raises(InvalidParameterError, match="do not span the lattice"):
        find_lattice_strain(inline_ctx, ds, RADIUS, reference=(1.3 * A, B))


def test_data_without_any_lattice_is_refused_after_the_sum(inline_ctx, rng):
    data = rng.poisson(3.0, (2, 2, 48, 48)).astype(np.uint16)
    data[0, 0, 20:28, 20:28] += 500  # one blob: no lattice
    with pytest.raises(LatticeNotFoundError, match="no lattice in the sum frame"):
        find_lattice_strain(inline_ctx, inline_ctx.load("memory", data=data), 3, n_peaks=3)
    with pytest.raises(LatticeNotFoundError, match="no lattice in the sum frame"):
        find_lattice_strain(
            inline_ctx, inline_ctx.load("memory", data=np.zeros((2, 2, 48, 48), np.uint16)), 3
        )
