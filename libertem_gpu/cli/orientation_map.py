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
        "beside it (--ipf OUT.png, OUT_key.png), the phase of each position (--phase-map "
        "OUT.png) for a bank of several phases (templates --append), the kernel average "
        "misorientation (--kam) and the grains (--grains). The phases' names, systems and "
        "cells come from the bank's BANK_phases.json. Positions without data are unindexed in "
        "the .ang file and black in the images (images need pillow).",
    )
    p.add_argument("results", metavar="RESULTS", help="results file of run --templates")
    p.add_argument(
        "--system",
        choices=SYSTEMS,
        help="the crystal system, where the bank does not say (templates without --system)",
    )
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
        help="lattice parameters for the .ang header, where the bank does not say",
    )
    p.add_argument("--ang", metavar="OUT.ang", help="write the orientation map as TSL .ang")
    p.add_argument("--ipf", metavar="OUT.png", help="write the IPF-Z map and OUT_key.png")
    p.add_argument("--phase-map", metavar="OUT.png", help="write each position's phase")
    p.add_argument(
        "--kam",
        metavar="OUT.png",
        help="write the kernel average misorientation (degrees, four neighbours) as OUT.png "
        "and, the values, OUT.tif",
    )
    p.add_argument(
        "--grains",
        metavar="OUT.png",
        help="write the grains (neighbours within --boundary-angle, one phase), each its own "
        "colour, and their labels as OUT.tif",
    )
    p.add_argument(
        "--boundary-angle",
        type=float,
        default=5.0,
        metavar="DEG",
        help="--kam and --grains: neighbours farther apart are across a grain boundary (default 5)",
    )
    p.add_argument(
        "--step",
        nargs=2,
        type=float,
        metavar=("DY", "DX"),
        help="scan step for the .ang file (default: the data set's calibration, else 1)",
    )
    p.add_argument("--phase", help="the phase's name, where the bank does not say")
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


#: Phase map colours, one per phase in the bank's order (then repeated); unindexed black.
_PHASE_COLOURS = np.array(
    [
        [0.12, 0.47, 0.71],
        [1.00, 0.50, 0.05],
        [0.17, 0.63, 0.17],
        [0.84, 0.15, 0.16],
        [0.58, 0.40, 0.74],
        [0.55, 0.34, 0.29],
        [0.89, 0.47, 0.76],
        [0.50, 0.50, 0.50],
    ]
)


def _phases(args: argparse.Namespace, bank_path: str, templates: int) -> tuple[list[Any], Any]:
    """The bank's phases (with system and cell filled in from the options) and each
    template's phase."""
    from libertem_gpu.cli.bank_files import read_phases

    side = ""
    if bank_path.endswith("_orientations.npy"):
        side = bank_path[: -len("_orientations.npy")] + "_phases.json"
    if side and os.path.exists(side):
        phases, which = read_phases(side, templates)
    else:
        phases, which = [{"name": "phase", "system": None, "cell": None}], np.zeros(templates, int)
    filled = []
    for phase in phases:
        system = phase.get("system") or args.system
        if system is None:
            raise UsageError(
                f"the bank does not say the crystal system of phase {phase['name']!r}: pass "
                "--system"
            )
        if phase.get("system") and args.system and args.system != phase["system"]:
            raise UsageError(
                f"--system {args.system}, but the bank's phase {phase['name']!r} is "
                f"{phase['system']}"
            )
        cell = phase.get("cell") or args.cell
        if args.ang is not None and cell is None:
            raise UsageError(
                f"--ang needs the cell of phase {phase['name']!r}, which the bank does not say: "
                "pass --cell A B C ALPHA BETA GAMMA"
            )
        name = args.phase if args.phase and len(phases) == 1 else phase["name"]
        filled.append({"name": name, "system": system, "cell": cell})
    return filled, which


def _kam(found: np.ndarray, phases: list[Any], phase_index: np.ndarray, threshold: float) -> Any:
    """Kernel average misorientation over the map, each phase by its own symmetry."""
    from libertem_gpu.udf.orientation_map import kernel_average_misorientation

    kam = np.full(phase_index.shape, np.nan)
    for system in {p["system"] for p in phases}:
        mine = np.isin(phase_index, [k for k, p in enumerate(phases) if p["system"] == system])
        values = kernel_average_misorientation(found, system, threshold, phase=phase_index)
        kam[mine] = values[mine]
    return kam


def _grains(
    found: np.ndarray, phases: list[Any], phase_index: np.ndarray, angle: float
) -> tuple[np.ndarray, int]:
    """Grain labels over the map, each phase by its own symmetry, numbered across phases."""
    from libertem_gpu.udf.orientation_map import grain_labels

    labels = np.full(phase_index.shape, -1, dtype=np.int64)
    count = 0
    for system in sorted({p["system"] for p in phases}):
        mine = np.isin(phase_index, [k for k, p in enumerate(phases) if p["system"] == system])
        masked = np.where(mine[..., None, None], found, np.nan)
        found_here, n = grain_labels(masked, system, angle, phase=phase_index)
        labels[mine & (found_here >= 0)] = found_here[mine & (found_here >= 0)] + count
        count += n
    return labels, count


