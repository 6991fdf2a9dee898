"""Progress of a run: frames done out of the frames to process, and the rate in GB/s of the data
set's stored bytes (a tqdm bar; in Jupyter tqdm's notebook bar)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any


class FrameProgress:
    """A progress bar of frames that also shows the throughput in GB/s.

    Parameters
    ----------
    total_frames : int
        Frames the run reads (with a roi, the selected positions that hold data).
    frame_bytes : int
        Stored bytes of one frame; frames done times this over the elapsed time is the rate.
    desc : str
        The bar's label.
    file : file-like, optional
        Where the bar is written; default: tqdm's (stderr, or a notebook widget).
    clock : callable
        Seconds, for the rate (tests give a fake one).

    Attributes
    ----------
    bar : tqdm.tqdm
        The bar: ``bar.n`` frames done, ``bar.total`` frames to do, ``bar.postfix`` the rate.
    """

    def __init__(
        self,
        total_frames: int,
        frame_bytes: int,
        desc: str = "libertem_gpu",
        file: IO[str] | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        from tqdm.auto import tqdm

        self.frame_bytes = int(frame_bytes)
        self._clock = clock
        self._start = clock()
        # smoothing=0: tqdm's frames/s is the average since the start, as the GB/s is.
        self.bar: Any = tqdm(
            total=int(total_frames), unit="frame", desc=desc, file=file, smoothing=0
        )
        self.bar.set_postfix_str(format_rate(0.0), refresh=False)

    @property
    def n(self) -> int:
        """Frames done so far."""
        return int(self.bar.n)

    def update(self, frames: int) -> None:
        """Count ``frames`` more frames done and refresh the rate (as ``tqdm.update``)."""
        elapsed = self._clock() - self._start
        done = self.bar.n + int(frames)
        rate = done * self.frame_bytes / elapsed if elapsed > 0 else 0.0
        self.bar.set_postfix_str(format_rate(rate), refresh=False)
        self.bar.update(int(frames))

    def close(self) -> None:
        """Draw the bar a last time and release it."""
        self.bar.close()


def format_rate(bytes_per_s: float) -> str:
    """``bytes_per_s`` in decimal gigabytes per second, e.g. ``"1.25 GB/s"``."""
    gb = bytes_per_s / 1e9
    return f"{gb:.0f} GB/s" if gb >= 100 else f"{gb:.2f} GB/s" if gb >= 1 else f"{gb:.3f} GB/s"
