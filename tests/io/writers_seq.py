"""A small writer of Norpix StreamPix ``.seq`` files following the documented header, for tests."""

from __future__ import annotations

import struct

import numpy as np


def seq_header(
    width: int,
    height: int,
    bit_depth: int,
    frames: int,
    true_image_size: int,
    version: int = 5,
    image_format: int = 100,
    compression: int = 0,
    description: str = "",
) -> bytes:
    """The 1024-byte header (``description``: UTF-16 text of at most 255 characters)."""
    h = bytearray(1024)
    struct.pack_into("<I", h, 0, 0xFEED)
    name = "Norpix seq\n".encode("utf-16-le")
    h[4 : 4 + len(name)] = name
    struct.pack_into("<ii", h, 28, version, 1024)
    text = description.encode("utf-16-le")[:510]
    h[36 : 36 + len(text)] = text
    struct.pack_into(
        "<IIIIIIII",
        h,
        548,
        width,
        height,
        bit_depth,
        bit_depth,
        width * height * bit_depth // 8,
        image_format,
        frames,
        0,
    )
    struct.pack_into("<Id", h, 580, true_image_size, 25.0)
    struct.pack_into("<I", h, 620, compression)
    return bytes(h)


def write_seq(
    path,
    frames: np.ndarray,
    version: int = 5,
    footer: int = 8,
    allocated: int | None = None,
    description: str = "",
) -> None:
    """Write ``frames`` (``n, rows, cols``, uint8/16/32) with a timestamp of ``footer`` bytes
    after each frame."""
    n, rows, cols = frames.shape
    depth = frames.dtype.itemsize * 8
    frame_bytes = rows * cols * frames.dtype.itemsize
    stride = frame_bytes + footer
    offset = 8192 if version >= 5 else 1024
    with open(path, "wb") as f:
        f.write(
            seq_header(
                cols,
                rows,
                depth,
                n if allocated is None else allocated,
                stride,
                version=version,
                description=description,
            )
        )
        f.write(b"\x00" * (offset - 1024))
        for i in range(n):
            f.write(
                np.ascontiguousarray(frames[i]).astype(frames.dtype.newbyteorder("<")).tobytes()
            )
            f.write(
                struct.pack("<IHH", 1_700_000_000 + i, i % 1000, 0)[:footer].ljust(footer, b"\0")
            )
