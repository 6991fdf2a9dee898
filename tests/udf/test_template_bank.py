"""Kinematic templates: lattices and orientations against their definitions, reflections of
simple cubic, FCC and BCC crystals against hand-counted ones (positions, extinctions, the
Ewald sphere, intensities), parameter errors, and a bank that TemplateMatchUDF tells apart."""

from __future__ import annotations

import math

import numpy as np
import pytest

from libertem_gpu import Context, TemplateMatchUDF, electron_wavelength
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.template_bank import (
    direct_basis,
    kinematic_templates,
    zone_axis_orientation,
)
from tests.udf.test_template_match import render

FCC = [(0, 0, 0, 13), (0.5, 0.5, 0, 13), (0.5, 0, 0.5, 13), (0, 0.5, 0.5, 13)]
BCC = [(0, 0, 0, 26), (0.5, 0.5, 0.5, 26)]
CUBIC = (4.0, 4.0, 4.0, 90, 90, 90)


def test_direct_basis():
    np.testing.assert_allclose(direct_basis(CUBIC), 4 * np.eye(3), atol=1e-12)
    hexagonal = direct_basis((3.0, 3.0, 5.0, 90, 90, 120))
    np.testing.assert_allclose(hexagonal[1], [-1.5, 3 * math.sqrt(3) / 2, 0], atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(hexagonal, axis=1), [3, 3, 5])
    tri = direct_basis((3.1, 4.2, 5.3, 80, 95, 105))
    angles = [
        math.degrees(math.acos(tri[i] @ tri[j] / np.linalg.norm(tri[i]) / np.linalg.norm(tri[j])))
        for i, j in ((1, 2), (0, 2), (0, 1))
    ]
    np.testing.assert_allclose(angles, [80, 95, 105])


@pytest.mark.parametrize("uvw", [(0, 0, 1), (0, 0, -1), (1, 1, 0), (1, 1, 1), (1, 2, 3)])
def test_zone_axis_along_the_beam(uvw):
    cell = (3.1, 4.2, 5.3, 80, 95, 105)
    r = zone_axis_orientation(cell, uvw)
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    t = np.asarray(uvw, float) @ direct_basis(cell)
    np.testing.assert_allclose(r @ (t / np.linalg.norm(t)), [0, 0, 1], atol=1e-12)


def test_simple_cubic_001_is_the_zero_layer_within_the_ewald_sphere():
    pixel, reach, max_s = 0.01, 100.0, 0.01
    (spots,) = kinematic_templates(CUBIC, np.eye(3), pixel, reach, max_excitation=max_s)
    # Hand count: (h, k, 0) of |g| = |(h, k)| / 4 within reach, whose excitation error
    # -lambda g^2 / 2 (to first order) is within max_s; the next layers, 0.25 1/A away, are not.
    lam = electron_wavelength(200e3)
    want = {
        (h, k)
        for h in range(-10, 11)
        for k in range(-10, 11)
        if (h, k) != (0, 0)
        and math.hypot(h, k) * 25 <= reach
        and lam * (math.hypot(h, k) / 4) ** 2 / 2 <= max_s * 0.999
    }
    got = {(round(dx / 25), round(dy / 25)) for dy, dx, _ in spots}
    assert got == want and len(want) == 36  # h^2 + k^2 <= 12
    np.testing.assert_allclose(spots[:, :2] / 25, np.round(spots[:, :2] / 25), atol=1e-9)
    # Intensity: |F|^2 = 1 times the relrod, exactly from the Ewald sphere's excitation error.
    k = 1 / lam
    g = np.hypot(spots[:, 0], spots[:, 1]) * pixel
    s = (k * k - (k * k + g * g)) / (2 * k)
    np.testing.assert_allclose(spots[:, 2], 1 - np.abs(s) / max_s, rtol=1e-9)


