"""The ``weighted_frame_sum`` operation: every implementation against the NumPy reference
(contract kit), of the frames and of their squares; the reference against a plain loop, and
blocks of frames."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.kernels import weighted_sum, weighted_sum_cpu
from tests.kernels.kit import KernelContract, flat


class TestWeightedFrameSumContract(KernelContract):
    op = "weighted_frame_sum"
    simulate = False  # CuPy array code: a real GPU only

    def arguments(self, rng, tile):
        t = flat(tile)
        weights = rng.standard_normal((t.shape[0], 3))
        out = rng.standard_normal((3, t.shape[1]))
        return (t, weights, out)

    def expected(self, args):
        tile, weights, out = args
        return [out + weighted_sum.reference(tile, weights)]

    def outputs(self, args):
        return [args[2]]


class TestWeightedSquaresContract(TestWeightedFrameSumContract):
    """``squared=True``: the frames' squares, in float64."""

    def arguments(self, rng, tile):
        return (*super().arguments(rng, tile), True)

    def expected(self, args):
        tile, weights, out, _ = args
        return [out + weighted_sum.reference(tile, weights, squared=True)]


def test_reference_against_loops(rng):
    tile = rng.integers(0, 1000, (5, 6)).astype(np.uint16)
    weights = rng.standard_normal((5, 2))
    want = np.zeros((2, 6))
    squares = np.zeros((2, 6))
    for j in range(2):
        for i in range(5):
            for p in range(6):
                want[j, p] += weights[i, j] * float(tile[i, p])
                squares[j, p] += weights[i, j] * float(tile[i, p]) ** 2
    np.testing.assert_allclose(weighted_sum.reference(tile, weights), want, rtol=1e-13)
    np.testing.assert_allclose(weighted_sum.reference(tile, weights, True), squares, rtol=1e-13)


@pytest.mark.parametrize("squared", [False, True])
def test_blocks_of_frames_add_up(rng, monkeypatch, squared):
    monkeypatch.setattr(weighted_sum, "_BLOCK_BYTES", 8)  # one frame per block
    tile = rng.random((7, 10)).astype(np.float32)
    weights = rng.standard_normal((7, 4))
    out = np.zeros((4, 10))
    weighted_sum.plain(tile, weights, out, squared)
    want = weighted_sum.reference(tile, weights, squared)
    np.testing.assert_allclose(out, want, rtol=1e-12)


@pytest.mark.parametrize("squared", [False, True])
@pytest.mark.parametrize("n", [1, 4, 7, 9])
def test_cpu_chunks_and_groups_of_four_frames(rng, monkeypatch, n, squared):
    """Chunks of pixels that do not divide the frame, groups of four frames and the rest, and
    a slab of the sums (its rows strided)."""
    monkeypatch.setattr(weighted_sum_cpu, "_CHUNK", 7)
    tile = rng.integers(0, 60000, (n, 30)).astype(np.uint16)
    weights = rng.standard_normal((n, 3))
    out = rng.standard_normal((3, 50))
    want = out.copy()
    want[:, 10:40] += weighted_sum.reference(tile, weights, squared)
    weighted_sum_cpu.cpu(tile, weights, out[:, 10:40], squared)
    np.testing.assert_allclose(out, want, rtol=1e-12)
