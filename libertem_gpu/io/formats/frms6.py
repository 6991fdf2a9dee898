"""PNDetector pnCCD ``.frms6`` data sets: a ``.hdr`` text file and numbered ``.frms6`` files.

Layout, as PNDetector's format defines it (all little-endian):

- ``<name>.hdr``: INI-style text; section ``[measurementInfo]`` with ``darkframes``,
  ``signalframes``, ``stemimagesize`` (``"<a>x<b>"``) and ``readoutmode``
  (``"bin: <n>, windowing: <rows> x <cols>"``), among others;
- ``<name>_000.frms6`` holds the dark frames, ``<name>_001.frms6``, ... the signal frames;
- each ``.frms6`` file: a 1024-byte header (``u2`` header size = 1024, ``u2`` frame header size =
  64, 3 bytes, ``u1`` version = 6, 80 bytes, ``u2`` width, ``u2`` height, 928 bytes, ``u4``
  frame count, 0 in older files), then frames of a 64-byte header and ``height x width``
  ``uint16`` pixels;
- the detector is read out from two sides: a stored frame holds the upper half of the sensor in
  its left ``width / 2`` columns and the lower half, rotated by 180 degrees, in its right
  columns. Unfolded, a frame has ``2 * height`` rows of ``width / 2`` pixels; with binning ``n``
  every stored row stands for ``n`` sensor rows and is repeated ``n`` times.
"""

from __future__ import annotations

import configparser
import glob
import os
import re
import struct
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError, MissingFileError
from libertem_gpu.io.dataset import DataSetOptions
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.io.transports.base import Transport

if TYPE_CHECKING:
    from typing_extensions import Unpack

FILE_HEADER_BYTES = 1024
FRAME_HEADER_BYTES = 64
_READOUT = re.compile(r'^"?\s*bin:\s*(\d+)\s*,\s*windowing:\s*(\d+)\s*x\s*(\d+)\s*"?$')
_DARK_CHUNK = 64


def parse_frms6_file_header(data: bytes, path: str, size: int) -> dict[str, int]:
    """Parse and check one ``.frms6`` file header against the file's ``size``.

    Returns ``width``, ``height`` and ``num_frames`` (from the file size where the header says 0).

    Raises
    ------
    FileFormatError
        If the header is malformed or the file is too short for the frames it declares.
    """
    if len(data) < FILE_HEADER_BYTES:
        raise FileFormatError(
            f"{path}: file has {len(data)} bytes, too short for the {FILE_HEADER_BYTES}-byte "
            ".frms6 header (truncated file?)"
        )
    header_size, frame_header_size = struct.unpack_from("<HH", data, 0)
    version = data[7]
    width, height = struct.unpack_from("<HH", data, 88)
    (num_frames,) = struct.unpack_from("<I", data, 1020)
    if (header_size, frame_header_size, version) != (FILE_HEADER_BYTES, FRAME_HEADER_BYTES, 6):
        raise FileFormatError(
            f"{path}: not a .frms6 file: expected header size 1024, frame header size 64 and "
            f"version 6, found {header_size}, {frame_header_size} and {version}"
        )
    if width == 0 or height == 0 or width % 2:
        raise FileFormatError(
            f"{path}: frame size {width}x{height} is not usable (the width must be even)"
        )
    stride = FRAME_HEADER_BYTES + width * height * 2
    if num_frames == 0:  # older files: count from the size
        body = size - FILE_HEADER_BYTES
        if body <= 0 or body % stride:
            raise FileFormatError(
                f"{path}: header gives no frame count and the file size {size} is not the header "
                f"plus whole frames of {stride} bytes (truncated file?)"
            )
        num_frames = body // stride
    needed = FILE_HEADER_BYTES + num_frames * stride
    if size < needed:
        raise FileFormatError(
            f"{path}: header declares {num_frames} frames of {width}x{height} needing {needed} "
            f"bytes, the file has {size} (truncated file?)"
        )
    return {"width": width, "height": height, "num_frames": num_frames}


