"""Regions of similar frames: :func:`cluster_frames` sorts the scan positions into groups whose
diffraction patterns look alike (phases, grains, thicknesses, vacuum), with the mean and
spread of each group's frames.

The frames are compared by their coordinates on the leading principal components
(:func:`~libertem_gpu.decompose`): distances between frames within that subspace, which holds
what varies over the scan and leaves most of the noise out. The coordinates are grouped by
k-means (Lloyd's iterations from k-means++ starts, Arthur and Vassilvitskii 2007; the start
with the least spread wins), and one more streaming pass sums each group's frames and their
squares. Memory: the scores (``n_components`` values per position) and two frames per group.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf.decomposition import Decomposition, decompose

__all__ = ["Clustering", "cluster_frames", "kmeans"]


@dataclass(frozen=True)
class Clustering:
    """The result of :func:`cluster_frames`.

    Attributes
    ----------
    labels : numpy.ndarray
        ``(*nav)`` int64: each position's group, 0 for the largest group, 1 for the next and
        so on; -1 at positions not processed (outside the roi, or holding no data).
    distances : numpy.ndarray
        ``(*nav)`` float64: each frame's distance to its group's centre in the space of the
        scores, a measure of how typical it is of its group (large for frames between two
        groups); NaN where not processed.
    centroids : numpy.ndarray
        ``(n_clusters, n_components)``: the groups' centres in that space.
    counts : numpy.ndarray
        ``(n_clusters,)`` int64: frames in each group, in descending order.
    mean_frames, std_frames : numpy.ndarray
        ``(n_clusters, *sig)`` float64: each group's mean frame and the standard deviation of
        its frames about it, pixel by pixel (from the frames themselves, not the components).
    inertia : float
        The sum of the squared distances, which k-means minimises.
    decomposition : Decomposition
        The principal components whose scores were grouped.
    """

    labels: np.ndarray
    distances: np.ndarray
    centroids: np.ndarray
    counts: np.ndarray
    mean_frames: np.ndarray
    std_frames: np.ndarray
    inertia: float
    decomposition: Decomposition


def _squared_distances(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """``(n, k)`` squared Euclidean distances, never below 0 (the expanded form rounds)."""
    d2 = (
        np.einsum("ij,ij->i", points, points)[:, None]
        - 2 * points @ centres.T
        + np.einsum("ij,ij->i", centres, centres)[None, :]
    )
    return np.maximum(d2, 0.0)


def _plus_plus(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ starting centres: each next one drawn with probability proportional to the
    squared distance to the nearest centre so far."""
    centres = np.empty((k, points.shape[1]))
    centres[0] = points[rng.integers(len(points))]
    nearest = _squared_distances(points, centres[:1])[:, 0]
    for j in range(1, k):
        total = nearest.sum()
        if total > 0:
            pick = int(np.searchsorted(np.cumsum(nearest), rng.random() * total, side="right"))
            pick = min(pick, len(points) - 1)
        else:  # every point sits on a centre already: any will do
            pick = int(rng.integers(len(points)))
        centres[j] = points[pick]
        nearest = np.minimum(nearest, _squared_distances(points, centres[j : j + 1])[:, 0])
    return centres


def _lloyd(
    points: np.ndarray, centres: np.ndarray, iterations: int
) -> tuple[np.ndarray, np.ndarray, float]:
    """Lloyd's iterations until no point changes group (or ``iterations``); a group left empty
    takes the point farthest from its own centre."""
    labels = np.full(len(points), -1)
    k = len(centres)
    for _ in range(iterations):
        d2 = _squared_distances(points, centres)
        new = d2.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        for j in np.flatnonzero(counts == 0):
            own = d2[np.arange(len(points)), labels]
            far = int(own.argmax())
            labels[far] = j
            d2[far] = 0.0  # not taken again for another empty group
            counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, points)
        centres = sums / counts[:, None]
    d2 = _squared_distances(points, centres)
    inertia = float(d2[np.arange(len(points)), labels].sum())
    return labels, centres, inertia