def test_hexagonal_reciprocal_lattice():
    """a = 3 A, b at 120 degrees: a* = (1/a, 1/(sqrt 3 a)), b* = (0, 2/(sqrt 3 a)), so that a* . b
    = b* . a = 0; the six nearest reflections along c lie at 2/(sqrt 3 a), 60 degrees apart."""
    a, pixel = 3.0, 0.01
    (spots,) = kinematic_templates((a, a, 5.0, 90, 90, 120), np.eye(3), pixel, 80)
    a_star = np.array([1 / a, 1 / (math.sqrt(3) * a)])
    b_star = np.array([0.0, 2 / (math.sqrt(3) * a)])
    for h, k in ((1, 0), (0, 1), (1, 1), (-1, 2)):
        gx, gy = (h * a_star + k * b_star) / pixel
        assert np.hypot(spots[:, 1] - gx, spots[:, 0] - gy).min() < 1e-9, (h, k)
    r = np.hypot(spots[:, 0], spots[:, 1])
    nearest = spots[np.isclose(r, r.min())]
    assert len(nearest) == 6 and r.min() == pytest.approx(2 / (math.sqrt(3) * a) / pixel)


def test_extinctions_of_fcc_and_bcc():
    def reflections(atoms):
        (spots,) = kinematic_templates(CUBIC, np.eye(3), 0.01, 80, atoms=atoms)
        return {(round(dx / 25), round(dy / 25)) for dy, dx, _ in spots}

    fcc, bcc = reflections(FCC), reflections(BCC)
    assert (1, 0) not in fcc and (1, 1) not in fcc and {(2, 0), (2, 2), (0, -2)} <= fcc
    assert (1, 0) not in bcc and {(1, 1), (2, 0), (1, -1)} <= bcc
    assert all((h + k) % 2 == 0 for h, k in bcc) and all(h % 2 == k % 2 == 0 for h, k in fcc)


def test_turning_about_the_beam_turns_the_spots():
    turn = 0.4
    c, s = math.cos(turn), math.sin(turn)
    about_z = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    plain, turned = kinematic_templates(CUBIC, [np.eye(3), about_z], 0.01, 60, atoms=FCC)
    expect = np.column_stack(
        [s * plain[:, 1] + c * plain[:, 0], c * plain[:, 1] - s * plain[:, 0], plain[:, 2]]
    )
    order = np.lexsort(np.round(expect, 6).T)
    np.testing.assert_allclose(turned[np.lexsort(np.round(turned, 6).T)], expect[order], atol=1e-9)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        (dict(cell=(4, 4, -4, 90, 90, 90)), "is no lattice"),
        (dict(cell=(4, 4, 4, 90, 90, 190)), "is no lattice"),
        (dict(cell=(4, 4, 4)), "six numbers"),
        (dict(orientations=np.ones((3, 3))), "not a rotation"),
        (dict(orientations=np.diag([1.0, 1.0, -1.0])), "not a rotation"),
        (dict(orientations=np.eye(4)), r"\(n, 3, 3\)"),
        (dict(pixel_size=0), "pixel_size must be a number > 0"),
        (dict(atoms=[(0, 0, 0)]), "atoms must be rows"),
        (dict(max_excitation="x"), "must be numbers"),
    ],
)
def test_bad_parameters(kw, match):
    args = dict(cell=CUBIC, orientations=np.eye(3), pixel_size=0.01, reach=50) | kw
    with pytest.raises(InvalidParameterError, match=match):
        kinematic_templates(**args)


def test_zone_axes_of_aluminium_told_apart(inline_ctx: Context, rng):
    cell = (4.05, 4.05, 4.05, 90, 90, 90)
    axes = [(0, 0, 1), (0, 1, 1), (1, 1, 1), (1, 1, 2), (0, 1, 3)]
    rotations = [zone_axis_orientation(cell, uvw) for uvw in axes]
    bank = kinematic_templates(cell, rotations, 0.02, 44, atoms=FCC, max_excitation=0.02)
    assert all(len(t) >= 4 for t in bank)
    truth = rng.integers(0, len(axes), 8)
    angles = rng.uniform(0, 2 * np.pi, 8)
    pairs = zip(truth, angles, strict=True)
    frames = np.stack([render(bank[t] / [1, 1, 2000], (96, 96), (47.5, 47.5), a) for t, a in pairs])
    data = rng.poisson(frames + 3).astype(np.uint16).reshape(2, 4, 96, 96)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank, rad_min=10, power=0.5))
    np.testing.assert_array_equal(res["template"].data[..., 0].ravel(), truth)


