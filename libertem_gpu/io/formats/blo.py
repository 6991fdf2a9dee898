"""NanoMegas / ASTAR block files (``.blo``): uint8 diffraction patterns of a 2-D scan.

The file starts with a little-endian header (``IMGBLO``, magic ``0x0102``, the offsets of the
virtual bright field image and of the patterns, the pattern size and the scan size), then the
patterns, each after a 6-byte frame header (``0x55AA`` and a 32-bit frame number).
"""

from __future__ import annotations

import os
import struct

import numpy as np

from libertem_gpu.errors import FileFormatError
from libertem_gpu.io.calibration import Calibration, axis
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment

_ID = b"IMGBLO"
_MAGIC = 0x0102
_FRAME_HEADER = 6
_FRAME_MARKER = 0x55AA
_MARKER_PROBES = 16  # frame headers checked at load, spread over the file
# ID, magic, offset of the virtual image, offset of the patterns, flags, pattern size,
# pattern rotation, scan x, scan y, scan rotation, pixel size x/y (nm), beam energy (V),
# pattern pixel size, camera length, acquisition time.
_HEADER = struct.Struct("<6sHIIIHHHHHddIHId")


class BloDataSet(FileDataSet):
    """A NanoMegas ``.blo`` block file.

    Parameters
    ----------
    path : str
        The ``.blo`` file.
    nav_shape : tuple of int, optional
        Scan shape; defaults to the header's ``(NY, NX)``.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("blo", path="scan.blo")  # doctest: +SKIP
    """

    format_name = "blo"
    extensions = ("blo",)

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        return read_head(path, 6) == _ID

    def _initialize(self) -> None:
        path = require_file(self.path, "block file")
        with open(path, "rb") as f:
            head = f.read(_HEADER.size)
        fields = parse_blo_header(head, path)
        size = os.stat(path).st_size
        side, scan_x, scan_y, offset = fields["DP_SZ"], fields["NX"], fields["NY"], fields["offset"]
        stride = _FRAME_HEADER + side * side
        if offset > size:
            raise FileFormatError(
                f"{path}: header puts the patterns at byte {offset}, but the file has {size} bytes"
            )
        count = (size - offset) // stride
        if count == 0:
            raise FileFormatError(
                f"{path}: file has {size} bytes, too short for one {side}x{side} pattern at byte "
                f"{offset} (truncated file?)"
            )
        check_frame_markers(path, offset, stride, count)
        self._offset = offset
        self._set_layout((scan_y, scan_x), (side, side), np.dtype(np.uint8), count, source=path)
        self._meta = {"path": path, "pattern_offset": offset, **fields}

    def _calibration(self) -> Calibration:
        # Fields as rosettasciio reads them: scan step in nm; the diffraction pixel size is
        # stored as 100 x pixels per cm; the camera length in units of 0.1 mm (rosettasciio
        # maps 2000 to 0.2 m).
        m = self._meta
        sy, sx = m["pixel_size_nm"]
        sdp = m["pattern_pixel_size"]
        sig = axis(100.0 / sdp, "cm") if sdp else None
        cl = m["camera_length_10mm"]
        return Calibration(
            nav=(axis(sy, "nm"), axis(sx, "nm")),
            sig=(sig, sig),
            camera_length=float(cl) / 10 if cl else None,
            camera_length_units="mm" if cl else "",
            source="blo header",
        )

    def get_reader(self) -> FixedLayoutReader:
        segment = FileSegment(
            self.path,
            self._offset + _FRAME_HEADER,
            _FRAME_HEADER + self.frame_bytes,
            self.image_count,
        )
        return FixedLayoutReader([segment], self.sig_shape, self.storage_dtype)


def check_frame_markers(path: str, offset: int, stride: int, count: int) -> None:
    """Check the 6-byte headers (``0x55AA``, frame number) of the first and last frames and of
    a few between: a wrong pattern offset or size would otherwise shift every frame.

    Raises
    ------
    FileFormatError
        Naming the first frame whose marker or number is not what its position says.
    """
    probes = sorted({0, count - 1, *range(0, count, max(1, count // _MARKER_PROBES))})
    first: int | None = None
    with open(path, "rb") as f:
        for index in probes:
            f.seek(offset + index * stride)
            head = f.read(_FRAME_HEADER)
            marker, number = struct.unpack("<HI", head) if len(head) == 6 else (None, None)
            if first is None and marker == _FRAME_MARKER:
                first = number  # frames are numbered consecutively (from 0 as written)
            if marker != _FRAME_MARKER or first is None or number != first + index:
                expected = index if first is None else first + index
                raise FileFormatError(
                    f"{path}: frame {index} should start at byte {offset + index * stride} with "
                    f"marker 0x55AA and frame number {expected}, found "
                    f"{head.hex() or 'nothing'} (wrong pattern offset or size in the header, "
                    "or a damaged file)"
                )


def parse_blo_header(head: bytes, path: str) -> dict:
    """The sizes and calibration in a ``.blo`` header.

    Raises
    ------
    FileFormatError
        If the header is short, has the wrong signature, or states impossible sizes.
    """
    if len(head) < _HEADER.size or not head.startswith(_ID):
        raise FileFormatError(
            f"{path}: not a block file: expected an {_HEADER.size}-byte header starting with "
            f"'IMGBLO', found {head[:6]!r} ({len(head)} bytes)"
        )
    values = _HEADER.unpack(head)
    (_, magic, offset1, offset2, _, side, _, scan_x, scan_y, _, sx, sy, energy, sdp, cl, _) = values
    if magic != _MAGIC:
        raise FileFormatError(f"{path}: block file magic is {magic:#06x}, expected {_MAGIC:#06x}")
    if side == 0 or scan_x == 0 or scan_y == 0:
        raise FileFormatError(
            f"{path}: header states pattern size {side} and scan {scan_x}x{scan_y}; "
            "all must be positive"
        )
    if offset2 < _HEADER.size:
        raise FileFormatError(
            f"{path}: header puts the patterns at byte {offset2}, inside the header"
        )
    return {
        "DP_SZ": side,
        "NX": scan_x,
        "NY": scan_y,
        "offset": offset2,
        "vbf_offset": offset1,
        "pixel_size_nm": (sy, sx),
        "beam_energy_V": energy,
        "camera_length_10mm": cl,
        "pattern_pixel_size": sdp,
    }
