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


def _calibration() -> Group:
    return Group(("Origin", np.float32(0)), ("Scale", np.float32(1)), ("Units", ""))


def image_group(array: np.ndarray, dims: list[int], tags: Group | None = None) -> Group:
    """An ``ImageList`` entry holding ``array``'s bytes with DM ``Dimensions`` ``dims``."""
    code = IMAGE_CODES[f"{array.dtype.kind}{array.dtype.itemsize}"]
    return Group(
        (
            "ImageData",
            Group(
                ("Data", np.ascontiguousarray(array).reshape(-1)),
                ("DataType", np.int32(code)),
                ("Dimensions", Group(*[("", np.uint32(d)) for d in dims])),
                (
                    "Calibrations",
                    Group(
                        ("Brightness", _calibration()),
                        ("Dimension", Group(*[("", _calibration()) for _ in dims])),
                        ("DisplayCalibratedUnits", np.uint8(1)),
                    ),
                ),
                ("PixelDepth", np.int32(array.dtype.itemsize)),
            ),
        ),
        ("ImageTags", tags or Group()),
        ("Name", "test"),
    )


def write_dm_stack(
    path, data: np.ndarray, version: int = 4, order: str = "<", c_order: bool = True
) -> None:
    """Write ``data`` (``nav + sig``, 2 to 4 dims) as a DM image after a thumbnail.

    4-D data is written C-ordered with ``Data Order Swapped = 1``, or, with ``c_order=False``,
    in DM's transposed order (all positions of one detector pixel together, no tag).
    """
    thumb = (np.arange(12 * 10, dtype="u1") % 251).reshape(10, 12)
    if data.ndim == 4 and not c_order:
        ny, nx, sy, sx = data.shape
        stored = np.ascontiguousarray(data.transpose(2, 3, 0, 1))  # (sy, sx, ny, nx)
        dims = [nx, ny, sx, sy]
        meta = Group(("Format", "Diffraction image"))
    else:
        stored = data
        dims = list(reversed(data.shape))
        meta = Group(("Format", "Diffraction image"), ("Data Order Swapped", np.uint8(1)))
    root = Group(
        ("ApplicationBounds", Group(("", np.int32(0)), ("", np.int32(10)))),
        (
            "ImageList",
            Group(
                ("", image_group(thumb, [12, 10])),
                ("", image_group(stored, dims, Group(("Meta Data", meta)))),
            ),
        ),
    )
    write_dm(path, root, version=version, order=order)
