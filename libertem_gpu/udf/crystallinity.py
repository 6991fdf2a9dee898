"""Crystallinity of each frame from its Fourier spectrum: :class:`CrystallinityUDF`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf._common import check_radii
from libertem_gpu.udf.fft import FourierMaskSumUDF, fft_ring_weights, real_space_mask

__all__ = ["CrystallinityUDF", "crystallinity_masks"]


def crystallinity_masks(
    sig_shape: Sequence[int],
    rad_in: float,
    rad_out: float,
    real_center: Any = None,
    real_rad: Any = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The band on the half spectrum and the real-space blank, as LiberTEM 0.16 makes them.

    Parameters
    ----------
    sig_shape : sequence of int
        ``(rows, cols)``.
    rad_in, rad_out : float
        The band: frequencies whose distance from ``(rows / 2, cols / 2)`` in the centred
        spectrum is in ``(rad_in, rad_out]``; the mask is then moved to zero frequency at
        ``[0, 0]`` (``fftshift``) and cut to the ``cols // 2 + 1`` columns of ``rfft2``.
    real_center : tuple of float, optional
        ``(row, column)`` of a disk set to zero in the frame before the transform.
    real_rad : float, optional
        Its radius; without either of ``real_center`` and ``real_rad`` nothing is blanked.

    Returns
    -------
    half_mask : numpy.ndarray
        float64 ``(rows, cols // 2 + 1)``, 1 in the band.
    real_mask : numpy.ndarray or None
        float64 ``(rows, cols)``, 0 in the disk, 1 elsewhere; None without a disk.
    """
    sig = tuple(int(d) for d in sig_shape)
    if len(sig) != 2:
        raise InvalidParameterError(
            f"CrystallinityUDF needs two signal dimensions, got sig_shape {sig}"
        )
    ny, nx = sig
    ri, ro = check_radii(rad_in, rad_out, "CrystallinityUDF", ("rad_in", "rad_out"))
    half = fft_ring_weights((ny, nx), ri, ro)[:, : nx // 2 + 1]
    if not half.any():
        raise InvalidParameterError(
            f"CrystallinityUDF: the band rad_in={rad_in} < |k| <= rad_out={rad_out} holds no "
            f"frequency of a {ny} x {nx} frame; widen it"
        )
    if real_center is None or real_rad is None:
        return np.ascontiguousarray(half), None
    try:
        cy, cx = (float(c) for c in real_center)
        r = float(real_rad)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            "CrystallinityUDF: real_center must be two numbers (row, column) and real_rad a "
            f"number, got {real_center!r}, {real_rad!r}"
        ) from None
    if not (0 <= cy <= ny - 1 and 0 <= cx <= nx - 1):
        raise InvalidParameterError(
            f"CrystallinityUDF: real_center=(row {cy}, column {cx}) lies outside the "
            f"{ny} x {nx} frame"
        )
    if not r >= 0:
        raise InvalidParameterError(f"CrystallinityUDF: real_rad must be >= 0, got {real_rad}")
    return np.ascontiguousarray(half), real_space_mask((ny, nx), (cy, cx), r)


class CrystallinityUDF(FourierMaskSumUDF):
    """Crystallinity: each frame's Fourier amplitude summed over a ring of spatial frequencies
    (LiberTEM's ``CrystallinityUDF``).

    ``intensity = sum(|rfft2(frame * real_mask)| * half_mask)``, with the masks of
    :func:`crystallinity_masks`. Sharp periodic features (lattice fringes, Bragg-like spots)
    put amplitude at their frequency; smooth, amorphous frames little. The same operation as
    :class:`~libertem_gpu.ApplyFFTMaskUDF`'s ring (``fft_mask_sum``), which on the CPU computes
    only the band's frequencies where that is cheaper than the FFT (a partial DFT as two matrix
    products), else ``scipy.fft`` with the second pass pruned to the band's columns; on the GPU
    ``cupy.fft``, batched. Unlike ``ApplyFFTMaskUDF`` (float32, as LiberTEM's analysis) its
    results are float64, and it checks that the band and the blank fit the frame.

    Parameters
    ----------
    rad_in, rad_out : float
        The ring in Fourier space, in frequency pixels around zero frequency.
    real_center : tuple of float, optional
        ``(row, column)`` of a disk blanked in real space first (e.g. the zero-order beam).
    real_rad : float, optional
        That disk's radius. Without either of the two nothing is blanked (as in LiberTEM).

    Results
    -------
    intensity : nav, float64
        The band's summed amplitude per frame.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, CrystallinityUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.random.default_rng(0).poisson(5, (2, 3, 16, 16)))
    >>> udf = CrystallinityUDF(rad_in=2, rad_out=5, real_center=(8, 8), real_rad=2)
    >>> ctx.run_udf(dataset=ds, udf=udf)["intensity"].data.shape
    (2, 3)
    """

    result_dtype = np.float64
    complex_ok = False
    label = "CrystallinityUDF"

    def __init__(
        self, rad_in: float, rad_out: float, real_center: Any = None, real_rad: Any = None
    ) -> None:
        check_radii(rad_in, rad_out, "CrystallinityUDF", ("rad_in", "rad_out"))
        super().__init__(rad_in=rad_in, rad_out=rad_out, real_center=real_center, real_rad=real_rad)

    def _masks(self, sig_shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray | None]:
        p = self.params
        return crystallinity_masks(sig_shape, p.rad_in, p.rad_out, p.real_center, p.real_rad)

    def weights(self, sig_shape: tuple[int, int], complex_input: bool) -> np.ndarray:
        """The band on the ``rfft2`` half (:func:`crystallinity_masks`)."""
        return self._masks(sig_shape)[0]

    def real_mask(self, sig_shape: tuple[int, int]) -> np.ndarray | None:
        """The blanked disk (:func:`crystallinity_masks`), or None."""
        return self._masks(sig_shape)[1]
