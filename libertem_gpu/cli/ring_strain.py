"""``libertem-gpu run --ring-strain RMIN RMAX``: strain maps from the ellipticity of a
diffraction ring (:class:`~libertem_gpu.RingStrainUDF`) in the main pass."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_ring_strain_args", "ring_strain_udf"]


def add_ring_strain_args(group: Any) -> None:
    """``--ring-strain`` and ``--reference-radius``."""
    group.add_argument(
        "--ring-strain",
        nargs=2,
        type=float,
        metavar=("RMIN", "RMAX"),
        help="strain maps from the ring between RMIN and RMAX pixels of --cy/--cx (amorphous "
        "strain mapping): e_xx, e_yy, e_xy per frame; with --ellipse, --descan",
    )
    group.add_argument(
        "--reference-radius",
        type=float,
        metavar="R",
        help="ring strain: the unstrained ring's radius in pixels (default: the scan's median)",
    )


def ring_strain_udf(
    args: argparse.Namespace, center: tuple[float, float], ellipse: Any, shifts: Any
) -> tuple[Any, dict[str, Any]]:
    """The UDF of ``--ring-strain`` and its provenance parameters."""
    from libertem_gpu import RingStrainUDF

    rmin, rmax = args.ring_strain
    params = {
        "rad_min": rmin,
        "rad_max": rmax,
        "center": list(center),
        "reference_radius": args.reference_radius,
    }
    udf = RingStrainUDF(
        rad_min=rmin,
        rad_max=rmax,
        center=center,
        reference_radius=args.reference_radius,
        ellipse=ellipse,
        shifts=shifts,
    )
    return udf, params
