"""``libertem-gpu run --templates BANK.npy``: template matching of every frame
(:class:`~libertem_gpu.TemplateMatchUDF`) in the main pass; ``libertem-gpu templates``: a
kinematic bank of a crystal to match against."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from libertem_gpu.cli.common import UsageError, load_npy
from libertem_gpu.udf.crystal_symmetry import SYSTEMS

__all__ = ["add_template_args", "add_templates_command", "template_udf"]


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

    bank = load_npy(args.templates, "--templates")
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


def add_templates_command(sub: Any) -> None:
    """The ``templates`` sub-command: a kinematic template bank for ``run --templates``."""
    p = sub.add_parser(
        "templates",
        help="make a template bank of a crystal for run --templates",
        description="Write the kinematic reflections of a crystal (kinematic_templates) for "
        "each zone axis, orientation or beam direction of a crystal system to OUT.npy, a "
        "(templates, spots, 3) array of (dy, dx, intensity) padded with intensity 0, and the "
        "orientations (3 x 3 rotation matrices, crystal to laboratory) to "
        "OUT_orientations.npy, for match_orientations and orientation-map, and the phase "
        "(--phase, --system, --cell) to OUT_phases.json; --append adds a phase to the bank. "
        "Orientations without a reflection are left out of both, and said so.",
    )
    p.add_argument("out", metavar="OUT.npy", help="the template bank to write")
    p.add_argument(
        "--cell",
        nargs=6,
        type=float,
        required=True,
        metavar=("A", "B", "C", "ALPHA", "BETA", "GAMMA"),
        help="lattice parameters: Å and degrees",
    )
    p.add_argument(
        "--pixel-size",
        type=float,
        required=True,
        metavar="P",
        help="the detector's pixel in reciprocal space, 1/Å (without 2 pi)",
    )
    p.add_argument("--reach", type=float, required=True, metavar="R", help="pixels from the centre")
    p.add_argument(
        "--zone",
        nargs=3,
        type=float,
        action="append",
        default=[],
        metavar=("U", "V", "W"),
        help="a zone axis along the beam (repeatable)",
    )
    p.add_argument(
        "--orientations",
        metavar="FILE.npy",
        help="rotation matrices (n, 3, 3), crystal to laboratory (e.g. from orix), besides --zone",
    )
    p.add_argument(
        "--system",
        choices=SYSTEMS,
        help="beam directions over the fundamental sector of this crystal system "
        "(beam_directions), besides --zone and --orientations",
    )
    p.add_argument(
        "--resolution",
        type=float,
        default=1.0,
        metavar="DEG",
        help="--system: spacing of the beam directions in degrees (default 1)",
    )
    p.add_argument(
        "--atom",
        nargs=4,
        type=float,
        action="append",
        default=[],
        metavar=("X", "Y", "Z", "F"),
        help="an atom: fractional coordinates and scattering weight (repeatable; default one "
        "atom at the origin)",
    )
    p.add_argument("--kv", type=float, default=200.0, help="accelerating voltage (default 200)")
    p.add_argument(
        "--max-excitation",
        type=float,
        default=0.01,
        metavar="S",
        help="largest excitation error kept, 1/Å (default 0.01)",
    )
    p.add_argument(
        "--phase",
        metavar="NAME",
        help="the phase's name, for orientation-map (default: phase1, phase2, ...)",
    )
    p.add_argument(
        "--append",
        action="store_true",
        help="add this phase's templates to the existing bank OUT.npy (its orientations and "
        "phases beside it), for phase maps of several phases",
    )
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=_cmd_templates)


def _first(indices: list[int], shown: int = 20) -> str:
    """The first ``shown`` indices, and how many more (a 1-degree bank drops hundreds)."""
    more = len(indices) - shown
    return str(indices[:shown]) + (f" and {more} more" if more > 0 else "")


def _cmd_templates(args: argparse.Namespace) -> int:
    import os
    import sys

    from libertem_gpu.cli.bank_files import Bank, bank_files, read_bank, write_bank
    from libertem_gpu.udf.crystal_symmetry import beam_directions
    from libertem_gpu.udf.template_bank import (
        direction_orientations,
        kinematic_templates,
        zone_axis_orientation,
    )

    paths = bank_files(args.out)
    if args.append and args.force:
        raise UsageError("--append adds to the bank and --force replaces it: give one")
    before = read_bank(args.out) if args.append else None
    if before is None:
        for path in paths.values():
            if os.path.lexists(path) and not args.force:
                raise UsageError(f"{path} exists; pass --force to replace it, or --append")
    taken = [] if before is None else [p["name"] for p in before.phases]
    name = args.phase or f"phase{len(taken) + 1}"
    if name in taken:
        raise UsageError(f"{args.out} already holds a phase {name!r}: name this one --phase")
    rotations = [zone_axis_orientation(args.cell, uvw) for uvw in args.zone]
    if args.orientations is not None:
        given = load_npy(args.orientations, "--orientations")
        rotations += list(np.asarray(given, dtype=np.float64).reshape(-1, *given.shape[-2:]))
    if args.system is not None:
        rotations += list(direction_orientations(beam_directions(args.system, args.resolution)))
    if not rotations:
        raise UsageError(
            "give the orientations: --zone U V W (repeatable), --orientations or --system"
        )
    bank = kinematic_templates(
        args.cell,
        np.stack(rotations),
        args.pixel_size,
        args.reach,
        voltage_kv=args.kv,
        max_excitation=args.max_excitation,
        atoms=args.atom or None,
    )
    kept = [i for i, t in enumerate(bank) if len(t)]
    dropped = sorted(set(range(len(bank))) - set(kept))
    if dropped:
        print(
            f"note: {len(dropped)} orientation(s) excite no reflection within --reach and "
            f"--max-excitation and are left out: {_first(dropped)}",
            file=sys.stderr,
        )
    if not kept:
        raise UsageError("no orientation excites a reflection: widen --reach or --max-excitation")
    phase = {"name": name, "system": args.system, "cell": [float(c) for c in args.cell]}
    added = Bank(
        [bank[i] for i in kept],
        np.stack(rotations)[kept],
        [phase],
        np.zeros(len(kept), dtype=np.int64),
    )
    if before is not None:
        added = Bank(
            before.templates + added.templates,
            np.concatenate([before.orientations, added.orientations]),
            [*before.phases, phase],
            np.concatenate([before.template_phase, np.full(len(kept), len(before.phases))]),
        )
    write_bank(args.out, added)
    spots = max(len(t) for t in added.templates)
    print(
        f"{len(kept)} templates of phase {name!r} -> {args.out} ({len(added.templates)} "
        f"templates of up to {spots} reflections), {paths['orientations']}, {paths['phases']}"
    )
    return 0
