"""libertem_gpu.compat.masks: LiberTEM's mask factories, against NumPy formulas and a few sums
that LiberTEM 0.16 gives for the same arguments."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.compat import masks

CX, CY, NX, NY = 5.3, 4.1, 12, 10


def _distance() -> np.ndarray:
    y, x = np.mgrid[:NY, :NX]
    return np.hypot(y - CY, x - CX)


def test_hard_edged_masks():
    d = _distance()
    np.testing.assert_array_equal(masks.circular(CX, CY, NX, NY, 3.4), d <= 3.4)
    ring = masks.ring(CX, CY, NX, NY, radius=4.4, radius_inner=2.2)
    np.testing.assert_array_equal(ring, (d <= 4.4) & ~(d <= 2.2))
    rect = masks.rectangular(3, 2, -2, 3, 8, 7)  # width negative: extends left, ends included
    expected = np.zeros((7, 8), bool)
    expected[2:6, 1:4] = True
    np.testing.assert_array_equal(rect, expected)
    np.testing.assert_array_equal(masks.gradient_x(4, 3)[2], [0, 1, 2, 3])
    np.testing.assert_array_equal(masks.gradient_y(4, 3)[:, 1], [0, 1, 2])


def test_antialiased_edges():
    disk = masks.circular(CX, CY, NX, NY, 3.4, antialiased=True)
    assert disk.sum() == pytest.approx(36.49761555786771)  # LiberTEM 0.16's value
    d = _distance()
    np.testing.assert_array_equal(disk[d < 2.9], 1.0)
    np.testing.assert_array_equal(disk[d > 3.9], 0.0)
    ring = masks.ring(CX, CY, NX, NY, 4.4, 2.2, antialiased=True)
    assert ring.max() == 1.0 and (ring[d < 1.7] == 0).all()


def test_radial_gradients():
    d = _distance()
    np.testing.assert_allclose(
        masks.radial_gradient(CX, CY, NX, NY, 3.7), np.where(d <= 3.7, d / 3.7, 0)
    )
    aa = masks.radial_gradient(CX, CY, NX, NY, 3.7, antialiased=True)
    np.testing.assert_allclose(aa[d < 3.2], d[d < 3.2] / 3.7)
    r = np.array([0.0, 1.0, 2.0, 2.2, 3.0, 5.0])
    np.testing.assert_allclose(
        masks.radial_gradient_background_subtraction(r, r0=2, r_outer=4),
        [0.0, 0.5, 0.0, -0.4, -1.0, 0.0],
    )


def test_polar_map_balance_bounding_radius():
    r, phi = masks.polar_map(CX, CY, NX, NY)
    y, x = np.mgrid[:NY, :NX]
    np.testing.assert_allclose(r, _distance())
    np.testing.assert_allclose(phi, np.arctan2(y - CY, x - CX))
    r2, _ = masks.polar_map(CX, CY, NX, NY, stretchY=2.0, angle=np.pi / 2)
    np.testing.assert_allclose(r2, np.hypot((CX - x) / 2.0, y - CY), atol=1e-12)
    balanced = masks.balance(np.array([[1.0, -2.0], [3.0, -0.5]]))
    assert balanced.sum() == pytest.approx(0.0) and balanced[0, 0] == 1.0
    assert masks.bounding_radius(CX, CY, NX, NY) == 10  # ceil(hypot(5.9, 6.7)) + 1


def test_radial_bins():
    bins = masks.radial_bins(CX, CY, NX, NY, n_bins=4, use_sparse=False)
    assert bins.shape == (4, NY, NX)
    assert bins.sum() == pytest.approx(NX * NY)  # reaching past every corner: each pixel once
    assert bins[0].sum() == pytest.approx(19.925115267576587)  # LiberTEM 0.16's value
    norm = masks.radial_bins(
        CX, CY, NX, NY, radius=5, radius_inner=1, n_bins=3, normalize=True, dtype=np.float32
    )
    norm = masks.to_dense(norm)
    assert norm.dtype == np.float32
    np.testing.assert_allclose(norm.sum(axis=(1, 2)), 1.0, rtol=1e-6)


def test_background_subtraction_sums_to_zero():
    mask = masks.background_subtraction(CX, CY, NX, NY, 4.5, 2.0)
    assert mask.sum() == pytest.approx(0.0, abs=1e-12)
    assert mask.max() == 1.0 and mask.min() < 0


def test_multi_stacks():
    template = np.arange(6.0).reshape(2, 3)
    stack = masks.to_dense(
        masks.sparse_template_multi_stack([0, 1, 1], [-1, 3, 9], [2, -1, 8], template, 11, 10)
    )
    assert stack.shape == (2, 10, 11)
    np.testing.assert_array_equal(stack[0, 2:4, 0:2], template[:, 1:])  # clipped on the left
    np.testing.assert_array_equal(stack[1, 0, 3:6], template[1])  # clipped at the top
    np.testing.assert_array_equal(stack[1, 8:10, 9:11], template[:, :2])
    assert stack.sum() == template[:, 1:].sum() + template[1].sum() + template[:, :2].sum()
    disks = masks.to_dense(
        masks.sparse_circular_multi_stack([0, 1], [2.7, 9], [3, 8.2], 11, 10, 2.5)
    )
    y, x = np.mgrid[:10, :11]
    np.testing.assert_array_equal(disks[0], np.hypot(y - 3, x - 2) <= 2.5)


def test_sparse_helpers():
    dense = np.eye(3)
    assert not masks.is_sparse(dense)
    scipy_sparse = pytest.importorskip("scipy.sparse")
    coo = scipy_sparse.coo_matrix(dense)
    assert masks.is_sparse(coo)
    np.testing.assert_array_equal(masks.to_dense(coo), dense)
