"""The ``polar_correlate`` operation: every implementation against the NumPy reference
(contract kit), the reference against a loop written from the definition, sub-sector
rotations, and blocks of frames."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.kernels import template_match
from tests.kernels.kit import KernelContract


def _templates(rng, rings, sectors, k=4):
    """Sparse non-negative templates: a few spots each."""
    t = np.zeros((k, rings, sectors))
    for i in range(k):
        spots = rng.integers(0, rings * sectors, size=3)
        t[i].reshape(-1)[spots] = rng.uniform(0.5, 2.0, 3)
    return t


class TestPolarCorrelateContract(KernelContract):
    op = "polar_correlate"
    rtol = 1e-4  # float32 spectra
    simulate = False  # CuPy array code: a real GPU only

    def arguments(self, rng, tile):
        polar = np.abs(tile.astype(np.float64))  # (n, rings, sectors)
        templates = _templates(rng, tile.shape[1], tile.shape[2])
        score = np.full((len(tile), len(templates)), np.nan)
        shift = np.full((len(tile), len(templates)), np.nan)
        return (polar, templates, score, shift)

    def expected(self, args):
        polar, templates, _, _ = args
        return list(template_match.reference(polar, templates))

    def outputs(self, args):
        return [args[2], args[3]]

    def call(self, kernel, args, swap):
        polar, templates, score, shift = args
        kernel(templates)(polar, score, shift)

    def check(self, backend, dtype, shape, strided, swap):
        if shape[1][1] < 3:  # one sector: every rotation the same, no peak to refine
            pytest.skip("a polar grid needs three sectors or more")
        super().check(backend, dtype, shape, strided, swap)


def test_reference_against_loops(rng):
    polar = rng.random((3, 4, 9))
    templates = _templates(rng, 4, 9, k=2)
    score, shift = template_match.reference(polar, templates)
    for n in range(3):
        for k in range(2):
            corr = [
                sum(
                    templates[k, r, t] * polar[n, r, (t + s) % 9]
                    for r in range(4)
                    for t in range(9)
                )
                for s in range(9)
            ]
            best = int(np.argmax(corr))
            norm = np.linalg.norm(polar[n]) * np.linalg.norm(templates[k])
            assert score[n, k] == pytest.approx(corr[best] / norm, rel=1e-12)
            assert abs(shift[n, k] - best) <= 0.5


def test_rotation_between_sectors_is_refined():
    """A smooth profile turned by 7.3 sectors: the parabola finds 7.3 to a tenth."""
    sectors = 90
    angle = np.arange(sectors) * 2 * np.pi / sectors
    template = np.exp(-(((angle - np.pi) / 0.3) ** 2))[None, None]
    image = np.exp(-(((angle - np.pi - 7.3 * 2 * np.pi / sectors) / 0.3) ** 2))[None, None]
    score, shift = template_match.reference(image, template)
    assert abs(shift[0, 0] - 7.3) < 0.1 and score[0, 0] > 0.99


@pytest.mark.parametrize("double", [False, True])
def test_blocks_of_frames(rng, monkeypatch, double):
    monkeypatch.setattr(template_match, "_BLOCK_BYTES", 1)  # one frame per block
    polar = rng.random((5, 6, 16))
    templates = _templates(rng, 6, 16, k=3)
    score = np.empty((5, 3))
    shift = np.empty((5, 3))
    template_match.prepare(templates, double=double)(polar, score, shift)
    want_score, want_shift = template_match.reference(polar, templates)
    np.testing.assert_allclose(score, want_score, rtol=1e-12 if double else 1e-5)
    np.testing.assert_allclose(shift, want_shift, atol=1e-9 if double else 1e-3)


def test_frames_and_templates_of_zeros_score_zero(rng):
    polar = rng.random((2, 3, 8))
    polar[1] = 0
    templates = _templates(rng, 3, 8, k=2)
    templates[0] = 0
    score = np.empty((2, 2))
    shift = np.empty((2, 2))
    template_match.prepare(templates)(polar, score, shift)
    assert score[1].tolist() == [0.0, 0.0] and score[0, 0] == 0.0 and score[0, 1] > 0
    assert np.isfinite(shift).all()


def test_rings_without_spots_are_skipped_exactly(rng):
    """Templates whose spots lie on two of seven rings: the same scores and shifts as the
    reference over every ring (the image's norm includes the skipped rings)."""
    polar = rng.random((4, 7, 12))
    templates = _templates(rng, 7, 12, k=3)
    templates[:, [0, 2, 3, 5, 6]] = 0
    templates[:, 1, 0] = 1.0  # every template some weight on ring 1 and 4
    templates[:, 4, 5] = 0.5
    prepared = template_match.prepare(templates, double=True)
    assert prepared.used is not None and prepared.used.tolist() == [1, 4]
    score = np.empty((4, 3))
    shift = np.empty((4, 3))
    prepared(polar, score, shift)
    want_score, want_shift = template_match.reference(polar, templates)
    np.testing.assert_allclose(score, want_score, rtol=1e-12)
    np.testing.assert_allclose(shift, want_shift, atol=1e-9)
