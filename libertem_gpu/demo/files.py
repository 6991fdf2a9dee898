"""Where the demo data set lives on disk and how it is written (streamed, bounded memory)."""

from __future__ import annotations

import dataclasses
import math
import os
import time

from libertem_gpu.demo.synthetic import disk_geometry, generate_frames
from libertem_gpu.outputs import atomic_path
from libertem_gpu.sizes import parse_size


def demo_layout(
    size: int, sig_shape: tuple[int, int] = (256, 256)
) -> tuple[tuple[int, int], tuple[int, int]]:
    """The scan and frame shape of a uint16 demo data set of about ``size`` bytes.

    The scan is as square as possible, never larger than ``size``; at least 2 x 2 positions.
    """
    frame_bytes = 2 * sig_shape[0] * sig_shape[1]
    frames = max(4, size // frame_bytes)
    ny = max(2, math.isqrt(frames))
    nx = max(2, frames // ny)
    return (ny, nx), (int(sig_shape[0]), int(sig_shape[1]))


@dataclasses.dataclass(frozen=True)
class DemoData:
    """A demo data set on disk and the geometry needed to analyse it.

    Attributes
    ----------
    path : str
        The raw file (uint16, frames back to back, no headers).
    nav_shape, sig_shape : tuple of int
        Scan and frame shape.
    cy, cx : float
        Centre of the undeflected disk on the detector (pixels).
    radius : float
        Disk radius (pixels).
    halo_inner, halo_outer : float
        Inner and outer radius of the scattered halo (pixels), where the dark-field ring goes.
    seconds : float
        Time taken to generate and write the file.
    """

    path: str
    nav_shape: tuple[int, int]
    sig_shape: tuple[int, int]
    cy: float
    cx: float
    radius: float
    halo_inner: float
    halo_outer: float
    seconds: float = 0.0

    @property
    def nbytes(self) -> int:
        """Bytes of the file."""
        return 2 * math.prod(self.nav_shape) * math.prod(self.sig_shape)


def write_demo_data(
    directory: str | os.PathLike[str],
    size: int | str = "1GiB",
    *,
    sig_shape: tuple[int, int] = (256, 256),
    seed: int = 0,
) -> DemoData:
    """Generate the demo data set and write it as ``demo.raw`` in ``directory``.

    Parameters
    ----------
    directory : path
        An existing directory.
    size : int or str
        Approximate size in bytes (``"1GiB"``, ``"64MiB"``, ...); the scan is the largest
        near-square that fits.
    sig_shape : tuple of int
        Frame shape.
    seed : int
        Random seed.
    """
    nav_shape, sig_shape = demo_layout(parse_size(size), sig_shape)
    path = os.path.join(os.fspath(directory), "demo.raw")
    t0 = time.perf_counter()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        for frames in generate_frames(nav_shape, sig_shape, seed=seed):
            frames.tofile(f)
    g = disk_geometry(sig_shape)
    return DemoData(
        path=path,
        nav_shape=nav_shape,
        sig_shape=sig_shape,
        cy=g["cy"],
        cx=g["cx"],
        radius=g["radius"],
        halo_inner=g["halo_inner"],
        halo_outer=g["halo_outer"],
        seconds=time.perf_counter() - t0,
    )
