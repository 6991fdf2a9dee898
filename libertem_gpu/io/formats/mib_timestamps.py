"""The scan line length of a Merlin acquisition from its frames' timestamps (the beam's flyback
makes a longer gap after every line), where the ``.hdr`` does not give the scan shape."""

from __future__ import annotations

import os
import re

import numpy as np

from libertem_gpu.io.layout import FileSegment

__all__ = ["line_length_from_timestamps"]

_TIMESTAMP_PROBE = 8193  # frames whose timestamps are read to find the scan line length


def _parse_time(field: bytes) -> float | None:
    """Seconds of a frame header timestamp ``YYYY-MM-DD HH:MM:SS.ffffff`` (None if malformed)."""
    match = re.fullmatch(rb"\s*\d{4}-\d\d-(\d\d) (\d\d):(\d\d):(\d\d(?:\.\d+)?)\s*", field)
    if match is None:
        return None
    day, hour, minute, second = match.groups()
    return ((int(day) * 24 + int(hour)) * 60 + int(minute)) * 60 + float(second)


def line_length_from_timestamps(segments: list[FileSegment], frames: int) -> int | None:
    """The scan line length, from the longer gap (the beam's flyback) between frame timestamps.

    Reads the headers of at most the first few thousand frames. Returns None unless the gaps
    are consistent: a line length that divides the frame count, with a long gap after every line.
    """
    segment = segments[0]
    n = min(segment.num_frames, frames, _TIMESTAMP_PROBE)
    if n < 3:
        return None
    times = np.empty(n)
    fd = os.open(segment.path, os.O_RDONLY)
    try:
        for i in range(n):
            head = os.pread(fd, 128, i * segment.frame_stride)  # frame i's header
            fields = head.split(b",")
            value = _parse_time(fields[9]) if len(fields) > 9 else None
            if value is None:
                return None
            times[i] = value
    finally:
        os.close(fd)
    gaps = np.diff(times)
    long_gaps = np.flatnonzero(gaps > gaps.mean())
    if len(long_gaps) == 0:
        return None
    line = int(long_gaps[0]) + 1
    if line >= frames or frames % line:
        return None
    # Every line end in the sample must be a long gap.
    ends = np.arange(line - 1, n - 1, line)
    if not (gaps[ends] > gaps.mean()).all():
        return None
    return line
