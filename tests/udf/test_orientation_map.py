"""Euler angles against Bunge's definition and hand cases, inverse pole figure colours
against their key's corners and the crystal's symmetry, and an orientation map end to end:
frames of an FCC crystal in orientations over the cubic sector, matched against a bank over
the same sector, come back with their beam directions and colours."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from libertem_gpu import (
    Context,
    TemplateMatchUDF,
    beam_directions,
    direction_orientations,
    euler_angles,
    ipf_colors,
    ipf_key,
    kinematic_templates,
    match_orientations,
    rotations_from_euler,
)
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.crystal_symmetry import SYSTEMS, laue_operations, sector_corners
from tests.udf.test_template_match import render

FCC = [(0, 0, 0, 13), (0.5, 0.5, 0, 13), (0.5, 0, 0.5, 13), (0, 0.5, 0.5, 13)]
ALUMINIUM = (4.05, 4.05, 4.05, 90, 90, 90)


def _about(axis, angle):
    return Rotation.from_rotvec(np.asarray(axis, float) * angle).as_matrix()


def test_euler_angles_round_trip_and_definition():
    rot = Rotation.random(200, random_state=1).as_matrix()
    e = euler_angles(rot)
    assert (e[:, 0] >= 0).all() and (e[:, 0] < 2 * np.pi).all()
    assert (e[:, 1] >= 0).all() and (e[:, 1] <= np.pi).all()
    np.testing.assert_allclose(rotations_from_euler(e), rot, atol=1e-12)
    np.testing.assert_allclose(euler_angles(rot, degrees=True), np.degrees(e))
    # g = R.T = Rz(phi2) Rx(Phi) Rz(phi1), each passive: R = Rz(phi1) Rx(Phi) Rz(phi2) active.
    for phi1, big, phi2 in e[:5]:
        active = _about([0, 0, 1], phi1) @ _about([1, 0, 0], big) @ _about([0, 0, 1], phi2)
        np.testing.assert_allclose(rotations_from_euler([phi1, big, phi2]), active, atol=1e-12)


def test_euler_angles_hand_cases():
    np.testing.assert_allclose(euler_angles(np.eye(3)), [0, 0, 0], atol=1e-12)
    np.testing.assert_allclose(euler_angles(_about([0, 0, 1], 0.3)), [0.3, 0, 0], atol=1e-12)
    np.testing.assert_allclose(euler_angles(_about([1, 0, 0], 0.7)), [0, 0.7, 0], atol=1e-12)
    # Phi = pi: only phi1 - phi2 is defined; the matrix still comes back.
    flip = _about([1, 0, 0], np.pi) @ _about([0, 0, 1], 0.4)
    np.testing.assert_allclose(rotations_from_euler(euler_angles(flip)), flip, atol=1e-12)
    nan = euler_angles(np.full((2, 3, 3), np.nan))
    assert np.isnan(nan).all()


@pytest.mark.parametrize("system", ["cubic", "hexagonal", "tetragonal", "orthorhombic"])
def test_ipf_corners_are_red_green_blue(system):
    corners = sector_corners(system)
    np.testing.assert_allclose(
        ipf_colors(direction_orientations(corners), system), np.eye(3), atol=1e-9
    )


@pytest.mark.parametrize("system", SYSTEMS)
def test_ipf_colours_follow_the_symmetry_not_the_setting(system, rng):
    rot = Rotation.random(50, random_state=2).as_matrix()
    ops = laue_operations(system)
    proper = ops[np.linalg.det(ops) > 0]
    # A symmetry operation of the crystal (R S) and any turn about the beam (Rz R) keep IPF-Z.
    s = proper[rng.integers(0, len(proper), len(rot))]
    turn = Rotation.from_rotvec(np.outer(rng.uniform(0, 7, len(rot)), [0, 0, 1])).as_matrix()
    want = ipf_colors(rot, system)
    assert ((want >= 0) & (want <= 1)).all()
    np.testing.assert_allclose(ipf_colors(rot @ s, system), want, atol=1e-9)
    np.testing.assert_allclose(ipf_colors(turn @ rot, system), want, atol=1e-9)
    # IPF-X is IPF-Z of the orientation turned to put x along the beam.
    to_z = _about([0, 1, 0], -np.pi / 2)  # x -> z
    np.testing.assert_allclose(
        ipf_colors(rot, system, axis=(1, 0, 0)), ipf_colors(to_z @ rot, system), atol=1e-9
    )
    assert np.isnan(ipf_colors(np.full((3, 3), np.nan), system)).all()


def test_ipf_colours_without_corners():
    # The beam along z is white in the hue keys; along the sector's azimuth 0 at the equator, red.
    for system in ("trigonal", "monoclinic", "triclinic"):
        np.testing.assert_allclose(ipf_colors(np.eye(3), system), [1, 1, 1], atol=1e-12)
        along_x = direction_orientations([[1.0, 0.0, 0.0]])
        np.testing.assert_allclose(ipf_colors(along_x, system)[0], [1, 0, 0], atol=1e-12)


@pytest.mark.parametrize("system", SYSTEMS)
def test_ipf_key(system):
    key = ipf_key(system, 96)
    assert key.shape == (96, 96, 4)
    inside = key[..., 3] == 1
    assert 0.05 < inside.mean() < 0.95
    assert (key[~inside] == 0).all()
    assert ((key[inside, :3] >= 0) & (key[inside, :3] <= 1)).all()


def test_bad_arguments():
    with pytest.raises(InvalidParameterError, match=r"\(\.\.\., 3, 3\)"):
        euler_angles(np.eye(2))
    with pytest.raises(InvalidParameterError, match="axis"):
        ipf_colors(np.eye(3), "cubic", axis=(0, 0, 0))
    with pytest.raises(InvalidParameterError, match="size"):
        ipf_key("cubic", 3)
    with pytest.raises(InvalidParameterError, match="crystal system"):
        ipf_colors(np.eye(3), "quasicrystal")


def test_orientation_map_of_fcc_frames(inline_ctx: Context, rng):
    """Frames of aluminium along directions of the cubic sector, turned about the beam and
    some seen from the other side: the matched beam directions are within the bank's spacing
    of the truth, and colours follow."""
    resolution = 4.0
    kw = dict(pixel_size=0.02, reach=44, atoms=FCC, max_excitation=0.025)
    directions = beam_directions("cubic", resolution)
    bank_rot = direction_orientations(directions)
    bank = kinematic_templates(ALUMINIUM, bank_rot, **kw)
    keep = [i for i, t in enumerate(bank) if len(t) >= 4]
    bank_rot, bank = bank_rot[keep], [bank[i] for i in keep]
    # Zone axes tilted by a degree, turned about the beam, and moved by a symmetry operation
    # or seen from the other side (mirror=True): equivalent, and the same colour.
    axes = np.array([[0, 0, 1], [0, 1, 1], [1, 1, 1], [1, 1, 2], [0, 1, 3], [1, 2, 3], [1, 1, 4]])
    n = 8
    pick = axes[rng.integers(0, len(axes), n)]
    tilt = Rotation.from_rotvec(
        np.radians(1.0) * np.column_stack([np.cos(a := rng.uniform(0, 7, n)), np.sin(a), 0 * a])
    ).as_matrix()
    turn = Rotation.from_rotvec(np.outer(rng.uniform(0, 7, n), [0, 0, 1])).as_matrix()
    ops = laue_operations("cubic")
    sym = ops[rng.integers(0, len(ops), n)]
    sym *= np.linalg.det(sym)[:, None, None]  # proper: -S is S times the inversion
    flip = np.where(rng.random(n)[:, None, None] < 0.3, np.diag([-1.0, 1, -1]), np.eye(3))
    truth_rot = turn @ flip @ tilt @ direction_orientations(pick) @ sym
    shown = kinematic_templates(ALUMINIUM, truth_rot, **kw)
    assert all(len(t) >= 4 for t in shown)
    frames = np.stack(
        [render(t / [1, 1, t[:, 2].max()], (96, 96), (47.5, 47.5), 0.0) for t in shown]
    )
    data = rng.poisson(200 * frames + 2).astype(np.uint16).reshape(2, 4, 96, 96)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(
        dataset=ds, udf=TemplateMatchUDF(bank, mirror=True, rad_min=8, power=0.5)
    )
    found = match_orientations(
        bank_rot,
        res["template"].data[..., 0],
        res["rotation"].data[..., 0],
        res["mirrored"].data[..., 0],
    ).reshape(n, 3, 3)
    from libertem_gpu.udf.crystal_symmetry import reduce_directions

    beam = np.array([0.0, 0.0, 1.0])
    want = reduce_directions(truth_rot.transpose(0, 2, 1) @ beam, "cubic")
    got = reduce_directions(found.transpose(0, 2, 1) @ beam, "cubic")
    error = np.degrees(np.arccos(np.clip((want * got).sum(axis=1), -1, 1)))
    assert error.max() <= resolution, error
    colour = np.abs(ipf_colors(found, "cubic") - ipf_colors(truth_rot, "cubic")).max(axis=1)
    assert colour.max() < 0.3


#: The largest misorientation of each Laue group (Mackenzie; for -3, 2/m and -1: 180).
LARGEST = {
    "cubic": 62.8,
    "hexagonal": 93.8,
    "tetragonal": 98.4,
    "orthorhombic": 120.0,
    "trigonal": 180.0,
    "monoclinic": 180.0,
    "triclinic": 180.0,
}


@pytest.mark.parametrize("system", SYSTEMS)
def test_misorientation(system, rng):
    from libertem_gpu import misorientation

    a = Rotation.random(3000, random_state=4).as_matrix()
    b = Rotation.random(3000, random_state=5).as_matrix()
    angle = misorientation(a, b, system)
    assert (angle >= 0).all() and angle.max() <= LARGEST[system] + 1e-6
    assert angle.max() > 0.93 * LARGEST[system]  # random pairs come near the largest
    np.testing.assert_allclose(misorientation(b, a, system), angle, atol=1e-9)
    # Symmetry equivalents are 0 apart; a small turn in the lab is its own angle.
    ops = laue_operations(system)
    proper = ops[np.linalg.det(ops) > 0][rng.integers(0, len(ops) // 2, len(a))]
    np.testing.assert_allclose(misorientation(a, a @ proper, system), 0, atol=1e-5)
    turn = Rotation.from_rotvec(np.radians(3.0) * _unit_vectors(rng, len(a))).as_matrix()
    np.testing.assert_allclose(misorientation(a, turn @ a @ proper, system), 3.0, atol=1e-6)
    assert np.isnan(misorientation(np.full((3, 3), np.nan), a[0], system))


def _unit_vectors(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_kernel_average_misorientation():
    from libertem_gpu import kernel_average_misorientation

    # Two grains 30 degrees apart, each bent by 0.5 degrees per step along x; one empty spot.
    rows, cols = 6, 8
    bend = np.radians(0.5) * np.arange(cols)
    grain = np.where(np.arange(rows)[:, None] < 3, 0.0, np.radians(30))
    angles = grain + bend[None, :]
    rot = Rotation.from_rotvec(np.stack([0 * angles, angles, 0 * angles], -1).reshape(-1, 3))
    rot = rot.as_matrix().reshape(rows, cols, 3, 3)
    rot[4, 4] = np.nan
    kam = kernel_average_misorientation(rot, "cubic", threshold=5)
    # Inside a grain each neighbour along x is 0.5 away, along y 0: mean over those counted.
    assert kam[1, 3] == pytest.approx((0.5 + 0.5 + 0 + 0) / 4, abs=1e-6)
    assert kam[0, 0] == pytest.approx((0.5 + 0) / 2, abs=1e-6)  # a corner has two
    # Across the boundary (rows 2 | 3) the 30-degree neighbour is left out.
    assert kam[2, 3] == pytest.approx((0.5 + 0.5 + 0) / 3, abs=1e-6)
    assert np.isnan(kam[4, 4])  # no orientation
    assert kam[4, 3] == pytest.approx((0.5 + 0 + 0) / 3, abs=1e-6)  # one neighbour missing
    # Another phase is a boundary too.
    phase = np.zeros((rows, cols), int)
    phase[:, 4:] = 1
    kam_phases = kernel_average_misorientation(rot, "cubic", threshold=5, phase=phase)
    assert kam_phases[1, 3] == pytest.approx((0.5 + 0 + 0) / 3, abs=1e-6)
    with pytest.raises(InvalidParameterError, match="rows, cols, 3, 3"):
        kernel_average_misorientation(rot[0], "cubic")
    with pytest.raises(InvalidParameterError, match="phase must have the scan's shape"):
        kernel_average_misorientation(rot, "cubic", phase=phase[0])


def test_grain_labels():
    from libertem_gpu import grain_labels

    # Left: a grain bent 2 degrees per step over 12 columns (22 degrees in all: one grain).
    # Right of column 12: 40 degrees away. A row of another phase cuts the right grain in two.
    rows, cols = 5, 16
    angle = np.where(np.arange(cols) < 12, np.radians(2.0) * np.arange(cols), np.radians(40.0))
    angles = np.broadcast_to(angle, (rows, cols))
    rot = Rotation.from_rotvec(np.stack([0 * angles, 0 * angles, angles], -1).reshape(-1, 3))
    rot = rot.as_matrix().reshape(rows, cols, 3, 3)
    rot[0, 0] = np.nan
    labels, count = grain_labels(rot, "cubic", threshold=5)
    assert count == 2
    assert labels[0, 0] == -1
    assert (labels[:, 1:12] == 0).all() and (labels[1:, 0] == 0).all()
    assert (labels[:, 12:] == 1).all()
    phase = np.zeros((rows, cols), int)
    phase[2, 12:] = 1
    labels, count = grain_labels(rot, "cubic", threshold=5, phase=phase)
    assert count == 4  # the bent grain, the cut row, and the right grain's two halves
    assert len({labels[0, 14], labels[2, 14], labels[4, 14]}) == 3
    # A threshold below the bend's steps splits every column of the bent grain.
    assert grain_labels(rot, "cubic", threshold=1)[1] == 12 + 1
    with pytest.raises(InvalidParameterError, match="rows, cols, 3, 3"):
        grain_labels(rot[0], "cubic")
