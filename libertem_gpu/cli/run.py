"""``libertem-gpu run``: built-in analyses over a data file in one pass, saved with their
provenance (HDF5, NPZ or Zarr by the extension of ``--out``) and as images (``--images``)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from typing import Any

import numpy as np

from libertem_gpu.cli.analyses import (
    ANALYSES,
    add_analysis_args,
    any_requested,
    measure_descan,
    plan_analyses,
    plan_parallax,
    plan_pick,
    plan_ssb,
)
from libertem_gpu.cli.clusters import run_clusters
from libertem_gpu.cli.common import (
    UsageError,
    add_context_args,
    add_dataset_args,
    add_progress_arg,
    frame_bar,
    load_dataset,
    load_npy,
    make_context,
    want_progress,
)
from libertem_gpu.cli.ellipse import measure_ellipse
from libertem_gpu.cli.pca import run_pca
from libertem_gpu.cli.ptycho import run_ptycho
from libertem_gpu.errors import DataSetError
from libertem_gpu.resultfiles.provenance import (
    array_entry,
    dataset_provenance,
    dim_names,
    make_metadata,
)
from libertem_gpu.resultfiles.store import RESULT_FORMATS

__all__ = ["add_run"]


def add_run(sub: Any) -> None:
    """The ``run`` sub-command."""
    run = sub.add_parser(
        "run",
        help="run built-in analyses over a data file",
        description="Run built-in analyses over a data file in one pass and save their results, "
        "named ANALYSIS_RESULT (e.g. sum_intensity, bf_intensity), with their provenance (the "
        "analyses and parameters, the data set, its calibration, the library version and the "
        "date): --out FILE (.h5, .npz or .zarr) and/or --images DIR (PNG to view, float32 TIFF "
        "to analyse). Load them back with libertem_gpu.load_results(FILE). Analyses: "
        + "; ".join(f"{k}: {v[1]}" for k, v in ANALYSES.items()),
    )
    add_dataset_args(run)
    run.add_argument(
        "--out",
        metavar="FILE",
        help="results file: .h5 (HDF5), .npz (NumPy) or .zarr (Zarr folder)",
    )
    run.add_argument("--images", metavar="DIR", help="also write each image as PNG and TIFF")
    add_analysis_args(run)
    g = run.add_argument_group("corrections and selection")
    g.add_argument("--dark", metavar="FILE.npy", help="dark frame, subtracted from every frame")
    g.add_argument("--gain", metavar="FILE.npy", help="gain map, multiplied after the dark")
    g.add_argument(
        "--excluded",
        metavar="FILE.npy",
        help="excluded (dead/hot) pixels: a frame-shaped bool mask, or (2, n) coordinates",
    )
    g.add_argument(
        "--roi", metavar="FILE.npy", help="scan positions to process: a bool array like the scan"
    )
    add_progress_arg(run)
    add_context_args(run)
    run.set_defaults(func=_cmd_run)


def _check(args: argparse.Namespace) -> None:
    if not any_requested(args):
        raise UsageError(
            "name at least one analysis: --analysis NAME, a virtual detector (--bf, --adf, "
            "--ring, --disk, --point, --rect, --mask), --pick, --fem, --radial-fourier, "
            "--radial-profile, --parallax, --ssb, --ptychography, --pca, --clusters, --templates, "
            "--ring-strain or --crystallinity"
        )
    if args.out is None and args.images is None:
        raise UsageError("say where to save results: --out FILE (.h5, .npz, .zarr), --images DIR")
    if args.out is not None:
        ext = os.path.splitext(args.out.rstrip("/\\"))[1].lower()
        if ext not in RESULT_FORMATS:
            raise DataSetError(
                f"--out {args.out}: unknown extension {ext or '(none)'!r}; use .h5, .npz or .zarr"
            )


def _corrections(args: argparse.Namespace) -> tuple[Any, dict[str, Any] | None]:
    files = {"dark": args.dark, "gain": args.gain, "excluded": args.excluded}
    if not any(files.values()):
        return None, None
    from libertem_gpu import CorrectionSet

    arrays = {k: None if v is None else load_npy(v, f"--{k}") for k, v in files.items()}
    if arrays["excluded"] is not None and arrays["excluded"].dtype != bool:
        arrays["excluded"] = arrays["excluded"].astype(np.int64)
    corrections = CorrectionSet(
        dark=arrays["dark"], gain=arrays["gain"], excluded_pixels=arrays["excluded"]
    )
    return corrections, {k: v for k, v in files.items() if v}


def _run_pass(ctx: Any, ds: Any, udfs: list[Any], roi: Any, corrections: Any, bar: Any) -> Any:
    """Run ``udfs`` in one pass; advance ``bar`` by the frames processed."""
    results = None
    for partial in ctx.run_udf_iter(dataset=ds, udf=udfs, roi=roi, corrections=corrections):
        results = partial
        if bar is not None:
            done = int(np.count_nonzero(partial.damage.raw_data))
            bar.update(done - bar.n)
    assert results is not None
    return results.buffers


def _cmd_run(args: argparse.Namespace) -> int:
    from libertem_gpu.sizes import format_size

    _check(args)
    corrections, correction_files = _corrections(args)
    roi = None if args.roi is None else load_npy(args.roi, "--roi")
    if roi is not None and roi.dtype != bool:
        raise UsageError(f"--roi {args.roi}: expected a bool array, got dtype {roi.dtype}")
    ctx = make_context(args)
    try:
        ds = load_dataset(ctx, args)
        if corrections is not None:
            corrections.check(ds.sig_shape)
        if roi is not None:
            ds.check_roi(roi)
        measure_descan(args, ctx, ds, corrections)
        measure_ellipse(args, ctx, ds, corrections)
        planned = plan_analyses(args, ds.sig_shape)
        if args.parallax is not None:
            planned.append(plan_parallax(args, ctx, ds, corrections))
        if args.ssb is not None:
            planned.append(plan_ssb(args, ctx, ds, corrections))
        picks = plan_pick(args, ds.nav_shape)
        total = ds.shape.nav_size if roi is None else int(np.count_nonzero(roi))
        bar = frame_bar(total, ds.frame_bytes, "libertem-gpu run") if want_progress(args) else None
        t0 = time.perf_counter()
        try:
            buffers = (
                _run_pass(ctx, ds, [p.udf for p in planned], roi, corrections, bar)
                if planned
                else ()
            )
        finally:
            if bar is not None:
                bar.close()
        picked = None
        if picks is not None:
            from libertem_gpu import PickUDF

            picked = ctx.run_udf(dataset=ds, udf=PickUDF(), roi=picks[0], corrections=corrections)
        pca = None if args.pca is None else run_pca(args, ctx, ds, roi, corrections)
        clusters = None
        if args.clusters is not None:
            found = None if pca is None else pca[3]
            clusters = run_clusters(args, ctx, ds, roi, corrections, found)
        ptycho = None
        if args.ptychography is not None:
            ptycho = run_ptycho(args, ctx, ds, roi, corrections)
        seconds = time.perf_counter() - t0
    finally:
        ctx.close()
    nav_ndim, sig_ndim = len(ds.nav_shape), len(ds.sig_shape)
    arrays: dict[str, Any] = {}
    entries: dict[str, Any] = {}
    analyses: list[dict[str, Any]] = []
    for plan, results in zip(planned, buffers, strict=True):
        got, described = plan.collect(results, nav_ndim, sig_ndim)
        arrays.update(got)
        entries.update(described)
        analyses += plan.analyses
    if picks is not None and picked is not None:
        assert isinstance(picked, dict)
        frames = np.asarray(picked["intensity"].raw_data)
        arrays["pick_intensity"] = frames
        entries["pick_intensity"] = array_entry(
            "pick", "intensity", "single", ["frame", *dim_names("sig", ds.sig_shape, 0, sig_ndim)]
        )
        arrays["pick_positions"] = np.array(picks[1], dtype=np.int64).reshape(-1, nav_ndim)
        entries["pick_positions"] = array_entry("pick", "positions", "single", ["frame", "axis"])
        analyses.append({"name": "pick", "udf": "PickUDF", "parameters": {"positions": picks[1]}})
    for extra in (pca, clusters, ptycho):
        if extra is not None:
            arrays.update(extra[0])
            entries.update(extra[1])
            analyses.append(extra[2])
    metadata = make_metadata(
        analyses=analyses,
        dataset=dataset_provenance(ds, roi=roi, roi_source=args.roi),
        arrays=entries,
        corrections=correction_files,
        extra={"command": shlex.join(["libertem-gpu", *args.argv]), "seconds": seconds},
    )
    written = _save(args, arrays, metadata)
    print(
        f"{', '.join(a['name'] for a in analyses)} over {format_size(ds.nbytes)} in "
        f"{seconds:.2f} s ({ds.nbytes / max(seconds, 1e-9) / 1e9:.2f} GB/s); saved "
        f"{', '.join(arrays)} to {', '.join(written)}"
    )
    return 0


def _save(args: argparse.Namespace, arrays: dict[str, Any], metadata: dict[str, Any]) -> list[str]:
    written = []
    if args.out is not None:
        from libertem_gpu.resultfiles.store import save_results

        written.append(save_results(args.out, arrays, metadata))
    if args.images is not None:
        from libertem_gpu.resultfiles.images import save_images

        entries = metadata["arrays"]
        images = {
            name: value
            for name, value in arrays.items()
            if entries[name]["dims"][:2]
            in (
                ["scan_y", "scan_x"],
                ["sig_y", "sig_x"],
                ["freq_y", "freq_x"],
                ["fine_y", "fine_x"],
            )
        }
        log = {n: entries[n]["dims"][0] != "scan_y" and n != "logsum_logsum" for n in images}
        files, notes = save_images(args.images, images, log=log)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        written.append(f"{args.images} ({len(files)} images)")
    return written
