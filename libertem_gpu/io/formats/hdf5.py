"""The ``hdf5`` format: any dataset in an HDF5 file, with chunk-aligned partitions
(:mod:`libertem_gpu.io.chunked`); its frames are read as byte ranges where they sit uncompressed
at known offsets, else decoded through h5py (:mod:`libertem_gpu.io.formats.hdf5_reader`).

h5py and hdf5plugin are imported where a file is opened, never when ``libertem_gpu`` is imported.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError
from libertem_gpu.io.chunked import (
    aligned_partitions,
    check_stored_chunks,
    chunk_snapper,
    describe_datasets,
    library_errors,
    pick_dataset,
)
from libertem_gpu.io.dataset import native, parse_dtype
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import StoreDataSet, require_file
from libertem_gpu.io.formats.hdf5_reader import (
    HDF5_MAGIC,
    H5Part,
    H5Reader,
    bitshuffle_options,
    check_filters,
    direct_segments,
    filter_ids,
    has_hdf5_magic,
    import_h5py,
)
from libertem_gpu.io.layout import FileSegment, FrameLayout
from libertem_gpu.io.partition import Partition, partition_frame_count
from libertem_gpu.io.reader import FrameReader


def list_datasets(group: Any) -> list[tuple[str, tuple[int, ...], str]]:
    """``(path, shape, dtype)`` of every dataset under an h5py group (hard links only)."""
    h5py = import_h5py()
    found: list[tuple[str, tuple[int, ...], str]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(("/" + name.lstrip("/"), tuple(obj.shape), str(obj.dtype)))

    group.visititems(visit)
    return found


class H5DataSet(StoreDataSet):
    """A dataset in an HDF5 file: scan axes first, then ``sig_dims`` frame axes.

    Contiguous and uncompressed per-frame-chunked datasets are read as plain byte ranges of the
    file (memory-mapped on the CPU, kvikio/pread on the GPU path); compressed or otherwise
    chunked ones through h5py, with the filters of ``hdf5plugin`` (bitshuffle/LZ4 as DECTRIS
    writes it, Blosc, Zstd, LZ4, ...). Partitions end on chunk boundaries.

    Parameters
    ----------
    path : str
        The HDF5 file (``.h5``, ``.hdf5``, ``.hdf``, ``.nxs``).
    ds_path, sig_dims, **options
        See :class:`~libertem_gpu.io.formats.base.StoreDataSet`.

    Examples
    --------
    >>> ctx = Context()  # doctest: +SKIP
    >>> ds = ctx.load("hdf5", path="scan.h5", ds_path="/entry/data/data")  # doctest: +SKIP
    """

    format_name = "hdf5"
    extensions = ("h5", "hdf5", "hdf", "nxs")

    # Set by _initialize.
    _parts: Sequence[H5Part] = ()
    _segments: list[FileSegment] | None = None
    _chunk_nav: tuple[int, ...] | None = None

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        # Its own extensions are claimed even without the signature, so that load("auto", ...)
        # says "not an HDF5 file" rather than "no format recognises this file".
        ext = os.path.splitext(str(path))[1].lower().lstrip(".")
        return os.path.isfile(path) and (ext in cls.extensions or has_hdf5_magic(path))

    def _initialize(self) -> None:
        path = require_file(self.path, "HDF5 file")
        h5py = import_h5py()
        if not has_hdf5_magic(path):
            raise FileFormatError(
                f"{path}: not an HDF5 file (no HDF5 signature {HDF5_MAGIC!r} at byte 0 or 512)"
            )
        with library_errors(path, "opening the HDF5 file"), h5py.File(path, "r") as f:
            found = list_datasets(f)
            ds_path = self.ds_path
            if ds_path is None:
                ds_path = pick_dataset(found, self.sig_dims, path)
            elif ds_path not in f:
                raise DataSetError(f"{path}: no dataset at {ds_path!r}; {describe_datasets(found)}")
            dset = f[ds_path]
            if not isinstance(dset, h5py.Dataset):
                raise DataSetError(
                    f"{path}: {ds_path!r} is a group, not a dataset; {describe_datasets(found)}"
                )
            self._describe(dset, path, ds_path, found)

    def _describe(self, dset: Any, path: str, ds_path: str, found: Sequence[Any]) -> None:
        shape = tuple(int(d) for d in dset.shape)
        if len(shape) <= self.sig_dims:
            raise DataSetError(
                f"{path}: dataset {ds_path} has shape {shape}, expected {self.sig_dims} frame "
                f"axes after at least one scan axis; {describe_datasets(found)}"
            )
        dtype = parse_dtype(dset.dtype, what=f"dtype of {path}:{ds_path}")
        nav, sig = shape[: -self.sig_dims], shape[-self.sig_dims :]
        if len(nav) > 3 and self._nav_shape_arg is None:
            raise DataSetError(
                f"{path}: dataset {ds_path} has {len(nav)} scan axes {nav}; at most 3 are "
                "supported: pass nav_shape to flatten them"
            )
        check_filters(dset, path)
        file_path = os.path.abspath(dset.file.filename)
        segments = direct_segments(dset, file_path, self.sig_dims)
        frame_bytes = math.prod(sig) * dtype.itemsize
        if segments is not None:
            FrameLayout(tuple(segments), frame_bytes).check_file_sizes(
                f"dataset {ds_path} of shape {shape}"
            )
        chunks = None if dset.chunks is None else tuple(int(c) for c in dset.chunks)
        if chunks is not None and segments is None:
            # Before anything is sized by the shape (the first-frame probe, a run's buffers).
            with library_errors(path, f"counting the stored chunks of {ds_path}"):
                stored = int(dset.id.get_num_chunks()), int(dset.id.get_storage_size())
            check_stored_chunks(f"{path}:{ds_path}", shape, chunks, dtype.itemsize, *stored)
        elif chunks is None and segments is None:
            # Contiguous data not mapped directly (compact, or never written): what is
            # stored must hold the declared size, or reads are fill values.
            with library_errors(path, f"reading the storage size of {ds_path}"):
                stored_bytes = int(dset.id.get_storage_size())
            claimed = math.prod(shape) * dtype.itemsize
            if stored_bytes < claimed:
                raise FileFormatError(
                    f"{path}: dataset {ds_path} declares shape {shape} ({claimed} bytes), but "
                    f"only {stored_bytes} bytes are stored (data never written, or a damaged "
                    "header)"
                )
        part = H5Part(file_path, dset.name, shape, self.sig_dims, chunks, bitshuffle_options(dset))
        self._parts = [part]
        self._segments = segments
        storage = dtype if segments is not None else native(dtype)
        self._set_layout(nav, sig, storage, math.prod(nav), source=f"{path}:{ds_path}")
        if segments is None:
            self._check_first_frame(path)
        self.ds_path = ds_path
        self._chunk_nav = None if chunks is None else chunks[: -self.sig_dims]
        self._meta = {
            "path": path,
            "ds_path": ds_path,
            "dataset_shape": shape,
            "chunks": chunks,
            "compression": dset.compression,
            "filters": filter_ids(dset),
            "direct_io": segments is not None,
        }

    def _check_first_frame(self, path: str) -> None:
        """Decode one frame now, so that a missing filter or a broken file shows at load."""
        with H5Reader(self._parts, self._parts[0].shape[-self.sig_dims :], self.dtype) as r:
            r.read_into(np.empty((1, *r.sig_shape), dtype=self.dtype), 0, 1)

    def get_partitions(self, n_workers: int = 1) -> list[Partition]:
        frames = partition_frame_count(
            self.shape.nav_size, self.frame_bytes, n_workers, num_partitions=self._num_partitions
        )
        snap = None
        if self._chunk_nav is not None:
            snap = chunk_snapper(self._parts[0].nav, self._chunk_nav)
        return aligned_partitions(self.shape.nav_size, frames, self.sync_offset, snap)

    def get_reader(self) -> FrameReader:
        if self._segments is not None:
            return FixedLayoutReader(self._segments, self.sig_shape, self.storage_dtype)
        return H5Reader(self._parts, self.sig_shape, self.storage_dtype)
