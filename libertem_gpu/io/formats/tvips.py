"""TVIPS recorder series (``name_000.tvips``, ``name_001.tvips``, ...): a 256-byte series header in
the first file, then records of an image header and an image, continued across the files."""

from __future__ import annotations

import os
import re
import struct
from typing import Any

import numpy as np

from libertem_gpu.errors import FileFormatError
from libertem_gpu.io.calibration import Calibration, axis
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment

SERIES_HEADER_BYTES = 256
_SERIES = struct.Struct("<13i")  # size, version, x, y, bpp, x/y offset, x/y binning, pixel size,
# high tension, magnification, image header bytes
_SCAN_XY_OFFSET = 68  # Scan_x, Scan_y (float32) in a version 2 image header
_MAX_SCAN_PROBE = 4096  # image headers read to find the scan's start and line length
_MODE_OFFSET = 24  # acquisition mode (uint32: 1 image, 2 diffraction) in a version 2 header
#: Units of the series header's pixel size by acquisition mode (as rosettasciio reads them).
_PIXEL_UNITS = {1: "nm", 2: "1/nm"}


def parse_series_header(head: bytes, path: str) -> dict[str, Any]:
    """Image size, pixel type and image header size from a TVIPS series header.

    Raises
    ------
    FileFormatError
        If the header is short or states an unknown version, pixel depth or impossible sizes.
    """
    if len(head) < SERIES_HEADER_BYTES:
        raise FileFormatError(
            f"{path}: expected a {SERIES_HEADER_BYTES}-byte TVIPS series header, found "
            f"{len(head)} bytes"
        )
    size, version, xdim, ydim, bpp, _, _, xbin, ybin, pixel, ht, mag, img_header = (
        _SERIES.unpack_from(head)
    )
    if size != SERIES_HEADER_BYTES or version not in (1, 2):
        raise FileFormatError(
            f"{path}: not a TVIPS series: header size {size} (expected 256), version {version} "
            "(expected 1 or 2)"
        )
    if bpp not in (8, 16):
        raise FileFormatError(f"{path}: {bpp} bits per pixel, expected 8 or 16")
    if xdim <= 0 or ydim <= 0 or xdim * ydim > 1 << 28:
        raise FileFormatError(f"{path}: image size {xdim}x{ydim} is not plausible")
    if version == 1:
        img_header = 12
    if not 0 <= img_header <= 1 << 20:
        raise FileFormatError(f"{path}: image header of {img_header} bytes is not plausible")
    return {
        "version": version,
        "sig_shape": (ydim, xdim),
        "dtype": np.dtype("<u1" if bpp == 8 else "<u2"),
        "image_header_bytes": img_header,
        "binning": (ybin, xbin),
        "pixel_size_nm": pixel,
        "high_tension_kV": ht,
        "magnification": mag,
    }


def series_files(path: str) -> list[str]:
    """``path`` and the files of its series after it (``_000``, ``_001``, ... until one is
    missing)."""
    match = re.fullmatch(r"(.*_)(\d{3})(\.tvips)", path, flags=re.IGNORECASE)
    if match is None:
        return [path]
    prefix, number, ext = match.groups()
    files = []
    index = 0
    while True:
        name = f"{prefix}{index:03d}{ext}"
        if not os.path.isfile(name):
            break
        files.append(name)
        index += 1
    if not files:
        return [path]
    if int(number) >= len(files):
        raise FileFormatError(
            f"{path}: series file {prefix}{len(files):03d}{ext} is missing (the series has "
            f"{len(files)} files before it)"
        )
    return files


def detect_scan(positions: np.ndarray, count: int) -> tuple[int, tuple[int, ...]] | None:
    """Sync offset and scan shape from the image headers' scan positions ``(n, 2)`` (y, x):
    the scan starts where ``(0, 0)`` is followed by ``(0, 1)``; a line ends where x drops."""
    starts = np.flatnonzero(
        (positions[:-1] == (0, 0)).all(axis=1) & (positions[1:] == (0, 1)).all(axis=1)
    )
    if len(starts) == 0:
        return None
    start = int(starts[0])
    xs = positions[start:, 1]
    drops = np.flatnonzero(np.diff(xs) < 0)
    if len(drops) == 0:
        return None
    line = int(drops[0]) + 1
    rows = (count - start) // line
    if rows < 1:
        return None
    return start, (rows, line)