def parse_frms6_hdr(text: str, path: str) -> dict[str, Any]:
    """Parse the ``[measurementInfo]`` section of a ``.hdr`` file.

    Raises
    ------
    FileFormatError
        If the section or a needed key is missing or malformed.
    """
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error as e:
        raise FileFormatError(f"{path}: not a valid .hdr file: {e}") from None
    if not parser.has_section("measurementInfo"):
        raise FileFormatError(
            f"{path}: no [measurementInfo] section; found {parser.sections() or 'none'}"
        )
    info = dict(parser["measurementInfo"])
    result: dict[str, Any] = {"raw": info}
    try:
        result["signalframes"] = int(info.get("signalframes", "0"))
        result["darkframes"] = int(info.get("darkframes", "0"))
        stem = info.get("stemimagesize")
        result["stemimagesize"] = (
            tuple(int(p) for p in stem.strip('"').split("x")) if stem else None
        )
        match = _READOUT.match(info.get("readoutmode", '"bin: 1, windowing: 0 x 0"'))
        if match is None:
            raise ValueError(f"readoutmode {info.get('readoutmode')!r}")
        result["binning"] = int(match.group(1))
    except ValueError as e:
        raise FileFormatError(f"{path}: malformed [measurementInfo] entry: {e}") from None
    if result["binning"] not in (1, 2, 4, 8) or (
        result["stemimagesize"] is not None
        and (not 1 <= len(result["stemimagesize"]) <= 3 or min(result["stemimagesize"]) <= 0)
    ):
        raise FileFormatError(
            f"{path}: implausible binning {result['binning']} or stemimagesize "
            f"{result['stemimagesize']}"
        )
    return result


def unfold(raw: np.ndarray, binning: int, out: np.ndarray) -> None:
    """Unfold stored frames ``raw`` (``n, height, width``) into ``out`` (``n, 2 * height *
    binning, width // 2``), casting to ``out``'s type."""
    n, height, width = raw.shape
    half = width // 2
    top = raw[:, :, :half]
    bottom = raw[:, ::-1, half:][:, :, ::-1]
    folded = out.reshape(n, 2 * height, binning, half)
    folded[:, :height] = top[:, :, None, :]
    folded[:, height:] = bottom[:, :, None, :]


class FRMS6Reader(FrameReader):
    """Decodes ``.frms6`` frames: unfolds, un-bins and subtracts the dark frame."""

    def __init__(
        self,
        segments: list[FileSegment],
        raw_shape: tuple[int, int],
        binning: int,
        sig_shape: tuple[int, ...],
        dark: np.ndarray | None,
    ) -> None:
        self.raw = FixedLayoutReader(segments, raw_shape, np.dtype("<u2"))
        self.binning = binning
        self.sig_shape = tuple(sig_shape)
        self.dark = dark
        self.dtype = np.dtype("float32") if dark is not None else np.dtype("<u2")
        self._scratch = np.empty((0, *raw_shape), dtype="<u2")

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        n = stop - start
        if len(self._scratch) < n:
            self._scratch = np.empty((n, *self.raw.sig_shape), dtype="<u2")
        raw = self._scratch[:n]
        self.raw.read_into(raw, start, stop)
        unfold(raw, self.binning, out)
        if self.dark is not None:
            out.reshape(n, -1)[...] -= self.dark.reshape(-1)

    def use_transport(self, transport: Transport) -> None:
        self.raw.use_transport(transport)

    def close(self) -> None:
        self.raw.close()


