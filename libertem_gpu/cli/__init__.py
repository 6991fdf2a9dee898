"""The ``libertem-gpu`` command line (also ``python -m libertem_gpu``).

Sub-commands:

``demo``
    Generate a synthetic 4D-STEM data set, analyse it in one pass, save the results.
``info FILE``
    Print what a data file holds.
``run FILE``
    Run built-in analyses over a file; save the results with their provenance (HDF5, NPZ, Zarr,
    images).
``convert IN OUT``
    Copy a data set to chunked HDF5, Zarr, .npy or sparse frames (raw_csr).
``templates OUT.npy``
    Write a kinematic template bank of a crystal for ``run --templates``.
``orientation-map RESULTS``
    Orientations of ``run --templates`` results as a TSL ``.ang`` file and an IPF image.
``worker ADDRESS``
    Join a dask cluster as a worker (needs ``libertem_gpu[cluster]``).

Exit status: 0 success; 1 failure (bad files and parameters: one line on stderr, no traceback;
``--debug`` shows it); 2 usage (a command line that cannot be right); 130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from libertem_gpu import __version__
from libertem_gpu.cli.analyses import ANALYSES
from libertem_gpu.cli.common import UsageError, message, parse_shape
from libertem_gpu.cli.convert import add_convert
from libertem_gpu.cli.info import add_demo, add_info, add_worker
from libertem_gpu.cli.orientation_map import add_orientation_map_command
from libertem_gpu.cli.run import add_run
from libertem_gpu.cli.templates import add_templates_command
from libertem_gpu.errors import LiberTEMGPUError

__all__ = ["ANALYSES", "build_parser", "main", "parse_shape"]


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
    add_demo(sub)
    add_info(sub)
    add_run(sub)
    add_convert(sub)
    add_templates_command(sub)
    add_orientation_map_command(sub)
    add_worker(sub)
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
    try:
        args = parser.parse_args(argv)
    except KeyboardInterrupt:  # pragma: no cover - Ctrl-C while importing
        return 130
    if args.command is None:
        parser.print_help()
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    args.argv = argv  # for the provenance of saved results
    prefix = f"libertem-gpu {args.command}: error:"
    try:
        return func(args)
    except UsageError as e:
        if args.debug:
            raise
        print(f"{prefix} {message(e)} (see libertem-gpu {args.command} --help)", file=sys.stderr)
        return 2
    except (LiberTEMGPUError, OSError, ValueError, TypeError) as e:
        if args.debug:
            raise
        # Bad files and parameters: the message says what was expected and what was found.
        print(f"{prefix} {message(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"libertem-gpu {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
