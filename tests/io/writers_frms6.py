"""A small writer of PNDetector ``.frms6`` data sets (``.hdr`` + numbered files) following the
documented layout, for tests; also the NumPy reference decoding of folded frames."""

from __future__ import annotations

import struct

import numpy as np


def fold(frames: np.ndarray, binning: int) -> np.ndarray:
    """Stored frames for sensor frames ``(n, 2 * h * binning, w)``: binned rows are the first of
    each ``binning`` rows; the lower half goes rotated by 180 degrees into the right columns."""
    n, _rows, half = frames.shape
    binned = frames[:, ::binning]
    h = binned.shape[1] // 2
    stored = np.empty((n, h, 2 * half), dtype=frames.dtype)
    stored[:, :, :half] = binned[:, :h]
    stored[:, :, half:] = binned[:, h:][:, ::-1, ::-1]
    return stored


def unfold_reference(stored: np.ndarray, binning: int) -> np.ndarray:
    """NumPy reference: sensor frames from stored frames (rows repeated ``binning`` times)."""
    _n, _h, w = stored.shape
    half = w // 2
    top = stored[:, :, :half]
    bottom = np.rot90(stored[:, :, half:], 2, axes=(1, 2))
    return np.repeat(np.concatenate([top, bottom], axis=1), binning, axis=1)


def file_header(width: int, height: int, num_frames: int, version: int = 6) -> bytes:
    h = bytearray(1024)
    struct.pack_into("<HH", h, 0, 1024, 64)
    h[7] = version
    struct.pack_into("<HH", h, 88, width, height)
    struct.pack_into("<I", h, 1020, num_frames)
    return bytes(h)


def write_frms6_file(path, stored: np.ndarray, count_in_header: bool = True) -> None:
    n, h, w = stored.shape
    with open(path, "wb") as f:
        f.write(file_header(w, h, n if count_in_header else 0))
        for i in range(n):
            f.write(struct.pack("<4xIII", 1_700_000_000 + i, i, i).ljust(64, b"\0"))
            f.write(stored[i].astype("<u2").tobytes())


def write_hdr(
    path,
    nav_shape,
    signal_frames: int,
    dark_frames: int,
    binning: int = 1,
    rows: int = 264,
    cols: int = 264,
) -> None:
    stem = "x".join(str(d) for d in nav_shape)
    with open(path, "w") as f:
        f.write(
            "[measurementInfo]\n"
            f"darkframes={dark_frames}\n"
            f"signalframes={signal_frames}\n"
            "dwelltimeMicroSeconds=1000\n"
            "gain=3\n"
            f"stemimagesize={stem}\n"
            f'readoutmode="bin: {binning}, windowing: {rows} x {cols}"\n'
        )


def write_frms6(
    base, dark: np.ndarray, stored_parts: list[np.ndarray], nav_shape, binning: int = 1
) -> str:
    """Write ``<base>.hdr``, ``<base>_000.frms6`` (dark) and one file per stored part; returns
    the ``.hdr`` path."""
    n = sum(len(p) for p in stored_parts)
    write_hdr(f"{base}.hdr", nav_shape, n, len(dark), binning)
    write_frms6_file(f"{base}_000.frms6", dark)
    for k, part in enumerate(stored_parts, start=1):
        write_frms6_file(f"{base}_{k:03d}.frms6", part, count_in_header=k % 2 == 1)
    return f"{base}.hdr"
