"""``libertem-gpu run --pca K``: principal components of the frames, saved with the run's other
results (:func:`~libertem_gpu.decompose`, passes of its own after the main pass)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from libertem_gpu.cli.common import UsageError, want_progress
from libertem_gpu.resultfiles.provenance import array_entry, nav_dim_names, sig_dim_names

__all__ = ["add_pca_arg", "run_pca"]


def add_pca_arg(group: Any) -> None:
    """``--pca K`` in the analyses' argument group."""
    group.add_argument(
        "--pca",
        type=int,
        metavar="K",
        help="principal components of the frames about their mean (a randomised SVD, six "
        "passes of its own): K component frames, their score maps and explained variance",
    )
    group.add_argument(
        "--pca-poisson",
        action="store_true",
        help="--pca and --clusters of the frames normalised for counting noise (one more pass; "
        "counts only)",
    )


def run_pca(
    args: argparse.Namespace, ctx: Any, ds: Any, roi: Any, corrections: Any
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any], Any]:
    """Decompose and return ``(arrays, array entries, provenance entry, Decomposition)``; the
    component frames are saved frame axes first (one image per component with ``--images``)."""
    from libertem_gpu import decompose

    if args.pca < 1:
        raise UsageError(f"--pca {args.pca}: the number of components must be 1 or more")
    found = decompose(
        ctx,
        ds,
        n_components=args.pca,
        roi=roi,
        corrections=corrections,
        progress=want_progress(args),
        poisson=args.pca_poisson,
    )
    nav = nav_dim_names(len(ds.nav_shape))
    sig = sig_dim_names(len(ds.sig_shape))
    arrays = {
        "pca_components": np.moveaxis(found.components, 0, -1),
        "pca_scores": found.scores,
        "pca_singular_values": found.singular_values,
        "pca_explained_variance_ratio": found.explained_variance_ratio,
        "pca_mean": found.mean,
    }
    entries = {
        "pca_components": array_entry("pca", "components", "single", [*sig, "component"]),
        "pca_scores": array_entry("pca", "scores", "nav", [*nav, "component"]),
        "pca_singular_values": array_entry("pca", "singular_values", "single", ["component"]),
        "pca_explained_variance_ratio": array_entry(
            "pca", "explained_variance_ratio", "single", ["component"]
        ),
        "pca_mean": array_entry("pca", "mean", "sig", sig),
    }
    if found.frame_scale is not None and found.pixel_scale is not None:
        arrays["pca_frame_scale"] = found.frame_scale
        arrays["pca_pixel_scale"] = found.pixel_scale
        entries["pca_frame_scale"] = array_entry("pca", "frame_scale", "nav", nav)
        entries["pca_pixel_scale"] = array_entry("pca", "pixel_scale", "sig", sig)
    params = {"n_components": args.pca, "oversampling": 8, "power_iterations": 2, "seed": 0}
    params["poisson"] = bool(args.pca_poisson)
    return arrays, entries, {"name": "pca", "udf": "decompose", "parameters": params}, found
