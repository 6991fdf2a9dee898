"""Zarr arrays (format v2 and v3, directory stores, including HyperSpy's ``.zspy``): scan axes
first, then the frame axes; partitions end on chunk (or shard) boundaries.

zarr is imported where a store is opened, never when ``libertem_gpu`` is imported.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from typing import Any

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError, MissingFileError
from libertem_gpu.io.chunked import (
    aligned_partitions,
    check_stored_chunks,
    chunk_snapper,
    describe_datasets,
    library_errors,
    nav_blocks,
    pick_dataset,
)
from libertem_gpu.io.dataset import parse_dtype
from libertem_gpu.io.formats.base import StoreDataSet
from libertem_gpu.io.partition import Partition, partition_frame_count
from libertem_gpu.io.reader import FrameReader

_METADATA_FILES = (".zarray", ".zgroup", "zarr.json")


def _import_zarr() -> Any:
    try:
        import zarr
    except ImportError as e:  # pragma: no cover - zarr is a dependency of the zarr extra
        raise ImportError("reading Zarr stores needs zarr: pip install 'zarr>=3'") from e
    return zarr


def _open(path: str, ds_path: str | None = None) -> Any:
    """Open the store's root (or the node at ``ds_path``) read-only."""
    zarr = _import_zarr()
    store = zarr.storage.LocalStore(path, read_only=True)
    return zarr.open(store=store, mode="r", path=ds_path or "")


def _list_arrays(node: Any) -> list[tuple[str, tuple[int, ...], str]]:
    zarr = _import_zarr()
    if isinstance(node, zarr.Array):
        return [("", tuple(node.shape), str(node.dtype))]
    found = []
    for name, member in node.members(max_depth=None):
        if isinstance(member, zarr.Array):
            found.append((name, tuple(member.shape), str(member.dtype)))
    return sorted(found)


