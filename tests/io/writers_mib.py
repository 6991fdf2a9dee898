"""Writes Merlin ``.mib``/``.hdr`` acquisitions as the Merlin software lays them out (Merlin
manual: ASCII frame headers before each frame, big-endian ``U08``..``U64`` pixels, ``R64`` raw
frames packed into big-endian 64-bit words with the first pixel in the lowest bits, 24-bit raw as
two 12-bit images high part first, 2x2 quad raw rows holding chips in the order 4, 3, 2, 1 with
the bottom chips rotated by 180 degrees)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

_STORED = {1: ("U08", ">u1"), 6: ("U08", ">u1"), 12: ("U16", ">u2"), 24: ("U32", ">u4")}


def max_value(depth: int) -> int:
    """Largest counter value at ``depth`` bits."""
    return (1 << depth) - 1


def frame_header(
    seq: int, size: int, chips: int, width: int, height: int, ptype: str, layout: str, depth: int
) -> bytes:
    """One frame header, padded to ``size`` bytes, with the extension block and counter depth."""
    seconds = 10.0 + 0.102 * seq + 0.01 * ((seq - 1) // 4)  # flyback gap after every 4 frames
    stamp = f"2024-01-02 03:04:{seconds:09.6f}"
    fields = [
        "MQ1",
        f"{seq:06d}",
        f"{size:05d}",
        f"{chips:02d}",
        f"{width:04d}",
        f"{height:04d}",
        ptype,
        f"{layout:>6}",
        "0F" if chips == 4 else "01",
        stamp,
        "0.001000",
        "0",
        "0",
        "0",
        *["1.000000E+1"] * 8,
        "3RX",
        *["100"] * 27,
        "MQ1A",
        "2024-01-02T03:04:05.000000000Z",
        "1000000ns",
        str(depth),
        "",
    ]
    text = ",".join(fields).encode("ascii")
    assert len(text) <= size, len(text)
    return text + b"\x00" * (size - len(text))


def _pack_words(pixels: np.ndarray, depth: int) -> bytes:
    """Pack a flat stream of raw pixels into big-endian 64-bit words, first pixel lowest."""
    if depth == 1:
        packed = np.packbits(pixels.astype(np.uint8).reshape(-1, 64), axis=-1, bitorder="little")
        return packed[:, ::-1].tobytes()
    if depth == 6:
        return pixels.astype(np.uint8).reshape(-1, 8)[:, ::-1].tobytes()
    little = pixels.astype("<u2").view(np.uint8).reshape(-1, 8)
    return little[:, ::-1].tobytes()


def _raw_payload(frame: np.ndarray, depth: int, quad: bool) -> bytes:
    if quad:
        rows, cols = frame.shape[0] // 2, frame.shape[1] // 2
        stream = np.empty((rows, 4, cols), dtype=frame.dtype)
        stream[:, 3] = frame[:rows, :cols]
        stream[:, 2] = frame[:rows, cols:]
        stream[:, 1] = frame[rows:, :cols][::-1, ::-1]
        stream[:, 0] = frame[rows:, cols:][::-1, ::-1]
        flat = stream.reshape(-1)
    else:
        flat = frame.reshape(-1)
    if depth == 24:
        flat = np.concatenate([flat >> 12, flat & 0xFFF])
    return _pack_words(flat, depth)


def write_mib(
    directory: str | os.PathLike[str],
    data: np.ndarray,
    depth: int = 12,
    *,
    name: str = "scan",
    raw: bool = False,
    quad: bool = False,
    n_files: int = 1,
    hdr: bool = True,
    frames_per_trigger: int | None = None,
    hdr_frames: int | None = None,
) -> str:
    """Write ``data`` (``nav + (h, w)``) as a Merlin acquisition; return the ``.hdr`` path (or
    the first ``.mib`` when ``hdr`` is False).

    ``n_files > 1`` splits the frames over ``{name}1.mib``, ``{name}2.mib``, ...; the scan shape
    goes into the ``.hdr`` as frames per trigger = the scan's last axis.
    """
    directory = Path(directory)
    frames = data.reshape(-1, *data.shape[-2:])
    n, h, w = frames.shape
    chips = 4 if quad else 1
    size = 768 if quad else 384
    layout = "2x2" if quad else "1x1"
    if raw:
        ptype = "R64"
        if quad:
            hw = (h // 2, 4 * (w // 2))
        else:
            hw = (h, 2 * w if depth == 24 else w)
        head_h, head_w = hw
    else:
        ptype = _STORED[depth][0]
        head_h, head_w = h, w
    splits = np.array_split(np.arange(n), n_files)
    paths = []
    for k, idx in enumerate(splits):
        fname = directory / (f"{name}{k + 1}.mib" if n_files > 1 else f"{name}.mib")
        with open(fname, "wb") as f:
            for i in idx:
                f.write(frame_header(i + 1, size, chips, head_w, head_h, ptype, layout, depth))
                if raw:
                    f.write(_raw_payload(frames[i], depth, quad))
                else:
                    f.write(frames[i].astype(_STORED[depth][1]).tobytes())
        paths.append(str(fname))
    if not hdr:
        return paths[0]
    per_trigger = frames_per_trigger or (data.shape[-3] if data.ndim > 3 else n)
    lines = [
        "HDR,\t",
        "Time and Date Stamp (day, mnth, yr, hr, min, s):\t02/01/2024 03:04:05",
        "Chip ID:\tW1_A1, - , - , - ",
        f"Assembly Size (NX1, 2X2):\t   {layout}",
        f"Counter Depth (number):\t{depth}",
        f"Frames in Acquisition (Number):\t{hdr_frames if hdr_frames is not None else n}",
        f"Frames per Trigger (Number):\t{per_trigger}",
        "Software Version:\t0.77",
        "End\t",
    ]
    text = "\r\n".join(lines).encode("ascii")
    hdr_path = directory / f"{name}.hdr"
    hdr_path.write_bytes(text + b" " * max(0, 2048 - len(text)))
    return str(hdr_path)
