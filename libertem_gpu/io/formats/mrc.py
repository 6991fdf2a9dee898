"""MRC movies (Direct Electron cameras): a 1024-byte MRC2014 header, an optional extended header,
then ``nz`` frames of ``ny`` x ``nx`` pixels. The scan shape comes from the ``<name>_info.txt``
that DE's software writes beside ``<name>_movie.mrc``.

Calibration (``DataSet.calibration``, in nm):

- the header's cell size over its sampling (``cella`` / ``mx``, words 11 and 8, in Å) is the
  pixel size of the frames, where it is positive and not exactly 1 Å: writers that know no pixel
  size leave 0, or write 1 Å per pixel (``cella = mx``), which we treat as unknown;
- DE's ``_info.txt`` records ``Specimen Pixel Size X/Y (nanometers)`` (-1: unknown) and copies it
  into ``cella``. For a raster scan it is the scan step: then it calibrates the scan axes and
  the header's cell says nothing about the detector. Otherwise (a movie) it is the frames' pixel
  size at the specimen, used where the header has none. ``Instrument Project Camera Length
  (centimeters)`` gives the camera length. ``Diffraction Pixel Size`` is not read: its key names
  no unit, and DE's and rosettasciio's readings of it disagree (mrad versus 1/nm).
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import FileFormatError, MissingFileError
from libertem_gpu.io.calibration import AxisCalibration, Calibration, axis
from libertem_gpu.io.dataset import DataSetOptions
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment

if TYPE_CHECKING:
    from typing_extensions import Unpack

HEADER_BYTES = 1024
# MRC2014 modes this reader supports (4-bit and complex modes are not frame data of cameras).
MODES = {0: "i1", 1: "i2", 2: "f4", 6: "u2", 12: "f2"}


def parse_mrc_header(head: bytes, path: str) -> dict[str, Any]:
    """Frame size, count, element type and data offset from an MRC header.

    The byte order is taken from the machine stamp (bytes 212-213: ``0x44 0x44`` little-endian,
    ``0x11 0x11`` big-endian; little-endian when unset).

    Raises
    ------
    FileFormatError
        If the header is short or states an unsupported mode or impossible sizes.
    """
    if len(head) < HEADER_BYTES:
        raise FileFormatError(
            f"{path}: expected a {HEADER_BYTES}-byte MRC header, the file has {len(head)} bytes"
        )
    order = ">" if head[212] == 0x11 else "<"
    nx, ny, nz, mode = struct.unpack_from(order + "4i", head, 0)
    sampling = struct.unpack_from(order + "3i", head, 28)
    cell = struct.unpack_from(order + "3f", head, 40)
    (extended,) = struct.unpack_from(order + "i", head, 92)
    if mode not in MODES:
        raise FileFormatError(
            f"{path}: MRC mode {mode} is not supported; expected one of "
            f"{', '.join(f'{m} ({MODES[m]})' for m in sorted(MODES))}"
        )
    if nx <= 0 or ny <= 0 or nz <= 0 or extended < 0:
        raise FileFormatError(
            f"{path}: MRC header states nx={nx}, ny={ny}, nz={nz}, extended header "
            f"{extended} bytes; sizes must be positive"
        )
    return {
        "nx": nx,
        "ny": ny,
        "nz": nz,
        "mode": mode,
        "dtype": np.dtype(order + MODES[mode]),
        "extended_header_bytes": extended,
        "exttyp": head[104:108].decode("ascii", "replace").strip("\x00 "),
        "data_offset": HEADER_BYTES + extended,
        "sampling": sampling,
        "cell_angstrom": tuple(round(float(c), 6) for c in cell),
    }


def header_pixel_size(header: dict[str, Any]) -> tuple[AxisCalibration | None, ...]:
    """The frames' pixel size ``(y, x)`` in nm from the header's ``cella`` / ``mx`` (Å), None
    where unknown (see the module docstring)."""
    found = []
    for k in (1, 0):
        size, count = header["cell_angstrom"][k], header["sampling"][k]
        pixel = size / count if count > 0 and size > 0 else 0.0
        found.append(axis(pixel / 10, "nm") if pixel != 1.0 else None)
    return tuple(found)


def _positive(info: dict[str, str], key: str) -> float | None:
    try:
        value = float(info.get(key, "-1"))
    except ValueError:
        return None
    return value if 0 < value < float("inf") else None


def parse_info_txt(text: str) -> dict[str, str]:
    """The ``key = value`` lines of a DE ``_info.txt``."""
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            result[key.strip()] = value.strip()
    return result


def _int(info: dict[str, str], key: str, default: int) -> int:
    try:
        return int(float(info.get(key, default)))
    except ValueError:
        return default


def nav_from_info(info: dict[str, str], frames: int) -> tuple[tuple[int, ...], str]:
    """Scan shape of a raster scan described by ``info`` (``(frames,)`` otherwise)."""
    raster = info.get("Scan - Enable") == "Enable" and info.get("Scan - Type", "Raster") == "Raster"
    if not raster:
        return (frames,), "frame count (not a raster scan)"
    if info.get("Scan - ROI Enable") == "Enable":
        x, y = _int(info, "Scan - ROI Size X", 0), _int(info, "Scan - ROI Size Y", 0)
    else:
        x, y = _int(info, "Scan - Size X", 0), _int(info, "Scan - Size Y", 0)
    repeats = _int(info, "Scan - Repeats", 1)
    if x <= 0 or y <= 0:
        return (frames,), "frame count (no scan size)"
    nav = (repeats, y, x) if repeats > 1 else (y, x)
    return nav, "info.txt raster scan"


class MRCDataSet(FileDataSet):
    """A Direct Electron MRC movie (or any MRC stack) with its ``_info.txt``.

    Parameters
    ----------
    path : str
        The ``.mrc`` file.
    nav_shape : tuple of int, optional
        Scan shape; without it, it comes from the ``_info.txt`` beside the movie (raster scans:
        ``(Size Y, Size X)``, or ``(Repeats, Size Y, Size X)``; other scans: one axis of frames).
    info_path : str, optional
        The ``_info.txt`` file, where it is not ``<name>_info.txt`` for ``<name>_movie.mrc``.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("mrc", path="20250429_00001_movie.mrc")  # doctest: +SKIP
    """

    format_name = "mrc"
    extensions = ("mrc",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        info_path: str | os.PathLike[str] | None = None,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self.info_path = None if info_path is None else os.fspath(info_path)
        self._info: dict[str, str] = {}
        self._raster = False

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        if not str(path).lower().endswith(".mrc"):
            return False
        try:
            parse_mrc_header(read_head(path, HEADER_BYTES), str(path))
        except FileFormatError:
            return False
        return True

    def _info_candidates(self) -> list[str]:
        stem = os.path.splitext(self.path)[0]
        names = [stem + "_info.txt"]
        if stem.endswith("_movie"):
            names.insert(0, stem[: -len("_movie")] + "_info.txt")
        return names

    def _initialize(self) -> None:
        path = require_file(self.path, "MRC file")
        with open(path, "rb") as f:
            header = parse_mrc_header(f.read(HEADER_BYTES), path)
        frame_bytes = header["nx"] * header["ny"] * header["dtype"].itemsize
        needed = header["data_offset"] + header["nz"] * frame_bytes
        size = os.stat(path).st_size
        if size < needed:
            raise FileFormatError(
                f"{path}: header states {header['nz']} frames of {header['ny']}x{header['nx']} "
                f"{header['dtype']} after {header['data_offset']} header bytes ({needed} bytes), "
                f"the file has {size} bytes (truncated file?)"
            )
        info_path = self.info_path
        if info_path is None:
            info_path = next((p for p in self._info_candidates() if os.path.isfile(p)), None)
        elif not os.path.isfile(info_path):
            raise MissingFileError(f"{path}: info file {info_path!r} does not exist")
        info: dict[str, str] = {}
        if info_path is not None:
            with open(info_path, "rb") as f:
                info = parse_info_txt(f.read(1 << 22).decode("utf-8", "replace"))
        if self._nav_shape_arg is not None:
            nav, source = self._nav_shape_arg, "argument"
        elif info_path is None:
            raise MissingFileError(
                f"{path}: the scan shape is in the movie's _info.txt, which was not found "
                f"(expected {' or '.join(self._info_candidates())}); put it beside the movie, "
                "pass info_path=, or pass nav_shape="
            )
        else:
            nav, source = nav_from_info(info, header["nz"])
        self._info = info
        self._raster = nav_from_info(info, header["nz"])[1] == "info.txt raster scan"
        self._offset = header["data_offset"]
        self._set_layout(
            nav, (header["ny"], header["nx"]), header["dtype"], header["nz"], source=path
        )
        self._meta = {
            "path": path,
            "info_path": info_path,
            "nav_shape_source": source,
            **{k: v for k, v in header.items() if k != "dtype"},
        }

    def _calibration(self) -> Calibration:
        info = self._info
        sizes = tuple(_positive(info, f"Specimen Pixel Size {c} (nanometers)") for c in "YX")
        specimen = tuple(None if v is None else axis(v, "nm") for v in sizes)
        nav: tuple[AxisCalibration | None, ...] = ()
        sig: tuple[AxisCalibration | None, ...] = header_pixel_size(self._meta)
        sources = ["mrc header (cella / mx)"] if any(sig) else []
        if self._raster:
            # The scan step; DE copied it into cella, which then says nothing about the frames.
            nav = (None,) * (len(self.nav_shape) - 2) + specimen
            sig = (None, None)
            sources = ["info.txt (Specimen Pixel Size)"] if any(specimen) else []
        elif not any(sig) and any(specimen):
            sig, sources = specimen, ["info.txt (Specimen Pixel Size)"]
        camera = _positive(info, "Instrument Project Camera Length (centimeters)")
        if camera is not None:
            sources.append("info.txt (Camera Length)")
        return Calibration(
            nav=nav,
            sig=sig,
            camera_length=None if camera is None else camera * 10,
            camera_length_units="" if camera is None else "mm",
            source="; ".join(sources),
        )

    def get_reader(self) -> FixedLayoutReader:
        segment = FileSegment(self.path, self._offset, self.frame_bytes, self.image_count)
        return FixedLayoutReader([segment], self.sig_shape, self.storage_dtype)
