"""Lattice fitting on simulated peak lists: exact positions plus noise, missing, duplicate and
spurious peaks, frames without a lattice."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.disks.lattice import (
    LatticeNotFoundError,
    find_lattice,
    fit_lattice,
    index_peaks,
)
from libertem_gpu.disks.simulate_strain import lattice_points, strained_basis
from libertem_gpu.errors import InvalidParameterError

ORIGIN = np.array([40.3, 38.6])
A = np.array([1.7, 13.1])
B = np.array([12.2, -3.4])
SIG = (80, 80)


def peaks_of(origin, a, b, hk):
    """Peaks ``(F, N, 2)`` for per-frame lattices ``(F, 2)`` at indices ``(N, 2)``."""
    return origin[:, None] + hk[None, :, 0:1] * a[:, None] + hk[None, :, 1:2] * b[:, None]


def same_lattice(a, b, a_true, b_true):
    """Whether (a, b) spans the lattice of (a_true, b_true): an integer, unimodular change of
    basis."""
    m = np.linalg.solve(np.stack([a_true, b_true], 1), np.stack([a, b], 1))
    return np.allclose(m, np.round(m), atol=0.02) and abs(abs(np.linalg.det(m)) - 1) < 0.02


def test_find_lattice_with_noise_missing_and_spurious_peaks(rng):
    pos, _ = lattice_points(ORIGIN, A, B, SIG, margin=4)
    heights = rng.uniform(1, 2, len(pos))
    heights[0] = 5.0  # the zero order is the strongest
    noisy = pos + rng.normal(0, 0.1, pos.shape)
    keep = rng.random(len(pos)) > 0.2
    keep[0] = True
    spurious = rng.uniform(0, 80, (6, 2))
    peaks = np.concatenate([noisy[keep], spurious, [[np.nan, np.nan]]])
    h = np.concatenate([heights[keep], rng.uniform(0.5, 1.5, 6), [1.0]])
    fit = find_lattice(peaks, h)
    assert np.allclose(fit.origin, ORIGIN, atol=0.15)
    assert same_lattice(fit.a, fit.b, A, B)
    # reduced and right-handed: |a| <= |b|, a_x b_y - a_y b_x > 0
    assert np.hypot(*fit.a) <= np.hypot(*fit.b)
    assert fit.a[1] * fit.b[0] - fit.a[0] * fit.b[1] > 0
    assert fit.n_matched == keep.sum()
    assert 0.05 < fit.residual_rms < 0.2


def test_find_lattice_zero_order_nearest_to_centre(rng):
    pos, _ = lattice_points(ORIGIN, A, B, SIG, margin=4)
    peaks = pos + rng.normal(0, 0.02, pos.shape)
    target = pos[3]
    fit = find_lattice(peaks, centre=target + 2.0)
    assert np.allclose(fit.origin, target, atol=0.1)
    fit = find_lattice(rng.permutation(peaks))  # no heights: nearest to the centroid
    assert np.isfinite(fit.origin).all() and same_lattice(fit.a, fit.b, A, B)


def test_find_lattice_refuses_what_is_no_lattice():
    with pytest.raises(LatticeNotFoundError, match="at least 3 peaks"):
        find_lattice(np.array([[1.0, 2.0], [5.0, 6.0], [np.nan, 1.0]]))
    line = np.stack([np.full(6, 10.0), 5.0 + 7.0 * np.arange(6)], axis=1)
    with pytest.raises(LatticeNotFoundError, match="non-collinear"):
        find_lattice(line)
    with pytest.raises(InvalidParameterError, match="heights"):
        find_lattice(line, np.ones(3))


def test_fit_recovers_per_frame_lattices_and_calibrated_covariance(rng):
    frames, sigma = 1500, 0.08
    _, hk = lattice_points(ORIGIN, A, B, SIG, margin=4)
    a, b = strained_basis(
        A,
        B,
        rng.normal(0, 0.01, frames),
        rng.normal(0, 0.01, frames),
        rng.normal(0, 0.01, frames),
        rng.normal(0, 0.01, frames),
    )
    origin = ORIGIN + rng.normal(0, 1.0, (frames, 2))
    truth = peaks_of(origin, a, b, hk)
    peaks = truth + rng.normal(0, sigma, truth.shape)
    fit = fit_lattice(peaks.reshape(30, 50, -1, 2), ORIGIN, A, B)
    assert fit.a.shape == (30, 50, 2) and fit.covariance.shape == (30, 50, 6, 6)
    fit = fit.reshape((frames,))
    params = np.concatenate([fit.origin, fit.a, fit.b], axis=1)[:, [0, 1, 2, 3, 4, 5]]
    true = np.concatenate([origin, a, b], axis=1)
    z = (params - true) / np.sqrt(np.diagonal(fit.covariance, axis1=1, axis2=2))
    # errors are unbiased and the covariance describes their spread
    assert np.all(np.abs(z.mean(axis=0)) < 0.15)
    assert np.all(np.abs(z.std(axis=0) - 1) < 0.1)
    # the 5-sigma clip drops a good peak now and then, never many
    assert fit.n_matched.min() >= len(hk) - 2 and fit.n_matched.mean() > len(hk) - 0.05
    assert np.allclose(np.sqrt(np.mean(fit.residual_rms**2)), sigma * np.sqrt(2), rtol=0.1)


def test_weighted_fit_equals_numpy_lstsq(rng):
    frames = 7
    _, hk = lattice_points(ORIGIN, A, B, SIG, margin=4)
    peaks = peaks_of(
        np.tile(ORIGIN, (frames, 1)), np.tile(A, (frames, 1)), np.tile(B, (frames, 1)), hk
    ) + rng.normal(0, 0.1, (frames, len(hk), 2))
    w = rng.uniform(0.2, 3.0, (frames, len(hk)))
    fit = fit_lattice(peaks, ORIGIN, A, B, weights=w, hk=hk, outlier_sigma=100)
    design = np.concatenate([np.ones((len(hk), 1)), hk], axis=1)
    for f in range(frames):
        sw = np.sqrt(w[f])[:, None]
        sol, *_ = np.linalg.lstsq(design * sw, peaks[f] * sw, rcond=None)
        assert np.allclose([fit.origin[f], fit.a[f], fit.b[f]], sol, atol=1e-10)
        res = peaks[f] - design @ sol
        s2 = (w[f] * (res**2).sum(1)).sum() / (2 * len(hk) - 6)
        cov = s2 * np.linalg.inv(design.T @ (design * w[f][:, None]))
        assert np.allclose(fit.covariance[f][0::2, 0::2], cov)
        assert np.allclose(fit.covariance[f][1::2, 1::2], cov)
        assert np.isclose(fit.residual_rms[f], np.sqrt((res**2).sum(1).mean()))


def test_outliers_duplicates_and_missing_peaks_are_rejected(rng):
    frames = 40
    _, hk = lattice_points(ORIGIN, A, B, SIG, margin=4)
    a, b = strained_basis(A, B, exx=0.01, eyy=-0.01, exy=0.01, rotation=0.01)
    clean = peaks_of(
        np.tile(ORIGIN, (frames, 1)), np.tile(a, (frames, 1)), np.tile(b, (frames, 1)), hk
    ) + rng.normal(0, 0.05, (frames, len(hk), 2))
    n = len(hk)
    # outliers: shifted by 1.5 px (indexed, but far from the fit); a duplicate 0.8 px from a
    # true peak (same index); spurious peaks between lattice points; missing peaks (NaN)
    peaks = clean.copy()
    peaks[:, 2] += 1.5
    dup = clean[:, 5:6] + 0.8
    spurious = clean[:, 7:8] + (a + b) / 2
    peaks[:, 9] = np.nan
    all_peaks = np.concatenate([peaks, dup, spurious], axis=1)
    fit = fit_lattice(all_peaks, ORIGIN, A, B)
    good = np.ones(n, bool)
    good[[2, 9]] = False
    ref = fit_lattice(clean[:, good], ORIGIN, A, B)
    assert np.all(fit.n_matched == n - 2)
    assert np.allclose(fit.a, ref.a) and np.allclose(fit.b, ref.b)
    assert np.allclose(fit.origin, ref.origin)
    assert np.allclose(fit.a, a, atol=0.03) and np.allclose(fit.b, b, atol=0.03)


def test_frames_without_a_lattice_give_nan_and_zero_matches(rng):
    _, hk = lattice_points(ORIGIN, A, B, SIG, margin=4)
    good = peaks_of(ORIGIN[None], A[None], B[None], hk)[0] + rng.normal(0, 0.05, (len(hk), 2))
    frames = np.stack([good, good, good, good, good])
    frames[1] = np.nan  # no peaks at all
    frames[2, 3:] = np.nan  # three peaks: too few for min_peaks=4
    frames[3] = rng.uniform(0, 80, frames[3].shape)  # noise peaks, no lattice
    along_h = hk[:, 1] == 0  # only peaks on one lattice row: collinear
    frames[4, ~along_h] = np.nan
    w = np.ones(frames.shape[:2])
    w[0, :2] = 0  # weight 0: ignored
    fit = fit_lattice(frames, ORIGIN, A, B, weights=w, max_residual=0.5)
    assert fit.n_matched.tolist()[1:] == [0, 0, 0, 0]
    assert fit.n_matched[0] == len(hk) - 2
    for field in (fit.origin, fit.a, fit.b, fit.residual_rms, fit.covariance):
        assert np.isnan(field[1:]).all() and np.isfinite(field[0]).all()


def test_index_peaks(rng):
    _, hk = lattice_points(ORIGIN, A, B, SIG, margin=4)
    peaks = peaks_of(ORIGIN[None], A[None], B[None], hk)[0] + rng.uniform(-2, 2, (len(hk), 2))
    assert np.array_equal(index_peaks(peaks, ORIGIN, A, B), hk)
    assert np.isnan(index_peaks(peaks, ORIGIN, A, np.array([np.nan, 1.0]))).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"peaks": np.zeros((3, 4))}, "peaks must have shape"),
        ({"min_peaks": 2}, "min_peaks"),
        ({"n_iter": 0}, "n_iter"),
        ({"outlier_sigma": 0}, "outlier_sigma"),
        ({"max_residual": -1.0}, "max_residual"),
        ({"origin": np.zeros(3)}, "origin, a, b must have shape"),
        ({"weights": np.ones(4)}, "weights"),
        ({"implementation": "cuda"}, "implementation must be one of"),
    ],
)
def test_fit_lattice_parameter_errors(kwargs, match):
    args = {"peaks": np.zeros((2, 5, 2)), "origin": ORIGIN, "a": A, "b": B, **kwargs}
    with pytest.raises(InvalidParameterError, match=match):
        fit_lattice(**args)


@pytest.mark.parametrize("known_indices", [False, True])
def test_numba_equals_numpy_reference(rng, known_indices):
    """The compiled per-frame loop against the vectorised NumPy reference, on a batch with
    everything at once: strain, shifts, noise, outliers, duplicates, missing peaks, zero
    weights, frames without a lattice."""
    frames = 300
    _, hk = lattice_points(ORIGIN, A, B, SIG, margin=4)
    a, b = strained_basis(A, B, *rng.normal(0, 0.01, (4, frames)))
    origin = ORIGIN + rng.normal(0, 1.5, (frames, 2))
    peaks = peaks_of(origin, a, b, hk) + rng.normal(0, 0.08, (frames, len(hk), 2))
    n = len(hk)
    peaks[:, 2] += rng.normal(0, 1.0, (frames, 2))  # outliers of every size
    peaks[rng.random((frames, n)) < 0.1] = np.nan  # missing
    extra = peaks[:, :3] + rng.normal(0, 0.5, (frames, 3, 2))  # near-duplicates
    peaks = np.concatenate([peaks, extra], axis=1)
    hk_all = np.concatenate([hk, hk[:3]])
    weights = rng.uniform(0.5, 2.0, peaks.shape[:2])
    weights[rng.random(weights.shape) < 0.05] = 0
    peaks[0] = np.nan  # nothing
    peaks[1, 3:] = np.nan  # too few
    peaks[2] = rng.uniform(0, 80, peaks[2].shape)  # noise: a poor fit to a few of them
    kwargs = {"weights": weights, "hk": hk_all if known_indices else None}
    ref = fit_lattice(peaks, ORIGIN, A, B, implementation="numpy", **kwargs)
    got = fit_lattice(peaks, ORIGIN, A, B, implementation="numba", **kwargs)
    np.testing.assert_array_equal(got.n_matched, ref.n_matched)
    assert (ref.n_matched == 0).sum() >= 2 and (ref.n_matched > 0).sum() > frames - 5
    for name in ("origin", "a", "b", "residual_rms", "covariance"):
        np.testing.assert_allclose(
            getattr(got, name), getattr(ref, name), rtol=1e-9, atol=1e-12, err_msg=name
        )
