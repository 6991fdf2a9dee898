"""What the sub-commands share: argument types and groups, opening the data set, the context,
progress bars, and errors worded for a shell."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from libertem_gpu.errors import DataSetError, LiberTEMGPUError

__all__ = ["UsageError", "load_dataset", "parse_shape"]


class UsageError(LiberTEMGPUError):
    """A command line that parses but cannot be right (exit status 2)."""


def load_npy(path: str, option: str) -> Any:
    """The array in ``option``'s ``.npy`` file, or an error naming both (exit status 1)."""
    import numpy as np

    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise DataSetError(f"{option} {path}: cannot read a NumPy .npy array ({e})") from None


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


def parse_size(text: str) -> int:
    """``"4MiB"``, ``"1GB"``, ``"512"`` as bytes (argparse type)."""
    from libertem_gpu.sizes import parse_size as parse

    try:
        return parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_dataset_args(p: argparse.ArgumentParser, name: str = "path", metavar: str = "FILE") -> None:
    """The data file and how to open it."""
    p.add_argument(name, metavar=metavar, help="the data file")
    p.add_argument(
        "--format",
        default="auto",
        help="format name (raw, npy, hdf5, mib, ...); default: detect from the file (a file "
        "no format recognises is read as raw when --nav-shape, --sig-shape and --dtype are given)",
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


def add_context_args(p: argparse.ArgumentParser, default_executor: str = "threads") -> None:
    """Where and how the run computes."""
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


def add_progress_arg(p: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress`` (default: on when stderr is a terminal)."""
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="show a progress bar on stderr (default: when stderr is a terminal)",
    )


def want_progress(args: argparse.Namespace) -> bool:
    """The ``--progress`` choice, or whether stderr is a terminal."""
    if args.progress is not None:
        return bool(args.progress)
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def frame_bar(total: int, frame_bytes: int, desc: str) -> Any:
    """A progress bar of frames on stderr, with the rate in GB/s of ``frame_bytes`` per frame."""
    from libertem_gpu.progress import FrameProgress

    return FrameProgress(total, frame_bytes, desc=desc, file=sys.stderr)


def option_value(text: str) -> Any:
    """``--option`` values: JSON where they parse, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


#: Python keywords of the library's messages and the options that set them.
_SHELL_WORDS = {
    "nav_shape": "--nav-shape",
    "sig_shape": "--sig-shape",
    "sync_offset": "--sync-offset",
    "overwrite=True": "--force",
}


def shell_words(text: str) -> str:
    """A library message with its keyword names replaced by the options that set them."""
    for word, option in _SHELL_WORDS.items():
        text = re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w])", option, text)
    return text


def message(e: BaseException) -> str:
    """One line for an error: what was expected and what was found."""
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        return f"{e.filename}: {e.strerror}"
    text = str(e) or type(e).__name__
    text = shell_words(" ".join(text.split()))
    return text if isinstance(e, LiberTEMGPUError) else f"{type(e).__name__}: {text}"


def load_dataset(ctx: Any, args: argparse.Namespace, path: str | None = None) -> Any:
    """Open the data set the command line names (``auto``: detected; a file no format knows
    is raw when --nav-shape, --sig-shape and --dtype are given)."""
    path = args.path if path is None else path
    kwargs: dict[str, Any] = {"path": path}
    for key in ("nav_shape", "sig_shape", "dtype", "sync_offset"):
        value = getattr(args, key)
        if value is not None:
            kwargs[key] = value
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DataSetError(f"--option expects KEY=VALUE, got {item!r}")
        kwargs[key.replace("-", "_")] = option_value(value)
    missing = [k for k in ("nav_shape", "sig_shape", "dtype") if k not in kwargs]
    options = ", ".join("--" + k.replace("_", "-") for k in missing)
    fmt = args.format.lower()
    if fmt == "raw" and missing:
        raise DataSetError(f"{path}: raw files carry no shape: pass {options}")
    if not os.path.exists(path):
        from libertem_gpu.errors import MissingFileError

        raise MissingFileError(f"{path!r} does not exist")
    if fmt == "auto":
        from libertem_gpu.errors import UnknownFormatError
        from libertem_gpu.io.registry import detect_format, format_names

        try:
            detect_format(path)
        except UnknownFormatError:
            if not missing:
                fmt = "raw"
            else:
                raise UnknownFormatError(
                    f"{path}: no format recognises this file; name it with --format (one of "
                    f"{', '.join(format_names())}), or for a raw file pass {options}"
                ) from None
    return ctx.load(fmt, **kwargs)


def make_context(args: argparse.Namespace) -> Any:
    """The context of ``--executor``, ``--backend``, ``--scheduler``."""
    from libertem_gpu.demo.run import make_context as make

    return make(args.executor, args.backend, args.scheduler)
