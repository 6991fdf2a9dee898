"""The iterations on data from their own model: a random object under a known probe, at whole
and fractional positions, comes back with the probe fixed; the probe stays centred and keeps
the patterns' power when refined; the callback sees every iteration."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.ptycho.geometry import Window, initial_probe
from libertem_gpu.ptycho.solver import SolverSettings, solve
from libertem_gpu.udf.ssb_geometry import check_optics

N = 16


def probe():
    o = check_optics(1.0, 2.0, 5 / N, 5.0, 0.0, False, 3.0, 0.0, "test")
    return initial_probe(Window(0, 0, N, 1, (0.0, 0.0)), o)


def patterns(obj, p, corners):
    """The model's amplitudes: the probe moved by each corner's fraction, times the window."""
    f = np.fft.fftfreq(N)
    out = []
    for c in corners:
        y, x = np.floor(c).astype(int)
        fy, fx = c - (y, x)
        ramp = np.exp(-2j * np.pi * (fy * f[:, None] + fx * f[None, :]))
        moved = np.fft.ifft2(np.fft.fft2(p) * ramp)
        out.append(np.abs(np.fft.fft2(moved * obj[y : y + N, x : x + N], norm="ortho")))
    return np.array(out)


@pytest.mark.parametrize("fraction", [False, True])
def test_object_comes_back_under_a_known_probe(rng, fraction):
    step = 2.5 if fraction else 2.0
    iy, ix = np.mgrid[:12, :12]
    corners = np.stack([iy.ravel(), ix.ravel()], -1) * step
    shape = (int(corners.max()) + N + 2,) * 2
    truth = np.exp(1j * 0.4 * rng.standard_normal(shape))
    p = probe() * 3.0
    amplitudes = patterns(truth, p, corners)
    settings = SolverSettings(iterations=40, probe_after=1000)
    obj, refined, errors, kept = solve(amplitudes, corners, shape, probe(), settings)
    np.testing.assert_array_equal(kept, corners)  # no position correction asked for
    # a white-noise object converges slowly, but surely
    assert errors[-1] < errors[10] < errors[0] and errors[-1] < 1e-3 * errors[0]
    np.testing.assert_allclose(refined, p[None], rtol=1e-12)  # scaled to the patterns' power
    # where the probe is strong, the object is the truth up to one global phase
    weight = np.zeros(shape)
    for y, x in np.floor(corners).astype(int):
        weight[y : y + N, x : x + N] += np.abs(p) ** 2
    strong = weight > 0.5 * weight.max()
    ratio = obj[strong] / truth[strong]
    ratio /= ratio.mean()
    assert np.abs(ratio - 1).max() < 0.03


def test_refined_probe_stays_centred_with_the_power(rng):
    iy, ix = np.mgrid[:8, :8]
    corners = np.stack([iy.ravel(), ix.ravel()], -1) * 3.0
    shape = (int(corners.max()) + N + 2,) * 2
    truth = np.exp(1j * 0.4 * rng.standard_normal(shape))
    amplitudes = patterns(truth, probe(), corners)
    start = np.roll(probe(), 2, axis=1)  # off centre
    seen = []
    settings = SolverSettings(iterations=6, probe_after=1, batch_size=8)
    _, refined, errors, _ = solve(
        amplitudes, corners, shape, start, settings, callback=lambda i, e: seen.append((i, e))
    )
    assert refined.shape == (1, N, N)
    weight = np.abs(refined[0]) ** 2
    ar = np.arange(N)
    centre = [(weight.sum(axis=1) * ar).sum(), (weight.sum(axis=0) * ar).sum()] / weight.sum()
    np.testing.assert_allclose(centre, [N // 2, N // 2], atol=2e-3)
    np.testing.assert_allclose(weight.sum(), (amplitudes**2).sum() / len(corners), rtol=1e-12)
    assert seen == list(enumerate(errors, start=1)) and len(seen) == 6


def test_positions_off_by_up_to_a_pixel_are_corrected(rng):
    """Patterns made at grid positions, the solver given them off by up to 0.8 px: with
    position correction the positions come back (less their common move, which is the
    object's) and the patterns fit better."""
    from libertem_gpu.demo.phase_object import random_phase

    o = check_optics(1.0, 2.0, 5 / N, 5.0, 0.0, False, 6.0, 0.0, "test")
    p = initial_probe(Window(0, 0, N, 1, (0.0, 0.0)), o) * 3
    iy, ix = np.mgrid[:14, :14]
    truth = np.stack([iy.ravel(), ix.ravel()], -1) * 2.0 + 2
    shape = (int(truth.max()) + N + 4,) * 2
    obj = np.exp(1j * random_phase(shape, cutoff=0.2, strength=0.5, seed=2))
    amplitudes = patterns(obj, p, truth)
    given = truth + rng.uniform(-0.8, 0.8, truth.shape)

    def off(corners):
        d = corners - truth
        return np.sqrt(((d - d.mean(axis=0)) ** 2).sum(axis=1).mean())

    plain = solve(amplitudes, given, shape, p, SolverSettings(iterations=60))
    settings = SolverSettings(iterations=60, position_step=2.0, position_after=3)
    corrected = solve(amplitudes, given, shape, p, settings)
    assert off(corrected[3]) < 0.4 * off(given)
    assert corrected[2][-1] < 0.3 * plain[2][-1]
    np.testing.assert_allclose(corrected[3].mean(axis=0), given.mean(axis=0), atol=1e-9)
