"""Writing frames as a sparse CSR matrix (the ``raw_csr`` format: three raw files and a TOML
file naming them), for :func:`libertem_gpu.export.export_dataset` to a ``.toml`` path.

Event-counting detectors leave most pixels zero: only the non-zero ones are stored, in scan
order, as they stream in. The three data files are written under temporary names and renamed
when complete, the TOML file last, so that a TOML file only ever names complete files.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

import numpy as np

from libertem_gpu.outputs import atomic_path

__all__ = ["csr_files", "open_csr"]

_PARTS = ("indptr", "indices", "data")


def csr_files(target: str) -> dict[str, str]:
    """The files a ``.toml`` export writes: ``toml`` and, beside it, ``<stem>_indptr.raw``,
    ``<stem>_indices.raw`` and ``<stem>_data.raw``."""
    stem = os.path.splitext(target)[0]
    return {"toml": target, **{part: f"{stem}_{part}.raw" for part in _PARTS}}


class _CSRWriter:
    """Takes frames in scan order (``writer[start:stop] = frames``) and appends their non-zero
    pixels to the open files."""

    def __init__(self, files: Mapping[str, BinaryIO], npix: int, dtype: np.dtype) -> None:
        self.files = files
        self.index_dtype = np.dtype("<i4") if npix < 2**31 else np.dtype("<i8")
        self.data_dtype = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
        self.npix = npix
        self.next = 0
        self.nonzeros = 0
        files["indptr"].write(np.zeros(1, "<i8").tobytes())

    def __setitem__(self, frames: slice, values: np.ndarray) -> None:
        start = 0 if frames.start is None else int(frames.start)
        if start != self.next:
            raise RuntimeError(f"CSR export: frames arrive out of order ({start}, not {self.next})")
        flat = np.asarray(values).reshape(len(values), self.npix)
        rows, cols = np.nonzero(flat)  # row-major: each frame's pixels ascending
        counts = np.bincount(rows, minlength=len(flat))
        ends = self.nonzeros + np.cumsum(counts)
        self.files["indptr"].write(ends.astype("<i8").tobytes())
        self.files["indices"].write(cols.astype(self.index_dtype).tobytes())
        self.files["data"].write(flat[rows, cols].astype(self.data_dtype).tobytes())
        self.nonzeros = int(ends[-1]) if len(ends) else self.nonzeros
        self.next = start + len(flat)


@contextlib.contextmanager
def open_csr(
    target: str, nav_shape: tuple[int, ...], sig_shape: tuple[int, ...], dtype: np.dtype
) -> Iterator[Any]:
    """A writer for frames of ``sig_shape`` and ``dtype``, a scan of ``nav_shape``; on leaving
    the block without error the files are complete (renamed into place, TOML last)."""
    paths = csr_files(target)
    with contextlib.ExitStack() as stack:
        toml_tmp = stack.enter_context(atomic_path(paths["toml"]))  # renamed last
        tmp = {part: stack.enter_context(atomic_path(paths[part])) for part in _PARTS}
        handles = {part: stack.enter_context(open(tmp[part], "wb")) for part in _PARTS}
        writer = _CSRWriter(handles, math.prod(sig_shape), np.dtype(dtype))
        yield writer
        for handle in handles.values():
            handle.flush()
        names = {part: os.path.basename(paths[part]) for part in _PARTS}
        dtypes = {
            "indptr": "<i8",
            "indices": writer.index_dtype.str,
            "data": writer.data_dtype.str,
        }
        lines = [
            "[params]",
            'filetype = "raw_csr"',
            f"nav_shape = {list(nav_shape)}",
            f"sig_shape = {list(sig_shape)}",
            "",
            "[raw_csr]",
        ]
        for part in _PARTS:
            lines += [f'{part}_file = "{names[part]}"', f'{part}_dtype = "{dtypes[part]}"']
        with open(toml_tmp, "w") as f:
            f.write("\n".join(lines) + "\n")
