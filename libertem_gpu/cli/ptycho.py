"""``libertem-gpu run --ptychography KV STEP MRAD``: iterative ptychography
(:func:`~libertem_gpu.ptychography`) after the main pass, saved with the run's other results.
The disk and the optics are given as for ``--ssb`` (``--cy/--cx/--semiconv-pix``,
``--scan-rotation``, ``--flip-y``, ``--defocus``)."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from libertem_gpu.cli.common import UsageError, load_npy, want_progress
from libertem_gpu.resultfiles.provenance import array_entry

__all__ = ["add_ptycho_args", "run_ptycho"]


def add_ptycho_args(group: Any) -> None:
    """``--ptychography KV STEP MRAD`` and its settings in the analyses' argument group."""
    group.add_argument(
        "--ptychography",
        nargs=3,
        type=float,
        metavar=("KV", "STEP", "MRAD"),
        help="iterative ptychography of a 2-D scan: accelerating voltage (kV), scan step (Å) "
        "and semi-convergence angle (mrad); the disk from --cy, --cx and --semiconv-pix or "
        "the mean frame; with --scan-rotation, --flip-y and --defocus (the start of the "
        "probe, refined); the frames' windows are held in memory",
    )
    group.add_argument(
        "--ptycho-iterations", type=int, default=30, metavar="N", help="(default 30)"
    )
    group.add_argument(
        "--ptycho-window",
        type=int,
        metavar="PIXELS",
        help="side of each frame's window about the disk (default: the largest that fits)",
    )
    group.add_argument(
        "--ptycho-binning", type=int, default=1, metavar="B", help="bin the window B x B"
    )
    group.add_argument(
        "--ptycho-positions",
        type=float,
        default=0.0,
        metavar="STEP",
        help="correct the probe positions with this step (1 to 2; default 0: as scanned)",
    )
    group.add_argument(
        "--ptycho-modes",
        type=int,
        default=1,
        metavar="M",
        help="incoherent probe modes, for a partly coherent beam (default 1)",
    )
    group.add_argument(
        "--ptycho-vacuum",
        metavar="FILE.npy",
        help="a frame recorded without specimen with the same beam: the starting probe's "
        "aperture (corrected by --dark/--gain/--excluded as the frames are)",
    )


def run_ptycho(
    args: argparse.Namespace, ctx: Any, ds: Any, roi: Any, corrections: Any
) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """Reconstruct and return ``(arrays, array entries, provenance entry)``."""
    from libertem_gpu import ptychography
    from libertem_gpu.cli.analyses import probe_optics

    if len(ds.nav_shape) != 2 or len(ds.sig_shape) != 2:
        raise UsageError("--ptychography needs a 2-D scan of 2-D frames")
    if args.ptycho_iterations < 1:
        raise UsageError(f"--ptycho-iterations {args.ptycho_iterations}: must be 1 or more")
    if args.ptycho_modes < 1:
        raise UsageError(f"--ptycho-modes {args.ptycho_modes}: must be 1 or more")
    kv, params = probe_optics(args, "--ptychography", ctx, ds, corrections)
    params.update({
        "window": args.ptycho_window,
        "binning": args.ptycho_binning,
        "iterations": args.ptycho_iterations,
        "probe_modes": args.ptycho_modes,
        "position_step": args.ptycho_positions,
    })  # fmt: skip
    vacuum = None
    if args.ptycho_vacuum is not None:
        vacuum = load_npy(args.ptycho_vacuum, "--ptycho-vacuum")
        params["vacuum"] = args.ptycho_vacuum  # the file, for the provenance
    found = ptychography(
        ctx,
        ds,
        roi=roi,
        corrections=corrections,
        progress=want_progress(args),
        **{**params, "vacuum": vacuum},
    )
    arrays = {
        "ptycho_phase": found.phase,
        "ptycho_object_phase": np.angle(found.object),
        "ptycho_object": found.object,
        "ptycho_probe": found.probe,
        "ptycho_errors": found.errors,
    }
    probe_dims = ["mode", "probe_y", "probe_x"][3 - found.probe.ndim :]
    entries = {
        "ptycho_phase": array_entry("ptychography", "phase", "nav", ["scan_y", "scan_x"]),
        "ptycho_object_phase": array_entry(
            "ptychography",
            "object_phase",
            "single",
            ["fine_y", "fine_x"],
            pixel_size_angstrom=found.pixel_size,
        ),
        "ptycho_object": array_entry("ptychography", "object", "single", ["object_y", "object_x"]),
        "ptycho_probe": array_entry("ptychography", "probe", "single", probe_dims),
        "ptycho_errors": array_entry("ptychography", "errors", "single", ["iteration"]),
    }
    params.update(voltage_kv=kv, pixel_size_angstrom=found.pixel_size, window=list(found.window))
    return arrays, entries, {"name": "ptychography", "udf": "ptychography", "parameters": params}
