"""Raw binary files: frames of a fixed shape and dtype, optionally after a file header and with a
per-frame header and footer."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING, Any

from libertem_gpu.errors import DataSetError, FileFormatError
from libertem_gpu.io.dataset import SyncOptions, parse_dtype
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, require_file
from libertem_gpu.io.layout import FileSegment
from libertem_gpu.shape import validate_dims

if TYPE_CHECKING:
    from typing_extensions import Unpack


class RawFileDataSet(FileDataSet):
    """Frames stored back to back in one binary file.

    Parameters
    ----------
    path : str
        The file.
    nav_shape : tuple of int
        Scan shape (1 to 3 dims).
    sig_shape : tuple of int
        Frame shape (1 to 3 dims).
    dtype : str or numpy.dtype
        Element type as stored, e.g. ``"uint16"`` or ``">u2"`` for big-endian.
    file_header : int
        Bytes to skip at the start of the file.
    frame_header, frame_footer : int
        Bytes before and after each frame's pixels.
    **options
        ``sync_offset``, ``num_partitions``: see
        :class:`~libertem_gpu.io.formats.base.FileDataSet`.
    """

    format_name = "raw"
    extensions = ("raw", "bin")

    def __init__(
        self,
        path: str | os.PathLike[str],
        nav_shape: tuple[int, ...],
        sig_shape: tuple[int, ...],
        dtype: Any,
        *,
        file_header: int = 0,
        frame_header: int = 0,
        frame_footer: int = 0,
        **options: Unpack[SyncOptions],
    ) -> None:
        if nav_shape is None or sig_shape is None:
            raise DataSetError("raw data sets need nav_shape and sig_shape")
        super().__init__(path, nav_shape=nav_shape, sig_shape=sig_shape, **options)
        self._dtype_arg = parse_dtype(dtype)
        for name, value in (
            ("file_header", file_header),
            ("frame_header", frame_header),
            ("frame_footer", frame_footer),
        ):
            if int(value) < 0:
                raise DataSetError(f"{name} must be >= 0 bytes, got {value}")
        self.file_header = int(file_header)
        self.frame_header = int(frame_header)
        self.frame_footer = int(frame_footer)

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        # Raw files carry no shape: "auto" can't open them without parameters.
        return False

    @property
    def _frame_stride(self) -> int:
        sig_size = math.prod(validate_dims(self._sig_shape_arg or (), "sig_shape", 1, 2))
        return self.frame_header + sig_size * self._dtype_arg.itemsize + self.frame_footer

    def _initialize(self) -> None:
        path = require_file(self.path)
        size = os.stat(path).st_size
        stride = self._frame_stride
        body = size - self.file_header
        if body < stride:
            raise FileFormatError(
                f"{path}: file has {size} bytes, too short for the header ({self.file_header} "
                f"bytes) and one frame of {stride} bytes"
            )
        # The last frame's footer may be missing; a partial frame is truncation.
        image_count = (body + self.frame_footer) // stride
        assert self._nav_shape_arg is not None and self._sig_shape_arg is not None
        self._set_layout(
            self._nav_shape_arg, self._sig_shape_arg, self._dtype_arg, image_count, source=path
        )
        self._meta = {
            "path": path,
            "file_size": size,
            "file_header": self.file_header,
            "frame_header": self.frame_header,
            "frame_footer": self.frame_footer,
        }

    def get_reader(self) -> FixedLayoutReader:
        segment = FileSegment(
            path=self.path,
            offset=self.file_header + self.frame_header,
            frame_stride=self._frame_stride,
            num_frames=self.image_count,
        )
        return FixedLayoutReader([segment], self.sig_shape, self.storage_dtype)
