"""Ptychography's geometry: the window about the disk and where its optical axis falls, the
starting probe against its definition, the object's pixel, the probe positions with a turned
detector, and sampling the object at them."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.ptycho.geometry import (
    MARGIN,
    Window,
    check_binning,
    choose_window,
    initial_probe,
    pixel_size,
    probe_corners,
    scan_image,
)
from libertem_gpu.udf.ssb_geometry import check_optics


def optics(**more):
    base = dict(
        wavelength=0.5, scan_step=(0.7, 0.9), semiconv=0.02, semiconv_pix=5.0,
        scan_rotation=0.0, flip_y=False, defocus=0.0, cs=0.0,
    )  # fmt: skip
    base.update(more)
    return check_optics(**base, what="test")


def test_largest_window_and_axis():
    w = choose_window((40, 50), (17.3, 24.6), None, 1)
    assert (w.y0, w.x0, w.size, w.pixels) == (0, 8, 34, 34)  # 2 * min(17, 23, 25, 25)
    np.testing.assert_allclose(w.axis, (0.3, -0.4), atol=1e-12)
    binned = choose_window((40, 50), (17.0, 25.0), None, 3)
    assert binned.size == 30 and binned.pixels == 10 and (binned.y0, binned.x0) == (2, 10)
    # binned pixel 5 (index N // 2) covers frame rows 17..19, centred on 18: the axis is a
    # third of a binned pixel before it
    np.testing.assert_allclose(binned.axis, (-1 / 3, -1 / 3), atol=1e-12)


@pytest.mark.parametrize(
    "center, size, binning, match",
    [
        ((0.4, 20.0), None, 1, "too close to the edge"),
        ((20.0, 20.0), 10, 2, "multiple of 2 \\* binning = 4"),
        ((20.0, 20.0), 44, 1, "does not fit"),
    ],
)
def test_window_errors(center, size, binning, match):
    with pytest.raises(InvalidParameterError, match=match):
        choose_window((40, 40), center, size, binning)


@pytest.mark.parametrize("value", [0, 1.5, True, "2"])
def test_binning_errors(value):
    with pytest.raises(InvalidParameterError, match="binning"):
        check_binning(value)


@pytest.mark.parametrize("axis", [(0.0, 0.0), (0.5, -1.25)])
def test_initial_probe_is_the_aberrated_aperture(axis):
    o = optics(defocus=300.0, cs=2e4)
    w = Window(y0=0, x0=0, size=24, binning=2, axis=axis)
    probe = initial_probe(w, o)
    assert probe.shape == (12, 12)
    spectrum = np.fft.fft2(np.fft.ifftshift(probe))
    per_pixel = 2 * o.semiconv / o.semiconv_pix
    for ky in range(12):
        for kx in range(12):
            t = np.array([(ky + 6) % 12 - 6 - axis[0], (kx + 6) % 12 - 6 - axis[1]]) * per_pixel
            theta2 = t @ t
            if theta2 > o.semiconv**2:
                assert abs(spectrum[ky, kx]) < 1e-12
                continue
            chi = 2 * np.pi / o.wavelength * (o.defocus * theta2 / 2 + o.cs * theta2**2 / 4)
            np.testing.assert_allclose(spectrum[ky, kx], np.exp(-1j * chi), atol=1e-12)


def test_pixel_size_and_corners_with_a_turned_detector():
    w = Window(y0=0, x0=0, size=20, binning=1, axis=(0.0, 0.0))
    o = optics(scan_rotation=90.0)
    dx = pixel_size(w, o)
    np.testing.assert_allclose(dx, 0.5 / (20 * 0.02 / 5.0))
    corners, shape = probe_corners((3, 4), o, w)
    assert corners.shape == (12, 2) and corners.min() == MARGIN
    # turned by 90 degrees (as SSBUDF takes it): the scan's rows run along the detector's
    # columns, its columns against the detector's rows
    steps = corners.reshape(3, 4, 2)
    np.testing.assert_allclose(steps[1, 0] - steps[0, 0], [0, 0.7 / dx], atol=1e-12)
    np.testing.assert_allclose(steps[0, 1] - steps[0, 0], [-0.9 / dx, 0], atol=1e-12)
    # the windows, a pixel for their fractions and the margin fit
    assert shape[0] == np.ceil(corners[:, 0].max()) + 21 + MARGIN
    assert shape[1] == np.ceil(corners[:, 1].max()) + 21 + MARGIN
    flipped, _ = probe_corners((3, 4), optics(flip_y=True), w)
    rows = flipped.reshape(3, 4, 2)
    np.testing.assert_allclose(rows[1, 0] - rows[0, 0], [-0.7 / dx, 0], atol=1e-12)


def test_scan_image_interpolates_bilinearly(rng):
    yy, xx = np.mgrid[:30, :40]
    obj = (2 + 0.3 * yy - 0.2 * xx) + 1j * (0.5 * yy * 0.1 + xx)  # linear: exact
    corners = rng.random((25, 2)) * 20
    got = scan_image(obj, corners, 8)
    c = corners + 4
    want = (2 + 0.3 * c[:, 0] - 0.2 * c[:, 1]) + 1j * (0.05 * c[:, 0] + c[:, 1])
    np.testing.assert_allclose(got, want, rtol=1e-12)
