"""Templates and the reference path of disk finding (libertem_gpu.disks): normalisation, shapes
and errors of the templates; the correlations against their definitions summed pixel by pixel;
peak selection rules; positions on simulated lattices; the probe template cut from vacuum."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.disks import (
    disk_template,
    find_peaks,
    find_peaks_sparse,
    normalise_template,
    probe_template,
    radial_gradient_template,
    ring_template,
    user_template,
)
from libertem_gpu.disks import peaks as ref
from libertem_gpu.disks.simulate import disk_frames
from libertem_gpu.errors import InvalidParameterError


@pytest.mark.parametrize(
    "template",
    [
        disk_template(3.5),
        disk_template(2.0, edge=0, size=9),
        ring_template(5.0, 3.0),
        radial_gradient_template(4.0, edge=2.0),
        user_template(np.arange(12.0).reshape(3, 4)),
    ],
)
def test_templates_are_normalised_and_odd(template):
    assert template.dtype == np.float64 and all(s % 2 == 1 for s in template.shape)
    assert abs(template.sum()) < 1e-12
    assert np.isclose((template**2).sum(), 1.0)


def test_template_shapes():
    t = disk_template(4.0)
    assert t.shape == (15, 15)
    assert t[7, 7] == t.max() and t[0, 0] < 0  # disk positive, rim negative
    r = ring_template(5.0, 3.0, edge=0)
    assert r[7 + 4 + 1, 7 + 4 + 1] < r[7 + 4, 7] and r[8, 8] < 0 < r[8 + 4, 8]
    g = radial_gradient_template(4.0)
    assert g[7, 7] < g[7, 10] and g.shape == t.shape
    # even arrays keep (rows // 2, cols // 2) as centre: a zero row/column goes at the end
    u = user_template(np.eye(4))
    assert u.shape == (5, 5) and np.argmax(u) == 0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: disk_template(0), "radius"),
        (lambda: disk_template("a"), "radius"),
        (lambda: disk_template(2, edge=-1), "edge"),
        (lambda: disk_template(2, size=8), "size"),
        (lambda: ring_template(3, 3), "radius_inner"),
        (lambda: normalise_template(np.full((3, 3), 2.0)), "constant"),
        (lambda: normalise_template(np.array([[1.0, np.inf]])), "finite"),
        (lambda: user_template(np.zeros((2, 2, 2))), "2-D"),
    ],
)
def test_template_errors(call, match):
    with pytest.raises(InvalidParameterError, match=match):
        call()


def test_correlations_match_their_definitions(rng):
    """Circular full-frame and zero-padded sparse correlation, summed pixel by pixel."""
    frames = rng.standard_normal((2, 7, 9))
    t = rng.standard_normal((3, 5))
    got = ref.correlate(frames, t)
    want = np.zeros_like(frames)
    for i, y, x in np.ndindex(frames.shape):
        for qy, qx in np.ndindex(t.shape):
            want[i, y, x] += frames[i, (y + qy - 1) % 7, (x + qx - 2) % 9] * t[qy, qx]
    np.testing.assert_allclose(got, want, atol=1e-12)
    pos = np.array([[0.4, 8.6], [3.5, 4.0]])  # rounds to (0, 9) and (4, 4)
    maps = ref.correlate_sparse(frames, t, pos, search=1, reach=1)
    assert maps.shape == (2, 2, 5, 5)
    padded = np.pad(frames, ((0, 0), (10, 10), (10, 10)))
    for i, k, a, b in np.ndindex(maps.shape):
        y, x = ref.integer_positions(pos)[k] + (a - 2, b - 2)
        window = padded[i, 10 + y - 1 : 10 + y + 2, 10 + x - 2 : 10 + x + 3]
        assert np.isclose(maps[i, k, a, b], (window * t).sum(), atol=1e-12)


def test_selection_rules(rng):
    """Strongest first, at least min_dist apart, above min_height, NaN beyond."""
    corr = np.zeros((20, 20))
    for (y, x), h in [((5, 5), 9.0), ((5, 7), 8.0), ((15, 15), 7.0), ((2, 15), 0.5)]:
        corr[y, x] = h
    assert ref.select_peaks(corr, 5, 3.0, 0.0) == [(5, 5), (15, 15), (2, 15)]
    assert ref.select_peaks(corr, 5, 2.0, 0.0) == [(5, 5), (5, 7), (15, 15), (2, 15)]
    assert ref.select_peaks(corr, 5, 3.0, 1.0) == [(5, 5), (15, 15)]
    assert ref.select_peaks(corr, 1, 3.0, 1.0) == [(5, 5)]


@pytest.mark.parametrize("refine", ref.REFINE_METHODS)
def test_reference_positions(rng, refine):
    """Single disks at random subpixel positions, high dose: within 0.05 px; no disk: nothing."""
    true = rng.uniform(10, 20, (4, 1, 2))
    frames = disk_frames(true, (31, 29), 3.0, dose=1e7, background=1.0, rng=rng)
    frames[3] = 1.0
    t = disk_template(3.0)
    peaks, heights, found = find_peaks(frames, t, 2, refine=refine, min_height=1e3)
    assert found.tolist() == [1, 1, 1, 0]
    assert np.abs(peaks[:3, 0] - true[:3, 0]).max() < 0.05
    assert np.isnan(peaks[:, 1]).all() and np.isnan(heights[3]).all()
    sparse, _, found = find_peaks_sparse(frames, t, true[0] + 1.6, search=2, refine=refine)
    assert found.tolist() == [1, 0, 0, 0] or np.abs(sparse[0, 0] - true[0, 0]).max() < 0.05


def test_probe_template(inline_ctx, rng):
    """Cut from the vacuum positions (roi): the bare probe, centred, normalised."""
    data = np.zeros((2, 3, 40, 36))
    data[0] = disk_frames([(17.2, 20.6)], (40, 36), 5.0, dose=1e6, rng=rng)
    data[1] = rng.poisson(50, (3, 40, 36))  # not vacuum: left out by the roi
    ds = inline_ctx.load("memory", data=data.astype(np.uint16))
    roi = np.zeros((2, 3), bool)
    roi[0] = True
    t = probe_template(inline_ctx, ds, roi=roi)
    assert t.shape == (17, 17) and abs(t.sum()) < 1e-9
    assert float((t * disk_template(5.0, size=17)).sum()) > 0.95
    peaks, _, _ = find_peaks(data[0], t, 1)
    # the template's centre is the probe's centre rounded: the probe itself is found there
    assert np.abs(peaks[:, 0] - (17, 21)).max() < 0.05
    assert probe_template(inline_ctx, ds, roi=roi, size=9).shape == (9, 9)
    with pytest.raises(InvalidParameterError, match="threshold"):
        probe_template(inline_ctx, ds, threshold=1.5)
