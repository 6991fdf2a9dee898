"""``libertem-gpu run --templates BANK.npy``: template matching of every frame
(:class:`~libertem_gpu.TemplateMatchUDF`) in the main pass."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from libertem_gpu.cli.common import UsageError

__all__ = ["add_template_args", "template_udf"]


def add_template_args(group: Any) -> None:
    """``--templates``, ``--template-rmin``, ``--n-best`` and ``--mirror``."""
    group.add_argument(
        "--templates",
        metavar="BANK.npy",
        help="template matching (orientation / phase maps): a (templates, spots, 3) array of "
        "each template's reflections, (dy, dx) from the pattern's centre in pixels and "
        "intensity (pad with intensity 0); around --cy/--cx, with --ellipse, --descan",
    )
    group.add_argument(
        "--template-rmin",
        type=float,
        default=0.0,
        metavar="R",
        help="template matching: leave out radii below R, the central beam (default 0)",
    )
    group.add_argument(
        "--n-best", type=int, default=1, help="template matching: matches kept (default 1)"
    )
    group.add_argument(
        "--mirror",
        action="store_true",
        help="template matching: also match each template mirrored",
    )


def template_udf(
    args: argparse.Namespace, center: tuple[float, float], ellipse: Any, shifts: Any
) -> tuple[Any, dict[str, Any]]:
    """The UDF of ``--templates`` and its provenance parameters."""
    from libertem_gpu import TemplateMatchUDF

    try:
        bank = np.load(args.templates, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(
            f"--templates {args.templates}: cannot read a NumPy .npy array ({e})"
        ) from None
    if bank.ndim != 3 or bank.shape[-1] not in (2, 3) or bank.dtype.kind not in "iuf":
        raise UsageError(
            f"--templates {args.templates}: expected numbers of shape (templates, spots, 3), "
            f"got {bank.dtype} of shape {bank.shape}"
        )
    params = {
        "templates": args.templates,
        "center": list(center),
        "rad_min": args.template_rmin,
        "n_best": args.n_best,
        "mirror": args.mirror,
    }
    udf = TemplateMatchUDF(
        list(bank),
        center=center,
        rad_min=args.template_rmin,
        n_best=args.n_best,
        mirror=args.mirror,
        ellipse=ellipse,
        shifts=shifts,
    )
    return udf, params
