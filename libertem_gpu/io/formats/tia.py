"""FEI/Thermo Fisher TIA series files: a ``.ser`` file of frames with its ``.emi`` companion.

Layout (little-endian), as documented for TIA's series format:

- a fixed header: byte order ``II``, series id ``0x0197``, version (``0x0210``: 32-bit offsets,
  ``0x0220``: 64-bit offsets), data type id (``0x4120`` 1-D spectra, ``0x4122`` 2-D images),
  tag type id (``0x4152`` time, ``0x4142`` time and stage position), total and valid element
  counts, the offset of the offset arrays and the number of scan dimensions;
- one record per scan dimension (size, calibration, description, units);
- a table of data offsets (one per element) followed by a table of tag offsets;
- per frame: a 50-byte image header (calibrations, data type code, ``ArraySizeX``,
  ``ArraySizeY``) followed by ``ArraySizeY`` rows of ``ArraySizeX`` pixels, stored bottom row
  first (frames are flipped here so that row 0 is the top row, as TIA displays them).
"""

from __future__ import annotations

import glob
import os
import re
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import FileFormatError, MissingFileError
from libertem_gpu.io.calibration import Calibration, axis
from libertem_gpu.io.dataset import DataSetOptions
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment, check_file_size
from libertem_gpu.io.reader import FrameReader

if TYPE_CHECKING:
    from typing_extensions import Unpack

_IMAGE_DATA = 0x4122
_SPECTRUM_DATA = 0x4120
_TAG_TIME = 0x4152
_TAG_TIME_POSITION = 0x4142
_IMAGE_HEADER_BYTES = 50
#: TIA data type codes (complex types are not supported).
_DTYPES = {1: "<u1", 2: "<u2", 3: "<u4", 4: "<i1", 5: "<i2", 6: "<i4", 7: "<f4", 8: "<f8"}
_MAX_DIMS = 8


class _Cursor:
    """Bounds-checked little-endian reads from a header held in memory."""

    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def take(self, fmt: str, what: str) -> Any:
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise FileFormatError(
                f"{self.path}: header ends early while reading {what}: expected {size} bytes at "
                f"offset {self.pos}, the header has {len(self.data)} (truncated file?)"
            )
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]


def parse_ser_header(data: bytes, path: str) -> dict[str, Any]:
    """Parse a ``.ser`` file header (everything before the offset tables).

    Parameters
    ----------
    data : bytes
        The first bytes of the file (a few KiB are plenty).
    path : str
        The file, for messages.

    Returns
    -------
    dict
        ``version``, ``data_type_id``, ``tag_type_id``, ``total``, ``valid``, ``offsets_at``,
        ``offset_format`` and ``dims`` (a list of ``{"size", "offset", "delta", "description",
        "units"}``).

    Raises
    ------
    FileFormatError
        If the bytes are not a TIA series header.
    """
    cur = _Cursor(data, path)
    byte_order, series_id, version = cur.take("HHH", "the magic numbers")
    if byte_order != 0x4949 or series_id != 0x0197:
        raise FileFormatError(
            f"{path}: not a TIA .ser file: expected byte order 0x4949 and series id 0x0197, "
            f"found 0x{byte_order:04x} and 0x{series_id:04x}"
        )
    if version not in (0x0210, 0x0220):
        raise FileFormatError(
            f"{path}: unsupported TIA series version 0x{version:04x}, expected 0x0210 or 0x0220"
        )
    data_type_id, tag_type_id, total, valid = cur.take("iiii", "the element counts")
    offset_format = "q" if version == 0x0220 else "i"
    offsets_at = cur.take(offset_format, "the offset table position")
    ndim = cur.take("i", "the number of dimensions")
    if data_type_id not in (_IMAGE_DATA, _SPECTRUM_DATA):
        raise FileFormatError(
            f"{path}: unknown data type id 0x{data_type_id:x}, expected 0x4122 (images) or "
            "0x4120 (spectra)"
        )
    if tag_type_id not in (_TAG_TIME, _TAG_TIME_POSITION):
        raise FileFormatError(
            f"{path}: unknown tag type id 0x{tag_type_id:x}, expected 0x4152 or 0x4142"
        )
    if not 0 < valid <= total or not 0 <= ndim <= _MAX_DIMS or offsets_at <= 0:
        raise FileFormatError(
            f"{path}: implausible header: {valid} valid of {total} elements, {ndim} dimensions, "
            f"offset table at {offsets_at}"
        )
    dims = []
    for i in range(ndim):
        size, cal_offset, cal_delta, _element, desc_len = cur.take("iddii", f"dimension {i}")
        if size <= 0 or not 0 <= desc_len <= 4096:
            raise FileFormatError(f"{path}: dimension {i} has implausible size {size}")
        description = cur.take(f"{desc_len}s", f"dimension {i}'s description")
        units_len = cur.take("i", f"dimension {i}'s units")
        if not 0 <= units_len <= 4096:
            raise FileFormatError(f"{path}: dimension {i} has implausible units length")
        units = cur.take(f"{units_len}s", f"dimension {i}'s units")
        dims.append(
            {
                "size": size,
                "offset": cal_offset,
                "delta": cal_delta,
                "description": description.decode("latin-1"),
                "units": units.decode("latin-1"),
            }
        )
    return {
        "version": version,
        "data_type_id": data_type_id,
        "tag_type_id": tag_type_id,
        "total": total,
        "valid": valid,
        "offsets_at": offsets_at,
        "offset_format": offset_format,
        "dims": dims,
    }


