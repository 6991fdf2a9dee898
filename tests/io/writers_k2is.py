"""A small writer of Gatan K2 IS data sets (8 sector ``.bin`` files of 12-bit blocks, and a
``.gtg`` tag file) following the documented block layout, for tests."""

from __future__ import annotations

import numpy as np

from tests.io.writers_dm import Group, write_dm

BLOCK_BYTES = 0x5758
HEADER = np.dtype(
    [
        ("sync", ">u4"),
        ("pad1", "V4"),
        ("version", "u1"),
        ("flags", "u1"),
        ("pad2", "V6"),
        ("block_count", ">u4"),
        ("width", ">u2"),
        ("height", ">u2"),
        ("frame_id", ">u4"),
        ("x_start", ">u2"),
        ("y_start", ">u2"),
        ("x_end", ">u2"),
        ("y_end", ">u2"),
        ("block_size", ">u4"),
    ]
)


def pack_12bit(values: np.ndarray) -> np.ndarray:
    """Little-endian 12-bit packing: 2 values into 3 bytes."""
    v = values.reshape(-1, 2).astype(np.uint16)
    a, b = v[:, 0], v[:, 1]
    out = np.empty((len(v), 3), dtype=np.uint8)
    out[:, 0] = a & 0xFF
    out[:, 1] = (a >> 8) | ((b & 0x0F) << 4)
    out[:, 2] = b >> 4
    return out.reshape(-1)


def _block_header(k: int, frame_id: int, flags: int) -> bytes:
    """Header of block ``k`` (0 to 31) of frame ``frame_id``. The block count is the camera's
    running block number: the same in every sector for the same frame and block."""
    y, x = 930 * (k // 16), 16 * (15 - k % 16)
    h = np.zeros(1, dtype=HEADER)
    h["sync"], h["version"], h["flags"] = 0xFFFF0055, 1, flags
    h["block_count"], h["width"], h["height"] = 32 * frame_id + k, 256, 1860
    h["frame_id"] = frame_id
    h["x_start"], h["y_start"], h["x_end"], h["y_end"] = x, y, x + 15, y + 929
    h["block_size"] = BLOCK_BYTES
    return h.tobytes()


def sector_stream(
    frames: np.ndarray, sector: int, first_id: int, shutter_from: int, lead: int
) -> bytes:
    """Blocks of ``frames`` (``n, 1860, 2048``, < 4096) for one sector; ``lead`` blocks of an
    earlier, incomplete frame come first; frames before ``shutter_from`` lack the shutter flag."""
    out = bytearray()
    for k in range(32 - lead, 32):
        out += _block_header(k, first_id - 1, 0) + bytes(BLOCK_BYTES - 40)
    for i, frame in enumerate(frames):
        for k in range(32):
            y, x = 930 * (k // 16), 16 * (15 - k % 16)
            pixels = frame[y : y + 930, 256 * sector + x : 256 * sector + x + 16]
            out += _block_header(k, first_id + i, 1 if i >= shutter_from else 0)
            out += pack_12bit(pixels).tobytes()
    return bytes(out)


def write_k2is(
    base,
    frames: np.ndarray,
    nav_shape=None,
    leads=(0, 3, 0, 0, 1, 0, 0, 2),
    first_id: int = 100,
    shutter_from: int = 0,
    extra_lead_frames=(0,) * 8,
    gtg: bool = True,
    idle_frames: int = 0,
    tail_frames: int = 0,
) -> str:
    """Write ``<base>_1.bin`` to ``_8.bin`` (+ ``<base>.gtg`` with ``nav_shape``); sector ``s``
    starts with ``leads[s]`` blocks of an incomplete frame and ``extra_lead_frames[s]`` whole
    frames from before the others' first frame; then come ``idle_frames`` blank frames without
    the shutter flag in every sector (their pixels are holes in the file: a long acquisition at
    little cost on disk), ``frames``, and ``tail_frames`` blank frames with the shutter flag
    (holes too). Returns the ``.gtg`` path."""
    for s in range(8):
        extra = extra_lead_frames[s]
        start_id = first_id - idle_frames - extra
        pre = np.zeros((extra, *frames.shape[1:]), dtype=frames.dtype)
        with open(f"{base}_{s + 1}.bin", "wb") as f:
            f.write(sector_stream(pre, s, start_id, extra, leads[s]))
            for i in range(idle_frames):
                for k in range(32):
                    f.write(_block_header(k, first_id - idle_frames + i, 0))
                    f.seek(BLOCK_BYTES - 40, 1)
            f.write(sector_stream(frames, s, first_id, shutter_from, 0))
            for i in range(tail_frames):
                for k in range(32):
                    f.write(_block_header(k, first_id + len(frames) + i, 1))
                    f.seek(BLOCK_BYTES - 40, 1)
            f.truncate(f.tell())  # the last block's pixels may be a hole
    if gtg:
        tags = Group(("Version", np.int32(1)))
        if nav_shape is not None:
            tags = Group(
                (
                    "SI Dimensions",
                    Group(("Size X", np.int32(nav_shape[1])), ("Size Y", np.int32(nav_shape[0]))),
                )
            )
        write_dm(f"{base}.gtg", tags)
    return f"{base}.gtg"
