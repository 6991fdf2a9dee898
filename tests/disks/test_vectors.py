"""Bragg vector maps and dark-field images from disks, against loops written from their
definitions on random disks (with missing ones), with origins that move per frame, sub-pixel
sampling, disks off the grid; errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.disks.vectors import bragg_vector_map, vector_dark_field
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError


def disks(rng, nav, n, shape):
    peaks = rng.uniform(-1, max(shape) + 1, (*nav, n, 2))  # a few off the grid
    heights = rng.uniform(0.5, 2.0, (*nav, n))
    gone = rng.random((*nav, n)) < 0.2
    peaks[gone] = np.nan
    heights[gone] = np.nan
    return peaks, heights


def loop_map(peaks, weights, shape, sampling, moved):
    image = np.zeros((shape[0] * sampling, shape[1] * sampling))
    flat_p = peaks.reshape(-1, peaks.shape[-2], 2)
    flat_w = weights.reshape(-1, weights.shape[-1])
    flat_m = moved.reshape(-1, 2)
    for f in range(len(flat_p)):
        for (y, x), w in zip(flat_p[f], flat_w[f], strict=True):
            if not (np.isfinite(y) and np.isfinite(w)):
                continue
            y, x = (y + flat_m[f, 0]) * sampling, (x + flat_m[f, 1]) * sampling
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
                for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
                    if 0 <= yy < image.shape[0] and 0 <= xx < image.shape[1]:
                        image[yy, xx] += w * wy * wx
    return image


@pytest.mark.parametrize("nav, sampling, with_origin", [((3, 4), 1, False), ((5,), 3, True)])
def test_map_against_a_loop(rng, nav, sampling, with_origin):
    shape = (11, 13)
    peaks, heights = disks(rng, nav, 6, shape)
    moved = np.zeros((*nav, 2))
    origin = None
    if with_origin:
        origin = 5 + rng.uniform(-1, 1, (*nav, 2))
        moved = origin.mean(axis=tuple(range(len(nav)))) - origin
    got = bragg_vector_map(peaks, heights, shape, origin=origin, sampling=sampling)
    np.testing.assert_allclose(got, loop_map(peaks, heights, shape, sampling, moved), atol=1e-12)
    counts = bragg_vector_map(peaks, shape=shape, origin=origin, sampling=sampling, weight="count")
    ones = np.where(np.isfinite(heights), 1.0, np.nan)
    np.testing.assert_allclose(counts, loop_map(peaks, ones, shape, sampling, moved), atol=1e-12)


def test_dark_field_against_a_loop(rng):
    nav, shape = (4, 5), (20, 20)
    peaks, heights = disks(rng, nav, 8, shape)
    origin = 10 + rng.uniform(-1.5, 1.5, (*nav, 2))
    reference = origin.mean(axis=(0, 1))
    center, radius = (7.0, 12.0), 4.5
    got = vector_dark_field(peaks, heights, center, radius, origin=origin)
    counted = vector_dark_field(peaks, heights, center, radius, origin=origin, weight="count")
    for i in range(nav[0]):
        for j in range(nav[1]):
            total = count = 0.0
            for (y, x), h in zip(peaks[i, j], heights[i, j], strict=True):
                if not np.isfinite(h):
                    continue
                y, x = (y, x) - origin[i, j] + reference
                if (y - center[0]) ** 2 + (x - center[1]) ** 2 <= radius**2:
                    total, count = total + h, count + 1
            assert got[i, j] == pytest.approx(total, abs=1e-12)
            assert counted[i, j] == count
    assert got.shape == nav and (got > 0).any() and (got == 0).any()


def test_a_disk_on_the_circle_counts():
    peaks = np.array([[[2.0, 4.0], [2.0, 6.5]]])
    np.testing.assert_array_equal(
        vector_dark_field(peaks, center=(2, 3), radius=1, weight="count"), [1.0]
    )


def test_positions_without_an_origin_count_nothing(rng):
    peaks, heights = disks(rng, (6,), 4, (9, 9))
    origin = np.full((6, 2), 4.0)
    origin[2] = np.nan  # e.g. a position without data
    df = vector_dark_field(peaks, heights, (4, 4), 10, origin=origin)
    assert df[2] == 0 and np.isfinite(df).all()
    bvm = bragg_vector_map(peaks, heights, (9, 9), origin=origin)
    peaks[2] = np.nan
    np.testing.assert_allclose(bvm, bragg_vector_map(peaks, heights, (9, 9), origin=origin))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (
            lambda p, h: bragg_vector_map(p[..., 0], h, (5, 5)),
            ShapeMismatchError,
            r"\(\*nav, N, 2\)",
        ),
        (lambda p, h: bragg_vector_map(p, h[..., :1], (5, 5)), ShapeMismatchError, "heights"),
        (
            lambda p, h: bragg_vector_map(p, None, (5, 5)),
            InvalidParameterError,
            "needs the heights",
        ),
        (lambda p, h: bragg_vector_map(p, h, None), InvalidParameterError, "shape"),
        (
            lambda p, h: bragg_vector_map(p, h, (5, 5), sampling=0),
            InvalidParameterError,
            "sampling",
        ),
        (lambda p, h: bragg_vector_map(p, h, (5, 5), weight="x"), InvalidParameterError, "weight"),
        (
            lambda p, h: bragg_vector_map(p, h, (5, 5), origin=np.zeros(3)),
            ShapeMismatchError,
            "origin",
        ),
        (lambda p, h: vector_dark_field(p, h, (1, 2), -1), InvalidParameterError, "radius"),
        (lambda p, h: vector_dark_field(p, h, (1,), 1), InvalidParameterError, "center"),
    ],
)
def test_errors(rng, call, error, match):
    peaks, heights = disks(rng, (2, 3), 4, (5, 5))
    with pytest.raises(error, match=match):
        call(peaks, heights)
