"""LiberTEM's ``libertem.udf.crystallinity``: :class:`CrystallinityUDF` and
``run_analysis_crystall``."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu import masks
from libertem_gpu.compat.udf._rings import annulus
from libertem_gpu.compat.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl

__all__ = ["CrystallinityUDF", "run_analysis_crystall"]


class CrystallinityUDF(UDF):
    """Crystallinity of each frame: its Fourier spectrum's magnitude summed over a ring of
    spatial frequencies.

    Parameters
    ----------
    rad_in, rad_out : float
        The ring in Fourier space, in frequency pixels around zero frequency.
    real_center : tuple of float, optional
        ``(row, column)`` of a disk to blank in the frame first (the zero-order peak).
    real_rad : float, optional
        That disk's radius.

    Results
    -------
    intensity : nav, float32
    """

    def __init__(
        self, rad_in: float, rad_out: float, real_center: Any = None, real_rad: Any = None
    ) -> None:
        super().__init__(rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity``: one float32 per frame."""
        return {"intensity": self.buffer(kind="nav", dtype=np.float32)}

    def get_task_data(self) -> dict[str, Any]:
        """The real-space blank (or None) and the ring on the half spectrum ``rfft2`` gives."""
        assert self.meta is not None
        rows, cols = tuple(self.meta.dataset_shape.sig)
        p = self.params
        real_mask = None
        if p.real_center is not None and p.real_rad is not None:
            ry, rx = p.real_center
            real_mask = 1 - masks.circular(rx, ry, cols, rows, p.real_rad).astype(np.int64)
        ring = annulus((rows, cols), rows * 0.5, cols * 0.5, p.rad_in, p.rad_out)
        # centred ring -> zero frequency at [0, 0], then the half that rfft2 returns
        half = np.fft.fftshift(ring)[:, : cols // 2 + 1]
        return {"real_mask": real_mask, "half_fourier_mask": half}

    def process_frame(self, frame: Any) -> None:
        """Sum of ``|rfft2(frame)|`` over the ring (float32 frames, whatever the stored type)."""
        values = frame.astype(np.float32)
        if self.task_data.real_mask is not None:
            values = values * self.task_data.real_mask
        spectrum = np.abs(np.fft.rfft2(values))
        self.results.intensity[:] = np.sum(spectrum * self.task_data.half_fourier_mask)


def run_analysis_crystall(
    ctx: Any,
    dataset: Any,
    rad_in: float,
    rad_out: float,
    real_center: Any = None,
    real_rad: Any = None,
    roi: Any = None,
    progress: bool = False,
) -> Any:
    """Run :class:`CrystallinityUDF` and return its results (``"intensity"``)."""
    udf = CrystallinityUDF(
        rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad
    )
    return ctx.run_udf(dataset=dataset, udf=udf, roi=roi, progress=progress)
