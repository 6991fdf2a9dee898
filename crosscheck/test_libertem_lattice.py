"""Cross-check: the lattice fit (``fit_lattice``) against libertem-blobfinder 0.6's
``Matcher`` on the same peak lists.

- Known indices (``affinematch``: weighted least squares with the peak elevations as
  weights, no rejection): ``fit_lattice(hk=..., weights=...)`` gives the same origin and basis
  to rounding.
- Indices found from an approximate lattice (``fastmatch``: match, fit, match again, fit),
  with gross outliers among the peaks: both reject the outliers and agree to rounding.

Run with ``crosscheck/run.sh`` (it installs ``libertem==0.16.0``; blobfinder must be
installed beside it).
"""

from __future__ import annotations

import numpy as np
import pytest

gridmatching = pytest.importorskip(
    "libertem_blobfinder.common.gridmatching", reason="the cross-check needs libertem-blobfinder"
)

from libertem_gpu.disks.lattice import fit_lattice, lattice_points  # noqa: E402
from libertem_gpu.disks.simulate_strain import strained_basis  # noqa: E402

ORIGIN = np.array([60.2, 63.7])
A = np.array([1.3, 17.9])
B = np.array([18.4, -2.2])


def peak_list(rng, n_outliers=0):
    a, b = strained_basis(A, B, *rng.normal(0, 0.01, 4))
    origin = ORIGIN + rng.normal(0, 0.5, 2)
    _, hk = lattice_points(ORIGIN, A, B, (128, 128), margin=5)
    peaks = origin + hk @ np.stack([a, b]) + rng.normal(0, 0.05, (len(hk), 2))
    weights = rng.uniform(0.5, 2.0, len(hk))
    if n_outliers:
        peaks = np.concatenate([peaks, origin + (hk[:n_outliers] + 0.45) @ np.stack([a, b])])
        weights = np.concatenate([weights, np.full(n_outliers, 3.0)])
        hk = np.concatenate([hk, hk[:n_outliers]])
    return peaks, hk, weights


@pytest.mark.parametrize("implementation", ["numpy", "numba"])
@pytest.mark.parametrize("seed", range(5))
def test_known_indices_equal_affinematch(seed, implementation):
    rng = np.random.default_rng(seed)
    peaks, hk, weights = peak_list(rng)
    theirs = gridmatching.Matcher().affinematch(
        centers=np.round(peaks).astype(int),
        indices=hk,
        refineds=peaks,
        peak_values=weights,
        peak_elevations=weights,
    )
    ours = fit_lattice(
        peaks,
        ORIGIN,
        A,
        B,
        hk=hk,
        weights=weights,
        outlier_sigma=1e9,
        implementation=implementation,
    )
    np.testing.assert_allclose(ours.origin, theirs.zero, atol=1e-9)
    np.testing.assert_allclose(ours.a, theirs.a, atol=1e-9)
    np.testing.assert_allclose(ours.b, theirs.b, atol=1e-9)
    assert ours.n_matched == len(hk)


@pytest.mark.parametrize("implementation", ["numpy", "numba"])
@pytest.mark.parametrize("seed", range(5))
def test_outliers_rejected_as_fastmatch_does(seed, implementation):
    rng = np.random.default_rng(seed)
    peaks, _, weights = peak_list(rng, n_outliers=3)
    theirs = gridmatching.Matcher(tolerance=1.0, min_weight=0.0).fastmatch(
        centers=np.round(peaks).astype(int),
        refineds=peaks,
        peak_values=weights,
        peak_elevations=weights,
        zero=ORIGIN,
        a=A,
        b=B,
    )
    ours = fit_lattice(peaks, ORIGIN, A, B, weights=weights, implementation=implementation)
    assert ours.n_matched == len(theirs) == len(peaks) - 3
    np.testing.assert_allclose(ours.origin, theirs.zero, atol=1e-9)
    np.testing.assert_allclose(ours.a, theirs.a, atol=1e-9)
    np.testing.assert_allclose(ours.b, theirs.b, atol=1e-9)
