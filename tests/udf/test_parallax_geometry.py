"""The parallax shift matrix and the optics it stands for (``udf/parallax_geometry.py``): the
matrix made from the optics is read back to the same optics for every turn, flip and sign of
defocus; the 180-degree ambiguity is settled by a rotation given; astigmatism shows as
anisotropy; a defocus measured on a simulated scan by ``estimate_parallax``, in the sign
convention SSB and ptychography use."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from libertem_gpu import (
    Context,
    estimate_parallax,
    parallax_optics,
    parallax_shift_matrix,
    ptychography,
)
from libertem_gpu.demo.phase_object import random_phase, scan_phase_object
from libertem_gpu.errors import InvalidParameterError

OPTICS = {"scan_step": 0.5, "semiconv": 0.02, "semiconv_pix": 8.0}


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("rotation", [-170.0, -90.0, -12.5, 0.0, 33.0, 90.0, 179.0])
@pytest.mark.parametrize("defocus", [-60.0, 25.0])
def test_matrix_and_optics_round_trip(defocus, rotation, flip):
    a = parallax_shift_matrix(defocus, scan_rotation=rotation, flip_y=flip, **OPTICS)
    assert abs(np.linalg.det(a)) == pytest.approx((defocus * 0.02 / 8 / 0.5) ** 2)
    told = parallax_optics(a, scan_rotation=rotation + 20.0, **OPTICS)
    assert (told.defocus, told.scan_rotation) == pytest.approx((defocus, rotation), abs=1e-9)
    assert told.flip_y is flip and told.anisotropy < 1e-12 and not told.ambiguous
    assert told.as_params() == {"defocus": told.defocus, "scan_rotation": told.scan_rotation,
                                "flip_y": flip}  # fmt: skip
    # told the rotation half a turn away: the other reading, the same matrix
    other = parallax_optics(a, scan_rotation=rotation + 180.0, **OPTICS)
    assert other.defocus == pytest.approx(-defocus)
    turned = parallax_shift_matrix(other.defocus, scan_rotation=other.scan_rotation, flip_y=flip,
                                   **OPTICS)  # fmt: skip
    np.testing.assert_allclose(turned, a, atol=1e-12)
    # untold: the reading with the rotation in (-90, 90]
    guess = parallax_optics(a, **OPTICS)
    assert guess.ambiguous and -90.0 - 1e-9 < guess.scan_rotation <= 90.0 + 1e-9  # to rounding
    assert abs(guess.defocus) == pytest.approx(abs(defocus))
    np.testing.assert_allclose(
        parallax_shift_matrix(guess.defocus, scan_rotation=guess.scan_rotation, flip_y=flip,
                              **OPTICS), a, atol=1e-12,
    )  # fmt: skip


def test_astigmatism_shows_as_anisotropy():
    a = parallax_shift_matrix(40.0, scan_rotation=10.0, **OPTICS)
    stretched = a @ np.diag([1.2, 0.8])  # a defocus 20 % stronger along one detector axis
    told = parallax_optics(stretched, scan_rotation=0.0, **OPTICS)
    assert told.defocus == pytest.approx(40.0, rel=0.02)
    assert told.scan_rotation == pytest.approx(10.0, abs=0.5)
    assert 0.1 < told.anisotropy < 0.3


def test_bad_input():
    with pytest.raises(InvalidParameterError, match="2 x 2 and finite"):
        parallax_optics(np.eye(3), **OPTICS)
    with pytest.raises(InvalidParameterError, match="2 x 2 and finite"):
        parallax_optics([[np.nan, 0], [0, 1]], **OPTICS)
    with pytest.raises(InvalidParameterError, match="scan_step must be a positive number"):
        parallax_optics(np.eye(2), **{**OPTICS, "scan_step": 0})
    with pytest.raises(InvalidParameterError, match="semiconv_pix must be a positive number"):
        parallax_shift_matrix(10.0, **{**OPTICS, "semiconv_pix": float("nan")})


@pytest.mark.parametrize("turn", ["none", "rot90", "flip"])
def test_defocus_of_a_simulated_scan_starts_ptychography(turn):
    """A phase object scanned 20 object pixels out of focus (wave optics), the detector turned
    or flipped as in the ptychography tests: the parallax fit over the disk's inner pixels
    gives defocus and orientation in SSB's convention, and ptychography started from them
    (probe kept fixed) finds the phase. (Pixels near the disk's edge see the specimen through
    one side of the aperture only: their images are not plain shifted copies, and a fit over
    the whole disk in 2 x 2 blocks read the defocus 1.45x too strong here.)"""
    phase = random_phase((64, 64), cutoff=0.1, strength=0.2, seed=4)
    frames, optics = scan_phase_object(phase, step=2, frame=32, radius=8, defocus=20.0)
    n = frames.shape[-1]
    cy, cx = optics["center"]
    if turn == "rot90":  # pixel (y, x) -> (n - 1 - x, y)
        frames = np.rot90(frames, 1, axes=(2, 3)).copy()
        rotation, flip, centre = 90.0, False, (n - 1 - cx, cy)
    elif turn == "flip":
        frames = frames[:, :, ::-1].copy()
        rotation, flip, centre = 0.0, True, (n - 1 - cy, cx)
    else:
        rotation, flip, centre = 0.0, False, (cy, cx)
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    fit = estimate_parallax(ctx, ds, center=centre, radius=4, block=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the inner half of the disk: no warning
        told = fit.optics(optics["scan_step"], optics["semiconv"], optics["semiconv_pix"],
                          scan_rotation=rotation + 30.0)  # fmt: skip
    assert told.defocus == pytest.approx(20.0, rel=0.05)
    assert told.scan_rotation == pytest.approx(rotation, abs=2.0) and told.flip_y is flip
    assert told.anisotropy < 0.05
    start = {**optics, "center": centre, **told.as_params()}
    found = ptychography(ctx, ds, iterations=10, probe_step=0.0, **start)
    truth = phase[::2, ::2]
    assert np.corrcoef(found.phase.ravel(), truth.ravel())[0, 1] > 0.97
    wrong = ptychography(ctx, ds, iterations=10, probe_step=0.0, **{**start, "defocus": -20.0})
    assert np.corrcoef(wrong.phase.ravel(), truth.ravel())[0, 1] < 0.9


def test_a_fit_out_to_the_disk_edge_is_warned_about():
    phase = random_phase((64, 64), cutoff=0.1, strength=0.2, seed=4)
    frames, optics = scan_phase_object(phase, step=2, frame=32, radius=8, defocus=20.0)
    ctx = Context("inline")
    fit = estimate_parallax(ctx, ctx.load("memory", data=frames), block=2)
    with pytest.warns(UserWarning, match=r"too strong a defocus; .* fit with radius=3.96 and"):
        told = fit.optics(optics["scan_step"], optics["semiconv"], optics["semiconv_pix"], 0.0)
    assert told.defocus > 1.2 * 20.0  # the bias the warning is about
