"""NumPy ``.npy`` files, memory-mapped; shape and dtype come from the file's header."""

from __future__ import annotations

import math
import os

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError
from libertem_gpu.io.dataset import DataSet, parse_dtype
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.layout import FileSegment, check_file_size
from libertem_gpu.io.raw import require_file

_MAGIC = b"\x93NUMPY"


class NPYDataSet(DataSet):
    """A ``.npy`` file holding an array of ``nav + sig`` dimensions in C order.

    Parameters
    ----------
    path : str
        The file.
    sig_dims : int
        How many trailing axes form a frame (1 or 2).
    nav_shape, sig_shape : tuple of int, optional
        Reshape the scan or the frame (same number of elements).
    sync_offset : int
        See :class:`~libertem_gpu.io.dataset.DataSet`.
    num_partitions : int, optional
        Number of partitions.
    """

    format_name = "npy"
    extensions = ("npy",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        sig_dims: int = 2,
        *,
        nav_shape: tuple[int, ...] | None = None,
        sig_shape: tuple[int, ...] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ) -> None:
        super().__init__(
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            num_partitions=num_partitions,
        )
        self.path = os.fspath(path)
        self.sig_dims = int(sig_dims)

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        try:
            with open(path, "rb") as f:
                return f.read(len(_MAGIC)) == _MAGIC
        except OSError:
            return False

    def _read_header(self, path: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            except ValueError as e:
                raise FileFormatError(f"{path}: not a valid .npy file: {e}") from None
            return tuple(shape), fortran, dtype, f.tell()

    def _initialize(self) -> None:
        path = require_file(self.path)
        shape, fortran, dtype, offset = self._read_header(path)
        if fortran:
            raise FileFormatError(
                f"{path}: array is stored in Fortran order, expected C order; rewrite it with "
                "np.save(path, np.ascontiguousarray(arr))"
            )
        dtype = parse_dtype(dtype, what=f"dtype of {path}")
        if not 1 <= self.sig_dims <= 2 or len(shape) <= self.sig_dims:
            raise DataSetError(
                f"{path}: array of shape {shape} cannot be split into scan and {self.sig_dims} "
                "signal dimensions (sig_dims must be 1 or 2, with at least one scan axis)"
            )
        nav, sig = shape[: -self.sig_dims], shape[-self.sig_dims :]
        if len(nav) > 3 and self._nav_shape_arg is None:
            raise DataSetError(f"{path}: {len(nav)} scan dimensions, at most 3 are supported")
        frame_bytes = math.prod(sig) * dtype.itemsize
        image_count = math.prod(nav)
        check_file_size(path, offset + image_count * frame_bytes, f"an array of shape {shape}")
        self._set_layout(nav, sig, dtype, image_count, source=path)
        self._offset = offset
        self._meta = {"path": path, "array_shape": shape, "header_bytes": offset}

    def get_reader(self) -> FixedLayoutReader:
        frame_bytes = self.frame_bytes
        segment = FileSegment(self.path, self._offset, frame_bytes, self.image_count)
        return FixedLayoutReader([segment], self.sig_shape, self.storage_dtype)
