"""The ``libertem-gpu`` command line (also ``python -m libertem_gpu``).

Sub-commands:

``demo``
    Generate a synthetic 4D-STEM data set, analyse it in one pass, save the results.
``info FILE``
    Print what a data file holds.
``run FILE``
    Run built-in analyses over a file and save the results as NPZ.
``worker ADDRESS``
    Join a dask cluster as a worker (needs ``libertem_gpu[cluster]``).

Errors the library raises on purpose (bad files, bad parameters) are printed as one line, without
a traceback, and the command exits with status 1 (``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from libertem_gpu import __version__
from libertem_gpu.errors import DataSetError, LiberTEMGPUError
from libertem_gpu.outputs import atomic_path

__all__ = ["main"]

#: Analyses of ``libertem-gpu run``: name -> (top-level class name, description).
ANALYSES = {
    "sum": ("SumUDF", "sum of all frames (one frame)"),
    "sumsig": ("SumSigUDF", "sum of each frame (one value per scan position)"),
    "std": ("StdDevUDF", "mean, variance and standard deviation over the scan, per pixel"),
    "max": ("MaxUDF", "maximum over the scan, per pixel"),
    "min": ("MinUDF", "minimum over the scan, per pixel"),
    "com": ("CoMUDF", "centre of mass of each frame (with --cy/--cx/--r/--ri)"),
}


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse ``"16,16"``, ``"16x16"`` or ``"16 16"`` into a tuple of ints (argparse type)."""
    parts = [p for p in text.replace("x", ",").replace(" ", ",").split(",") if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if not shape:
        raise argparse.ArgumentTypeError(f"expected a shape such as 16,16 or 16x16, got {text!r}")
    return shape


def _size(text: str) -> int:
    from libertem_gpu.sizes import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="FILE", help="the data file")
    p.add_argument(
        "--format",
        default="auto",
        help="format name (raw, npy, hdf5, mib, ...); default: detect from the file",
    )
    p.add_argument("--nav-shape", type=parse_shape, help="scan shape, e.g. 64,64")
    p.add_argument("--sig-shape", type=parse_shape, help="frame shape, e.g. 256,256")
    p.add_argument("--dtype", help="element type as stored (raw files), e.g. uint16 or '>u2'")
    p.add_argument("--sync-offset", type=int, help="frames to skip (+) or insert (-) at the start")
    p.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another parameter of the format (repeatable; VALUE parsed as JSON if it can be), "
        "e.g. --option file_header=512 or --option ds_path=/entry/data",
    )


