"""The strained-lattice simulator the strain tests rely on: disks where the lattice says, with
the dose asked for."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.disks.lattice import lattice_points
from libertem_gpu.disks.simulate_strain import strained_basis, strained_lattice_frames
from libertem_gpu.errors import InvalidParameterError

A = np.array([0.9, 15.4])
B = np.array([15.1, -1.3])


def test_lattice_points_are_all_points_inside_the_margin():
    origin, sig, margin = np.array([30.3, 41.7]), (70, 90), 5.5
    pos, hk = lattice_points(origin, A, B, sig, margin)
    np.testing.assert_allclose(pos, origin + hk @ np.stack([A, B]))
    assert np.array_equal(hk[0], [0, 0])  # zero order first, then by distance
    assert np.all(np.diff(np.hypot(*(pos - origin).T)) >= 0)
    h, k = np.meshgrid(np.arange(-20, 21), np.arange(-20, 21), indexing="ij")
    every = origin + np.stack([h.ravel(), k.ravel()], 1) @ np.stack([A, B])
    inside = np.all((every >= margin) & (every <= np.array(sig) - 1 - margin), axis=1)
    assert len(pos) == inside.sum()
    with pytest.raises(InvalidParameterError, match="collinear"):
        lattice_points(origin, A, 2 * A, sig)


def test_disks_sit_on_the_lattice_with_the_dose(rng):
    a, b = strained_basis(A, B, exx=[[0.0, 0.02]], rotation=[[0.0, 0.1]])
    origin = np.array([[[47.6, 48.3], [46.2, 49.9]]])
    frames = strained_lattice_frames((1, 2), (96, 96), origin, a, b, 4.0, dose=500, noise=False)
    assert frames.dtype == np.float32 and frames.shape == (1, 2, 96, 96)
    y, x = np.mgrid[0:96, 0:96]
    for j in range(2):
        pos, _ = lattice_points(origin[0, j], a[0, j], b[0, j], (96, 96), margin=5)
        for p in pos:
            near = np.hypot(y - p[0], x - p[1]) <= 5.5
            f = frames[0, j] * near
            assert np.isclose(f.sum(), 500, rtol=0.01)
            np.testing.assert_allclose(
                [(f * y).sum() / f.sum(), (f * x).sum() / f.sum()], p, atol=4e-3
            )
    # Poisson counts around that expectation, background included
    args = ((40,), (32, 32), (15.0, 16.0), A, B, 3.0)
    mean = strained_lattice_frames(*args, dose=200, background=1.0, noise=False)
    noisy = strained_lattice_frames(*args, dose=200, background=1.0, rng=rng)
    assert noisy.dtype == np.uint16
    total, expected = noisy.sum(axis=(1, 2)), mean.sum(axis=(1, 2))
    z = (total - expected) / np.sqrt(expected)
    assert abs(z.mean()) < 0.6 and 0.6 < z.std() < 1.4
    with pytest.raises(InvalidParameterError, match="radius"):
        strained_lattice_frames((1,), (8, 8), (4, 4), A, B, 0.0)
