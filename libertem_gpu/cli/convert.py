"""``libertem-gpu convert IN OUT``: any supported data set to chunked HDF5 or Zarr, streamed with
bounded memory (:func:`libertem_gpu.export.export_dataset`, as ``ctx.export_dataset``)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from libertem_gpu.cli.common import (
    UsageError,
    add_dataset_args,
    add_progress_arg,
    frame_bar,
    load_dataset,
    parse_size,
    want_progress,
)
from libertem_gpu.cropping import NavCrop, parse_crop
from libertem_gpu.errors import DataSetError

__all__ = ["add_convert"]


def add_convert(sub: Any) -> None:
    """The ``convert`` sub-command."""
    from libertem_gpu.export import CHUNK_BYTES, COMPRESSIONS

    p = sub.add_parser(
        "convert",
        help="convert a data set to chunked HDF5, Zarr, .npy or sparse frames (raw_csr)",
        description="Copy every frame of a data set, in scan order, to a new chunked HDF5 "
        "file (OUT.h5, dataset /data) or Zarr store (OUT.zarr, array data), shaped scan + "
        "frame, in chunks of whole frames that partitions read back whole. Streams with "
        "bounded memory; OUT appears complete or not at all; an existing OUT is kept unless "
        "--force.",
    )
    add_dataset_args(p)
    p.add_argument(
        "out",
        metavar="OUT",
        help="the new file: .h5/.hdf5 (HDF5), .zarr, .npy, or .toml (sparse frames, raw_csr: "
        "the non-zero pixels only, for counting detectors)",
    )
    p.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        help="compress chunks: gzip (HDF5 built-in), lz4 or zstd (hdf5plugin for HDF5)",
    )
    p.add_argument(
        "--chunk-size",
        type=parse_size,
        default=CHUNK_BYTES,
        metavar="SIZE",
        help=f"target chunk size, e.g. 4MiB (default {CHUNK_BYTES // 2**20} MiB)",
    )
    p.add_argument(
        "--bin-sig",
        type=_bin_factors,
        metavar="N or Y,X",
        help="sum blocks of N x N (or Y x X) detector pixels of every frame, in a wider integer "
        "type where needed; edge pixels that fill no whole block are left out",
    )
    p.add_argument(
        "--bin-nav",
        type=_bin_factors,
        metavar="N or Y,X",
        help="sum blocks of N x N (or Y x X) scan positions (after --crop-nav), in a wider "
        "integer type where needed; positions at the far edges that fill no whole block are "
        "left out",
    )
    p.add_argument(
        "--crop-nav",
        type=_crop,
        metavar="A:B,C:D",
        help="only the scan positions in this box, start:stop[:step] per scan axis (as NumPy "
        "slices: parts may be empty, negative numbers count from the end); only they are read",
    )
    p.add_argument(
        "--crop-sig",
        type=_crop,
        metavar="A:B,C:D",
        help="only this box of each frame, start:stop[:step] per frame axis (before --bin-sig)",
    )
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    add_progress_arg(p)
    p.set_defaults(func=_cmd_convert)


def _crop(text: str) -> tuple[tuple[int | None, ...], ...]:
    try:
        return parse_crop(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _bin_factors(text: str) -> int | tuple[int, ...]:
    """``2`` or ``2,4``: pixels per block along all signal axes, or along each."""
    try:
        factors = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected pixels per block such as 2 or 2,4, got {text!r}"
        ) from None
    return factors[0] if len(factors) == 1 else factors


def _cmd_convert(args: argparse.Namespace) -> int:
    from libertem_gpu.api import Context
    from libertem_gpu.export import EXPORT_FORMATS, export_dataset
    from libertem_gpu.sizes import format_size

    ext = os.path.splitext(args.out.rstrip("/\\"))[1].lower()
    if ext not in EXPORT_FORMATS:
        raise UsageError(
            f"OUT {args.out}: unknown extension {ext or '(none)'!r}; use "
            f"{', '.join(sorted(EXPORT_FORMATS))}"
        )
    if os.path.lexists(args.out) and not args.force:
        raise DataSetError(f"{args.out} exists; pass --force to replace it")
    with Context("inline") as ctx:
        ds = load_dataset(ctx, args)
        bar = None
        frames = ds.shape.nav_size
        if args.crop_nav is not None:  # a bad box fails here, before the bar
            frames = int(NavCrop(ds.nav_shape, args.crop_nav).roi_flat.sum())
        if want_progress(args):
            bar = frame_bar(frames, ds.frame_bytes, "libertem-gpu convert")
        try:
            export_dataset(
                ds,
                args.out,
                overwrite=args.force,
                compression=args.compression,
                chunk_bytes=args.chunk_size,
                bin_sig=args.bin_sig,
                crop_nav=args.crop_nav,
                crop_sig=args.crop_sig,
                bin_nav=args.bin_nav,
                progress=None if bar is None else lambda done, _total: bar.update(done - bar.n),
            )
        finally:
            if bar is not None:
                bar.close()
    binned = "" if args.bin_sig is None else f", binned by {args.bin_sig}"
    if args.bin_nav is not None:
        binned += f", scan binned by {args.bin_nav}"
    if args.crop_nav is not None or args.crop_sig is not None:
        binned = f", {frames} frames cropped{binned}"
    print(
        f"{args.path} ({ds.format_name}, {' x '.join(map(str, (*ds.nav_shape, *ds.sig_shape)))} "
        f"{ds.dtype}, {format_size(ds.nbytes)}) -> {args.out}{binned}"
    )
    return 0
