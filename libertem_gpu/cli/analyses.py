"""The analyses of ``libertem-gpu run``: their options, the UDFs they make, and how their
results are named and described in the saved file.

Every analysis named on the command line runs in the same pass over the data (the virtual
detectors share one :class:`~libertem_gpu.ApplyMasksUDF`); ``--pick`` reads its few frames in a
second pass (its roi differs).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import numpy as np

from libertem_gpu.cli.clusters import add_cluster_args
from libertem_gpu.cli.common import UsageError
from libertem_gpu.cli.ellipse import add_ellipse_args, ellipse_for
from libertem_gpu.cli.pca import add_pca_arg
from libertem_gpu.cli.ptycho import add_ptycho_args
from libertem_gpu.cli.ring_strain import add_ring_strain_args, ring_strain_udf
from libertem_gpu.cli.templates import add_template_args, template_udf
from libertem_gpu.resultfiles.provenance import array_entry, dim_names

__all__ = ["ANALYSES", "Planned", "add_analysis_args", "plan_analyses", "plan_pick"]

#: ``--analysis`` names: name -> (top-level class, description).
ANALYSES = {
    "sum": ("SumUDF", "sum of all frames (one frame)"),
    "sumsig": ("SumSigUDF", "sum of each frame (one value per scan position)"),
    "std": ("StdDevUDF", "mean, variance and standard deviation over the scan, per pixel"),
    "max": ("MaxUDF", "maximum over the scan, per pixel"),
    "min": ("MinUDF", "minimum over the scan, per pixel"),
    "com": ("CoMUDF", "centre of mass of each frame and iCoM (with --cy/--cx/--r/--ri)"),
    "logsum": ("LogsumUDF", "sum of log(frame - minimum + 1) over the scan"),
    "sumfft": ("SumFFTUDF", "sum of the power spectra of all frames (fftshifted)"),
}

#: Names of the extra dimensions of results that have them.
_EXTRA_DIMS = {
    "raw_com": ["component"],
    "raw_shifts": ["component"],
    "field": ["component"],
    "regression": ["term", "component"],
    "complex": ["bin", "order"],
}

#: Analyses on a polar grid that take the centre, the ellipse and the shifts: (option, result
#: prefix, the UDF's maker, the names of its results' trailing dimensions).
_POLAR = (
    (
        "templates",
        "template_match",
        template_udf,
        {key: ["match"] for key in ("template", "rotation", "score", "mirrored")},
    ),
    (
        "ring_strain",
        "ring_strain",
        ring_strain_udf,
        {"strain": ["component"], "shift": ["component"], "coefficients": ["term"]},
    ),
)

#: Virtual detectors: option -> (metavars, description).
DETECTORS = {
    "bf": (("R",), "bright field: a disk of radius R at --cy/--cx (default: frame centre)"),
    "adf": (("RI", "RO"), "annular dark field: a ring RI < r <= RO around --cy/--cx"),
    "ring": (("CY", "CX", "RI", "RO"), "a ring RI < r <= RO around (CY, CX)"),
    "disk": (("CY", "CX", "R"), "a disk of radius R at (CY, CX)"),
    "point": (("CY", "CX"), "a single pixel"),
    "rect": (("Y", "X", "H", "W"), "rows Y..Y+H-1, columns X..X+W-1"),
}


@dataclasses.dataclass
class Planned:
    """One UDF of the run and what to do with its results.

    Attributes
    ----------
    udf : UDF
    analyses : list of dict
        Provenance entries (``name``, ``udf``, ``parameters``).
    collect : callable
        ``collect(results, nav_ndim, sig_ndim)`` -> (arrays, array entries).
    """

    udf: Any
    analyses: list[dict[str, Any]]
    collect: Any


def add_analysis_args(p: argparse.ArgumentParser) -> None:
    """Options that choose analyses and their parameters."""
    g = p.add_argument_group("analyses (any number, computed in one pass)")
    g.add_argument(
        "--analysis",
        action="append",
        default=[],
        choices=sorted(ANALYSES),
        help="a built-in analysis (repeatable): "
        + "; ".join(f"{k}: {v[1]}" for k, v in ANALYSES.items()),
    )
    for name, (metavar, text) in DETECTORS.items():
        g.add_argument(
            f"--{name}",
            nargs=len(metavar),
            type=float,
            metavar=metavar,
            action="append",
            default=[],
            help=f"virtual detector, {text} (repeatable)",
        )
    g.add_argument(
        "--mask",
        action="append",
        default=[],
        metavar="FILE.npy",
        help="virtual detector from a mask file: a frame-shaped array, or a stack of them",
    )
    g.add_argument(
        "--pick",
        action="append",
        default=[],
        metavar="Y,X",
        type=_position,
        help="save the frame at this scan position as stored (repeatable)",
    )
    g.add_argument(
        "--fem", nargs=2, type=float, metavar=("RI", "RO"), help="FEM: variance over a ring"
    )
    g.add_argument(
        "--radial-fourier",
        nargs=2,
        type=float,
        metavar=("RI", "RO"),
        help="radial Fourier analysis over RI..RO (with --n-bins, --max-order)",
    )
    g.add_argument("--n-bins", type=int, default=1, help="radial Fourier: bins (default 1)")
    g.add_argument(
        "--max-order", type=int, default=8, help="radial Fourier: highest order (default 8)"
    )
    g.add_argument(
        "--radial-profile",
        nargs="?",
        const="auto",
        type=_radius_or_auto,
        metavar="RMAX",
        help="azimuthal integration: each frame's mean in rings about one pixel wide around "
        "--cy/--cx, out to RMAX (default: the farthest pixel); with --sectors",
    )
    g.add_argument(
        "--sectors",
        type=int,
        default=1,
        help="radial profile: angular sectors per ring, a polar transform (default 1)",
    )
    g.add_argument(
        "--aligned-sum",
        action="store_true",
        help="the sum and mean of the frames moved back by the beam's shifts (needs --descan "
        "or --shifts): the descan-corrected mean pattern",
    )
    g.add_argument(
        "--parallax",
        nargs="?",
        const=2,
        type=int,
        metavar="UPSAMPLING",
        help="parallax (tilt-corrected bright-field) image of a defocused scan on a grid "
        "UPSAMPLING times finer than the scan (default 2); the bright-field pixels' shifts are "
        "measured first, in two passes of their own",
    )
    g.add_argument(
        "--ssb",
        nargs=3,
        type=float,
        metavar=("KV", "STEP", "MRAD"),
        help="single side band ptychography of a focused-probe scan: accelerating voltage "
        "(kV), scan step (Å) and semi-convergence angle (mrad); the bright-field disk is "
        "found on the mean frame (one pass of its own) unless --cy, --cx and --semiconv-pix "
        "are given; with --scan-rotation, --flip-y, --defocus; with --descan or --shifts the "
        "disk is read where the beam's walk puts it",
    )
    add_pca_arg(g)
    add_cluster_args(g)
    add_ptycho_args(g)
    add_template_args(g)
    add_ring_strain_args(g)
    g.add_argument(
        "--crystallinity",
        nargs=2,
        type=float,
        metavar=("RI", "RO"),
        help="crystallinity: Fourier amplitude over the ring RI..RO of frequencies",
    )
    g = p.add_argument_group("geometry")
    g.add_argument("--cy", type=float, help="centre row (default: frame centre, (rows - 1) / 2)")
    g.add_argument("--cx", type=float, help="centre column (default: (columns - 1) / 2)")
    g.add_argument("--r", type=float, help="CoM: outer radius (default: whole frame)")
    g.add_argument("--ri", type=float, help="CoM: inner radius (default 0)")
    g.add_argument(
        "--shifts",
        metavar="FILE.npy",
        help="descan: whole-pixel (dy, dx) of the beam at each scan position, (*scan, 2); "
        "virtual detectors and radial profiles move with it",
    )
    g.add_argument(
        "--descan",
        action="store_true",
        help="descan: fit the beam's walk over the scan (centre of mass around the bright-field "
        "disk, a plane; one or two passes first) and move virtual detectors and radial "
        "profiles with it",
    )
    add_ellipse_args(g)
    g.add_argument(
        "--semiconv-pix",
        type=float,
        metavar="R",
        help="SSB: the bright-field disk's radius on the detector, pixels (default: measured)",
    )
    g.add_argument(
        "--scan-rotation",
        type=float,
        default=0.0,
        metavar="DEG",
        help="SSB: the detector's rotation against the scan, degrees, as CoMUDF's (default 0)",
    )
    g.add_argument("--flip-y", action="store_true", help="SSB: the detector's y axis is flipped")
    g.add_argument("--defocus", type=float, default=0.0, metavar="A", help="SSB: probe defocus, Å")
    g.add_argument(
        "--real-rad",
        type=float,
        help="crystallinity: blank a disk of this radius at --cy/--cx first",
    )


def _radius_or_auto(text: str) -> float | str:
    """A radius, or ``auto`` (argparse passes ``--radial-profile``'s const through here too)."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a radius in pixels, got {text!r}") from None


def _position(text: str) -> tuple[int, ...]:
    try:
        pos = tuple(int(p) for p in text.replace(" ", ",").split(",") if p)
    except ValueError:
        pos = ()
    if not pos:
        raise argparse.ArgumentTypeError(f"expected a scan position such as 3,7, got {text!r}")
    return pos


def any_requested(args: argparse.Namespace) -> bool:
    """Whether the command line names at least one analysis."""
    return bool(
        args.analysis
        or args.mask
        or args.pick
        or args.fem
        or args.radial_fourier
        or args.radial_profile is not None
        or args.parallax is not None
        or args.ssb is not None
        or args.pca is not None
        or args.clusters is not None
        or args.ptychography is not None
        or args.templates is not None
        or args.ring_strain is not None
        or args.aligned_sum
        or args.crystallinity
        or any(getattr(args, name) for name in DETECTORS)
    )


def _shifts(args: argparse.Namespace) -> tuple[np.ndarray | None, dict[str, Any]]:
    """The per-position shifts of ``--descan`` (measured by :func:`measure_descan`) or
    ``--shifts`` (checked for their last axis; the run checks that there is one per scan
    position), and what the provenance says of them."""
    found = getattr(args, "descan_found", None)
    if found is not None:
        return found.shifts, {"descan_plane": found.plane.tolist(), "descan_center": found.center}
    if args.shifts is None:
        return None, {}
    shifts = np.load(args.shifts, allow_pickle=False)
    if shifts.ndim < 2 or shifts.shape[-1] != 2 or shifts.dtype.kind not in "iuf":
        raise UsageError(
            f"--shifts {args.shifts}: expected numbers (dy, dx) for each scan position, shape "
            f"(*scan, 2), got {shifts.dtype} of shape {shifts.shape}"
        )
    return shifts, {"shifts": args.shifts}


def measure_descan(args: argparse.Namespace, ctx: Any, ds: Any, corrections: Any) -> None:
    """``--descan``: fit the beam's walk over the scan (around ``--cy/--cx`` where both are
    given) before the main pass; :func:`_shifts` hands it to the analyses."""
    if not args.descan:
        return
    if args.shifts is not None:
        raise UsageError("--descan measures the shifts; give it or --shifts, not both")
    from libertem_gpu.udf.mask_shifts import estimate_descan

    center = None if args.cy is None or args.cx is None else (args.cy, args.cx)
    args.descan_found = estimate_descan(ctx, ds, center=center, corrections=corrections)


def _centre(args: argparse.Namespace, sig: tuple[int, ...]) -> tuple[float, float]:
    cy = args.cy if args.cy is not None else (sig[0] - 1) / 2
    cx = args.cx if args.cx is not None else (sig[-1] - 1) / 2
    return cy, cx


def _results_collector(
    name: str,
    kind_prefix: dict[str, str] | None = None,
    extra_dims: dict[str, list[str]] | None = None,
) -> Any:
    """Save every result of a UDF as ``NAME_RESULT``; ``extra_dims`` names the trailing
    dimensions of this UDF's results, over the shared names of :data:`_EXTRA_DIMS`."""
    names = {**_EXTRA_DIMS, **(extra_dims or {})}

    def collect(results: dict[str, Any], nav_ndim: int, sig_ndim: int) -> tuple[dict, dict]:
        arrays, entries = {}, {}
        for key, value in results.items():
            data = np.asarray(value.data)
            dims = dim_names(
                value.kind,
                data.shape,
                nav_ndim,
                sig_ndim,
                extra=names.get(key),
                sig_prefix=(kind_prefix or {}).get(key, "sig"),
            )
            arrays[f"{name}_{key}"] = data
            entries[f"{name}_{key}"] = array_entry(name, key, value.kind, dims)
        return arrays, entries

    return collect


def _simple(args: argparse.Namespace, name: str, sig: tuple[int, ...]) -> Planned:
    import libertem_gpu

    cls = getattr(libertem_gpu, ANALYSES[name][0])
    params: dict[str, Any] = {}
    if name == "com":
        cy, cx = _centre(args, sig)
        params = {"cy": cy, "cx": cx}
        if args.r is not None:
            params["r"] = args.r
        if args.ri is not None:
            params["ri"] = args.ri
        udf = cls.with_params(**params)
    else:
        udf = cls()
    prefix = {"intensity": "freq"} if name == "sumfft" else None
    entry = {"name": name, "udf": cls.__name__, "parameters": params}
    return Planned(udf, [entry], _results_collector(name, prefix))


def _detectors(args: argparse.Namespace, sig: tuple[int, ...]) -> Planned | None:
    from libertem_gpu import ApplyMasksUDF, masks

    cy, cx = _centre(args, sig)
    found: list[tuple[str, dict[str, Any], Any]] = []
    shape = (int(sig[0]), int(sig[-1]))
    for values in args.bf:
        found.append(
            ("bf", {"cy": cy, "cx": cx, "r": values[0]}, masks.disk(shape, cy, cx, values[0]))
        )
    for ri, ro in args.adf:
        found.append(
            ("adf", {"cy": cy, "cx": cx, "ri": ri, "ro": ro}, masks.ring(shape, cy, cx, ro, ri))
        )
    for y, x, ri, ro in args.ring:
        found.append(
            ("ring", {"cy": y, "cx": x, "ri": ri, "ro": ro}, masks.ring(shape, y, x, ro, ri))
        )
    for y, x, r in args.disk:
        found.append(("disk", {"cy": y, "cx": x, "r": r}, masks.disk(shape, y, x, r)))
    for y, x in args.point:
        found.append(("point", {"y": y, "x": x}, masks.point(shape, int(y), int(x))))
    for y, x, h, w in args.rect:
        params = {"y": y, "x": x, "height": h, "width": w}
        found.append(("rect", params, masks.rectangle(shape, int(y), int(x), int(h), int(w))))
    for path in args.mask:
        stack = np.load(path, allow_pickle=False)
        if stack.shape[-2:] != tuple(sig) or stack.ndim not in (2, 3):
            raise UsageError(
                f"--mask {path}: expected a frame-shaped array {tuple(sig)} or a stack of them, "
                f"got shape {stack.shape}"
            )
        planes = [stack] if stack.ndim == 2 else list(stack)
        for i, plane in enumerate(planes):
            found.append(("mask", {"file": path, "index": i if stack.ndim == 3 else None}, plane))
    if not found:
        return None
    counts: dict[str, int] = {}
    for kind, _, _ in found:
        counts[kind] = counts.get(kind, 0) + 1
    seen: dict[str, int] = {}
    names = []
    for kind, _, _ in found:
        seen[kind] = seen.get(kind, 0) + 1
        names.append(kind if counts[kind] == 1 else f"{kind}{seen[kind]}")
    dense = [np.asarray(m, dtype=np.float32) for _, _, m in found]
    shifts, moved = _shifts(args)
    udf = ApplyMasksUDF(mask_factories=[(lambda m=m: m) for m in dense], shifts=shifts)
    analyses = [
        {"name": n, "udf": "ApplyMasksUDF", "parameters": {"detector": kind, **params, **moved}}
        for n, (kind, params, _) in zip(names, found, strict=True)
    ]

    def collect(results: dict[str, Any], nav_ndim: int, sig_ndim: int) -> tuple[dict, dict]:
        stack = np.asarray(results["intensity"].data)
        arrays, entries = {}, {}
        for i, n in enumerate(names):
            key = f"{n}_intensity"
            arrays[key] = stack[..., i]
            dims = dim_names("nav", stack.shape[:-1], nav_ndim, sig_ndim)
            entries[key] = array_entry(n, "intensity", "nav", dims)
        return arrays, entries

    return Planned(udf, analyses, collect)


def plan_analyses(args: argparse.Namespace, sig: tuple[int, ...]) -> list[Planned]:
    """The UDFs of the main pass, from the command line, for frames of shape ``sig``."""
    import libertem_gpu

    planned = [_simple(args, name, sig) for name in dict.fromkeys(args.analysis)]
    detectors = _detectors(args, sig)
    if detectors is not None:
        planned.append(detectors)
    cy, cx = _centre(args, sig)
    ellipse, (ey, ex), stretch = ellipse_for(args, (cy, cx))
    if args.fem:
        ri, ro = args.fem
        params = {"center": [ey, ex], "rad_in": ri, "rad_out": ro}
        udf = libertem_gpu.FEMUDF(center=(ey, ex), rad_in=ri, rad_out=ro, ellipse=ellipse)
        params.update(stretch)
        entry = {"name": "fem", "udf": "FEMUDF", "parameters": params}
        planned.append(Planned(udf, [entry], _results_collector("fem")))
    if args.radial_fourier:
        ri, ro = args.radial_fourier
        params = {"cy": cy, "cx": cx, "ri": ri, "ro": ro}
        params |= {"n_bins": args.n_bins, "max_order": args.max_order}
        udf = libertem_gpu.RadialFourierUDF(**params)
        entry = {"name": "radial_fourier", "udf": "RadialFourierUDF", "parameters": params}
        planned.append(Planned(udf, [entry], _results_collector("radial_fourier")))
    if args.radial_profile is not None:
        params = {"center": [ey, ex], "n_sectors": args.sectors}
        if args.radial_profile != "auto":
            params["rad_max"] = args.radial_profile
        shifts, moved = _shifts(args)
        udf = libertem_gpu.RadialProfileUDF(**params, shifts=shifts, ellipse=ellipse)
        params.update(moved)
        params.update(stretch)
        entry = {"name": "radial_profile", "udf": "RadialProfileUDF", "parameters": params}
        dims = {"intensity": ["ring", "sector"], "radius": ["ring"], "angle": ["sector"]}
        dims["pixels"] = ["ring", "sector"]
        planned.append(Planned(udf, [entry], _results_collector("radial_profile", None, dims)))
    for option, name, make, dims in _POLAR:
        if getattr(args, option) is None:
            continue
        shifts, moved = _shifts(args)
        udf, params = make(args, (ey, ex), ellipse, shifts)
        params.update(moved)
        params.update(stretch)
        entry = {"name": name, "udf": type(udf).__name__, "parameters": params}
        planned.append(Planned(udf, [entry], _results_collector(name, None, dims)))
    if args.aligned_sum:
        shifts, moved = _shifts(args)
        if shifts is None:
            raise UsageError(
                "--aligned-sum moves the frames by the beam's shifts: give --descan or --shifts"
            )
        udf = libertem_gpu.AlignedSumUDF(shifts=shifts)
        entry = {"name": "aligned_sum", "udf": "AlignedSumUDF", "parameters": moved}
        planned.append(Planned(udf, [entry], _results_collector("aligned_sum")))
    if args.crystallinity:
        ri, ro = args.crystallinity
        params = {"rad_in": ri, "rad_out": ro}
        if args.real_rad is not None:
            params |= {"real_center": [cy, cx], "real_rad": args.real_rad}
        udf = libertem_gpu.CrystallinityUDF(**params)
        entry = {"name": "crystallinity", "udf": "CrystallinityUDF", "parameters": params}
        planned.append(Planned(udf, [entry], _results_collector("crystallinity")))
    return planned


def plan_parallax(args: argparse.Namespace, ctx: Any, ds: Any, corrections: Any) -> Planned:
    """``--parallax``: measure the shifts (:func:`~libertem_gpu.estimate_parallax`, around
    ``--cy/--cx`` where both are given) and plan the image for the main pass."""
    from libertem_gpu.udf.parallax_fit import estimate_parallax

    if args.parallax < 1:
        raise UsageError(f"--parallax {args.parallax}: the upsampling must be 1 or more")
    center = None if args.cy is None or args.cx is None else (args.cy, args.cx)
    fit = estimate_parallax(ctx, ds, center=center, corrections=corrections)
    params = {
        "upsampling": args.parallax,
        "shift_matrix": fit.shift_matrix.tolist(),
        "center": list(fit.center),
        "radius": fit.radius,
        "fit_residual": fit.residual,
    }
    entry = {"name": "parallax", "udf": "ParallaxUDF", "parameters": params}
    dims = {"image": ["fine_y", "fine_x"], "weight": ["fine_y", "fine_x"]}
    return Planned(fit.udf(args.parallax), [entry], _results_collector("parallax", None, dims))


def probe_optics(
    args: argparse.Namespace, flag: str, ctx: Any, ds: Any, corrections: Any
) -> tuple[float, dict[str, Any]]:
    """The kV and the optics (``SSBUDF``'s and ``ptychography``'s keywords) of ``--ssb`` or
    ``--ptychography KV STEP MRAD`` (``flag``), with the disk's centre and radius from
    ``--cy/--cx/--semiconv-pix`` or, for what is not given, the mean frame
    (:func:`find_bright_field`, one pass)."""
    from libertem_gpu import SumUDF
    from libertem_gpu.udf.parallax_fit import find_bright_field
    from libertem_gpu.udf.ssb_geometry import electron_wavelength

    kv, step, mrad = getattr(args, flag.strip("-"))
    if not (kv > 0 and step > 0 and mrad > 0):
        raise UsageError(f"{flag} {kv:g} {step:g} {mrad:g}: kV, step and mrad must be > 0")
    center = None if args.cy is None or args.cx is None else (args.cy, args.cx)
    radius = args.semiconv_pix
    if center is None or radius is None:
        total = ctx.run_udf(dataset=ds, udf=SumUDF(), corrections=corrections)["intensity"]
        found_center, found_radius = find_bright_field(np.asarray(total.data))
        center = center or found_center
        radius = radius or found_radius
    return kv, {
        "wavelength": electron_wavelength(kv * 1e3),
        "scan_step": step,
        "semiconv": mrad * 1e-3,
        "semiconv_pix": float(radius),
        "center": [float(center[0]), float(center[1])],
        "scan_rotation": args.scan_rotation,
        "flip_y": bool(args.flip_y),
        "defocus": args.defocus,
    }


def plan_ssb(args: argparse.Namespace, ctx: Any, ds: Any, corrections: Any) -> Planned:
    """``--ssb KV STEP MRAD``: the bright-field disk from ``--cy/--cx/--semiconv-pix`` or, for
    what is not given, from the mean frame (:func:`find_bright_field`, one pass), and
    :class:`~libertem_gpu.SSBUDF` for the main pass."""
    from libertem_gpu import SSBUDF

    kv, params = probe_optics(args, "--ssb", ctx, ds, corrections)
    shifts, moved = _shifts(args)
    udf = SSBUDF(**params, shifts=shifts)
    params.update(moved)
    entry = {"name": "ssb", "udf": "SSBUDF", "parameters": {**params, "voltage_kv": kv}}
    dims = {key: ["scan_y", "scan_x"] for key in ("phase", "fourier", "frequencies")}
    return Planned(udf, [entry], _results_collector("ssb", None, dims))


def plan_pick(
    args: argparse.Namespace, nav_shape: tuple[int, ...]
) -> tuple[np.ndarray, list[tuple[int, ...]]] | None:
    """The roi of ``--pick`` and its positions in scan order, or None."""
    if not args.pick:
        return None
    roi = np.zeros(nav_shape, dtype=bool)
    for pos in args.pick:
        if len(pos) != len(nav_shape) or not all(
            0 <= p < n for p, n in zip(pos, nav_shape, strict=True)
        ):
            raise UsageError(
                f"--pick {','.join(map(str, pos))}: expected a position inside the scan "
                f"{' x '.join(map(str, nav_shape))} (row,column counting from 0)"
            )
        roi[pos] = True
    positions = [tuple(int(i) for i in p) for p in np.argwhere(roi)]
    return roi, positions
