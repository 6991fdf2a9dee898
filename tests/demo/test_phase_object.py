"""The simulated phase-object scans: the probe's intensity is kept, parts of the scan equal
the whole, counts follow the dose, and the random phase is what it says."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.demo.phase_object import random_phase, scan_phase_object


def test_random_phase_is_smooth_and_scaled():
    phase = random_phase((40, 48), cutoff=0.1, strength=0.2, seed=2)
    assert phase.shape == (40, 48)
    assert phase.std() == pytest.approx(0.2) and abs(phase.mean()) < 1e-12
    spectrum = np.abs(np.fft.rfft2(phase))
    fy, fx = np.meshgrid(np.fft.fftfreq(40), np.fft.rfftfreq(48), indexing="ij")
    assert spectrum[np.hypot(fy, fx) > 0.1].max() < 1e-9 * spectrum.max()


def test_scan_keeps_intensity_and_splits_into_rows():
    phase = random_phase((24, 32), cutoff=0.2, strength=0.3, seed=1)
    frames, optics = scan_phase_object(phase, 4, 16, 4.5, defocus=5.0)
    assert frames.shape == (6, 8, 16, 16)
    disk = np.hypot(*(np.mgrid[:16, :16] - 8.0)) <= 4.5
    np.testing.assert_allclose(frames.sum(axis=(2, 3)), disk.sum(), rtol=1e-5)
    part, _ = scan_phase_object(phase, 4, 16, 4.5, defocus=5.0, rows=slice(2, 4))
    np.testing.assert_array_equal(part, frames[2:4])
    assert optics["center"] == (8.0, 8.0) and optics["semiconv"] == 4.5 / 16
    counts, _ = scan_phase_object(phase, 4, 16, 4.5, dose=50, seed=3)
    assert counts.sum() / frames.sum() == pytest.approx(50, rel=0.01)
    assert (counts == np.round(counts)).all()
    with pytest.raises(ValueError, match="multiple of step"):
        scan_phase_object(phase, 5, 16, 4.5)