def kmeans(
    points: Any, n_clusters: int, n_init: int = 10, iterations: int = 300, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, float]:
    """k-means of a set of points: Lloyd's iterations from ``n_init`` k-means++ starts, the
    result with the least inertia.

    Parameters
    ----------
    points : array_like
        ``(n, d)`` finite numbers.
    n_clusters : int
        Groups to find, 1 to ``n``.
    n_init : int
        Starts tried.
    iterations : int
        Most Lloyd iterations per start (each stops once no point changes group).
    seed : int
        Of the random starts: the same seed gives the same result.

    Returns
    -------
    labels : numpy.ndarray
        ``(n,)`` int64, the group of each point, 0 for the largest group.
    centroids : numpy.ndarray
        ``(n_clusters, d)``, each the mean of its group's points.
    inertia : float
        The sum of squared distances of the points to their groups' centres.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu.udf.clustering import kmeans
    >>> points = np.array([[0.0, 0.1], [0.1, 0.0], [5.0, 5.1], [5.1, 5.0], [0.0, 0.0]])
    >>> labels, centroids, inertia = kmeans(points, 2)
    >>> labels.tolist()
    [0, 0, 1, 1, 0]
    """
    data = np.asarray(points, dtype=np.float64)
    if data.ndim != 2 or len(data) == 0:
        raise InvalidParameterError(f"kmeans: points must be (n, d) with n >= 1, got {data.shape}")
    if not np.isfinite(data).all():
        raise InvalidParameterError("kmeans: points must be finite")
    for name, value in (("n_clusters", n_clusters), ("n_init", n_init), ("iterations", iterations)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise InvalidParameterError(
                f"kmeans: {name} must be a whole number >= 1, got {value!r}"
            )
    if n_clusters > len(data):
        raise InvalidParameterError(
            f"kmeans: {n_clusters} groups asked of {len(data)} points; at most one per point"
        )
    rng = np.random.default_rng(seed)
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for _ in range(n_init):
        found = _lloyd(data, _plus_plus(data, n_clusters, rng), iterations)
        if best is None or found[2] < best[2]:
            best = found
    assert best is not None
    labels, centres, inertia = best
    counts = np.bincount(labels, minlength=n_clusters)
    # Largest group first; equal sizes in the order of their centres' coordinates.
    order = np.lexsort((*centres.T[::-1], -counts))
    rank = np.empty(n_clusters, np.int64)
    rank[order] = np.arange(n_clusters)
    return rank[labels], centres[order], inertia


def cluster_frames(
    ctx: Any,
    dataset: Any,
    n_clusters: int,
    n_components: int = 8,
    decomposition: Decomposition | None = None,
    roi: Any = None,
    pixel_mask: Any = None,
    corrections: Any = None,
    poisson: bool = False,
    n_init: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> Clustering:
    """Group the scan positions by how alike their frames are: k-means of the frames'
    principal-component scores, then each group's mean and standard deviation frames in one
    more pass.

    Parameters
    ----------
    ctx : Context
        Runs the passes.
    dataset : DataSet
        Any scan of real frames.
    n_clusters : int
        Groups to find.
    n_components : int
        Principal components whose scores are compared (:func:`~libertem_gpu.decompose`);
        enough to hold what tells the groups apart (the explained variance of the
        decomposition says how much that is). Ignored with ``decomposition``.
    decomposition : Decomposition, optional
        Scores already found for this data set, roi and corrections (by
        :func:`~libertem_gpu.decompose`), to group without decomposing again; its
        ``pixel_mask`` and ``poisson`` apply.
    roi : numpy.ndarray, optional
        Scan positions to group (bool, the scan's shape); with ``decomposition``, the
        positions it holds scores for are grouped, and this must select no others.
    pixel_mask : numpy.ndarray, optional
        Detector pixels the comparison looks at (bool, the frame's shape), e.g. all but the
        bright-field disk; the mean and standard deviation frames cover every pixel.
    corrections : CorrectionSet, optional
        Applied to every frame, in the decomposition and in the group frames.
    poisson : bool
        Compare the frames normalised for counting noise (see :func:`~libertem_gpu.decompose`).
    n_init : int
        k-means starts tried; the one with the least inertia is kept.
    seed : int
        Of the decomposition's random directions and of the k-means starts.
    progress : bool
        Show a progress bar for each pass.

    Returns
    -------
    Clustering

    Notes
    -----
    Groups are of frames, not of places: two grains of one phase and orientation are one
    group. k-means favours groups of similar spread; a phase that is rare and very different
    may need more groups than there are phases to get one of its own. LiberTEM's clustering
    example compares the intensities at the peaks of the standard deviation frame and groups
    them with scikit-learn's agglomerative clustering; comparing principal-component scores
    weighs every pixel that varies.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, cluster_frames
    >>> rng = np.random.default_rng(0)
    >>> patterns = rng.random((2, 8, 8))
    >>> labels = np.zeros((6, 7), int)
    >>> labels[:, 4:] = 1  # two regions
    >>> data = patterns[labels] + 0.01 * rng.standard_normal((6, 7, 8, 8))
    >>> ctx = Context("inline")
    >>> found = cluster_frames(ctx, ctx.load("memory", data=data), n_clusters=2)
    >>> found.counts.tolist(), bool((found.labels == found.labels[0, 0]).sum() == 24)
    ([24, 18], True)
    """
    from libertem_gpu.udf.weighted_sum import WeightedSumUDF

    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)):
        raise InvalidParameterError(
            f"cluster_frames: n_clusters must be a whole number, got {n_clusters!r}"
        )
    if n_clusters < 1:
        raise InvalidParameterError(f"cluster_frames: n_clusters must be >= 1, got {n_clusters}")
    nav = tuple(int(n) for n in dataset.shape.nav)
    sig = tuple(int(n) for n in dataset.shape.sig)
    if decomposition is None:
        decomposition = decompose(
            ctx,
            dataset,
            n_components=n_components,
            roi=roi,
            pixel_mask=pixel_mask,
            corrections=corrections,
            seed=seed,
            progress=progress,
            poisson=poisson,
        )
    elif not isinstance(decomposition, Decomposition):
        raise InvalidParameterError(
            "cluster_frames: decomposition must be what decompose returned, got "
            f"{type(decomposition).__name__}"
        )
    scores = decomposition.scores
    if scores.shape[:-1] != nav or decomposition.mean.shape != sig:
        raise InvalidParameterError(
            f"cluster_frames: the decomposition is of a scan {scores.shape[:-1]} of frames "
            f"{decomposition.mean.shape}; this data set's are {nav} and {sig}"
        )
    flat = scores.reshape(-1, scores.shape[-1])
    processed = ~np.isnan(flat).any(axis=1)
    if roi is not None:
        wanted = np.asarray(roi, dtype=bool).reshape(-1)
        if (processed & ~wanted).any():
            raise InvalidParameterError(
                "cluster_frames: the decomposition holds scores outside the roi; pass the roi "
                "it was made with (or none)"
            )
    count = int(processed.sum())
    if count == 0:
        raise InvalidParameterError("cluster_frames: no frame was processed (empty roi?)")
    if n_clusters > count:
        raise InvalidParameterError(
            f"cluster_frames: {n_clusters} groups asked of {count} frames; at most one per frame"
        )
    labels_seen, centroids, inertia = kmeans(flat[processed], n_clusters, n_init=n_init, seed=seed)
    counts = np.bincount(labels_seen, minlength=n_clusters).astype(np.int64)
    table = np.zeros((math.prod(nav), n_clusters))
    table[np.flatnonzero(processed), labels_seen] = 1.0 / counts[labels_seen]
    weights = table.reshape(*nav, n_clusters)
    means, squares = ctx.run_udf(
        dataset=dataset,
        udf=[WeightedSumUDF(weights), WeightedSumUDF(weights, squared=True)],
        roi=processed.reshape(nav),
        corrections=corrections,
        progress=progress,
    )
    mean_frames = np.asarray(means["intensity"].data, dtype=np.float64).reshape(n_clusters, *sig)
    second = np.asarray(squares["intensity"].data, dtype=np.float64).reshape(n_clusters, *sig)
    std_frames = np.sqrt(np.maximum(second - mean_frames**2, 0.0))
    labels = np.full(math.prod(nav), -1, np.int64)
    labels[processed] = labels_seen
    distances = np.full(math.prod(nav), np.nan)
    own = flat[processed] - centroids[labels_seen]
    distances[processed] = np.sqrt(np.einsum("ij,ij->i", own, own))
    return Clustering(
        labels=labels.reshape(nav),
        distances=distances.reshape(nav),
        centroids=centroids,
        counts=counts,
        mean_frames=mean_frames,
        std_frames=std_frames,
        inertia=inertia,
        decomposition=decomposition,
    )