def _read_at(path: str, fd: int, offset: int, size: int, what: str) -> bytes:
    if offset < 0 or size < 0:
        raise FileFormatError(
            f"{path}: header points {what} at offset {offset} with size {size}: corrupt header"
        )
    try:
        data = os.pread(fd, size, offset)
    except (OSError, OverflowError) as e:
        raise FileFormatError(f"{path}: cannot read {what} at offset {offset}: {e}") from e
    if len(data) != size:
        raise FileFormatError(
            f"{path}: file ends before {what}: expected {size} bytes at offset {offset}, "
            f"found {len(data)} (truncated file?)"
        )
    return data


class FlippedRowsReader(FixedLayoutReader):
    """A :class:`FixedLayoutReader` for frames stored bottom row first: hands out frames with
    row 0 at the top (a negative row stride in views, an in-place flip after reads)."""

    def __init__(
        self, segments: list[FileSegment], sig_shape: tuple[int, ...], dtype: np.dtype, rows: int
    ) -> None:
        super().__init__(segments, sig_shape, dtype)
        self.rows = rows

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        super().read_into(out, start, stop)
        frames = out.reshape(stop - start, self.rows, -1)
        frames[...] = frames[:, ::-1]  # numpy buffers overlapping copies

    def raw_layout(self) -> None:
        return None  # the stored rows are upside down: not for a raw copy

    def view(self, start: int, stop: int) -> np.ndarray | None:
        if len(self.sig_shape) != 2 or self.sig_shape[0] != self.rows:
            return None  # a reshaped frame cannot be flipped by strides
        mapped = super().view(start, stop)
        return None if mapped is None else mapped[:, ::-1]


