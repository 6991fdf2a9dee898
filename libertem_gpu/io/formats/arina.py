"""DECTRIS ARINA acquisitions: a NeXus master file (``*_master.h5``) whose ``/entry/data`` group
links, in order, to data files (``*_data_000001.h5``, ...) each holding a stack of frames at
``/entry/data/data``, bitshuffle/LZ4-compressed and chunked per frame (the EIGER/ARINA layout)."""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError, MissingFileError
from libertem_gpu.io.chunked import aligned_partitions, library_errors
from libertem_gpu.io.dataset import native, parse_dtype
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, require_file
from libertem_gpu.io.formats.hdf5_reader import (
    H5Part,
    H5Reader,
    bitshuffle_options,
    check_filters,
    direct_segments,
    has_hdf5_magic,
    import_h5py,
)
from libertem_gpu.io.layout import FileSegment, FrameLayout
from libertem_gpu.io.partition import Partition, partition_frame_count
from libertem_gpu.io.reader import FrameReader

if TYPE_CHECKING:
    pass

_DATA_LINK = re.compile(r"^data_(\d+)$")
_SPECIFIC = "entry/instrument/detector/detectorSpecific"
_MAX_METADATA_ITEMS = 4096


def _scalar(group: Any, name: str) -> Any:
    """A scalar from the master file's metadata, or ``None`` if absent or unreadable."""
    try:
        dset = group[name]
        # A damaged header may give a "scalar" a huge shape, or a variable-length string a
        # heap reference that HDF5 follows for minutes: metadata is not worth either (DECTRIS
        # writes fixed-length strings).
        if dset.size > _MAX_METADATA_ITEMS or dset.dtype.kind == "O":
            return None
        value = dset[()]
    except Exception:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size > 1 else value.reshape(-1)[0].item()
    return value.item() if isinstance(value, np.generic) else value


