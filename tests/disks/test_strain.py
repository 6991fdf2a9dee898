"""Strain and rotation from basis vectors: decompositions, spaces, propagated uncertainty."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.disks.simulate_strain import strained_basis
from libertem_gpu.disks.strain import reference_basis, strain_from_basis
from libertem_gpu.errors import InvalidParameterError

A = np.array([1.7, 13.1])
B = np.array([12.2, -3.4])


def test_polar_inverts_the_simulated_deformation_exactly(rng):
    shape = (5, 7)
    exx, eyy, exy = (rng.uniform(-0.1, 0.1, shape) for _ in range(3))
    rot = rng.uniform(-1.0, 1.0, shape)  # large rotations too
    a, b = strained_basis(A, B, exx, eyy, exy, rot)
    s = strain_from_basis(a, b, A, B)
    for got, want in ((s.exx, exx), (s.eyy, eyy), (s.exy, exy), (s.rotation, rot)):
        assert got.shape == shape
        assert np.allclose(got, want, atol=1e-12)
    assert np.isnan(s.exx_std).all()  # no covariance given
    # F maps the reference basis onto the measured one
    assert np.allclose(s.deformation @ np.stack([A, B], 1), np.stack([a, b], -1))


def test_small_strain_agrees_to_first_order(rng):
    e = rng.uniform(-0.01, 0.01, (4, 20))
    a, b = strained_basis(A, B, *e)
    s = strain_from_basis(a, b, A, B, method="small")
    got = np.stack([s.exx, s.eyy, s.exy, s.rotation])
    err = np.abs(got - e)
    assert err.max() < 3e-4  # second order in 1e-2
    assert err.max() > 1e-7  # and not the polar result


def test_real_space_strain_of_the_crystal(rng):
    # the crystal deforms by D; its reciprocal lattice (the pattern) by inv(D).T
    exx, eyy, exy, rot = 0.02, -0.01, 0.005, 0.03
    e_y, e_x = strained_basis(np.array([1.0, 0.0]), np.array([0.0, 1.0]), exx, eyy, exy, rot)
    d = np.stack([e_y, e_x], axis=1)  # D in (y, x) components: images of the unit vectors
    recip = np.linalg.inv(d).T @ np.stack([A, B], 1)
    s = strain_from_basis(recip[:, 0], recip[:, 1], A, B, space="real")
    assert np.allclose([s.exx, s.eyy, s.exy, s.rotation], [exx, eyy, exy, rot], atol=1e-12)
    diff = strain_from_basis(recip[:, 0], recip[:, 1], A, B)
    # to first order the pattern shows the opposite strain and the same rotation
    assert np.allclose([diff.exx, diff.eyy, diff.exy], [-exx, -eyy, -exy], atol=1e-3)
    assert np.isclose(diff.rotation, rot, atol=1e-12)


@pytest.mark.parametrize("method", ["polar", "small"])
def test_propagated_uncertainty_matches_monte_carlo(rng, method):
    a, b = strained_basis(A, B, 0.01, -0.02, 0.003, 0.2)
    m = rng.normal(size=(6, 6))
    cov = m @ m.T * 1e-4
    samples = rng.multivariate_normal(np.concatenate([[3.0, 4.0], a, b]), cov, size=20000)
    mc = strain_from_basis(samples[:, 2:4], samples[:, 4:6], A, B, method=method)
    s = strain_from_basis(a, b, A, B, cov, method=method)
    for name in ("exx", "eyy", "exy", "rotation"):
        want = getattr(mc, name).std()
        assert np.isclose(getattr(s, name + "_std"), want, rtol=0.05), name


def test_nan_basis_gives_nan_strain():
    a = np.array([A, [np.nan, np.nan]])
    b = np.array([B, B])
    cov = np.stack([np.eye(6) * 1e-4, np.full((6, 6), np.nan)])
    for space in ("diffraction", "real"):
        s = strain_from_basis(a, b, A, B, cov, space=space)
        assert np.allclose([s.exx[0], s.rotation[0]], 0, atol=1e-12)
        assert np.isfinite(s.exx_std[0]) and s.exx_std[0] > 0
        assert np.isnan([s.exx[1], s.eyy[1], s.exy[1], s.rotation[1], s.exx_std[1]]).all()


def test_reference_basis_is_the_mean_over_the_roi(rng):
    a = rng.normal(A, 0.1, (3, 4, 2))
    b = rng.normal(B, 0.1, (3, 4, 2))
    a[0, 0] = np.nan  # no lattice there: ignored
    roi = np.zeros((3, 4), bool)
    roi[:2, :2] = True
    a_ref, b_ref = reference_basis(a, b, roi)
    assert np.allclose(a_ref, a[[0, 1, 1], [1, 0, 1]].mean(0))
    assert np.allclose(b_ref, b[[0, 1, 1], [1, 0, 1]].mean(0))
    assert np.allclose(reference_basis(a, b)[1], b.reshape(-1, 2)[1:].mean(0))
    with pytest.raises(InvalidParameterError, match="scan's shape"):
        reference_basis(a, b, roi[:2])
    only_nan = np.zeros((3, 4), bool)
    only_nan[0, 0] = True
    with pytest.raises(InvalidParameterError, match="no position with a lattice"):
        reference_basis(a, b, only_nan)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "green"}, "method must be one of"),
        ({"space": "fourier"}, "space must be one of"),
        ({"b_ref": 2 * A}, "non-collinear"),
        ({"b": np.zeros(3)}, "same shape"),
        ({"covariance": np.eye(4)}, "covariance must have shape"),
    ],
)
def test_strain_parameter_errors(kwargs, match):
    args = {"a": A, "b": B, "a_ref": A, "b_ref": B, **kwargs}
    with pytest.raises(InvalidParameterError, match=match):
        strain_from_basis(**args)
