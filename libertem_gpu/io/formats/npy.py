"""NumPy ``.npy`` files, memory-mapped; shape and dtype come from the file's header."""

from __future__ import annotations

import math
import os
import tokenize
from typing import TYPE_CHECKING

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError
from libertem_gpu.io.dataset import DataSetOptions, parse_dtype, split_shape
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment, check_file_size

if TYPE_CHECKING:
    from typing_extensions import Unpack

_MAGIC = b"\x93NUMPY"


class NPYDataSet(FileDataSet):
    """A ``.npy`` file holding an array of ``nav + sig`` dimensions in C order.

    Parameters
    ----------
    path : str
        The file.
    sig_dims : int
        How many trailing axes form a frame (1 or 2).
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.
    """

    format_name = "npy"
    extensions = ("npy",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        sig_dims: int = 2,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self.sig_dims = int(sig_dims)

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        return read_head(path, len(_MAGIC)) == _MAGIC

    def _read_header(self, path: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            except (ValueError, SyntaxError, TypeError, tokenize.TokenError, UnicodeError) as e:
                # NumPy's header parser lets the tokenizer's and literal_eval's errors out
                raise FileFormatError(
                    f"{path}: not a valid .npy file: {type(e).__name__}: {e}"
                ) from None
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
        if any(d <= 0 for d in shape):
            raise FileFormatError(
                f"{path}: the header declares an array of shape {shape}, which holds no frames "
                "(expected a positive size on every axis)"
            )
        nav, sig = split_shape(shape, self.sig_dims, f"{path}: array")
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
