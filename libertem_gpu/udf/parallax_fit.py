"""Measuring the parallax of bright-field pixels: how far each one's virtual image is moved,
and the 2 x 2 matrix that says so for every pixel (:func:`estimate_parallax`), for
:class:`~libertem_gpu.udf.parallax.ParallaxUDF`.

Two streaming passes: the mean frame (where the bright-field disk is), then one virtual image
per block of ``block`` x ``block`` pixels of the disk (sparse masks). The block images are
then aligned to their mean by cross-correlation (three rounds, the reference re-made from the
aligned images each time), and ``shift = t + A q`` fitted by least squares over the blocks'
positions ``q`` from the disk's centre.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.masks import SparseMask
from libertem_gpu.udf.parallax import ParallaxUDF
from libertem_gpu.udf.parallax_geometry import ParallaxOptics, parallax_optics

__all__ = ["ParallaxFit", "estimate_parallax", "find_bright_field"]


#: The share of the bright-field disk's radius beyond which a fit's pixels bias the optics
#: read off it (:meth:`ParallaxFit.optics`).
_INNER = 0.6


@dataclass(frozen=True)
class ParallaxFit:
    """What :func:`estimate_parallax` measured.

    Attributes
    ----------
    shift_matrix : numpy.ndarray
        ``(2, 2)``: scan pixels a virtual image moves per detector pixel from ``center``.
    center : tuple of float
        ``(row, column)`` of the bright-field disk.
    radius : float
        Its radius, in detector pixels.
    mean_frame : numpy.ndarray
        The mean frame.
    positions : numpy.ndarray
        ``(k, 2)``: each block's centre, from ``center``, in detector pixels.
    shifts : numpy.ndarray
        ``(k, 2)``: each block's measured shift, in scan pixels (relative to their mean).
    residual : float
        RMS distance between the measured shifts and the fitted ones, scan pixels.
    bright_field : numpy.ndarray
        The scan's plain bright-field image (the mean of the block images).
    """

    shift_matrix: np.ndarray
    center: tuple[float, float]
    radius: float
    mean_frame: np.ndarray
    positions: np.ndarray
    shifts: np.ndarray
    residual: float
    bright_field: np.ndarray

    def optics(
        self,
        scan_step: float,
        semiconv: float,
        semiconv_pix: float,
        scan_rotation: float | None = None,
    ) -> ParallaxOptics:
        """The defocus and the detector's rotation and flip that :attr:`shift_matrix` stands
        for (:func:`~libertem_gpu.udf.parallax_geometry.parallax_optics`), to start
        :class:`~libertem_gpu.SSBUDF` or :func:`~libertem_gpu.ptychography` from
        (``**fit.optics(...).as_params()``).

        Warns where the fit reached out to the disk's edge: pixels there see the specimen
        through one side of the aperture, and on phase objects the shifts they gave read the
        defocus too strong (1.45x in ``tests/udf/test_parallax_geometry.py``); fit with
        ``radius`` about half the disk's and ``block=1`` for this."""
        _, disk = find_bright_field(self.mean_frame)
        if self.radius > _INNER * disk:
            warnings.warn(
                f"the parallax fit used pixels out to {self.radius:.3g} of the bright-field "
                f"disk's {disk:.3g}: near its edge the shifts read too strong a defocus; for "
                f"the optics, fit with radius={disk / 2:.3g} and block=1",
                UserWarning,
                stacklevel=2,
            )
        return parallax_optics(self.shift_matrix, scan_step, semiconv, semiconv_pix, scan_rotation)

    def udf(self, upsampling: int = 1) -> ParallaxUDF:
        """The :class:`~libertem_gpu.udf.parallax.ParallaxUDF` of this fit."""
        return ParallaxUDF(
            self.shift_matrix,
            self.center,
            self.radius,
            mean_frame=self.mean_frame,
            upsampling=upsampling,
        )


def find_bright_field(mean_frame: Any, threshold: float = 0.5) -> tuple[tuple[float, float], float]:
    """Centre and radius of the bright-field disk of a mean frame: the centroid of the pixels
    above ``threshold`` times the frame's largest value, and the radius of a disk of their
    number.

    Examples
    --------
    >>> y, x = np.mgrid[:32, :32]
    >>> frame = (np.hypot(y - 14.0, x - 17.0) <= 6).astype(float)
    >>> center, radius = find_bright_field(frame)
    >>> [round(c, 1) for c in center], round(radius, 1)
    ([14.0, 17.0], 6.1)
    """
    frame = np.asarray(mean_frame, dtype=np.float64)
    if frame.ndim != 2 or not np.isfinite(frame).all() or frame.max() <= 0:
        raise InvalidParameterError(
            "find_bright_field needs a 2-D frame of finite values with a positive maximum"
        )
    bright = frame >= threshold * frame.max()
    rows, cols = np.nonzero(bright)
    return (float(rows.mean()), float(cols.mean())), math.sqrt(bright.sum() / math.pi)


