"""LatticeFitUDF: the per-frame fits made in the workers equal the NumPy fit of the same
peaks, on every executor, with several partitions, a roi and a 3-D scan."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from libertem_gpu.disks.fit_udf import FIT_RESULTS, LatticeFitUDF, fit_frames
from libertem_gpu.disks.lattice import fit_lattice, lattice_points
from libertem_gpu.disks.simulate_strain import strained_basis, strained_lattice_frames
from libertem_gpu.disks.templates import disk_template
from libertem_gpu.errors import InvalidParameterError

A = np.array([0.7, 11.2])
B = np.array([10.9, -1.1])
ORIGIN = np.array([31.4, 32.2])
SIG = (64, 62)


def make_udf(**kwargs):
    pos, hk = lattice_points(ORIGIN, A, B, SIG, margin=7)
    args = dict(peaks=pos, template=disk_template(3.0), hk=hk, origin=ORIGIN, a=A, b=B, search=2)
    return LatticeFitUDF(**{**args, **kwargs})


def test_fits_in_the_workers_equal_the_numpy_fit(ctx, rng):
    nav = (2, 3, 2)
    n = int(np.prod(nav))
    a, b = strained_basis(
        A, B, rng.normal(0, 0.01, n), rng.normal(0, 0.01, n), 0.0, rng.normal(0, 0.01, n)
    )
    origin = ORIGIN + rng.normal(0, 0.5, (n, 2))
    data = strained_lattice_frames(
        nav,
        SIG,
        origin.reshape(*nav, 2),
        a.reshape(*nav, 2),
        b.reshape(*nav, 2),
        3.0,
        dose=3000,
        rng=rng,
    )
    data[1, 1, 0] = 0  # no lattice here
    roi = rng.random(nav) < 0.8
    roi[1, 1, 0] = roi[0, 0, 0] = True
    roi[0, 0, 1] = False
    udf = make_udf(min_heights=0.5, weighted=True)
    res = ctx.run_udf(ctx.load("memory", data=data, num_partitions=3), udf, roi=roi)
    want = fit_frames(res["peaks"].data[roi], res["heights"].data[roi], udf._fit_params)
    for name in FIT_RESULTS:
        got = res[name].data
        assert got.shape[: len(nav)] == nav
        assert got.dtype == FIT_RESULTS[name][1]
        np.testing.assert_allclose(got[roi], getattr(want, name), rtol=1e-12, err_msg=name)
    assert np.isnan(res["a"].data[~roi]).all() and (res["n_matched"].data[~roi] == 0).all()
    assert res["n_matched"].data[1, 1, 0] == 0 and np.isnan(res["origin"].data[1, 1, 0]).all()
    good = roi.copy()
    good[1, 1, 0] = False
    assert (res["n_matched"].data[good] == len(udf.params.hk)).all()
    np.testing.assert_allclose(res["a"].data[good], a.reshape(*nav, 2)[good], atol=0.05)


def test_parameters_travel_with_copies():
    udf = make_udf(min_heights=2.0, weighted=False, outlier_sigma=3.0, max_residual=1.5)
    for other in (udf.copy(), pickle.loads(pickle.dumps(udf))):
        assert other._fit_params["weighted"] is False
        assert other._fit_params["outlier_sigma"] == 3.0
        assert other._fit_params["max_residual"] == 1.5
        np.testing.assert_array_equal(other._fit_params["min_heights"], 2.0)
        np.testing.assert_array_equal(other.params.peaks, udf.params.peaks)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hk": np.zeros((2, 2))}, "hk must be integer indices"),
        ({"hk": None}, "hk must be integer indices"),
        ({"origin": (1.0, np.nan)}, "origin must be a finite"),
        ({"b": (1.0, 2.0, 3.0)}, "b must be a finite"),
        ({"min_heights": np.ones(3)}, "min_heights must be a number or have shape"),
        ({"min_heights": np.nan}, "min_heights must not hold NaN"),
        ({"min_peaks": 1}, "min_peaks"),
        ({"outlier_sigma": 0.0}, "outlier_sigma"),
    ],
)
def test_bad_fit_parameters(kwargs, match):
    with pytest.raises(InvalidParameterError, match=match):
        make_udf(**kwargs)


def test_full_frame_peaks_indexed_and_fitted_on_the_client(inline_ctx, rng):
    """FullFrameCorrelationUDF's strongest peaks (unordered, some spurious) carry no indices:
    fit_lattice indexes them against the reference lattice."""
    from libertem_gpu import FullFrameCorrelationUDF
    from libertem_gpu.disks.strain import strain_from_basis

    nav = (2, 3)
    exx = np.linspace(-0.01, 0.01, 6).reshape(nav)
    a, b = strained_basis(A, B, exx=exx)
    data = strained_lattice_frames(nav, SIG, ORIGIN, a, b, 3.0, dose=20_000, rng=rng)
    data[0, 1, 5:9, 5:9] += 2000  # a bright blob off the lattice
    udf = FullFrameCorrelationUDF(disk_template(3.0), n_peaks=30)
    res = inline_ctx.run_udf(inline_ctx.load("memory", data=data), udf)
    fit = fit_lattice(res["peaks"].data, ORIGIN, A, B, weights=res["heights"].data)
    strain = strain_from_basis(fit.a, fit.b, A, B, fit.covariance)
    np.testing.assert_allclose(strain.exx, exx, atol=1e-3)
    np.testing.assert_allclose(strain.eyy, 0, atol=1e-3)
    n_lattice = np.isfinite(res["peaks"].data[..., 0]).sum(axis=-1)
    assert np.all(fit.n_matched >= 20) and np.all(fit.n_matched <= n_lattice)
