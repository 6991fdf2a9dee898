"""A small writer of FEI TIA ``.ser`` series (and a minimal ``.emi``) following the documented
series layout, for tests."""

from __future__ import annotations

import struct

import numpy as np

CODES = {"u1": 1, "u2": 2, "u4": 3, "i1": 4, "i2": 5, "i4": 6, "f4": 7, "f8": 8}


def write_ser(
    path,
    frames: np.ndarray,
    nav_shape: tuple[int, ...],
    version: int = 0x0220,
    positions: bool = False,
    irregular: bool = False,
    valid: int | None = None,
) -> None:
    """Write ``frames`` (``n, rows, cols``, row 0 at the top) as a series of 2-D images.

    ``nav_shape`` (1 or 2 dims; 2-D scans are listed x first, with position tags when
    ``positions``); ``irregular`` puts a gap after every second frame; ``valid`` marks fewer
    elements as written (an interrupted acquisition).
    """
    n, rows, cols = frames.shape
    total = n
    valid = n if valid is None else valid
    dtype = frames.dtype
    off_fmt = "<q" if version == 0x0220 else "<i"
    off_size = struct.calcsize(off_fmt)
    dims = list(reversed(nav_shape)) if len(nav_shape) == 2 else list(nav_shape)
    dim_bytes = b""
    for i, size in enumerate(dims):
        desc = f"Dim{i}".encode()
        units = b"meters" if len(nav_shape) == 2 else b""
        dim_bytes += struct.pack("<iddii", size, 0.0, 1e-9, 0, len(desc)) + desc
        dim_bytes += struct.pack("<i", len(units)) + units
    tag_id = 0x4142 if positions else 0x4152
    head_fixed = 2 * 3 + 4 * 4 + off_size + 4
    offsets_at = head_fixed + len(dim_bytes)
    head = struct.pack("<HHHiiii", 0x4949, 0x0197, version, 0x4122, tag_id, total, valid)
    head += struct.pack(off_fmt, offsets_at) + struct.pack("<i", len(dims)) + dim_bytes
    body = bytearray()
    pos = offsets_at + 2 * total * off_size
    data_offsets, tag_offsets = [], []
    for i in range(n):
        element = struct.pack("<ddiddi", 0.0, 1.0, 0, 0.0, 1.0, 0)
        element += struct.pack("<Hii", CODES[f"{dtype.kind}{dtype.itemsize}"], cols, rows)
        element += np.ascontiguousarray(frames[i][::-1]).astype(dtype.newbyteorder("<")).tobytes()
        data_offsets.append(pos if i < valid else 0)
        body += element
        pos += len(element)
        if positions:
            y, x = divmod(i, nav_shape[-1])
            tag = struct.pack("<HHIdd", tag_id, 0, 1000 + i, float(x), float(y))
        else:
            tag = struct.pack("<HHI", tag_id, 0, 1000 + i)
        tag_offsets.append(pos if i < valid else 0)
        body += tag
        pos += len(tag)
        if irregular and i % 2:
            body += b"\xaa" * 24
            pos += 24
    table = struct.pack(f"<{total}{off_fmt[1]}", *data_offsets)
    table += struct.pack(f"<{total}{off_fmt[1]}", *tag_offsets)
    with open(path, "wb") as f:
        f.write(head + table + bytes(body))


def write_emi(path, voltage: float = 200000.0) -> None:
    """A minimal ``.emi`` file: binary framing around TIA's ``<ObjectInfo>`` XML."""
    xml = (
        "<ObjectInfo><ExperimentalConditions><MicroscopeConditions><AcceleratingVoltage>"
        f"{voltage:g}</AcceleratingVoltage></MicroscopeConditions></ExperimentalConditions>"
        "</ObjectInfo>"
    )
    with open(path, "wb") as f:
        f.write(b"\x00" * 64 + xml.encode() + b"\x00" * 32)