def _blocks(
    shape: tuple[int, int], center: tuple[float, float], radius: float, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Label per pixel (-1 outside) of the blocks at least half inside the disk, and each
    block's centre from ``center``."""
    rows, cols = shape
    y, x = np.mgrid[:rows, :cols]
    inside = np.hypot(y - center[0], x - center[1]) <= radius
    raw = (y // block) * (cols // block + 1) + x // block
    raw = np.where(inside, raw, -1)
    found, counts = np.unique(raw[inside], return_counts=True)
    kept = found[counts * 2 >= block * block]
    labels = np.full(shape, -1, dtype=np.int64)
    where = np.isin(raw, kept)
    labels[where] = np.searchsorted(kept, raw[where])
    centres = np.array(
        [
            [y[labels == k].mean() - center[0], x[labels == k].mean() - center[1]]
            for k in range(len(kept))
        ]
    )
    return labels, centres.reshape(-1, 2)


def _peak(cc: np.ndarray) -> np.ndarray:
    """Subpixel position of a cross-correlation's maximum (parabola through its neighbours
    along each axis), as a signed shift."""
    shape = np.array(cc.shape)
    idx = np.array(np.unravel_index(int(np.argmax(cc)), cc.shape))
    out = idx.astype(np.float64)
    for axis in range(2):
        lo, hi = idx.copy(), idx.copy()
        lo[axis] = (idx[axis] - 1) % shape[axis]
        hi[axis] = (idx[axis] + 1) % shape[axis]
        a, b, c = cc[tuple(lo)], cc[tuple(idx)], cc[tuple(hi)]
        denom = a - 2 * b + c
        if denom < 0:
            out[axis] += 0.5 * (a - c) / denom
    return (out + shape / 2) % shape - shape / 2


def _move(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``image`` moved by ``shift`` (Fourier shift, periodic)."""
    ky = np.fft.fftfreq(image.shape[0])[:, None]
    kx = np.fft.fftfreq(image.shape[1])[None, :]
    phase = np.exp(-2j * np.pi * (ky * shift[0] + kx * shift[1]))
    return np.fft.ifft2(np.fft.fft2(image) * phase).real


def _align(images: np.ndarray, rounds: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's shift against the mean of the aligned images; and that mean."""
    window = np.outer(np.hanning(images.shape[1]), np.hanning(images.shape[2]))
    shifts = np.zeros((len(images), 2))
    reference = images.mean(axis=0)
    spectra = np.fft.fft2(images * window)
    for _ in range(rounds):
        ref = np.conj(np.fft.fft2(reference * window))
        for j, spectrum in enumerate(spectra):
            shifts[j] = _peak(np.fft.ifft2(spectrum * ref).real)
        shifts -= shifts.mean(axis=0)
        reference = np.mean([_move(img, -s) for img, s in zip(images, shifts, strict=True)], axis=0)
    return shifts, reference


def estimate_parallax(
    ctx: Any,
    dataset: Any,
    center: Any = None,
    radius: float | None = None,
    block: int | None = None,
    rounds: int = 3,
    corrections: Any = None,
) -> ParallaxFit:
    """Measure the shifts of the bright-field pixels' virtual images and fit their matrix.

    Parameters
    ----------
    ctx : Context
        Runs the passes.
    dataset : DataSet
        A 2-D scan of 2-D frames.
    center, radius : optional
        The bright-field disk (default: :func:`find_bright_field` of the mean frame).
    block : int, optional
        Detector pixels per side of each block whose virtual image is aligned (default: about
        ten blocks across the disk).
    rounds : int
        Rounds of alignment to the mean of the aligned images (default 3).
    corrections : CorrectionSet, optional
        Detector corrections applied to the frames of both passes.

    Returns
    -------
    ParallaxFit
        ``fit.udf(upsampling)`` is the :class:`~libertem_gpu.udf.parallax.ParallaxUDF` that
        uses it.
    """
    from libertem_gpu.udf.masks import ApplyMasksUDF
    from libertem_gpu.udf.sum import SumUDF

    nav, sig = tuple(dataset.shape.nav), tuple(dataset.shape.sig)
    if len(nav) != 2 or len(sig) != 2:
        raise InvalidParameterError(
            f"estimate_parallax needs a 2-D scan of 2-D frames, got scan {nav} and frames {sig}"
        )
    total = ctx.run_udf(dataset=dataset, udf=SumUDF(), corrections=corrections)["intensity"].data
    mean_frame = np.asarray(total, dtype=np.float64) / math.prod(nav)
    if center is None or radius is None:
        found_center, found_radius = find_bright_field(mean_frame)
        center = found_center if center is None else center
        radius = found_radius if radius is None else radius
    cy, cx = (float(c) for c in center)
    radius = float(radius)
    size = block if block is not None else max(1, round(radius / 5))
    labels, positions = _blocks((int(sig[0]), int(sig[1])), (cy, cx), radius, int(size))
    if len(positions) < 3:
        raise InvalidParameterError(
            f"estimate_parallax: {len(positions)} blocks of {size} x {size} pixels fit in the "
            f"bright-field disk of radius {radius:.1f}; at least 3 are needed (a smaller block)"
        )
    flat = labels.reshape(-1)
    npix = flat.size
    inside = np.flatnonzero(flat >= 0)
    order = np.lexsort((inside, flat[inside]))
    pix = inside[order]
    lab = flat[pix]
    counts = np.bincount(lab)
    stack = SparseMask((len(positions), *sig), lab * npix + pix, 1.0 / counts[lab])
    blocks = ApplyMasksUDF(lambda: stack, use_sparse=True)
    res = ctx.run_udf(dataset=dataset, udf=blocks, corrections=corrections)
    images = np.moveaxis(np.asarray(res["intensity"].data, dtype=np.float64), -1, 0)
    images = images / images.mean(axis=(1, 2), keepdims=True) - 1.0
    shifts, _ = _align(images, rounds)
    design = np.column_stack([np.ones(len(positions)), positions])
    coef, *_ = np.linalg.lstsq(design, shifts, rcond=None)
    residual = float(np.sqrt(np.mean(np.sum((design @ coef - shifts) ** 2, axis=1))))
    return ParallaxFit(
        shift_matrix=coef[1:].T.copy(),
        center=(cy, cx),
        radius=radius,
        mean_frame=mean_frame,
        positions=positions,
        shifts=shifts,
        residual=residual,
        bright_field=images.mean(axis=0),
    )
