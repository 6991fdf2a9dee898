"""``libertem-gpu run --clusters N``: the scan's positions in N groups of similar frames, saved
with the run's other results (:func:`~libertem_gpu.cluster_frames`, passes of its own after
the main pass; it reuses the decomposition of ``--pca`` where both are asked for)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from libertem_gpu.cli.common import UsageError, want_progress
from libertem_gpu.resultfiles.provenance import array_entry, nav_dim_names, sig_dim_names

__all__ = ["add_cluster_args", "run_clusters"]

# Components compared when --pca does not say: enough for a handful of phases.
DEFAULT_COMPONENTS = 8


def add_cluster_args(group: Any) -> None:
    """``--clusters N`` and ``--cluster-components K`` in the analyses' argument group."""
    group.add_argument(
        "--clusters",
        type=int,
        metavar="N",
        help="group the positions into N regions of similar frames (k-means of the frames' "
        "principal-component scores; the decomposition's passes and one more): a label map, "
        "each group's mean and standard deviation frames, and each frame's distance to its "
        "group's centre; reuses --pca's components where both are given",
    )
    group.add_argument(
        "--cluster-components",
        type=int,
        metavar="K",
        help=f"--clusters: principal components compared (default {DEFAULT_COMPONENTS}, or "
        "--pca's K)",
    )


def run_clusters(
    args: argparse.Namespace,
    ctx: Any,
    ds: Any,
    roi: Any,
    corrections: Any,
    decomposition: Any = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """Group the frames and return ``(arrays, array entries, provenance entry)``; the group
    frames are saved frame axes first (one image per group with ``--images``).
    ``decomposition`` (that of ``--pca``) is reused unless ``--cluster-components`` asks for
    another number of components."""
    from libertem_gpu import cluster_frames

    if args.clusters < 1:
        raise UsageError(f"--clusters {args.clusters}: the number of groups must be 1 or more")
    components = args.cluster_components
    if components is not None and components < 1:
        raise UsageError(f"--cluster-components {components}: must be 1 or more")
    if decomposition is not None and components not in (None, len(decomposition.singular_values)):
        decomposition = None
    if decomposition is not None:
        components = len(decomposition.singular_values)
    elif components is None:
        components = DEFAULT_COMPONENTS
    poisson = bool(getattr(args, "pca_poisson", False))
    found = cluster_frames(
        ctx,
        ds,
        n_clusters=args.clusters,
        n_components=components,
        decomposition=decomposition,
        roi=roi,
        corrections=corrections,
        poisson=poisson,
        progress=want_progress(args),
    )
    nav = nav_dim_names(len(ds.nav_shape))
    sig = sig_dim_names(len(ds.sig_shape))
    arrays = {
        "clusters_labels": found.labels,
        "clusters_distances": found.distances,
        "clusters_mean_frames": np.moveaxis(found.mean_frames, 0, -1),
        "clusters_std_frames": np.moveaxis(found.std_frames, 0, -1),
        "clusters_counts": found.counts,
        "clusters_centroids": found.centroids,
    }
    entries = {
        "clusters_labels": array_entry("clusters", "labels", "nav", nav),
        "clusters_distances": array_entry("clusters", "distances", "nav", nav),
        "clusters_mean_frames": array_entry("clusters", "mean_frames", "single", [*sig, "group"]),
        "clusters_std_frames": array_entry("clusters", "std_frames", "single", [*sig, "group"]),
        "clusters_counts": array_entry("clusters", "counts", "single", ["group"]),
        "clusters_centroids": array_entry(
            "clusters", "centroids", "single", ["group", "component"]
        ),
    }
    params = {
        "n_clusters": args.clusters,
        "n_components": components,
        "poisson": poisson,
        "n_init": 10,
        "seed": 0,
        "inertia": found.inertia,
    }
    return arrays, entries, {"name": "clusters", "udf": "cluster_frames", "parameters": params}
