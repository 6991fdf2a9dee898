"""Writes NanoMegas ``.blo`` block files as published (header, virtual image, then each pattern
after 0x55AA and a 32-bit frame number)."""

from __future__ import annotations

import struct

import numpy as np

HEADER = struct.Struct("<6sHIIIHHHHHddIHId")


def write_blo(path, data: np.ndarray, pattern_offset: int = 0x1000, magic: int = 0x0102) -> str:
    """Write ``data`` (``(ny, nx, side, side)`` uint8) to ``path``."""
    ny, nx, side, _ = data.shape
    vbf_offset = HEADER.size + 40
    head = HEADER.pack(
        b"IMGBLO",
        magic,
        vbf_offset,
        pattern_offset,
        0,
        side,
        0,
        nx,
        ny,
        0,
        1.5,
        1.5,
        200000,
        100,
        100,
        44000.5,
    )
    with open(path, "wb") as f:
        f.write(head + b"\x00" * (pattern_offset - len(head)))
        for i, frame in enumerate(data.reshape(-1, side, side)):
            f.write(struct.pack("<HI", 0x55AA, i) + frame.astype(np.uint8).tobytes())
    return str(path)
