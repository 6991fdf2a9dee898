"""``libertem-gpu info``, ``demo`` and ``worker``: what a file holds, the synthetic demo, and
joining a dask cluster."""

from __future__ import annotations

import argparse
import json
from typing import Any

from libertem_gpu.cli.common import (
    add_context_args,
    add_dataset_args,
    load_dataset,
    parse_shape,
    parse_size,
)
from libertem_gpu.errors import LiberTEMGPUError

__all__ = ["add_demo", "add_info", "add_worker"]


def add_demo(sub: Any) -> None:
    """The ``demo`` sub-command."""
    demo = sub.add_parser(
        "demo",
        help="generate a synthetic 4D-STEM data set and analyse it",
        description="Generate a synthetic 4D-STEM data set (a diffraction disk that moves and "
        "dims over a lattice of atomic columns, Poisson noise, uint16) as a raw file in a "
        "temporary folder; run sum, virtual bright field, annular dark field and centre of "
        "mass in one pass; save the results (NPZ, HDF5 if h5py is installed, PNG if pillow "
        "is installed) and print the throughput.",
    )
    demo.add_argument(
        "--size", type=parse_size, default="1GiB", help="data set size, e.g. 64MiB, 1GiB (default)"
    )
    demo.add_argument(
        "--out",
        default="libertem-gpu-demo",
        metavar="DIR",
        help="folder for the results (default ./libertem-gpu-demo)",
    )
    demo.add_argument(
        "--keep", action="store_true", help="keep the generated raw file (path is printed)"
    )
    demo.add_argument(
        "--sig-shape", type=parse_shape, default=(256, 256), help="frame shape (default 256,256)"
    )
    demo.add_argument(
        "--tmp-dir", metavar="DIR", help="where to write the data (default: system temp folder)"
    )
    demo.add_argument("--progress", action="store_true", help="show a progress bar")
    add_context_args(demo)
    demo.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from libertem_gpu.demo import run_demo

    run_demo(
        args.size,
        args.out,
        executor=args.executor,
        backend=args.backend,
        scheduler=args.scheduler,
        keep=args.keep,
        sig_shape=tuple(args.sig_shape),
        tmp_dir=args.tmp_dir,
        progress=args.progress,
    )
    return 0


def add_info(sub: Any) -> None:
    """The ``info`` sub-command."""
    info = sub.add_parser(
        "info",
        help="print what a data file holds",
        description="Open a data file (format detected, or --format) and print its format, "
        "shape, dtype, frame count, calibration and the metadata found.",
    )
    add_dataset_args(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)


def _format_value(value: Any) -> str:
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        return " x ".join(str(v) for v in value) if value else "()"
    return str(value)


def _calibration_lines(cal: Any) -> list[str]:
    lines = []
    for label, axes in (("scan step", cal.nav), ("pixel size", cal.sig)):
        if any(a is not None for a in axes):
            lines.append(
                f"{label + ':':<12} "
                + " x ".join("?" if a is None else f"{a.scale:g} {a.units}".strip() for a in axes)
            )
    if cal.camera_length is not None:
        lines.append(f"{'camera:':<12} {cal.camera_length:g} {cal.camera_length_units}".rstrip())
    return lines


def _cmd_info(args: argparse.Namespace) -> int:
    from libertem_gpu.api import Context
    from libertem_gpu.sizes import format_size

    with Context("inline") as ctx:
        ds = load_dataset(ctx, args)
        info = ds.info()
        calibration = ds.calibration
    if args.json:
        doc = {"path": args.path, **info, "calibration": calibration.to_dict()}
        print(json.dumps(doc, indent=2, default=str))
        return 0
    print(f"file:        {args.path}")
    known = ("format", "nav_shape", "sig_shape", "dtype", "image_count", "sync_offset", "nbytes")
    labels = ("format", "scan", "frame", "dtype", "frames", "sync offset", "size")
    for key, label in zip(known, labels, strict=True):
        if key in info:
            value = info[key]
            text = f"{format_size(value)} ({value} bytes)" if key == "nbytes" else value
            print(f"{label + ':':<12} {_format_value(text)}")
    for line in _calibration_lines(calibration):
        print(line)
    extra = {k: v for k, v in info.items() if k not in known}
    if extra:
        print("metadata:")
        for key, value in extra.items():
            print(f"  {key}: {_format_value(value)}")
    return 0


def add_worker(sub: Any) -> None:
    """The ``worker`` sub-command (its arguments go to the dask worker's own parser)."""
    worker = sub.add_parser(
        "worker",
        help="join a dask cluster as a worker (needs libertem_gpu[cluster])",
        description="Start a dask worker for libertem_gpu connected to the scheduler at "
        "ADDRESS. The remaining arguments go to the worker (see 'libertem-gpu worker ADDRESS "
        "--help').",
        add_help=False,
    )
    worker.add_argument("args", nargs=argparse.REMAINDER, help="ADDRESS and worker options")
    worker.set_defaults(func=_cmd_worker)


def _cmd_worker(args: argparse.Namespace) -> int:
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise LiberTEMGPUError(
            "'libertem-gpu worker' needs dask.distributed, which is not installed: "
            "pip install 'libertem_gpu[cluster]'"
        ) from None
    from libertem_gpu.cluster_cli import worker_main

    rest = list(args.args[1:] if args.args[:1] == ["--"] else args.args)
    result = worker_main(rest)
    return int(result or 0)