class TVIPSDataSet(FileDataSet):
    """A TVIPS recorder series.

    Parameters
    ----------
    path : str
        The first file of the series (``..._000.tvips``); its following files are read too.
    nav_shape : tuple of int, optional
        Scan shape. Without it, it comes from the scan positions in the image headers (version 2
        headers with scan data), else one axis of frames.
    sync_offset : int, optional
        Frames to skip before the scan; found with the scan shape where not given.
    **options
        ``sig_shape``, ``num_partitions``: see :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("tvips", path="rec_000.tvips")  # doctest: +SKIP
    """

    format_name = "tvips"
    extensions = ("tvips",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        sync_offset: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__(path, sync_offset=sync_offset or 0, **options)
        self._sync_given = sync_offset is not None

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        if not str(path).lower().endswith(".tvips"):
            return False
        head = read_head(path, 8)
        return len(head) == 8 and struct.unpack("<2i", head) in ((256, 1), (256, 2))

    def _initialize(self) -> None:
        path = require_file(self.path, "TVIPS file")
        files = series_files(path)
        with open(files[0], "rb") as f:
            header = parse_series_header(f.read(SERIES_HEADER_BYTES), files[0])
        sig = header["sig_shape"]
        image_bytes = sig[0] * sig[1] * header["dtype"].itemsize
        record = header["image_header_bytes"] + image_bytes
        segments = []
        for k, name in enumerate(files):
            start = SERIES_HEADER_BYTES if k == 0 else 0
            body = os.stat(name).st_size - start
            if body % record:
                raise FileFormatError(
                    f"{name}: {body} bytes of records is not a multiple of the record size "
                    f"{record} ({header['image_header_bytes']}-byte image header + "
                    f"{sig[0]}x{sig[1]} {header['dtype']} image): truncated file, or a header "
                    "that does not match the data"
                )
            if body == 0:
                raise FileFormatError(f"{name}: series file holds no images")
            segments.append(
                FileSegment(name, start + header["image_header_bytes"], record, body // record)
            )
        count = sum(s.num_frames for s in segments)
        nav: tuple[int, ...] = (count,)
        source = "frame count"
        if self._nav_shape_arg is None and header["version"] == 2:
            detected = self._detect(segments, header["image_header_bytes"], count)
            if detected is not None:
                sync, nav = detected
                source = "image header scan positions"
                if not self._sync_given:
                    self._sync_offset = sync
        self._segments = segments
        self._set_layout(nav, sig, header["dtype"], count, source=files[0])
        self._meta = {
            "files": files,
            "nav_shape_source": source,
            "mode": self._first_mode(segments[0], header["image_header_bytes"]),
            **header,
        }

    @staticmethod
    def _first_mode(segment: FileSegment, header_bytes: int) -> int | None:
        """The acquisition mode in the first image header (None where the header has none)."""
        if header_bytes < _MODE_OFFSET + 4:
            return None
        with open(segment.path, "rb") as f:
            f.seek(segment.offset - header_bytes + _MODE_OFFSET)
            raw = f.read(4)
        return struct.unpack("<I", raw)[0] if len(raw) == 4 else None

    def _calibration(self) -> Calibration:
        # The series header's pixel size is in nm for images and in 1/nm for diffraction
        # patterns (the first image header's mode says which; without it, the units are
        # unknown and nothing is reported).
        units = _PIXEL_UNITS.get(self._meta["mode"])
        if units is None:
            return Calibration()
        pixel = axis(self._meta["pixel_size_nm"], units)
        return Calibration(sig=(pixel, pixel), source="tvips header" if pixel else "")

    @staticmethod
    def _detect(
        segments: list[FileSegment], header_bytes: int, count: int
    ) -> tuple[int, tuple[int, ...]] | None:
        if header_bytes < _SCAN_XY_OFFSET + 8:
            return None
        positions: list[tuple[float, float]] = []
        for segment in segments:  # the scan's first line may continue in the next file
            first_header = segment.offset - header_bytes
            with open(segment.path, "rb") as f:
                for i in range(min(segment.num_frames, _MAX_SCAN_PROBE - len(positions))):
                    f.seek(first_header + i * segment.frame_stride + _SCAN_XY_OFFSET)
                    x, y = struct.unpack("<2f", f.read(8))
                    positions.append((y, x))
            if len(positions) >= _MAX_SCAN_PROBE:
                break
        array = np.array(positions)
        if len(array) < 2 or not np.isfinite(array).all():
            return None
        return detect_scan(array, count)

    def get_reader(self) -> FixedLayoutReader:
        return FixedLayoutReader(self._segments, self.sig_shape, self.storage_dtype)