class SERDataSet(FileDataSet):
    """A FEI/Thermo Fisher TIA ``.ser`` series of 2-D frames.

    Parameters
    ----------
    path : str
        The ``.ser`` file, or its ``.emi`` file (then the series ``<name>_<ser_index>.ser``).
    ser_index : int
        Which series of an ``.emi`` to open (TIA writes ``_1.ser``, ``_2.ser``, ... per detector).
    require_emi : bool
        Whether the ``.emi`` companion must exist; its XML holds the acquisition metadata. Pass
        ``False`` to read a ``.ser`` file alone (the scan shape is in the ``.ser`` header).
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("ser", path="scan.emi")  # doctest: +SKIP
    """

    format_name = "ser"
    extensions = ("ser", "emi")

    def __init__(
        self,
        path: str | os.PathLike[str],
        ser_index: int = 1,
        *,
        require_emi: bool = True,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self.ser_index = int(ser_index)
        self.require_emi = bool(require_emi)
        self.ser_path = ""
        self._segments: list[FileSegment] = []
        self._rows = 0

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        ext = os.path.splitext(str(path))[1].lower()
        if ext == ".emi":
            return True
        if ext != ".ser":
            return False
        return read_head(path, 4) == b"II\x97\x01"

    def _companions(self) -> tuple[str, str]:
        base, ext = os.path.splitext(self.path)
        if ext.lower() == ".emi":
            emi = require_file(self.path, "TIA .emi file")
            ser = f"{base}_{self.ser_index}.ser"
            if not os.path.isfile(ser):
                found = sorted(glob.glob(glob.escape(base) + "_*.ser"))
                raise MissingFileError(
                    f"{emi}: its series file {ser!r} does not exist"
                    + (f"; found {', '.join(found)} (pick one with ser_index=)" if found else "")
                )
            return ser, emi
        ser = require_file(self.path, "TIA .ser file")
        emi = re.sub(r"_\d+$", "", base) + ".emi"
        if self.require_emi and not os.path.isfile(emi):
            raise MissingFileError(
                f"{ser}: its companion {emi!r} (acquisition metadata) does not exist; copy it "
                "beside the .ser file, or pass require_emi=False to read the .ser file alone"
            )
        return ser, emi

    def _initialize(self) -> None:
        ser, emi = self._companions()
        self.ser_path = ser
        size = os.stat(ser).st_size
        fd = os.open(ser, os.O_RDONLY)
        try:
            header = parse_ser_header(os.pread(fd, 65536, 0), ser)
            if header["data_type_id"] != _IMAGE_DATA:
                raise FileFormatError(
                    f"{ser}: holds 1-D spectra (data type id 0x4120); this reader reads series "
                    "of 2-D frames (0x4122)"
                )
            item = struct.calcsize("<" + header["offset_format"])
            total, valid = header["total"], header["valid"]
            check_file_size(ser, header["offsets_at"] + 2 * total * item, "the offset tables")
            table = np.frombuffer(
                _read_at(ser, fd, header["offsets_at"], 2 * total * item, "the offset tables"),
                dtype="<" + header["offset_format"],
            ).astype(np.int64)
            data_offsets, tag_offsets = table[:valid], table[total : total + valid]
            first = int(data_offsets[0])
            check_file_size(ser, first + _IMAGE_HEADER_BYTES, "the first frame's header")
            image_header = _read_at(ser, fd, first, _IMAGE_HEADER_BYTES, "the first frame")
            code, size_x, size_y = struct.unpack_from("<Hii", image_header, 40)
            if code not in _DTYPES:
                raise FileFormatError(
                    f"{ser}: frame data type code {code} is not supported; expected one of "
                    f"{sorted(_DTYPES)} (integer and real types)"
                )
            if size_x <= 0 or size_y <= 0:
                raise FileFormatError(f"{ser}: frame size {size_x}x{size_y} is not positive")
            dtype = np.dtype(_DTYPES[code])
            frame_bytes = size_x * size_y * dtype.itemsize
            segments = _segments(ser, data_offsets + _IMAGE_HEADER_BYTES, frame_bytes, size)
            nav = self._scan_shape(header, fd, ser, tag_offsets, valid)
        finally:
            os.close(fd)
        self._segments = segments
        self._set_layout(nav, (size_y, size_x), dtype, valid, source=ser)
        self._meta = {
            "path": ser,
            "emi_path": emi if os.path.isfile(emi) else None,
            "file_size": size,
            "series_version": hex(header["version"]),
            "total_elements": total,
            "valid_elements": valid,
            "dimensions": header["dims"],
        }
        self._rows = size_y
        self._nav_swapped = bool(header.get("swapped"))

    def _calibration(self) -> Calibration:
        # The series header's dimension records: step and unit of each scan dimension (the
        # frames' own calibration sits in every image header, which we do not parse).
        dims = self._meta["dimensions"]
        if self._nav_swapped:
            dims = dims[::-1]
        nav = tuple(axis(d["delta"], d["units"], d["offset"]) if d["units"] else None for d in dims)
        return Calibration(nav=nav, source="ser header")

    @staticmethod
    def _scan_shape(
        header: dict[str, Any], fd: int, ser: str, tag_offsets: np.ndarray, valid: int
    ) -> tuple[int, ...]:
        dims = [d["size"] for d in header["dims"]]
        if valid < header["total"] or len(dims) not in (1, 2, 3):
            # An interrupted acquisition: the valid frames as a line.
            return (valid,)
        if len(dims) == 2 and header["tag_type_id"] == _TAG_TIME_POSITION and valid > 1:
            # TIA lists scan dimensions x first when consecutive frames share their y position.
            ys = [
                struct.unpack("<d", _read_at(ser, fd, int(o) + 16, 8, "a position tag"))[0]
                for o in tag_offsets[:2]
            ]
            if ys[0] == ys[1]:
                header["swapped"] = True
                return (dims[1], dims[0])
        return tuple(dims)

    def get_reader(self) -> FrameReader:
        return FlippedRowsReader(self._segments, self.sig_shape, self.storage_dtype, self._rows)


def _segments(path: str, offsets: np.ndarray, frame_bytes: int, size: int) -> list[FileSegment]:
    """Runs of equally spaced frames (usually one run) at the pixel data ``offsets``."""
    if (offsets < 0).any() or (offsets + frame_bytes > size).any():
        i = int(np.flatnonzero((offsets < 0) | (offsets + frame_bytes > size))[0])
        raise FileFormatError(
            f"{path}: frame {i} lies at bytes {int(offsets[i])} to {int(offsets[i]) + frame_bytes}"
            f", outside the file of {size} bytes (truncated file, or a corrupt offset table?)"
        )
    segments = []
    start = 0
    while start < len(offsets):
        stop = start + 1
        if stop < len(offsets):
            stride = int(offsets[stop] - offsets[start])
            if stride >= frame_bytes:
                while stop < len(offsets) and offsets[stop] - offsets[stop - 1] == stride:
                    stop += 1
        stride = int(offsets[start + 1] - offsets[start]) if stop - start > 1 else frame_bytes
        segments.append(FileSegment(path, int(offsets[start]), stride, stop - start))
        start = stop
    return segments
