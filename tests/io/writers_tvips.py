"""Writes TVIPS recorder series as published: a 256-byte series header in ``_000``, then records
of an image header (version 2: counter, time, ..., Scan_x, Scan_y at byte 68) and an image,
split over ``_000``, ``_001``, ... files."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_tvips(
    directory,
    data: np.ndarray,
    *,
    n_files: int = 1,
    header_bytes: int = 1024,
    lead_in: int = 0,
    scan: bool = True,
    version: int = 2,
    name: str = "rec",
    pixel_size: int = 55,
    mode: int = 0,
) -> str:
    """Write ``data`` (``nav + (h, w)``, uint8 or uint16) as a series; ``lead_in`` blank frames
    (scan position (0, 0)... before the scan starts) precede it; ``pixel_size`` goes to the
    series header, ``mode`` (1 image, 2 diffraction, 0 unset) to each version 2 image header.
    Returns the ``_000`` path."""
    directory = Path(directory)
    frames = data.reshape(-1, *data.shape[-2:])
    h, w = frames.shape[1:]
    line = data.shape[-3] if data.ndim > 3 else len(frames)
    bpp = frames.dtype.itemsize * 8
    series = struct.pack(
        "<13i", 256, version, w, h, bpp, 0, 0, 1, 1, pixel_size, 300, 1000, header_bytes
    )
    series += b"TVIPS " * 34 + b"\x00" * (256 - len(series) - 204)
    records = []
    lead = np.zeros((lead_in, h, w), dtype=frames.dtype)
    for i, frame in enumerate(np.concatenate([lead, frames])):
        k = i - lead_in
        y, x = (0.0, 0.0) if k < 0 else divmod(k, line)
        head = bytearray(header_bytes if version == 2 else 12)
        struct.pack_into("<3I", head, 0, i, 1700000000 + i, i % 1000)
        if version == 2:
            struct.pack_into("<I", head, 24, mode)
        if scan and version == 2:
            struct.pack_into("<2f", head, 68, float(x), float(y))
        records.append(bytes(head) + frame.astype(frame.dtype.newbyteorder("<")).tobytes())
    groups = np.array_split(np.arange(len(records)), n_files)
    for k, idx in enumerate(groups):
        with open(directory / f"{name}_{k:03d}.tvips", "wb") as f:
            if k == 0:
                f.write(series)
            for i in idx:
                f.write(records[i])
    return str(directory / f"{name}_000.tvips")