class FRMS6DataSet(FileDataSet):
    """A PNDetector pnCCD data set: ``<name>.hdr`` and ``<name>_NNN.frms6`` files.

    Parameters
    ----------
    path : str
        The ``.hdr`` file or any of the ``.frms6`` files.
    dark_correction : bool
        Subtract the mean of the dark frames (in ``_000.frms6``); frames are then ``float32``,
        else the stored ``uint16``.
    nav_shape : tuple of int, optional
        Scan shape; default: ``stemimagesize`` from the ``.hdr`` file.
    sig_shape : tuple of int, optional
        Override the (unfolded) frame shape.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("frms6", path="scan.hdr")  # doctest: +SKIP
    """

    format_name = "frms6"
    extensions = ("frms6", "hdr")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dark_correction: bool = True,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self.dark_correction = bool(dark_correction)
        self._segments: list[FileSegment] = []
        self._raw_shape = (0, 0)
        self._binning = 1
        self._dark: np.ndarray | None = None

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        ext = os.path.splitext(str(path))[1].lower()
        if ext == ".frms6":  # header size, frame header size, format version
            head = read_head(path, 8)
            return (
                len(head) == 8
                and struct.unpack_from("<HH", head)
                == (
                    FILE_HEADER_BYTES,
                    FRAME_HEADER_BYTES,
                )
                and head[7] == 6
            )
        # other formats (MIB) use .hdr too: look for the section
        return ext == ".hdr" and b"[measurementInfo]" in read_head(path, 65536)

    def _base(self) -> str:
        base, ext = os.path.splitext(self.path)
        if ext.lower() == ".frms6":
            return re.sub(r"_\d+$", "", base)
        if ext.lower() == ".hdr":
            return base
        raise DataSetError(f"{self.path}: expected a .hdr or .frms6 file")

    def _initialize(self) -> None:
        require_file(self.path, "FRMS6 file")
        base = self._base()
        hdr_path = base + ".hdr"
        if not os.path.isfile(hdr_path):
            raise MissingFileError(
                f"{self.path}: its companion header {hdr_path!r} does not exist (it holds the "
                "scan shape and binning); copy it beside the .frms6 files"
            )
        with open(hdr_path, encoding="latin-1") as f:
            hdr = parse_frms6_hdr(f.read(1 << 20), hdr_path)
        numbered = []
        for name in glob.glob(glob.escape(base) + "_*.frms6"):
            match = re.search(r"_(\d+)\.frms6$", name, re.IGNORECASE)
            if match:
                numbered.append((int(match.group(1)), name))
        numbered.sort()
        if not numbered or numbered[0][0] != 0:
            raise MissingFileError(
                f"{hdr_path}: the dark frame file {base + '_000.frms6'!r} does not exist"
            )
        if len(numbered) < 2:
            raise MissingFileError(
                f"{hdr_path}: no signal frame files {base + '_001.frms6'!r}, ... found"
            )
        expected = list(range(len(numbered)))
        if [n for n, _ in numbered] != expected:
            raise MissingFileError(
                f"{hdr_path}: .frms6 files are not numbered consecutively from _000: found "
                f"{[n for n, _ in numbered]}"
            )
        headers = []
        for _, name in numbered:
            size = os.stat(name).st_size
            with open(name, "rb") as f:
                headers.append(parse_frms6_file_header(f.read(FILE_HEADER_BYTES), name, size))
        raw_shape = (headers[0]["height"], headers[0]["width"])
        for (_, name), h in zip(numbered, headers, strict=True):
            if (h["height"], h["width"]) != raw_shape:
                raise FileFormatError(
                    f"{name}: frames are {h['height']}x{h['width']}, but {numbered[0][1]} has "
                    f"{raw_shape[0]}x{raw_shape[1]}"
                )
        stride = FRAME_HEADER_BYTES + raw_shape[0] * raw_shape[1] * 2
        self._segments = [
            FileSegment(name, FILE_HEADER_BYTES + FRAME_HEADER_BYTES, stride, h["num_frames"])
            for (_, name), h in zip(numbered[1:], headers[1:], strict=True)
        ]
        self._raw_shape = raw_shape
        self._binning = hdr["binning"]
        image_count = sum(s.num_frames for s in self._segments)
        sig = (2 * raw_shape[0] * self._binning, raw_shape[1] // 2)
        nav = hdr["stemimagesize"] or (image_count,)
        if hdr["stemimagesize"] is None and self._nav_shape_arg is None:
            warnings.warn(
                f"{hdr_path}: no stemimagesize in [measurementInfo] (truncated .hdr?): reading "
                f"the {image_count} frames as a line scan; pass nav_shape for the scan's shape",
                stacklevel=2,
            )
        dark_segment = FileSegment(
            numbered[0][1], FILE_HEADER_BYTES + FRAME_HEADER_BYTES, stride, headers[0]["num_frames"]
        )
        self._dark = self._mean_dark(dark_segment, sig) if self.dark_correction else None
        dtype = np.dtype("float32") if self._dark is not None else np.dtype("<u2")
        self._set_layout(tuple(nav), sig, dtype, image_count, source=hdr_path)
        self._meta = {
            "path": hdr_path,
            "files": [name for _, name in numbered],
            "binning": self._binning,
            "raw_frame_shape": raw_shape,
            "dark_frames": headers[0]["num_frames"],
            "dark_corrected": self._dark is not None,
            "measurement_info": hdr["raw"],
        }

    def _mean_dark(self, segment: FileSegment, sig: tuple[int, int]) -> np.ndarray | None:
        """The mean unfolded dark frame, read in chunks (never the whole file at once)."""
        if segment.num_frames == 0:
            return None
        total = np.zeros(sig, dtype=np.float64)
        frames = np.empty((_DARK_CHUNK, *sig), dtype=np.float64)
        raw = np.empty((_DARK_CHUNK, *self._raw_shape), dtype="<u2")
        with FixedLayoutReader([segment], self._raw_shape, np.dtype("<u2")) as reader:
            for start in range(0, segment.num_frames, _DARK_CHUNK):
                stop = min(start + _DARK_CHUNK, segment.num_frames)
                reader.read_into(raw[: stop - start], start, stop)
                unfold(raw[: stop - start], self._binning, frames[: stop - start])
                total += frames[: stop - start].sum(axis=0)
        return (total / segment.num_frames).astype(np.float32)

    def get_reader(self) -> FRMS6Reader:
        return FRMS6Reader(
            self._segments, self._raw_shape, self._binning, self.sig_shape, self._dark
        )