class ArinaDataSet(FileDataSet):
    """A DECTRIS ARINA (or EIGER NeXus) acquisition, opened from its master file.

    The frames of the data files are numbered in the order of the ``data_NNNNNN`` links. The
    scan shape is not recorded by the detector: give ``nav_shape``, or a square scan is assumed
    when the frame count is a perfect square (else a 1-D scan of all frames).

    Parameters
    ----------
    path : str
        The master file, ``<name>_master.h5``.
    nav_shape : tuple of int, optional
        Scan shape; by default square if the frame count is a square number, else 1-D.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("arina", path="scan_master.h5", nav_shape=(256, 256))  # doctest: +SKIP
    """

    format_name = "arina"
    extensions = ("h5",)

    # Set by _initialize: the data files' datasets, and their byte ranges where direct reads
    # are possible.
    _parts: Sequence[H5Part] = ()
    _segments: list[FileSegment] | None = None

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        return str(path).lower().endswith("_master.h5") and has_hdf5_magic(str(path))

    def _initialize(self) -> None:
        path = require_file(self.path, "ARINA master file")
        if not has_hdf5_magic(path):
            raise FileFormatError(f"{path}: not an HDF5 file, expected an ARINA master file")
        h5py = import_h5py()
        directory = os.path.dirname(os.path.abspath(path))
        with library_errors(path, "reading the ARINA master file"), h5py.File(path, "r") as f:
            group = f.get("entry/data")
            if not isinstance(group, h5py.Group):
                raise FileFormatError(
                    f"{path}: no /entry/data group; expected an ARINA/EIGER master file with "
                    "/entry/data/data_000001, ... links to the data files"
                )
            names = sorted(
                (int(m.group(1)), name) for name in group if (m := _DATA_LINK.match(name))
            )
            if not names:
                raise FileFormatError(
                    f"{path}: /entry/data holds no data_NNNNNN entries (found {sorted(group)})"
                )
            targets = []
            for _, name in names:
                link = group.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    target = os.path.join(directory, link.filename)
                    if not os.path.isfile(target):
                        raise MissingFileError(
                            f"{path}: data file {link.filename!r} of entry /entry/data/{name} "
                            f"does not exist (looked for {target})"
                        )
                    targets.append((target, link.path))
                else:  # the frames live in the master file itself
                    targets.append((os.path.abspath(path), f"/entry/data/{name}"))
            spec = f.get(_SPECIFIC)
            meta = {}
            if isinstance(spec, h5py.Group):
                for key in ("nimages", "ntrigger", "x_pixels_in_detector", "y_pixels_in_detector"):
                    meta[key] = _scalar(spec, key)
            meta["description"] = _scalar(f, "entry/instrument/detector/description")
        self._open_data_files(path, targets, meta)

    def _open_data_files(
        self, master: str, targets: list[tuple[str, str]], meta: dict[str, Any]
    ) -> None:
        h5py = import_h5py()
        parts: list[H5Part] = []
        segments: list[FileSegment] | None = []
        dtype = None
        for file_path, ds_path in targets:
            with library_errors(file_path, "reading the ARINA data file"):
                with h5py.File(file_path, "r") as f:
                    dset = f.get(ds_path)
                    if not isinstance(dset, h5py.Dataset) or dset.ndim != 3:
                        raise FileFormatError(
                            f"{file_path}: expected a 3-D frame stack at {ds_path} (linked from "
                            f"{master}), found {dset!r}"
                        )
                    this = parse_dtype(dset.dtype, what=f"dtype of {file_path}:{ds_path}")
                    if parts and (this != dtype or dset.shape[1:] != parts[0].shape[1:]):
                        raise FileFormatError(
                            f"{file_path}: frames of shape {dset.shape[1:]} and dtype {this}, "
                            f"but {parts[0].path} has {parts[0].shape[1:]} and {dtype}"
                        )
                    dtype = this
                    check_filters(dset, file_path)
                    if segments is not None:
                        found = direct_segments(dset, file_path, 2)
                        segments = None if found is None else segments + found
                    chunks = None if dset.chunks is None else tuple(dset.chunks)
                    shape = tuple(dset.shape)
                    options = bitshuffle_options(dset)
                    parts.append(H5Part(file_path, ds_path, shape, 2, chunks, options))
        assert dtype is not None
        sig = parts[0].shape[1:]
        total = sum(p.num_frames for p in parts)
        if segments is not None:
            FrameLayout(tuple(segments), math.prod(sig) * dtype.itemsize).check_file_sizes(
                "its frames"
            )
        self._parts = parts
        self._segments = segments
        nav: tuple[int, ...] = (total,)
        side = math.isqrt(total)
        if side * side == total:
            nav = (side, side)
        storage = dtype if segments is not None else native(dtype)
        self._set_layout(nav, sig, storage, total, source=master)
        if segments is None:  # decode a frame of every file now: broken files show at load
            with H5Reader(parts, tuple(sig), self.dtype) as reader:
                buf = np.empty((1, *sig), dtype=self.dtype)
                for start in np.cumsum([0] + [p.num_frames for p in parts[:-1]]).tolist():
                    reader.read_into(buf, start, start + 1)
        self._meta = {
            "path": master,
            "data_files": [p.path for p in parts],
            "frames_per_file": [p.num_frames for p in parts],
            "direct_io": segments is not None,
            **{k: v for k, v in meta.items() if v is not None},
        }
        expected = meta.get("nimages")
        if isinstance(expected, int) and isinstance(meta.get("ntrigger"), int):
            expected *= meta["ntrigger"]
        if isinstance(expected, int) and expected != total:
            self._meta["warning"] = (
                f"the master file announces {expected} frames, the data files hold {total}"
            )
            warnings.warn(f"{master}: {self._meta['warning']}", stacklevel=3)

    def _snapper(self) -> Callable[[int], int] | None:
        """Snap to chunk boundaries inside each data file (file boundaries are chunk
        boundaries)."""
        if all(p.chunks is None or p.chunks[0] == 1 for p in self._parts):
            return None
        starts = np.cumsum([0] + [p.num_frames for p in self._parts]).tolist()

        def snap(f: int) -> int:
            k = min(len(self._parts) - 1, max(0, int(np.searchsorted(starts, f, "right")) - 1))
            c = (self._parts[k].chunks or (1,))[0]
            return min(starts[k] + round((f - starts[k]) / c) * c, starts[k + 1])

        return snap

    def get_partitions(self, n_workers: int = 1) -> list[Partition]:
        frames = partition_frame_count(
            self.shape.nav_size, self.frame_bytes, n_workers, num_partitions=self._num_partitions
        )
        return aligned_partitions(self.shape.nav_size, frames, self.sync_offset, self._snapper())

    def get_reader(self) -> FrameReader:
        if not self._parts:
            raise DataSetError("ArinaDataSet is not initialized: call initialize()")
        if self._segments is not None:
            return FixedLayoutReader(self._segments, self.sig_shape, self.storage_dtype)
        return H5Reader(self._parts, self.sig_shape, self.storage_dtype)
