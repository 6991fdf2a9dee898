"""Quantum Detectors Merlin ``.mib`` files (Medipix3), with the acquisition's ``.hdr``.

Each frame is an ASCII header (``MQ1,<seq>,<header bytes>,<chips>,<width>,<height>,<type>,
<layout>,...``) followed by its pixels. ``U08``/``U16``/``U32``/``U64`` frames hold big-endian
unsigned integers in image order; ``R64`` ("raw") frames hold the chips' counters packed into
big-endian 64-bit words, and on a 2x2 quad the four chips' rows interleaved, so they are decoded
here. The scan shape comes from the ``.hdr`` (or ``nav_shape=``).

Calibration: every Merlin frame header (``MQ1``) is a Medipix3's, whose pixels have a 55 µm
pitch: the frame axes get 55 µm steps. On a 2x2 quad the chips sit a few pixels' width apart;
the frames hold no pixels for that gap, so positions across it are off by the gap. Neither the
``.hdr`` nor the frame headers record a scan step or camera length.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from libertem_gpu.errors import FileFormatError, MissingFileError
from libertem_gpu.io.calibration import Calibration, axis
from libertem_gpu.io.dataset import DataSetOptions
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.formats.mib_timestamps import line_length_from_timestamps
from libertem_gpu.io.layout import FileSegment
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.io.transports.base import Transport

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

_MAGIC = b"MQ1,"
MEDIPIX3_PITCH_UM = 55.0
# Enough for any Merlin frame header (384 bytes single chip, 768 bytes quad).
_HEADER_PROBE = 4096
_DECODE_FRAMES = 32  # raw frames decoded per step: bounds the scratch buffer
_STORED_TYPES = {"U08": ">u1", "U16": ">u2", "U32": ">u4", "U64": ">u8"}
_RAW_DTYPES = {1: np.uint8, 6: np.uint8, 12: np.uint16, 24: np.uint32}
_RAW_BITS = {1: 1, 6: 8, 12: 16, 24: 16}  # bits per packed pixel in an R64 word


@dataclass(frozen=True)
class MIBFrameHeader:
    """What the first frame header of a ``.mib`` file says.

    Attributes
    ----------
    sequence : int
        1-based number of the frame in the acquisition.
    header_bytes : int
        Bytes of every frame header (the pixels follow).
    num_chips : int
        Medipix chips read out.
    width, height : int
        The frame size the header states (for raw frames, the raw stream's size).
    pixel_type : str
        ``U08``, ``U16``, ``U32``, ``U64`` or ``R64``.
    layout : tuple of int
        Chip layout ``(columns, rows)``, e.g. ``(2, 2)`` for a quad.
    counter_depth : int or None
        Bits per counter (1, 6, 12 or 24) where the header states it.
    """

    sequence: int
    header_bytes: int
    num_chips: int
    width: int
    height: int
    pixel_type: str
    layout: tuple[int, int]
    counter_depth: int | None

    @property
    def is_raw(self) -> bool:
        """Whether frames are packed raw counters (``R64``)."""
        return self.pixel_type == "R64"


def parse_frame_header(data: bytes, path: str) -> MIBFrameHeader:
    """Parse the first frame header of a ``.mib`` file.

    Raises
    ------
    FileFormatError
        Naming ``path`` and the field that is missing or wrong.
    """
    if not data.startswith(_MAGIC):
        raise FileFormatError(
            f"{path}: not a Merlin .mib file: expected a frame header starting with 'MQ1,', "
            f"found {data[:8]!r}"
        )
    fields = data.split(b",")
    if len(fields) < 9:
        raise FileFormatError(f"{path}: frame header has {len(fields) - 1} fields, expected >= 8")

    def number(index: int, what: str, lo: int, hi: int) -> int:
        raw = fields[index].strip()
        if not raw.isdigit() or not lo <= int(raw) <= hi:
            raise FileFormatError(
                f"{path}: frame header field {index} ({what}) should be an integer between "
                f"{lo} and {hi}, found {raw[:20]!r}"
            )
        return int(raw)

    sequence = number(1, "frame number", 0, 10**12)
    header_bytes = number(2, "header size", 16, _HEADER_PROBE)
    # Only the header's own bytes count: what follows is pixel data.
    fields = data[:header_bytes].split(b",")
    num_chips = number(3, "number of chips", 1, 64)
    width = number(4, "width", 1, 65536)
    height = number(5, "height", 1, 65536)
    pixel_type = fields[6].strip().decode("ascii", "replace").upper()
    if pixel_type not in _STORED_TYPES and pixel_type != "R64":
        raise FileFormatError(
            f"{path}: unknown pixel type {pixel_type!r} in the frame header, expected one of "
            f"{', '.join([*_STORED_TYPES, 'R64'])}"
        )
    layout_text = fields[7].strip().decode("ascii", "replace").upper().rstrip("G")
    match = re.fullmatch(r"(\d+)X(\d+)", layout_text)
    if match is None:
        raise FileFormatError(
            f"{path}: sensor layout should look like '1x1' or '2x2', found {layout_text!r}"
        )
    layout = (int(match.group(1)), int(match.group(2)))
    counter_depth = None
    # Headers with the extension block ("MQ1A") end with the counter depth.
    tail = [f.strip() for f in fields if f.strip(b" \x00")]
    if any(f.startswith(b"MQ1A") for f in tail) and tail[-1].isdigit():
        counter_depth = int(tail[-1])
    return MIBFrameHeader(
        sequence=sequence,
        header_bytes=header_bytes,
        num_chips=num_chips,
        width=width,
        height=height,
        pixel_type=pixel_type,
        layout=layout,
        counter_depth=counter_depth,
    )


def parse_hdr(text: str, path: str) -> dict[str, str]:
    """The ``key: value`` lines of a Merlin ``.hdr`` file (keys without the trailing colon)."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("HDR"):
        raise FileFormatError(
            f"{path}: not a Merlin .hdr file: expected a first line starting with 'HDR', found "
            f"{lines[0][:20] if lines else ''!r}"
        )
    result: dict[str, str] = {}
    for line in lines[1:]:
        if line.startswith("End"):
            break
        key, sep, value = line.partition("\t")
        if sep:
            result[key.strip().rstrip(":")] = value.strip().strip("\x00")
    return result


def _hdr_int(hdr: dict[str, str], key: str, path: str) -> int | None:
    value = hdr.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise FileFormatError(f"{path}: {key!r} should be an integer, found {value!r}") from None


def _strip_counter(stem: str) -> str:
    """``scan_12`` -> ``scan``: Merlin numbers the ``.mib`` files of one acquisition."""
    return re.sub(r"_?[0-9]+$", "", stem)


@dataclass(frozen=True)
class _Layout:
    """How to turn one frame's stored bytes into pixels."""

    raw: bool
    depth: int  # counter depth, for raw frames
    quad: bool  # 2x2 raw: chips' rows interleaved, bottom chips rotated
    chip_shape: tuple[int, int]  # rows, columns of one raw stream row block


def decode_raw_frames(raw: np.ndarray, out: np.ndarray, layout: _Layout) -> None:
    """Decode ``R64`` frames.

    Parameters
    ----------
    raw : numpy.ndarray
        ``(n, payload_bytes)`` uint8, the frames' stored bytes.
    out : numpy.ndarray
        ``(n, *sig_shape)`` native unsigned integers.
    layout : _Layout
        Counter depth and chip arrangement.
    """
    n = raw.shape[0]
    # Each 64-bit word is stored big-endian with its first pixel in the least significant bits:
    # reversing the 8 bytes of every word gives pixels in order (for 1-bit, bits LSB first).
    words = raw.reshape(n, -1, 8)[:, :, ::-1]
    pixels: np.ndarray
    if layout.depth == 1:
        pixels = np.unpackbits(np.ascontiguousarray(words), axis=-1, bitorder="little")
    elif layout.depth == 6:
        pixels = words
    else:
        # 16-bit fields: after the word reversal their two bytes are little-endian.
        pixels = np.ascontiguousarray(words).view("<u2")
    pixels = pixels.reshape(n, -1)
    if layout.depth == 24:
        # Two 12-bit images: the first holds the high 12 bits, the second the low 12 bits.
        half = pixels.shape[1] // 2
        merged = pixels[:, :half].astype(np.uint32) << 12
        merged |= pixels[:, half:]
        pixels = merged
    target = out.reshape(n, *out.shape[1:])
    if not layout.quad:
        target.reshape(n, -1)[:] = pixels
        return
    rows, cols = layout.chip_shape
    # Raw rows hold one row of each chip, in the order [4 | 3 | 2 | 1]: chips 1, 2 form the
    # top half; 3, 4 the bottom half, rotated by 180 degrees (rows from the bottom, x flipped).
    stream = pixels.reshape(n, rows, 4, cols)
    frame = target.reshape(n, 2 * rows, 2 * cols)
    frame[:, :rows, :cols] = stream[:, :, 3]
    frame[:, :rows, cols:] = stream[:, :, 2]
    frame[:, rows:, :cols] = stream[:, ::-1, 1, ::-1]
    frame[:, rows:, cols:] = stream[:, ::-1, 0, ::-1]


class MIBRawReader(FrameReader):
    """Reads ``R64`` frames: their bytes into a scratch buffer (headers skipped), then decoded."""

    def __init__(
        self,
        segments: list[FileSegment],
        payload_bytes: int,
        sig_shape: tuple[int, ...],
        dtype: np.dtype,
        layout: _Layout,
    ) -> None:
        self._bytes = FixedLayoutReader(segments, (payload_bytes,), np.dtype(np.uint8))
        self.sig_shape = tuple(sig_shape)
        self.dtype = np.dtype(dtype)
        self._layout = layout
        self._scratch = np.empty((0, payload_bytes), dtype=np.uint8)

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        for first in range(start, stop, _DECODE_FRAMES):
            last = min(stop, first + _DECODE_FRAMES)
            if self._scratch.shape[0] < last - first:
                self._scratch = np.empty((last - first, self._scratch.shape[1]), dtype=np.uint8)
            raw = self._scratch[: last - first]
            self._bytes.read_into(raw, first, last)
            decode_raw_frames(raw, out[first - start : last - start], self._layout)

    def use_transport(self, transport: Transport) -> None:
        self._bytes.use_transport(transport)

    def close(self) -> None:
        self._bytes.close()


class MIBDataSet(FileDataSet):
    """A Merlin acquisition: one or more ``.mib`` files and the ``.hdr`` beside them.

    Parameters
    ----------
    path : str
        A ``.mib`` file of the acquisition, or its ``.hdr``. Files named like it with another
        trailing number (``scan1.mib``, ``scan2.mib``, ...) are read too, in frame-number order.
    nav_shape : tuple of int, optional
        Scan shape. Without it, it comes from the ``.hdr`` (``ScanX``/``ScanY`` where present,
        else ``Frames in Acquisition`` and ``Frames per Trigger``; with one frame per trigger the
        line length is found from the gaps in the frame timestamps, else the scan is 1-D).
    multi_file : bool
        Look for the acquisition's other ``.mib`` files (default); ``False`` reads ``path`` only.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Notes
    -----
    Frames keep the stored orientation (row 0 is the first row in the file). ``U16``/``U32``/
    ``U64`` frames are big-endian and stay so until the compute backend swaps them; ``R64`` raw
    frames (1, 6, 12 and 24 bit; 2x2 quads at 1, 6 and 12 bit) are decoded to native integers.

    Examples
    --------
    >>> ds = ctx.load("mib", path="scan.hdr")  # doctest: +SKIP
    >>> ds = ctx.load("auto", path="scan1.mib", nav_shape=(256, 256))  # doctest: +SKIP
    """

    format_name = "mib"
    extensions = ("mib", "hdr")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        multi_file: bool = True,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self.multi_file = bool(multi_file)

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        ext = os.path.splitext(str(path))[1].lower()
        start = read_head(path, 4)
        return (ext == ".mib" and start == _MAGIC) or (ext == ".hdr" and start == b"HDR,")

    # --- locating the files -------------------------------------------------------------------

    def _find_files(self) -> tuple[list[str], str | None]:
        """The ``.mib`` files and the ``.hdr`` (or None) of the acquisition."""
        path = self.path
        stem, ext = os.path.splitext(path)
        if ext.lower() == ".hdr":
            hdr: str | None = require_file(path, "Merlin .hdr file")
            base = stem
            candidates = glob.glob(glob.escape(stem) + "*.mib") + glob.glob(
                glob.escape(stem) + "*.MIB"
            )
            if not candidates:
                raise MissingFileError(
                    f"{path}: no .mib files found beside this .hdr (expected {stem}*.mib)"
                )
        else:
            require_file(path, "Merlin .mib file")
            base = _strip_counter(stem)
            hdr = None
            for candidate in (stem + ".hdr", base + ".hdr"):
                if os.path.isfile(candidate):
                    hdr = candidate
                    break
            candidates = [path]
            if self.multi_file:
                candidates = glob.glob(glob.escape(base) + "*" + glob.escape(ext))
        files = [
            f
            for f in set(candidates)
            if f == path or re.fullmatch(r"_?[0-9]*", os.path.splitext(f)[0][len(base) :])
        ]
        return sorted(files), hdr

    # --- parsing ------------------------------------------------------------------------------

    def _initialize(self) -> None:
        files, hdr_path = self._find_files()
        headers = {f: self._read_first_header(f) for f in files}
        files.sort(key=lambda f: headers[f].sequence)
        first = headers[files[0]]
        for f in files[1:]:
            h = headers[f]
            same = (h.header_bytes, h.width, h.height, h.pixel_type, h.layout, h.num_chips)
            if same != (
                first.header_bytes,
                first.width,
                first.height,
                first.pixel_type,
                first.layout,
                first.num_chips,
            ):
                raise FileFormatError(
                    f"{f}: frames differ from those of {files[0]} ({h} vs {first}); pass "
                    "multi_file=False to read one file"
                )
        hdr = self._read_hdr(hdr_path) if hdr_path is not None else {}
        depth = first.counter_depth
        hdr_depth = _hdr_int(hdr, "Counter Depth (number)", hdr_path or "")
        if depth is None:
            depth = hdr_depth
        sig_shape, dtype, payload, layout = self._frame_layout(first, depth, files[0])
        stride = first.header_bytes + payload

        segments = []
        expected_seq = first.sequence
        for f in files:
            size = os.stat(f).st_size
            count = size // stride
            if count == 0:
                raise FileFormatError(
                    f"{f}: file has {size} bytes, less than one frame of {stride} bytes "
                    "(truncated file?)"
                )
            if extra := size % stride:
                warnings.warn(f"{f}: {extra} bytes after the last frame ignored", stacklevel=2)
            if headers[f].sequence != expected_seq:
                raise FileFormatError(
                    f"{f}: starts at frame {headers[f].sequence}, expected {expected_seq} "
                    f"after the frames of {files[: files.index(f)]} (missing .mib file?)"
                )
            self._check_last_header(f, (count - 1) * stride, expected_seq + count - 1)
            segments.append(FileSegment(f, first.header_bytes, stride, count))
            expected_seq += count
        image_count = sum(s.num_frames for s in segments)

        if self._nav_shape_arg is not None:
            nav_shape: tuple[int, ...] = self._nav_shape_arg
            nav_source = "argument"
        elif hdr_path is None:
            stem = os.path.splitext(files[0])[0]
            raise MissingFileError(
                f"{self.path}: the scan shape is in the acquisition's .hdr file, which was not "
                f"found (expected {stem}.hdr or {_strip_counter(stem)}.hdr); put it beside the "
                "data or pass nav_shape=(rows, columns)"
            )
        else:
            nav_shape, nav_source = self._nav_from_hdr(hdr, hdr_path, segments)

        self._segments = segments
        self._payload = payload
        self._raw_layout = layout
        self._set_layout(nav_shape, sig_shape, dtype, image_count, source=files[0])
        self._meta = {
            "files": files,
            "hdr_path": hdr_path,
            "pixel_type": first.pixel_type,
            "counter_depth": depth,
            "sensor_layout": f"{first.layout[0]}x{first.layout[1]}",
            "num_chips": first.num_chips,
            "frame_header_bytes": first.header_bytes,
            "nav_shape_source": nav_source,
            **{k: v for k, v in hdr.items() if k in _HDR_META},
        }

    def _calibration(self) -> Calibration:
        pitch = axis(MEDIPIX3_PITCH_UM, "µm")
        return Calibration(sig=(pitch, pitch), source="Medipix3 pixel pitch (55 µm)")

    @staticmethod
    def _read_first_header(path: str) -> MIBFrameHeader:
        with open(path, "rb") as f:
            data = f.read(_HEADER_PROBE)
        return parse_frame_header(data, path)

    @staticmethod
    def _read_hdr(path: str) -> dict[str, str]:
        with open(path, "rb") as f:
            text = f.read(1 << 20).decode("latin-1")
        hdr = parse_hdr(text, path)
        if not any(line.startswith("End") for line in text.splitlines()[1:]):
            # Merlin ends every .hdr with an "End" line: without it the file was cut short,
            # and what it would have said (scan shape, frame count) falls back to guesses.
            warnings.warn(
                f"{path}: Merlin .hdr has no 'End' line (truncated file?): read {len(hdr)} "
                "entries; the scan shape may fall back to a guess, pass nav_shape to be sure",
                stacklevel=2,
            )
        return hdr

    @staticmethod
    def _check_last_header(path: str, offset: int, sequence: int) -> None:
        """The last frame must start with a frame header: catches headers lying about sizes."""
        with open(path, "rb") as f:
            f.seek(offset)
            start = f.read(64)
        fields = start.split(b",")
        if not start.startswith(_MAGIC) or len(fields) < 2 or not fields[1].isdigit():
            raise FileFormatError(
                f"{path}: expected a frame header ('MQ1,...') at byte {offset}, found "
                f"{start[:12]!r}: the first frame header's sizes do not match the file"
            )
        if int(fields[1]) != sequence:
            log.info("%s: frame numbers are not consecutive (%s at the end)", path, int(fields[1]))

    @staticmethod
    def _frame_layout(
        h: MIBFrameHeader, depth: int | None, path: str
    ) -> tuple[tuple[int, int], np.dtype, int, _Layout]:
        """Frame shape, element type, stored bytes per frame and decoding of a header's frames."""
        if not h.is_raw:
            dtype = np.dtype(_STORED_TYPES[h.pixel_type])
            if dtype.itemsize == 1:
                dtype = np.dtype(np.uint8)
            shape = (h.height, h.width)
            return (
                shape,
                dtype,
                h.height * h.width * dtype.itemsize,
                _Layout(False, 0, False, shape),
            )
        if depth not in _RAW_DTYPES:
            raise FileFormatError(
                f"{path}: raw (R64) frames need the counter depth (1, 6, 12 or 24) from the frame "
                f"header or the .hdr, found {depth!r}"
            )
        width = h.width // 2 if depth == 24 else h.width
        pixels = h.height * width
        bits = _RAW_BITS[depth]
        payload = pixels * bits // 8 * (2 if depth == 24 else 1)
        if (width * bits) % 64:
            raise FileFormatError(
                f"{path}: raw frame rows of {width} pixels at {depth} bit do not fill whole "
                "64-bit words"
            )
        quad = h.num_chips > 1
        if quad:
            if h.layout != (2, 2) or h.num_chips != 4 or depth == 24 or width % 4:
                raise FileFormatError(
                    f"{path}: raw frames of {h.num_chips} chips in a "
                    f"{h.layout[0]}x{h.layout[1]} layout at {depth} bit are not supported "
                    "(raw data is read for single chips, and for 2x2 quads at 1, 6 or 12 bit)"
                )
            chip = (h.height, width // 4)
            shape = (2 * h.height, 2 * (width // 4))
        else:
            chip = (h.height, width)
            shape = chip
        return shape, np.dtype(_RAW_DTYPES[depth]), payload, _Layout(True, depth, quad, chip)

    def _nav_from_hdr(
        self, hdr: dict[str, str], path: str, segments: list[FileSegment]
    ) -> tuple[tuple[int, ...], str]:
        scan_x = _hdr_int(hdr, "ScanX", path)
        scan_y = _hdr_int(hdr, "ScanY", path)
        if scan_x and scan_y:
            return (scan_y, scan_x), "hdr ScanX/ScanY"
        frames = _hdr_int(hdr, "Frames in Acquisition (Number)", path)
        per_trigger = _hdr_int(hdr, "Frames per Trigger (Number)", path)
        if frames is None or frames <= 0:
            count = sum(s.num_frames for s in segments)
            warnings.warn(
                f"{path}: no ScanX/ScanY and no 'Frames in Acquisition (Number)' in the .hdr: "
                f"reading the {count} frames of the .mib files as a line scan; pass nav_shape "
                "for the scan's shape",
                stacklevel=3,
            )
            return (count,), "frame count (no frame count in the .hdr)"
        if per_trigger and 1 < per_trigger < frames and frames % per_trigger == 0:
            return (frames // per_trigger, per_trigger), "hdr frames per trigger"
        if per_trigger == 1 and frames > 2:
            line = line_length_from_timestamps(segments, frames)
            if line is not None:
                return (frames // line, line), "frame timestamps (flyback gaps)"
        return (frames,), "hdr frame count"

    def get_reader(self) -> FrameReader:
        if self._raw_layout.raw:
            return MIBRawReader(
                self._segments, self._payload, self.sig_shape, self.storage_dtype, self._raw_layout
            )
        return FixedLayoutReader(self._segments, self.sig_shape, self.storage_dtype)


_HDR_META = (
    "Time and Date Stamp (day, mnth, yr, hr, min, s)",
    "Chip ID",
    "Assembly Size (NX1, 2X2)",
    "Chip Mode  (SPM, CSM, CM, CSCM)",
    "Counter Depth (number)",
    "Frames in Acquisition (Number)",
    "Frames per Trigger (Number)",
    "Software Version",
)
