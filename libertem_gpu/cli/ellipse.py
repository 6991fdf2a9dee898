"""``libertem-gpu run --ellipse RATIO DEG`` and ``--fit-ellipse RMIN RMAX``: undo an elliptical
distortion of the patterns in ``--fem`` and ``--radial-profile``, given or fitted to the ring
of the summed frame (:func:`~libertem_gpu.fit_ellipse`, one pass of its own)."""

from __future__ import annotations

import argparse
import math
from typing import Any

from libertem_gpu.cli.common import UsageError

__all__ = ["add_ellipse_args", "ellipse_for", "measure_ellipse"]


def add_ellipse_args(group: Any) -> None:
    """The two options, in the geometry argument group."""
    group.add_argument(
        "--ellipse",
        nargs=2,
        type=float,
        metavar=("RATIO", "DEG"),
        help="--fem, --radial-profile, --templates and --ring-strain: undo an elliptical "
        "distortion of the patterns, the major over the minor semi-axis and the major axis' "
        "direction in degrees (from increasing columns towards increasing rows)",
    )
    group.add_argument(
        "--fit-ellipse",
        nargs=2,
        type=float,
        metavar=("RMIN", "RMAX"),
        help="as --ellipse, measured on the ring that the summed frame shows between RMIN and "
        "RMAX pixels of --cy/--cx (one pass of its own); its centre replaces --cy/--cx",
    )


def measure_ellipse(args: argparse.Namespace, ctx: Any, ds: Any, corrections: Any) -> None:
    """Check the options; for ``--fit-ellipse``, sum the frames and fit the ring before the
    main pass (:func:`ellipse_for` hands the result to the analyses)."""
    given, fitted = args.ellipse is not None, args.fit_ellipse is not None
    if not (given or fitted):
        return
    option = "--ellipse" if given else "--fit-ellipse"
    if given and fitted:
        raise UsageError("--fit-ellipse measures the ellipse; give it or --ellipse, not both")
    polar = (args.radial_profile, args.templates, args.ring_strain)
    if not args.fem and all(option is None for option in polar):
        raise UsageError(
            f"{option} applies to --fem, --radial-profile, --templates and --ring-strain; "
            "give one of them"
        )
    if given:
        return
    from libertem_gpu import SumUDF, fit_ellipse

    summed = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=corrections)["intensity"].data
    center = None if args.cy is None or args.cx is None else (args.cy, args.cx)
    rmin, rmax = args.fit_ellipse
    args.ellipse_found = fit_ellipse(summed, rad_min=rmin, rad_max=rmax, center=center)


def ellipse_for(
    args: argparse.Namespace, center: tuple[float, float]
) -> tuple[Any, tuple[float, float], dict[str, Any]]:
    """``(ellipse, centre, provenance)`` for an analysis around ``center``: no ellipse and
    the centre unchanged without the options; the fitted centre with ``--fit-ellipse``."""
    found = getattr(args, "ellipse_found", None)
    if found is not None:
        record = {
            "ellipse_fit": {
                "ratio": found.ratio,
                "angle_deg": math.degrees(found.angle),
                "center": list(found.center),
                "radius": found.radius,
                "residual": found.residual,
                "rad_min": args.fit_ellipse[0],
                "rad_max": args.fit_ellipse[1],
            }
        }
        return found, found.center, record
    if args.ellipse is None:
        return None, center, {}
    ratio, degrees = args.ellipse
    ellipse = (ratio, math.radians(degrees))
    return ellipse, center, {"ellipse": {"ratio": ratio, "angle_deg": degrees}}