TRICLINIC = (3.3, 4.1, 5.2, 82, 97, 104)


def _same_spots(a, b, tol=1e-6):
    """Whether two templates hold the same reflections (positions and intensities)."""
    if a.shape != b.shape:
        return False
    key = lambda t: t[np.lexsort(np.round(t, 4).T)]  # noqa: E731
    return np.allclose(key(a), key(b), atol=tol)


def test_a_half_turn_about_y_mirrors_the_pattern(rng):
    from scipy.spatial.transform import Rotation

    for r in Rotation.random(5, random_state=3).as_matrix():
        plain, turned = kinematic_templates(
            TRICLINIC, [r, np.diag([-1.0, 1.0, -1.0]) @ r], 0.01, 80, max_excitation=0.03
        )
        assert len(plain)
        assert _same_spots(turned, plain * [-1, 1, 1])


def test_match_orientations_reproduce_the_patterns(inline_ctx: Context, rng):
    """Frames of random orientations: the matched orientations' patterns are the frames'."""
    from scipy.spatial.transform import Rotation

    from libertem_gpu import match_orientations

    bank_rot = Rotation.random(30, random_state=5).as_matrix()
    kw = dict(pixel_size=0.012, reach=40, max_excitation=0.03)
    bank = kinematic_templates(TRICLINIC, bank_rot, **kw)
    keep = [i for i, t in enumerate(bank) if len(t) >= 6]
    bank_rot, bank = bank_rot[keep], [bank[i] for i in keep]
    which = rng.choice(len(bank), 6)
    turns = rng.uniform(0, 2 * np.pi, 6)
    mirror = np.array([False, True, False, True, False, False])
    # The frames: the bank's patterns mirrored (rows negated) where asked, then turned.
    shown = [bank[k] * ([-1, 1, 1] if m else 1) for k, m in zip(which, mirror, strict=True)]
    frames = np.stack(
        [
            render(t / [1, 1, t[:, 2].max()], (90, 90), (44.5, 44.5), a)
            for t, a in zip(shown, turns, strict=True)
        ]
    )
    c, si = np.cos(turns), np.sin(turns)
    spots = [  # where the frames' reflections are: render's turn
        np.column_stack([s_ * t[:, 1] + c_ * t[:, 0], c_ * t[:, 1] - s_ * t[:, 0]])
        for t, c_, s_ in zip(shown, c, si, strict=True)
    ]
    ds = inline_ctx.load("memory", data=frames.reshape(2, 3, 90, 90))
    res = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank, mirror=True, n_sectors=360))
    found = match_orientations(
        bank_rot,
        res["template"].data[..., 0],
        res["rotation"].data[..., 0],
        res["mirrored"].data[..., 0],
    ).reshape(6, 3, 3)
    for want, got in zip(spots, kinematic_templates(TRICLINIC, found, **kw), strict=True):
        # Each true reflection has a matched one within half a pixel.
        d = np.hypot(want[:, None, 0] - got[None, :, 0], want[:, None, 1] - got[None, :, 1])
        assert d.min(axis=1).max() < 0.5
    with pytest.raises(InvalidParameterError, match="template indices"):
        match_orientations(bank_rot, np.array([len(bank_rot)]), np.array([0.0]))


def test_match_orientations_formula():
    """``R_z(rotation) R``, and ``R_z(rotation) R_y(pi) R`` for mirrored matches."""
    from libertem_gpu import match_orientations

    bank = np.stack([np.eye(3), zone_axis_orientation(TRICLINIC, (1, 2, 3))])
    got = match_orientations(bank, np.array([1, 1]), np.array([0.3, 0.3]), np.array([0, 1]))
    c, s = math.cos(0.3), math.sin(0.3)
    about_z = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    np.testing.assert_allclose(got[0], about_z @ bank[1], atol=1e-12)
    np.testing.assert_allclose(got[1], about_z @ np.diag([-1.0, 1, -1]) @ bank[1], atol=1e-12)