def _add_context_args(p: argparse.ArgumentParser, default_executor: str = "threads") -> None:
    p.add_argument(
        "--executor",
        default=default_executor,
        help=f"where partitions run: threads, inline, dask, ... (default {default_executor})",
    )
    p.add_argument(
        "--backend", default="auto", help="compute backend: auto, numpy or cupy (default auto)"
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run on the dask cluster at ADDRESS (e.g. tcp://10.0.0.1:8786) instead",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``libertem-gpu``."""
    parser = argparse.ArgumentParser(
        prog="libertem-gpu",
        description="GPU-first streaming analysis of large 4D-STEM and detector data sets.",
    )
    parser.add_argument("--version", action="version", version=f"libertem_gpu {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks instead of one-line errors"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
        "--size", type=_size, default="1GiB", help="data set size, e.g. 64MiB, 1GiB (default)"
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
    _add_context_args(demo)
    demo.set_defaults(func=_cmd_demo)

    info = sub.add_parser(
        "info",
        help="print what a data file holds",
        description="Open a data file (format detected, or --format) and print its format, "
        "shape, dtype, frame count and the metadata found.",
    )
    _add_dataset_args(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_cmd_info)

    run = sub.add_parser(
        "run",
        help="run built-in analyses over a data file",
        description="Run one or more built-in analyses over a data file in one pass and save "
        "their results in one NPZ file, named ANALYSIS_RESULT (e.g. sum_intensity). Analyses: "
        + "; ".join(f"{k}: {v[1]}" for k, v in ANALYSES.items()),
    )
    _add_dataset_args(run)
    run.add_argument(
        "--analysis",
        action="append",
        choices=sorted(ANALYSES),
        required=True,
        help="analysis to run (repeatable)",
    )
    run.add_argument("--out", required=True, metavar="FILE.npz", help="where to save results")
    run.add_argument("--cy", type=float, help="CoM: disk centre row (default: frame centre)")
    run.add_argument("--cx", type=float, help="CoM: disk centre column (default: frame centre)")
    run.add_argument("--r", type=float, help="CoM: outer radius (default: whole frame)")
    run.add_argument("--ri", type=float, help="CoM: inner radius (default 0)")
    run.add_argument("--progress", action="store_true", help="show a progress bar")
    _add_context_args(run)
    run.set_defaults(func=_cmd_run)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # ``worker`` hands all its arguments (``--help`` included) to the worker's own parser.
    if "worker" in argv and all(a in ("--debug",) for a in argv[: argv.index("worker")]):
        i = argv.index("worker")
        argv = [*argv[: i + 1], "--", *argv[i + 1 :]]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    if args.debug:
        return func(args)
    try:
        return func(args)
    except (LiberTEMGPUError, OSError, ValueError, TypeError) as e:
        # Bad files and parameters: the message says what was expected and what was found.
        print(f"libertem-gpu {args.command}: error: {_message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"libertem-gpu {args.command}: interrupted", file=sys.stderr)
        return 130


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    text = str(e) or type(e).__name__
    return text if isinstance(e, LiberTEMGPUError) else f"{type(e).__name__}: {text}"


def _option_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _load(ctx: Any, args: argparse.Namespace) -> Any:
    kwargs: dict[str, Any] = {"path": args.path}
    for key in ("nav_shape", "sig_shape", "dtype", "sync_offset"):
        value = getattr(args, key)
        if value is not None:
            kwargs[key] = value
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DataSetError(f"--option expects KEY=VALUE, got {item!r}")
        kwargs[key.replace("-", "_")] = _option_value(value)
    missing = [k for k in ("nav_shape", "sig_shape", "dtype") if k not in kwargs]
    if args.format.lower() == "raw" and missing:
        raise DataSetError(
            f"{args.path}: raw files carry no shape: pass "
            + ", ".join("--" + k.replace("_", "-") for k in missing)
        )
    if not os.path.exists(args.path):
        from libertem_gpu.errors import MissingFileError

        raise MissingFileError(f"{args.path!r} does not exist")
    return ctx.load(args.format, **kwargs)


def _context(args: argparse.Namespace) -> Any:
    from libertem_gpu.demo.run import make_context

    return make_context(args.executor, args.backend, args.scheduler)


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


def _format_value(value: Any) -> str:
    if isinstance(value, (tuple, list)) and all(isinstance(v, int) for v in value):
        return " x ".join(str(v) for v in value) if value else "()"
    return str(value)


def _cmd_info(args: argparse.Namespace) -> int:
    from libertem_gpu.api import Context
    from libertem_gpu.sizes import format_size

    with Context("inline") as ctx:
        ds = _load(ctx, args)
        info = ds.info()
    if args.json:
        print(json.dumps({"path": args.path, **info}, indent=2, default=str))
        return 0
    print(f"file:        {args.path}")
    known = ("format", "nav_shape", "sig_shape", "dtype", "image_count", "sync_offset", "nbytes")
    labels = ("format", "scan", "frame", "dtype", "frames", "sync offset", "size")
    for key, label in zip(known, labels, strict=True):
        if key in info:
            value = info[key]
            text = f"{format_size(value)} ({value} bytes)" if key == "nbytes" else value
            print(f"{label + ':':<12} {_format_value(text)}")
    extra = {k: v for k, v in info.items() if k not in known}
    if extra:
        print("metadata:")
        for key, value in extra.items():
            print(f"  {key}: {_format_value(value)}")
    return 0


def _make_udfs(args: argparse.Namespace, sig_shape: tuple[int, ...]) -> list[Any]:
    import libertem_gpu

    udfs = []
    for name in args.analysis:
        cls = getattr(libertem_gpu, ANALYSES[name][0])
        if name == "com":
            params: dict[str, Any] = {
                "cy": args.cy if args.cy is not None else (sig_shape[0] - 1) / 2,
                "cx": args.cx if args.cx is not None else (sig_shape[-1] - 1) / 2,
            }
            if args.r is not None:
                params["r"] = args.r
            if args.ri is not None:
                params["ri"] = args.ri
            udfs.append(cls.with_params(**params))
        else:
            udfs.append(cls())
    return udfs


def _cmd_run(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from libertem_gpu.sizes import format_size

    if not args.out.endswith(".npz"):
        raise LiberTEMGPUError(f"--out must name a .npz file, got {args.out!r}")
    ctx = _context(args)
    try:
        ds = _load(ctx, args)
        udfs = _make_udfs(args, ds.sig_shape)
        t0 = time.perf_counter()
        results = ctx.run_udf(dataset=ds, udf=udfs, progress=args.progress)
        seconds = time.perf_counter() - t0
    finally:
        ctx.close()
    arrays: dict[str, Any] = {}
    for name, result in zip(args.analysis, results, strict=True):
        for key, value in result.items():
            arrays[f"{name}_{key}"] = np.asarray(value.data)
    out_dir = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    with atomic_path(args.out) as tmp:
        np.savez(tmp, **arrays)
    print(
        f"{', '.join(args.analysis)} over {format_size(ds.nbytes)} in {seconds:.2f} s "
        f"({ds.nbytes / seconds / 1e9:.2f} GB/s); saved {', '.join(arrays)} to {args.out}"
    )
    return 0


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
