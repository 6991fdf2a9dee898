"""cluster_frames and kmeans: planted groups of random patterns found again on every executor,
with scans of 1 to 3 dimensions, rois, sync offsets and several partitions, each group's mean
and standard deviation frames against NumPy's; k-means' fixed point and its optimum on a set
small enough to try every split; reusing a decomposition; pixel masks; errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from libertem_gpu import Clustering, Context, cluster_frames, decompose
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf import clustering
from libertem_gpu.udf.clustering import kmeans


def planted(rng, nav, sig, groups, noise=0.05):
    """Frames that are one of ``groups`` random patterns each (every group present), with
    noise, as uint16 counts; and the planted group of each position."""
    n = int(np.prod(nav))
    truth = rng.permutation(np.arange(n) % groups).reshape(nav)
    patterns = 200 + 800 * rng.random((groups, *sig))
    frames = patterns[truth] * (1 + noise * rng.standard_normal((*nav, *sig)))
    return np.round(frames).astype(np.uint16), truth


def seen_frames(data, nav, sync):
    """Each position's frame as the scan sees it (``sync_offset`` applied) and whether it
    holds data."""
    n = int(np.prod(nav))
    flat = data.reshape(n, -1).astype(np.float64)
    seen = np.zeros_like(flat)
    has_data = np.zeros(n, bool)
    for i in range(n):
        if 0 <= i + sync < n:
            seen[i], has_data[i] = flat[i + sync], True
    return seen, has_data


def assert_groups(found, truth, frames, processed, sig):
    """The found groups are the planted ones (one to one), and their frames NumPy's."""
    labels = found.labels.reshape(-1)
    assert (labels[~processed] == -1).all()
    assert np.isnan(found.distances.reshape(-1)[~processed]).all()
    assert (found.distances.reshape(-1)[processed] >= 0).all()
    mapping = {}
    for j in range(len(found.counts)):
        members = truth[processed & (labels == j)]
        assert len(set(members.tolist())) == 1, f"group {j} mixes planted groups"
        mapping[j] = int(members[0])
        assert found.counts[j] == len(members)
    assert sorted(mapping.values()) == list(range(len(found.counts)))
    assert (np.diff(found.counts) <= 0).all()  # largest first
    for j in range(len(found.counts)):
        mine = frames[labels[processed] == j]
        np.testing.assert_allclose(found.mean_frames[j].reshape(-1), mine.mean(axis=0), rtol=1e-9)
        np.testing.assert_allclose(
            found.std_frames[j].reshape(-1), mine.std(axis=0), rtol=1e-6, atol=1e-6
        )
    assert found.mean_frames.shape == found.std_frames.shape == (len(found.counts), *sig)


@pytest.mark.parametrize(
    "nav, sig, groups, use_roi, sync",
    [
        ((9, 11), (13, 7), 3, False, 0),
        ((40,), (5, 3, 4), 4, True, 2),
        ((3, 4, 5), (23,), 2, True, -3),
    ],
)
def test_planted_groups_found(ctx, rng, nav, sig, groups, use_roi, sync):
    data, truth = planted(rng, nav, sig, groups)
    ds = ctx.load("memory", data=data, sig_dims=len(sig), sync_offset=sync, num_partitions=3)
    seen, has_data = seen_frames(data, nav, sync)
    seen_truth = np.full(truth.size, -1)
    for i in range(truth.size):
        if has_data[i]:
            seen_truth[i] = truth.reshape(-1)[i + sync]
    roi = rng.random(nav) > 0.3 if use_roi else None
    processed = has_data & (True if roi is None else roi.reshape(-1))
    found = cluster_frames(ctx, ds, n_clusters=groups, n_components=4, roi=roi)
    assert isinstance(found, Clustering)
    assert found.labels.shape == found.distances.shape == nav
    assert found.centroids.shape == (groups, 4)
    assert_groups(found, seen_truth, seen[processed], processed, sig)


def test_reuses_a_decomposition(inline_ctx, rng, monkeypatch):
    data, _ = planted(rng, (8, 9), (6, 5), 3)
    ds = inline_ctx.load("memory", data=data)
    roi = rng.random((8, 9)) > 0.2
    found = decompose(inline_ctx, ds, n_components=3, roi=roi)
    direct = cluster_frames(inline_ctx, ds, n_clusters=3, n_components=3, roi=roi)

    def refuse(*args, **kwargs):
        raise AssertionError("decomposed again")

    monkeypatch.setattr(clustering, "decompose", refuse)
    reused = cluster_frames(inline_ctx, ds, n_clusters=3, decomposition=found)
    assert reused.decomposition is found
    np.testing.assert_array_equal(reused.labels, direct.labels)
    np.testing.assert_allclose(reused.mean_frames, direct.mean_frames, rtol=1e-12)
    # roi=None takes the positions the decomposition holds scores for
    again = cluster_frames(inline_ctx, ds, n_clusters=3, decomposition=found, roi=roi)
    np.testing.assert_array_equal(again.labels, direct.labels)


