"""Laue groups, fundamental sectors and beam-direction grids against their definitions: the
groups close, every direction reduces to one equivalent inside its sector, hand-known
directions land where crystallography puts them, and the grids cover their sectors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import beam_directions
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.crystal_symmetry import (
    SYSTEMS,
    in_sector,
    laue_operations,
    reduce_directions,
    sector_corners,
)

ORDER = {
    "cubic": 48,
    "hexagonal": 24,
    "tetragonal": 16,
    "orthorhombic": 8,
    "trigonal": 6,
    "monoclinic": 4,
    "triclinic": 2,
}


def _unit(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("system", SYSTEMS)
def test_laue_groups_close_and_hold_the_inversion(system):
    ops = laue_operations(system)
    assert len(ops) == ORDER[system]
    np.testing.assert_allclose(
        ops @ ops.transpose(0, 2, 1), np.broadcast_to(np.eye(3), ops.shape), atol=1e-12
    )
    keys = {tuple(np.round(o, 9).ravel()) for o in ops}
    assert len(keys) == len(ops)
    assert tuple(np.round(-np.eye(3), 9).ravel()) in keys
    products = np.einsum("aij,bjk->abik", ops, ops).reshape(-1, 3, 3)
    assert all(tuple(np.round(p, 9).ravel()) in keys for p in products)


@pytest.mark.parametrize("system", SYSTEMS)
def test_reduction_lands_one_equivalent_in_the_sector(system, rng):
    v = _unit(rng, 3000)
    r = reduce_directions(v, system)
    assert in_sector(r, system).all()
    images = np.einsum("oij,nj->oni", laue_operations(system), v)
    assert np.abs(images - r[None]).max(axis=2).min(axis=0).max() < 1e-12  # an equivalent
    ops = laue_operations(system)[rng.integers(0, ORDER[system], len(v))]
    moved = np.einsum("nij,nj->ni", ops, v)
    np.testing.assert_allclose(reduce_directions(moved, system), r, atol=1e-12)  # the same one
    # Scale does not matter; NaN stays NaN.
    np.testing.assert_allclose(reduce_directions(3 * v[:5], system), r[:5], atol=1e-12)
    assert np.isnan(reduce_directions(np.full((2, 3), np.nan), system)).all()


@pytest.mark.parametrize("system", SYSTEMS)
def test_sector_area_is_the_sphere_over_the_group(system, rng):
    # Directions drawn uniformly fall in the sector in proportion to its area, 4 pi / |G|.
    v = _unit(rng, 200_000)
    share = in_sector(v, system).mean()
    assert share == pytest.approx(1 / ORDER[system], rel=0.05)


def test_hand_known_reductions():
    s2, s3 = np.sqrt(2), np.sqrt(3)
    cubic = reduce_directions([[0, 1, 0], [1, 1, 0], [-1, -1, -1], [0, -2, 1]], "cubic")
    want = [[0, 0, 1], [1 / s2, 0, 1 / s2], [1 / s3] * 3, [1 / 5**0.5, 0, 2 / 5**0.5]]
    np.testing.assert_allclose(cubic, want, atol=1e-12)
    # Hexagonal: the azimuths 90 (b* of a along x) and 30 ([10-10]) are mirror images.
    hexa = reduce_directions([[0, 1, 0], [0, 0, -1]], "hexagonal")
    np.testing.assert_allclose(
        hexa, [[np.cos(np.pi / 6), np.sin(np.pi / 6), 0], [0, 0, 1]], atol=1e-12
    )
    # Tetragonal: [010] is [100]; [111] stays; monoclinic: the two-fold axis along y.
    np.testing.assert_allclose(reduce_directions([0, 1, 0], "tetragonal"), [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(reduce_directions([0, -1, 0], "monoclinic"), [0, 1, 0], atol=1e-12)
    # Triclinic: only the inversion.
    np.testing.assert_allclose(
        reduce_directions([1, 2, -2], "triclinic"), [-1 / 3, -2 / 3, 2 / 3], atol=1e-12
    )
    assert not in_sector([0, 1, 0], "cubic")


@pytest.mark.parametrize("system", SYSTEMS)
def test_corners_are_in_their_sector(system):
    corners = sector_corners(system)
    if corners is None:
        assert system in ("trigonal", "monoclinic", "triclinic")
        return
    assert in_sector(corners, system).all()
    np.testing.assert_allclose(reduce_directions(corners, system), corners, atol=1e-12)


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize("resolution", [1.7, 6.0])
def test_beam_directions_cover_their_sector(system, resolution, rng):
    d = beam_directions(system, resolution)
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 1.0)
    np.testing.assert_array_equal(d[0], [0, 0, 1])
    assert in_sector(d, system).all()
    probe = reduce_directions(_unit(rng, 4000), system)
    gap = np.degrees(np.arccos(np.clip(probe @ d.T, -1, 1))).min(axis=1)
    assert gap.max() <= 1.1 * resolution
    # Not far more than the sector needs: spacing of about `resolution` both ways.
    area = 4 * np.pi / ORDER[system]
    assert len(d) < 3 * area / np.radians(resolution) ** 2 + 40


def test_bad_arguments():
    with pytest.raises(InvalidParameterError, match="crystal system"):
        beam_directions("cubik")
    with pytest.raises(InvalidParameterError, match="resolution"):
        beam_directions("cubic", 0)
    with pytest.raises(InvalidParameterError, match="resolution"):
        beam_directions("cubic", "fine")
    with pytest.raises(InvalidParameterError, match=r"\(\.\.\., 3\)"):
        reduce_directions(np.ones((3, 2)), "cubic")


def test_reduction_in_blocks_is_the_same(rng):
    # Past one block of directions (the reduction works block by block), and across its edge.
    from libertem_gpu.udf.crystal_symmetry import _REDUCE_BLOCK

    v = _unit(rng, _REDUCE_BLOCK + 100).reshape(-1, 4, 3)  # any leading shape
    whole = reduce_directions(v, "cubic").reshape(-1, 3)
    edge = slice(_REDUCE_BLOCK - 50, _REDUCE_BLOCK + 50)
    np.testing.assert_array_equal(whole[edge], reduce_directions(v.reshape(-1, 3)[edge], "cubic"))
    assert in_sector(whole, "cubic").all()