class ZarrReader(FrameReader):
    """Reads frames of one Zarr array; the store is opened read-only on first use."""

    def __init__(
        self,
        path: str,
        ds_path: str,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        sig_dims: int,
        sig_shape: tuple[int, ...],
        dtype: np.dtype,
    ) -> None:
        self.path = path
        self.ds_path = ds_path
        self.shape = shape
        self.chunks = chunks
        self.sig_dims = sig_dims
        self.sig_shape = tuple(sig_shape)
        self.dtype = np.dtype(dtype)
        self._array: Any = None

    def _get_array(self) -> Any:
        if self._array is None:
            with library_errors(self.path, f"opening Zarr array {self.ds_path!r}"):
                self._array = _open(self.path, self.ds_path)
        return self._array

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        nav = self.shape[: -self.sig_dims]
        file_sig = self.shape[-self.sig_dims :]
        if start < 0 or stop > math.prod(nav) or start > stop:
            raise IndexError(f"frames [{start}, {stop}) outside [0, {math.prod(nav)})")
        array = self._get_array()
        frames = out.reshape(stop - start, *file_sig)
        for ranges, offset in nav_blocks(nav, start, stop):
            extent = tuple(hi - lo for lo, hi in ranges)
            dest = frames[offset : offset + math.prod(extent)].reshape(*extent, *file_sig)
            sel = tuple(slice(lo, hi) for lo, hi in ranges)
            try:
                dest[...] = array.get_basic_selection(sel)
            except Exception as e:
                first = start + offset
                raise self._decode_error(first, first + math.prod(extent), e) from e

    def _decode_error(self, first: int, last: int, error: Exception) -> FileFormatError:
        """Find the first frame of ``[first, last)`` that fails and name its chunk."""
        nav = self.shape[: -self.sig_dims]
        frame = first
        for frame in range(first, last):
            try:
                self._array[np.unravel_index(frame, nav)]
            except Exception:
                break
        index = np.unravel_index(frame, nav)
        coords = tuple(int(i) // c for i, c in zip(index, self.chunks, strict=False))
        coords += (0,) * self.sig_dims
        return FileFormatError(
            f"{self.path}: array {self.ds_path or '/'}: chunk {coords} (frame {frame}) could not "
            f"be read or decoded: {type(error).__name__}: {error} (corrupt or truncated chunk?)"
        )


class ZarrDataSet(StoreDataSet):
    """An array in a Zarr store (format v2 or v3, directory store; also HyperSpy ``.zspy``).

    Parameters
    ----------
    path : str
        The store's directory (``.zarr``, ``.zspy``, or any directory with Zarr metadata).
    ds_path, sig_dims, **options
        See :class:`~libertem_gpu.io.formats.base.StoreDataSet`.

    Examples
    --------
    >>> ds = ctx.load("zarr", path="scan.zarr", ds_path="data")  # doctest: +SKIP
    """

    format_name = "zarr"
    extensions = ("zarr", "zspy")

    # Set by _initialize.
    _array_shape: tuple[int, ...] = ()
    _chunks: tuple[int, ...] = ()
    _align: tuple[int, ...] = ()

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        path = str(path)
        if not os.path.isdir(path):
            return False
        ext = os.path.splitext(path.rstrip("/\\"))[1].lower().lstrip(".")
        return ext in cls.extensions or any(
            os.path.isfile(os.path.join(path, m)) for m in _METADATA_FILES
        )

    def _initialize(self) -> None:
        path = self.path
        if not os.path.isdir(path):
            raise MissingFileError(f"Zarr store {path!r} does not exist or is not a directory")
        if not any(os.path.isfile(os.path.join(path, m)) for m in _METADATA_FILES):
            raise FileFormatError(
                f"{path}: not a Zarr store: none of {', '.join(_METADATA_FILES)} found"
            )
        _check_metadata_json(path)
        zarr = _import_zarr()
        with library_errors(path, "opening the Zarr store"):
            root = _open(path)
            found = _list_arrays(root)
            ds_path = self.ds_path
            if ds_path is None:
                ds_path = pick_dataset(found, self.sig_dims, path)
            ds_path = ds_path.strip("/")
            array = _open_node(root, ds_path)
            if array is None:
                raise DataSetError(f"{path}: no array at {ds_path!r}; {describe_datasets(found)}")
            if not isinstance(array, zarr.Array):
                raise DataSetError(
                    f"{path}: {ds_path!r} is a group, not an array; {describe_datasets(found)}"
                )
            shape = tuple(int(d) for d in array.shape)
            chunks = tuple(int(c) for c in array.chunks)
            shards = getattr(array, "shards", None)
            dtype = parse_dtype(_numpy_dtype(array), what=f"dtype of {path}/{ds_path or ''}")
            zarr_format = array.metadata.zarr_format
        if len(shape) <= self.sig_dims:
            raise DataSetError(
                f"{path}: array {ds_path or '/'} has shape {shape}, expected {self.sig_dims} frame "
                f"axes after at least one scan axis; {describe_datasets(found)}"
            )
        nav, sig = shape[: -self.sig_dims], shape[-self.sig_dims :]
        if len(nav) > 3 and self._nav_shape_arg is None:
            raise DataSetError(
                f"{path}: array {ds_path} has {len(nav)} scan axes {nav}; at most 3 are "
                "supported: pass nav_shape to flatten them"
            )
        self.ds_path = ds_path
        self._array_shape = shape
        self._chunks = chunks
        self._align = tuple(int(c) for c in shards) if shards else chunks
        # Before anything is sized by the shape (the probe below, a run's buffers).
        count, nbytes = _stored_chunks(
            os.path.join(path, ds_path),
            math.prod(-(-n // c) for n, c in zip(shape, self._align, strict=True)),
        )
        check_stored_chunks(
            f"{path}: array {ds_path or '/'}", shape, self._align, dtype.itemsize, count, nbytes
        )
        # zarr hands out native-order arrays, whatever the stored byte order
        self._set_layout(nav, sig, dtype.newbyteorder("="), math.prod(nav), source=path)
        with self.get_reader() as reader:  # decode a frame now: broken stores show at load
            reader.read_into(np.empty((1, *self.sig_shape), self.dtype), 0, 1)
        self._meta = {
            "path": path,
            "ds_path": ds_path,
            "array_shape": shape,
            "chunks": chunks,
            "shards": self._align if shards else None,
            "zarr_format": zarr_format,
        }

    def get_partitions(self, n_workers: int = 1) -> list[Partition]:
        frames = partition_frame_count(
            self.shape.nav_size, self.frame_bytes, n_workers, num_partitions=self._num_partitions
        )
        nav = self._array_shape[: -self.sig_dims]
        snap = chunk_snapper(nav, self._align[: -self.sig_dims])
        return aligned_partitions(self.shape.nav_size, frames, self.sync_offset, snap)

    def get_reader(self) -> ZarrReader:
        assert self.ds_path is not None, "initialize() first"
        return ZarrReader(
            self.path,
            self.ds_path,
            self._array_shape,
            self._chunks,
            self.sig_dims,
            self.sig_shape,
            self.dtype,
        )


def _numpy_dtype(array: Any) -> Any:
    dtype = array.dtype
    return getattr(dtype, "to_native_dtype", lambda: dtype)()


def _open_node(root: Any, ds_path: str) -> Any:
    zarr = _import_zarr()
    if ds_path == "":
        return root
    if not isinstance(root, zarr.Group):
        return None
    with contextlib.suppress(KeyError):
        return root[ds_path]
    return None


def _check_metadata_json(path: str) -> None:
    """Raise :class:`FileFormatError` naming the file if a metadata document is not JSON."""
    for name in _METADATA_FILES:
        file = os.path.join(path, name)
        if os.path.isfile(file):
            try:
                with open(file, "rb") as f:
                    json.loads(f.read())
            except (ValueError, UnicodeDecodeError) as e:
                raise FileFormatError(f"{file}: Zarr metadata is not valid JSON: {e}") from None


def _stored_chunks(array_dir: str, limit: int) -> tuple[int, int]:
    """How many chunk (or shard) files lie below ``array_dir`` (counting stops past
    ``limit``), and their bytes: every file but the metadata documents."""
    count = nbytes = 0
    for root, dirs, files in os.walk(array_dir):
        dirs.sort()
        for name in files:
            if name == "zarr.json" or name.startswith("."):
                continue
            count += 1
            with contextlib.suppress(OSError):
                nbytes += os.stat(os.path.join(root, name)).st_size
            if count > limit:
                return count, nbytes
    return count, nbytes
