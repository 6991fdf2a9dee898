"""Writes MRC2014 movies as Direct Electron's software does (1024-byte header, optional
extended header, frames), with a DE-style ``_info.txt``."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MODES = {"int8": 0, "int16": 1, "float32": 2, "uint16": 6, "float16": 12}


def write_mrc(
    directory,
    data: np.ndarray,
    *,
    name: str = "20250101_00001",
    extended: int = 0,
    info: dict[str, str] | None = None,
    big_endian: bool = False,
    cell: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> str:
    """Write ``data`` (``(n, ny, nx)``) as ``{name}_movie.mrc`` (+ ``{name}_info.txt`` when
    ``info`` is given), with cell size ``cell`` (Å, x y z); return the movie's path."""
    directory = Path(directory)
    n, ny, nx = data.shape
    order = ">" if big_endian else "<"
    mode = MODES[data.dtype.name]
    head = bytearray(1024)
    struct.pack_into(order + "4i", head, 0, nx, ny, n, mode)
    struct.pack_into(order + "3i", head, 28, nx, ny, n)
    struct.pack_into(order + "3f", head, 40, *cell)
    struct.pack_into(order + "i", head, 92, extended)
    head[104:108] = b"FEI1"
    head[208:212] = b"MAP "
    head[212:214] = b"\x11\x11" if big_endian else b"\x44\x44"
    path = directory / f"{name}_movie.mrc"
    with open(path, "wb") as f:
        f.write(bytes(head) + b"\xab" * extended)
        f.write(data.astype(data.dtype.newbyteorder(order)).tobytes())
    if info is not None:
        lines = [f"{key:<64}= {value}" for key, value in info.items()]
        (directory / f"{name}_info.txt").write_text("\n".join(lines) + "\n")
    return str(path)


def raster_info(ny: int, nx: int, repeats: int = 1) -> dict[str, str]:
    """The ``_info.txt`` keys of a raster scan."""
    return {
        "Scan - Enable": "Enable",
        "Scan - Type": "Raster",
        "Scan - ROI Enable": "Disable",
        "Scan - Size X": str(nx),
        "Scan - Size Y": str(ny),
        "Scan - Repeats": str(repeats),
        "Image Size X (pixels)": "0",
    }