def test_pixel_mask_looks_only_where_told(inline_ctx, rng):
    """Two groups that differ only in the masked pixels, under a strong variation elsewhere
    that splits the scan another way: the mask finds the groups, no mask the variation."""
    nav, sig = (10, 12), (8, 8)
    n = 120
    groups = rng.permutation(np.arange(n) % 2)
    other = rng.permutation(np.arange(n) % 2)  # independent of the groups
    inner = np.zeros(sig, bool)
    inner[2:6, 2:6] = True
    base = 100 + 50 * rng.random(sig)
    pattern = rng.random(sig) * inner * 40
    strong = rng.random(sig) * ~inner * 2000
    frames = base + pattern * groups[:, None, None] + strong * other[:, None, None]
    frames = frames + rng.standard_normal((n, *sig))
    ds = inline_ctx.load("memory", data=frames.reshape(*nav, *sig))
    masked = cluster_frames(inline_ctx, ds, 2, n_components=2, pixel_mask=inner)
    plain = cluster_frames(inline_ctx, ds, 2, n_components=2)
    for found, truth in ((masked, groups), (plain, other)):
        labels = found.labels.reshape(-1)
        assert len(set(truth[labels == 0])) == 1 and len(set(truth[labels == 1])) == 1


def test_kmeans_is_a_fixed_point(rng):
    points = rng.standard_normal((300, 3)) * [1, 2, 3]
    labels, centroids, inertia = kmeans(points, 5, seed=3)
    d2 = ((points[:, None, :] - centroids[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(labels, d2.argmin(axis=1))
    for j in range(5):
        np.testing.assert_allclose(centroids[j], points[labels == j].mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(inertia, d2[np.arange(300), labels].sum(), rtol=1e-12)
    counts = np.bincount(labels)
    assert (np.diff(counts) <= 0).all()
    # more starts never end worse than the first of them (the same first start)
    assert inertia <= kmeans(points, 5, n_init=1, seed=3)[2] + 1e-9
    again = kmeans(points, 5, seed=3)
    np.testing.assert_array_equal(again[0], labels)


def test_kmeans_finds_the_best_split_of_a_small_set(rng):
    points = rng.standard_normal((10, 2))
    best = np.inf
    for split in itertools.product((0, 1), repeat=9):  # the first point in group 0
        side = np.array((0, *split), bool)
        if not side.any():
            continue
        cost = sum(((points[s] - points[s].mean(axis=0)) ** 2).sum() for s in (side, ~side))
        best = min(best, cost)
    _, _, inertia = kmeans(points, 2, n_init=20)
    np.testing.assert_allclose(inertia, best, rtol=1e-12)


def test_kmeans_one_group_per_point_and_duplicates(rng):
    points = rng.random((4, 2))
    labels, _, inertia = kmeans(points, 4)
    assert sorted(labels.tolist()) == [0, 1, 2, 3] and inertia == pytest.approx(0, abs=1e-24)
    same = np.repeat(rng.random((1, 3)), 6, axis=0)  # every point alike: groups left empty
    labels, _, _ = kmeans(same, 2)
    assert np.bincount(labels, minlength=2).min() >= 1


@pytest.mark.parametrize(
    "points, k, match",
    [
        (np.zeros(5), 2, r"\(n, d\)"),
        (np.array([[0.0], [np.nan]]), 1, "finite"),
        (np.zeros((3, 2)), 4, "4 groups asked of 3 points"),
        (np.zeros((3, 2)), 0, "n_clusters must be"),
        (np.zeros((3, 2)), True, "n_clusters must be"),
    ],
)
def test_kmeans_errors(points, k, match):
    with pytest.raises(InvalidParameterError, match=match):
        kmeans(points, k)


def test_cluster_frames_errors(inline_ctx, rng):
    data, _ = planted(rng, (4, 5), (6, 7), 2)
    ds = inline_ctx.load("memory", data=data)
    with pytest.raises(InvalidParameterError, match="n_clusters must be a whole number"):
        cluster_frames(inline_ctx, ds, 2.5)
    with pytest.raises(InvalidParameterError, match="n_clusters must be >= 1"):
        cluster_frames(inline_ctx, ds, 0)
    roi = np.zeros((4, 5), bool)
    roi[0, :2] = True
    with pytest.raises(InvalidParameterError, match="3 groups asked of 2 frames"):
        cluster_frames(inline_ctx, ds, 3, roi=roi)
    other = Context("inline")
    small = other.load("memory", data=data[:2])
    found = decompose(other, small, n_components=2)
    with pytest.raises(InvalidParameterError, match=r"scan \(2, 5\).*are \(4, 5\)"):
        cluster_frames(inline_ctx, ds, 2, decomposition=found)
    whole = decompose(inline_ctx, ds, n_components=2)
    with pytest.raises(InvalidParameterError, match="scores outside the roi"):
        cluster_frames(inline_ctx, ds, 2, decomposition=whole, roi=roi)
    with pytest.raises(InvalidParameterError, match="what decompose returned"):
        cluster_frames(inline_ctx, ds, 2, decomposition=whole.scores)
