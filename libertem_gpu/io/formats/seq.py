"""Norpix StreamPix ``.seq`` files: a 1024-byte header, then frames at a fixed stride.

Header fields (little-endian), as StreamPix documents them: magic ``0xFEED`` (``u4`` at 0),
the name "Norpix seq" (UTF-16, 24 bytes), version (``i4`` at 28), header size (32), a 512-byte
description, then at 548: image width, height, bit depth, real bit depth, image size in bytes,
image format (100: monochrome), allocated frames, origin, true image size (the stride from one
frame to the next: the frame plus its timestamp and padding), frame rate (``f8``), description
format, reference frame, fixed size, flags, Bayer pattern, time offset, extended header size,
compression format (0: none). Frames start at byte 8192 from version 5 on, else at 1024.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import FileFormatError
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment

if TYPE_CHECKING:
    pass

_MAGIC = 0xFEED
_FIELDS = (
    ("width", 548, "I"),
    ("height", 552, "I"),
    ("bit_depth", 556, "I"),
    ("bit_depth_real", 560, "I"),
    ("image_size_bytes", 564, "I"),
    ("image_format", 568, "I"),
    ("allocated_frames", 572, "I"),
    ("true_image_size", 580, "I"),
    ("frame_rate", 584, "d"),
    ("compression_format", 620, "I"),
)
HEADER_BYTES = 1024
_MONO_FORMATS = (100, 101)  # monochrome, monochrome Bayer (raw sensor values)
_VERSIONS = (3, 4, 5, 6)  # StreamPix header versions; frames at 8192 from 5 on, else 1024
_HEADER_SIZES = (1024, 8192)


def parse_seq_header(data: bytes, path: str) -> dict[str, Any]:
    """Parse and check a ``.seq`` header (the first 1024 bytes).

    Raises
    ------
    FileFormatError
        If ``data`` is not a StreamPix header of uncompressed monochrome frames.
    """
    if len(data) < HEADER_BYTES:
        raise FileFormatError(
            f"{path}: file has {len(data)} bytes, too short for the {HEADER_BYTES}-byte "
            "Norpix header (truncated file?)"
        )
    (magic,) = struct.unpack_from("<I", data, 0)
    if magic != _MAGIC:
        raise FileFormatError(
            f"{path}: not a Norpix .seq file: expected magic 0xFEED, found 0x{magic:x}"
        )
    version, header_size = struct.unpack_from("<ii", data, 28)
    # The version decides where the frames start: an unknown one would read from a guess.
    if version not in _VERSIONS:
        raise FileFormatError(
            f"{path}: header version {version} is not a known StreamPix version (expected one "
            f"of {', '.join(map(str, _VERSIONS))}); it decides where the frames start"
        )
    if header_size not in _HEADER_SIZES:
        raise FileFormatError(
            f"{path}: header size field is {header_size}, expected "
            f"{' or '.join(map(str, _HEADER_SIZES))} (corrupt header?)"
        )
    header: dict[str, Any] = {"version": version, "header_size": header_size}
    for name, offset, fmt in _FIELDS:
        header[name] = struct.unpack_from("<" + fmt, data, offset)[0]
    header["image_offset"] = 8192 if version >= 5 else 1024
    depth = header["bit_depth"]
    if depth not in (8, 16, 32):
        raise FileFormatError(f"{path}: bit depth {depth} is not supported (expected 8, 16, 32)")
    if header["image_format"] not in _MONO_FORMATS:
        raise FileFormatError(
            f"{path}: image format {header['image_format']} is not monochrome (expected 100)"
        )
    if header["compression_format"] != 0:
        raise FileFormatError(
            f"{path}: frames are compressed (format {header['compression_format']}); only "
            "uncompressed .seq files can be read"
        )
    width, height = header["width"], header["height"]
    frame_bytes = width * height * depth // 8
    if width == 0 or height == 0:
        raise FileFormatError(f"{path}: image size {width}x{height} is empty")
    if header["image_size_bytes"] not in (0, frame_bytes):
        raise FileFormatError(
            f"{path}: header says each image has {header['image_size_bytes']} bytes, but "
            f"{width}x{height} pixels of {depth} bits are {frame_bytes} bytes (corrupt header?)"
        )
    if header["true_image_size"] < frame_bytes:
        raise FileFormatError(
            f"{path}: header says each frame takes {header['true_image_size']} bytes "
            f"(true image size), less than {width}x{height} pixels of {depth} bits "
            f"({frame_bytes} bytes)"
        )
    header["frame_bytes"] = frame_bytes
    return header


class SEQDataSet(FileDataSet):
    """Frames of a Norpix StreamPix ``.seq`` file.

    Parameters
    ----------
    path : str
        The ``.seq`` file.
    nav_shape : tuple of int, optional
        Scan shape; default: a line of the header's allocated frames (the file holds no scan
        shape).
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("seq", path="scan.seq", nav_shape=(256, 256))  # doctest: +SKIP
    """

    format_name = "seq"
    extensions = ("seq",)

    #: The parsed file header (set by ``_initialize``).
    _header: Mapping[str, Any] = MappingProxyType({})

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        if not super().guess_can_open(path):
            return False
        return read_head(path, 4) == struct.pack("<I", _MAGIC)

    def _initialize(self) -> None:
        path = require_file(self.path, ".seq file")
        with open(path, "rb") as f:
            header = parse_seq_header(f.read(HEADER_BYTES), path)
        size = os.stat(path).st_size
        stride, frame_bytes = header["true_image_size"], header["frame_bytes"]
        body = size - header["image_offset"]
        # The last frame's timestamp may be cut off; its pixels must be there.
        present = max(0, (body - frame_bytes) // stride + 1) if body >= frame_bytes else 0
        allocated = header["allocated_frames"]
        count = min(present, allocated) if allocated > 0 else present
        if count == 0:
            raise FileFormatError(
                f"{path}: holds no complete frame: {size} bytes, frames of {frame_bytes} bytes "
                f"from byte {header['image_offset']}"
            )
        extra = body - allocated * stride
        if allocated > 0 and extra > 0:
            warnings.warn(
                f"{path}: {extra} bytes after the {allocated} allocated frames are ignored; if "
                f"the frames look shifted, the header's version ({header['version']}, frames "
                f"from byte {header['image_offset']}) may be wrong",
                stacklevel=2,
            )
        dtype = np.dtype(f"<u{header['bit_depth'] // 8}")
        self._header = header
        nav = (allocated,) if allocated > 0 else (count,)
        self._set_layout(nav, (header["height"], header["width"]), dtype, count, source=path)
        self._meta = {
            "path": path,
            "file_size": size,
            "seq_version": header["version"],
            "allocated_frames": allocated,
            "frames_in_file": present,
            "bit_depth_real": header["bit_depth_real"],
            "frame_rate": header["frame_rate"],
            "frame_stride": stride,
        }

    def get_reader(self) -> FixedLayoutReader:
        h = self._header
        segment = FileSegment(self.path, h["image_offset"], h["true_image_size"], self.image_count)
        return FixedLayoutReader([segment], self.sig_shape, self.storage_dtype)
