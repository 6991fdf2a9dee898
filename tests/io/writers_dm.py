"""A small writer of DigitalMicrograph DM3/DM4 tag files, following Gatan's published layout
(big-endian header and tag structure, tag values in the declared byte order), for tests."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

# numpy kind+size -> DM tag value type
_TAG_TYPES = {"i2": 2, "i4": 3, "u2": 4, "u4": 5, "f4": 6, "f8": 7, "b1": 8, "i1": 9, "u1": 10}
_TAG_TYPES.update({"i8": 11, "u8": 12})
# numpy dtype -> image DataType code
IMAGE_CODES = {"i2": 1, "f4": 2, "u1": 6, "i4": 7, "i1": 9, "u2": 10, "u4": 11, "f8": 12}


class Group:
    """A tag group to write: a list of ``(label, value)``; values are Group, numpy arrays (written
    as tag arrays), numpy scalars or Python ints/floats/str."""

    def __init__(self, *entries: tuple[str, Any]) -> None:
        self.entries = list(entries)


def _code(dtype: np.dtype) -> int:
    return _TAG_TYPES[f"{dtype.kind}{dtype.itemsize}"]


class _Writer:
    def __init__(self, version: int, order: str) -> None:
        self.version = version
        self.order = order
        self.count = ">Q" if version == 4 else ">I"
        self.out = bytearray()

    def group(self, group: Group) -> None:
        self.out += b"\x00\x00" + struct.pack(self.count, len(group.entries))
        for label, value in group.entries:
            raw_label = label.encode("latin-1")
            is_group = isinstance(value, Group)
            self.out += struct.pack(">BH", 20 if is_group else 21, len(raw_label)) + raw_label
            length_at = len(self.out)
            if self.version == 4:
                self.out += b"\x00" * 8
            start = len(self.out)
            if is_group:
                self.group(value)
            else:
                self.data(value)
            if self.version == 4:
                self.out[length_at : length_at + 8] = struct.pack(">Q", len(self.out) - start)

    def data(self, value: Any) -> None:
        if isinstance(value, str):  # DM strings: arrays of UTF-16 code units
            value = np.frombuffer(value.encode("utf-16-le"), dtype="<u2")
        if isinstance(value, np.ndarray):
            value = np.ascontiguousarray(value.reshape(-1))
            info = [20, _code(value.dtype), value.size]
            payload = value.astype(value.dtype.newbyteorder(self.order)).tobytes()
        else:
            arr = np.asarray(value)
            if arr.dtype.kind == "b":
                arr = arr.astype("b1")
            elif arr.dtype == np.int64:
                arr = arr.astype("i4")
            info = [_code(arr.dtype)]
            payload = arr.astype(arr.dtype.newbyteorder(self.order)).tobytes()
        self.out += b"%%%%" + struct.pack(self.count, len(info))
        self.out += struct.pack(f">{len(info)}{self.count[1]}", *info) + payload


def write_dm(path, root: Group, version: int = 4, order: str = "<") -> None:
    """Write ``root`` as a DM file of ``version`` (3 or 4) with tag data in byte ``order``."""
    w = _Writer(version, order)
    w.group(root)
    header = struct.pack(">i", version)
    header += struct.pack(w.count, len(w.out)) + struct.pack(">i", 1 if order == "<" else 0)
    with open(path, "wb") as f:
        f.write(header + bytes(w.out) + b"\x00" * 8)


#: DM's calibration of an uncalibrated dimension: scale 1, origin 0, no units.
UNCALIBRATED = (1.0, 0.0, "")


def _calibration(scale: float = 1.0, origin: float = 0.0, units: str = "") -> Group:
    return Group(("Origin", np.float32(origin)), ("Scale", np.float32(scale)), ("Units", units))


def image_group(
    array: np.ndarray,
    dims: list[int],
    tags: Group | None = None,
    calibrations: list[tuple[float, float, str]] | None = None,
    with_calibrations: bool = True,
) -> Group:
    """An ``ImageList`` entry holding ``array``'s bytes with DM ``Dimensions`` ``dims``, and
    ``calibrations`` ``(scale, origin, units)`` per dimension in the same (DM) order (default:
    uncalibrated; ``with_calibrations=False``: no ``Calibrations`` group at all)."""
    code = IMAGE_CODES[f"{array.dtype.kind}{array.dtype.itemsize}"]
    cals = calibrations or [UNCALIBRATED] * len(dims)
    calibration_group = (
        "Calibrations",
        Group(
            ("Brightness", _calibration()),
            ("Dimension", Group(*[("", _calibration(*c)) for c in cals])),
            ("DisplayCalibratedUnits", np.uint8(1)),
        ),
    )
    return Group(
        (
            "ImageData",
            Group(
                ("Data", np.ascontiguousarray(array).reshape(-1)),
                ("DataType", np.int32(code)),
                ("Dimensions", Group(*[("", np.uint32(d)) for d in dims])),
                *([calibration_group] if with_calibrations else []),
                ("PixelDepth", np.int32(array.dtype.itemsize)),
            ),
        ),
        ("ImageTags", tags or Group()),
        ("Name", "test"),
    )


def write_dm_stack(
    path,
    data: np.ndarray,
    version: int = 4,
    order: str = "<",
    c_order: bool = True,
    calibrations: list[tuple[float, float, str]] | None = None,
    tags: tuple[tuple[str, Any], ...] = (),
    with_calibrations: bool = True,
) -> None:
    """Write ``data`` (``nav + sig``, 2 to 4 dims) as a DM image after a thumbnail.

    4-D data is written C-ordered with ``Data Order Swapped = 1``, or, with ``c_order=False``,
    in DM's transposed order (all positions of one detector pixel together, no tag).
    ``calibrations``: ``(scale, origin, units)`` per axis of ``data`` (written in DM's order);
    ``tags``: more ``ImageTags`` entries.
    """
    thumb = (np.arange(12 * 10, dtype="u1") % 251).reshape(10, 12)
    cals = list(calibrations or [UNCALIBRATED] * data.ndim)
    if data.ndim == 4 and not c_order:
        ny, nx, sy, sx = data.shape
        stored = np.ascontiguousarray(data.transpose(2, 3, 0, 1))  # (sy, sx, ny, nx)
        dims = [nx, ny, sx, sy]
        dm_cals = [cals[1], cals[0], cals[3], cals[2]]
        meta = Group(("Format", "Diffraction image"))
    else:
        stored = data
        dims = list(reversed(data.shape))
        dm_cals = cals[::-1]
        meta = Group(("Format", "Diffraction image"), ("Data Order Swapped", np.uint8(1)))
    image_tags = Group(("Meta Data", meta), *tags)
    root = Group(
        ("ApplicationBounds", Group(("", np.int32(0)), ("", np.int32(10)))),
        (
            "ImageList",
            Group(
                ("", image_group(thumb, [12, 10])),
                ("", image_group(stored, dims, image_tags, dm_cals, with_calibrations)),
            ),
        ),
    )
    write_dm(path, root, version=version, order=order)