def _save_tif(path: str, values: np.ndarray) -> None:
    from PIL import Image

    from libertem_gpu.outputs import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(values.astype(np.float32)).save(tmp)


def _cmd_orientation_map(args: argparse.Namespace) -> int:
    from libertem_gpu import load_results
    from libertem_gpu.export_ang import Phase, write_ang
    from libertem_gpu.udf.orientation_map import ipf_colors, ipf_key
    from libertem_gpu.udf.template_bank import match_orientations

    images = {"--ipf": args.ipf, "--phase-map": args.phase_map, "--kam": args.kam}
    images["--grains"] = args.grains
    if args.ang is None and all(path is None for path in images.values()):
        raise UsageError(
            "say what to write: --ang OUT.ang, --ipf OUT.png, --phase-map, --kam and/or --grains"
        )
    for option, path in images.items():
        if path is not None and not path.lower().endswith(".png"):
            raise UsageError(f"{option} {path}: the map is written as a .png file")
    key_stem = None if args.ipf is None else args.ipf[: -len(".png")] + "_key"
    kam_tif = None if args.kam is None else args.kam[: -len(".png")] + ".tif"
    grains_tif = None if args.grains is None else args.grains[: -len(".png")] + ".tif"
    for target in (args.ang, *images.values(), kam_tif, grains_tif):
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
    phases, template_phase = _phases(args, bank_path, len(bank))
    systems = sorted({p["system"] for p in phases})
    keys = {
        system: f"{key_stem}.png" if len(systems) == 1 else f"{key_stem}_{system}.png"
        for system in systems
    }
    for target in keys.values() if key_stem is not None else ():
        if os.path.lexists(target) and not args.force:
            raise UsageError(f"{target} exists; pass --force to replace it")
    unsolved = ~np.isfinite(rotation)
    found = match_orientations(
        bank,
        np.where(unsolved, 0, template),
        np.where(unsolved, 0.0, rotation),
        None if mirrored is None else np.asarray(mirrored)[..., 0],
    )
    found[unsolved] = np.nan
    phase_index = np.where(unsolved, -1, template_phase[np.where(unsolved, 0, template)])
    written = []
    if args.ang is not None:
        best = None if score is None else np.asarray(score, dtype=np.float64)[..., 0]
        try:
            write_ang(
                args.ang,
                found,
                score=best,
                step=_step(args, results.metadata),
                overwrite=args.force,
                phases=[Phase(p["name"], p["system"], tuple(p["cell"])) for p in phases],
                phase_index=phase_index,
            )
        except FileExistsError:  # appeared since the check above
            raise UsageError(f"{args.ang} exists; pass --force to replace it") from None
        written.append(args.ang)
    if args.ipf is not None:
        colours = np.full((*phase_index.shape, 3), np.nan)
        for k, phase in enumerate(phases):
            here = phase_index == k
            colours[here] = ipf_colors(found[here], phase["system"])
        _save_png(args.ipf, colours)
        written.append(args.ipf)
        for system, key in keys.items():
            rgba = ipf_key(system, 256)
            _save_png(key, rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:]))
            written.append(key)
    if args.phase_map is not None:
        palette = _PHASE_COLOURS[np.arange(len(phases)) % len(_PHASE_COLOURS)]
        image = np.zeros((*phase_index.shape, 3))
        image[phase_index >= 0] = palette[phase_index[phase_index >= 0]]
        _save_png(args.phase_map, image)
        written.append(args.phase_map)
    if args.kam is not None and kam_tif is not None:
        kam = _kam(found, phases, phase_index, args.boundary_angle)
        _save_png(args.kam, np.repeat(np.clip(kam / args.boundary_angle, 0, 1)[..., None], 3, -1))
        _save_tif(kam_tif, kam)
        written += [args.kam, kam_tif]
    grains_said = ""
    if args.grains is not None and grains_tif is not None:
        labels, count = _grains(found, phases, phase_index, args.boundary_angle)
        palette = np.random.default_rng(0).uniform(0.15, 1.0, (max(count, 1), 3))
        image = np.zeros((*labels.shape, 3))
        image[labels >= 0] = palette[labels[labels >= 0]]
        _save_png(args.grains, image)
        _save_tif(grains_tif, labels.astype(np.float32))
        written += [args.grains, grains_tif]
        sizes = np.bincount(labels[labels >= 0], minlength=count)
        grains_said = f"; {count} grains, {sizes.mean() if count else 0:.1f} positions each"
    counts = np.bincount(phase_index[phase_index >= 0], minlength=len(phases))
    shares = ", ".join(f"{p['name']} {c}" for p, c in zip(phases, counts, strict=True))
    print(
        f"{int((~unsolved).sum())} of {unsolved.size} positions oriented ({shares})"
        f"{grains_said} -> {', '.join(written)}",
        file=sys.stdout,
    )
    return 0
