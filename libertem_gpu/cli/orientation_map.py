"""``libertem-gpu orientation-map RESULTS``: the orientations of ``run --templates`` results as
a TSL ``.ang`` file for EBSD software and an inverse pole figure image with its key."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import numpy as np

from libertem_gpu.cli.common import UsageError
from libertem_gpu.udf.crystal_symmetry import SYSTEMS

__all__ = ["add_orientation_map_command"]

_PREFIX = "template_match_"


def add_orientation_map_command(sub: Any) -> None:
    """The ``orientation-map`` sub-command."""
    p = sub.add_parser(
        "orientation-map",
        help="orientations of run --templates results: .ang file and IPF image",
        description="Turn the best match at each position of a results file of run "
        "--templates (a bank made by the templates command) into orientations "
        "(match_orientations), and write them as a TSL .ang file (--ang, for MTEX, orix, OIM) "
        "and/or an inverse pole figure map of the beam direction as a PNG with its colour key "
        "beside it (--ipf OUT.png, OUT_key.png). Positions without data are unindexed in the "
        ".ang file and black in the image.",
    )
    p.add_argument("results", metavar="RESULTS", help="results file of run --templates")
    p.add_argument("--system", choices=SYSTEMS, required=True, help="the crystal system")
    p.add_argument(
        "--orientations",
        metavar="BANK_orientations.npy",
        help="the bank's orientations (default: beside the bank the results name)",
    )
    p.add_argument(
        "--cell",
        nargs=6,
        type=float,
        metavar=("A", "B", "C", "ALPHA", "BETA", "GAMMA"),
        help="lattice parameters for the .ang header (required with --ang)",
    )
    p.add_argument("--ang", metavar="OUT.ang", help="write the orientation map as TSL .ang")
    p.add_argument("--ipf", metavar="OUT.png", help="write the IPF-Z map and OUT_key.png")
    p.add_argument(
        "--step",
        nargs=2,
        type=float,
        metavar=("DY", "DX"),
        help="scan step for the .ang file (default: the data set's calibration, else 1)",
    )
    p.add_argument("--phase", default="phase", help="the phase's name in the .ang file")
    p.add_argument("--force", action="store_true", help="replace existing files")
    p.set_defaults(func=_cmd_orientation_map)


def _bank_orientations(args: argparse.Namespace, metadata: Any) -> str:
    if args.orientations is not None:
        return str(args.orientations)
    for entry in metadata.get("analyses", []):
        bank = entry.get("parameters", {}).get("templates")
        if entry.get("name") == "template_match" and isinstance(bank, str):
            guess = bank[: -len(".npy")] + "_orientations.npy" if bank.endswith(".npy") else ""
            if guess and os.path.exists(guess):
                return guess
            raise UsageError(
                f"{args.results}: the bank was {bank}, but {guess or 'its orientations'} is not "
                "there; pass --orientations"
            )
    raise UsageError(f"{args.results}: no template matching in its provenance; pass --orientations")


def _step(args: argparse.Namespace, metadata: Any) -> tuple[float, float]:
    if args.step is not None:
        return float(args.step[0]), float(args.step[1])
    nav = metadata.get("dataset", {}).get("calibration", {}).get("nav", [])
    scales = [a.get("scale") if isinstance(a, dict) else None for a in nav[-2:]]
    steps = [float(s) for s in scales if isinstance(s, (int, float)) and s > 0]
    return (steps[0], steps[1]) if len(steps) == 2 else (1.0, 1.0)


def _save_png(path: str, rgb: np.ndarray) -> None:
    from libertem_gpu.errors import LiberTEMGPUError
    from libertem_gpu.outputs import atomic_path

    try:
        from PIL import Image
    except ImportError:
        raise LiberTEMGPUError(
            "--ipf needs pillow, which is not installed: pip install pillow"
        ) from None
    pixels = np.round(np.clip(np.nan_to_num(rgb, nan=0.0), 0, 1) * 255).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp)


def _cmd_orientation_map(args: argparse.Namespace) -> int:
    from libertem_gpu import load_results
    from libertem_gpu.export_ang import write_ang
    from libertem_gpu.udf.orientation_map import ipf_colors, ipf_key
    from libertem_gpu.udf.template_bank import match_orientations

    if args.ang is None and args.ipf is None:
        raise UsageError("say what to write: --ang OUT.ang and/or --ipf OUT.png")
    if args.ang is not None and args.cell is None:
        raise UsageError("--ang needs --cell A B C ALPHA BETA GAMMA for the file's header")
    if args.ipf is not None and not args.ipf.lower().endswith(".png"):
        raise UsageError(f"--ipf {args.ipf}: the map is written as a .png file")
    key = None if args.ipf is None else args.ipf[: -len(".png")] + "_key.png"
    for target in (args.ang, args.ipf, key):
        if target is not None and os.path.lexists(target) and not args.force:
            raise UsageError(f"{target} exists; pass --force to replace it")
    results = load_results(args.results)
    missing = [k for k in ("template", "rotation") if _PREFIX + k not in results]
    if missing:
        raise UsageError(
            f"{args.results}: no {', '.join(_PREFIX + k for k in missing)}: not results of "
            "run --templates"
        )
    template = np.asarray(results[_PREFIX + "template"])[..., 0]
    rotation = np.asarray(results[_PREFIX + "rotation"])[..., 0]
    mirrored = results.get(_PREFIX + "mirrored")
    score = results.get(_PREFIX + "score")
    if template.ndim != 2:
        raise UsageError(
            f"{args.results}: an orientation map needs a 2-D scan, the results have "
            f"{template.ndim} scan dimension(s)"
        )
    bank_path = _bank_orientations(args, results.metadata)
    try:
        bank = np.load(bank_path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError(
            f"--orientations {bank_path}: cannot read a NumPy .npy array ({e})"
        ) from None
    unsolved = ~np.isfinite(rotation)
    found = match_orientations(
        bank,
        np.where(unsolved, 0, template),
        np.where(unsolved, 0.0, rotation),
        None if mirrored is None else np.asarray(mirrored)[..., 0],
    )
    found[unsolved] = np.nan
    written = []
    if args.ang is not None:
        best = None if score is None else np.asarray(score, dtype=np.float64)[..., 0]
        try:
            write_ang(
                args.ang,
                found,
                args.system,
                args.cell,
                score=best,
                step=_step(args, results.metadata),
                phase_name=args.phase,
                overwrite=args.force,
            )
        except FileExistsError:  # appeared since the check above
            raise UsageError(f"{args.ang} exists; pass --force to replace it") from None
        written.append(args.ang)
    if args.ipf is not None and key is not None:
        _save_png(args.ipf, ipf_colors(found, args.system))
        rgba = ipf_key(args.system, 256)
        _save_png(key, rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:]))
        written += [args.ipf, key]
    print(
        f"{int((~unsolved).sum())} of {unsolved.size} positions oriented -> {', '.join(written)}",
        file=sys.stdout,
    )
    return 0
