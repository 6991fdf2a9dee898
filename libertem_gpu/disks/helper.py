"""One call from a data set to strain maps: :func:`find_lattice_strain`.

Sum frame -> disk template -> lattice of the sum frame's correlation peaks -> sparse
correlation at the expected disk positions in every frame, each frame's lattice fitted in the
workers (:class:`~libertem_gpu.disks.fit_udf.LatticeFitUDF`) -> strain maps against a reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.disks.lattice import (
    LatticeFit,
    LatticeNotFoundError,
    find_lattice,
    lattice_points,
)
from libertem_gpu.disks.strain import METHODS, SPACES, reference_basis, strain_from_basis
from libertem_gpu.errors import InvalidParameterError

__all__ = ["LatticeStrainResult", "find_lattice_strain"]


@dataclass(frozen=True)
class LatticeStrainResult:
    """What :func:`find_lattice_strain` returns; every array is NumPy, scan-shaped ones hold NaN
    (and ``fit.n_matched`` 0) outside the roi and where no lattice was found.

    Attributes
    ----------
    exx, eyy, exy, rotation : numpy.ndarray, scan shape
        Strain components and rotation (radians, from +x towards +y) against the reference
        (see :func:`~libertem_gpu.disks.strain.strain_from_basis`).
    exx_std, eyy_std, exy_std, rotation_std : numpy.ndarray, scan shape
        Their standard deviations, propagated from each frame's fit covariance.
    fit : LatticeFit
        Each frame's lattice (origin, basis, residual RMS, matched peaks, covariance), scan
        shaped.
    peaks, heights : numpy.ndarray, shapes (*scan, N, 2) and (*scan, N)
        Each frame's refined peak near expected position ``i`` and its correlation height.
    positions, hk : numpy.ndarray, shape (N, 2)
        The expected disk positions ``(y, x)`` (from the sum frame's lattice) and their indices.
    reference_a, reference_b : numpy.ndarray, shape (2,)
        The reference basis vectors ``(y, x)`` the strain is measured against.
    sum_frame : numpy.ndarray
        Sum of the frames in the roi.
    sum_lattice : LatticeFit
        The lattice found in the sum frame (leading shape ``()``).
    """

    exx: np.ndarray
    eyy: np.ndarray
    exy: np.ndarray
    rotation: np.ndarray
    exx_std: np.ndarray
    eyy_std: np.ndarray
    exy_std: np.ndarray
    rotation_std: np.ndarray
    fit: LatticeFit
    peaks: np.ndarray
    heights: np.ndarray
    positions: np.ndarray
    hk: np.ndarray
    reference_a: np.ndarray
    reference_b: np.ndarray
    sum_frame: np.ndarray
    sum_lattice: LatticeFit


def _nav_mask(mask: Any, nav_shape: tuple[int, ...], name: str) -> np.ndarray | None:
    if mask is None:
        return None
    m = np.asarray(mask)
    if m.dtype != bool or m.shape not in (nav_shape, (math.prod(nav_shape),)):
        raise InvalidParameterError(
            f"{name} must be a boolean array of the scan's shape {nav_shape}, got "
            f"{m.dtype} {m.shape}"
        )
    m = m.reshape(nav_shape)
    if not m.any():
        raise InvalidParameterError(f"{name} selects no scan position")
    return m


def _reference_in_basis(reference: Any, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
    """The given reference vectors re-expressed in the indexing of the found basis ``(a, b)``;
    an error if they do not span (nearly) the same lattice."""
    ref = np.stack([np.asarray(v, np.float64).reshape(2) for v in reference], axis=1)
    found = np.stack([a, b], axis=1)
    m = np.linalg.solve(ref, found)
    near = np.abs(m - np.round(m)).max() < 0.1
    if not (near and abs(abs(np.linalg.det(np.round(m))) - 1) < 1e-9):
        raise InvalidParameterError(
            f"the reference vectors {ref.T.tolist()} do not span the lattice found in the sum "
            f"frame (a={a.tolist()}, b={b.tolist()}) within 10 %"
        )
    new = ref @ np.round(m)
    return new[:, 0], new[:, 1]


def _check(
    ds: Any,
    radius: Any,
    n_peaks: Any,
    refine: str,
    search: Any,
    min_height_fraction: Any,
    method: str,
    space: str,
    reference: Any,
    reference_roi: Any,
    roi: Any,
    centre: Any,
) -> tuple[np.ndarray | None, np.ndarray | None]:
    from libertem_gpu.disks.peaks import REFINE_METHODS

    sig = tuple(ds.shape.sig)
    nav = tuple(ds.shape.nav)
    if len(sig) != 2:
        raise InvalidParameterError(f"disk finding needs two signal dimensions, got {sig}")
    real = isinstance(radius, (int, float, np.integer, np.floating)) and not isinstance(
        radius, bool
    )
    if not (real and math.isfinite(radius) and radius > 0):
        raise InvalidParameterError(f"radius must be a positive number of pixels, got {radius!r}")
    if 2 * radius + 3 > min(sig):
        raise InvalidParameterError(f"radius {radius} is too large for frames of shape {sig}")
    if isinstance(n_peaks, bool) or not isinstance(n_peaks, (int, np.integer)) or n_peaks < 3:
        raise InvalidParameterError(f"n_peaks must be an integer >= 3, got {n_peaks!r}")
    if refine not in REFINE_METHODS:
        raise InvalidParameterError(f"refine must be one of {REFINE_METHODS}, got {refine!r}")
    if search is not None and (not isinstance(search, (int, np.integer)) or search < 1):
        raise InvalidParameterError(f"search must be None or an integer >= 1, got {search!r}")
    if not 0 <= min_height_fraction < 1:
        raise InvalidParameterError(
            f"min_height_fraction must be in [0, 1), got {min_height_fraction!r}"
        )
    if method not in METHODS:
        raise InvalidParameterError(f"method must be one of {METHODS}, got {method!r}")
    if space not in SPACES:
        raise InvalidParameterError(f"space must be one of {SPACES}, got {space!r}")
    if centre is not None:
        c = np.asarray(centre, np.float64)
        if c.shape != (2,) or not np.isfinite(c).all():
            raise InvalidParameterError(f"centre must be a finite (y, x) pair, got {centre!r}")
    if reference is not None and reference_roi is not None:
        raise InvalidParameterError("give either reference (vectors) or reference_roi, not both")
    if reference is not None:
        ref = np.asarray(reference, np.float64)
        if ref.shape != (2, 2) or not np.isfinite(ref).all() or abs(np.linalg.det(ref)) < 1e-9:
            raise InvalidParameterError(
                "reference must be two finite, non-collinear vectors ((a_y, a_x), (b_y, b_x)), "
                f"got {reference!r}"
            )
    roi_mask = _nav_mask(roi, nav, "roi")
    ref_mask = _nav_mask(reference_roi, nav, "reference_roi")
    if ref_mask is not None and roi_mask is not None and not (ref_mask & roi_mask).any():
        raise InvalidParameterError("reference_roi and roi have no scan position in common")
    return roi_mask, ref_mask


def find_lattice_strain(
    ctx: Any,
    ds: Any,
    radius: float,
    *,
    roi: Any = None,
    reference_roi: Any = None,
    reference: Any = None,
    n_peaks: int = 60,
    centre: Any = None,
    refine: str = "com",
    search: int | None = None,
    min_height_fraction: float = 0.2,
    weighted: bool = True,
    method: str = "polar",
    space: str = "diffraction",
    max_residual: float | None = None,
    outlier_sigma: float = 5.0,
    min_peaks: int = 4,
) -> LatticeStrainResult:
    """Strain and rotation maps of a crystal's diffraction disks in one call.

    1. Sum the frames (in ``roi``).
    2. Correlate the sum frame with a disk template of ``radius``, take its ``n_peaks``
       strongest peaks and find the lattice in them (:func:`~.lattice.find_lattice`: zero
       order nearest to ``centre`` or the strongest, reduced basis).
    3. In every frame, correlate around each lattice point of the sum frame that lies at least
       ``radius + search + 1`` pixels inside the frame, refine the peaks, and fit the frame's
       lattice to them by weighted least squares with outlier rejection
       (:class:`~.fit_udf.LatticeFitUDF`; the fits run in the workers).
    4. Strain and rotation of each frame's basis against the reference
       (:func:`~.strain.strain_from_basis`).

    Parameters
    ----------
    ctx : Context
        Runs the two passes over the data.
    ds : DataSet
        4D-STEM data (two signal dimensions).
    radius : float
        Disk radius in pixels.
    roi : array_like of bool, optional
        Scan positions to analyse (the scan's shape).
    reference_roi : array_like of bool, optional
        Reference region: the reference basis is the mean fitted basis over it. Default
        (neither this nor ``reference``): the mean over all analysed positions.
    reference : pair of array_like, optional
        Reference basis vectors ``((a_y, a_x), (b_y, b_x))``; any basis of the lattice found
        in the sum frame (within 10 %), re-expressed in its indexing.
    n_peaks : int
        Peaks of the sum frame's correlation used to find the lattice.
    centre : (float, float), optional
        Where the zero-order disk is expected in the frame; default: the strongest peak.
    refine : {"com", "parabolic", "upsampled"}
        Subpixel refinement of the correlation peaks.
    search : int, optional
        Largest shift of a disk from its expected position, per axis, in pixels. Default: a
        tenth of the shorter basis vector, at least 2.
    min_height_fraction : float
        A frame's peak counts only if its height is at least this fraction of the same disk's
        mean height (the sum frame's divided by the number of frames): frames without disks
        get no lattice rather than a fit to noise.
    weighted : bool
        Weight the peaks by their heights in the fit (Poisson: the inverse variance of a
        position grows with the disk's intensity).
    method, space : str
        See :func:`~.strain.strain_from_basis`.
    max_residual, outlier_sigma, min_peaks
        See :func:`~.lattice.fit_lattice`.

    Returns
    -------
    LatticeStrainResult

    Raises
    ------
    InvalidParameterError
        For bad parameters, before any data is read.
    LatticeNotFoundError
        If the sum frame holds no lattice, or too few lattice points lie inside the frame.
    """
    from libertem_gpu.disks.fit_udf import LatticeFitUDF
    from libertem_gpu.disks.lattice import fit_lattice
    from libertem_gpu.disks.peaks import find_peaks, find_peaks_sparse
    from libertem_gpu.disks.templates import disk_template
    from libertem_gpu.udf.sum import SumUDF

    roi_mask, ref_mask = _check(
        ds, radius, n_peaks, refine, search, min_height_fraction, method, space,
        reference, reference_roi, roi, centre,
    )  # fmt: skip
    # the fit's own checks, on a dummy frame, also before any read
    fit_lattice(
        np.zeros((1, 4, 2)),
        np.zeros(2),
        [0, 1],
        [1, 0],
        max_residual=max_residual,
        outlier_sigma=outlier_sigma,
        min_peaks=min_peaks,
    )
    sig = tuple(ds.shape.sig)
    nav = tuple(ds.shape.nav)
    total = ctx.run_udf(dataset=ds, udf=SumUDF(), roi=roi_mask)["intensity"].data
    n_frames = int(roi_mask.sum()) if roi_mask is not None else math.prod(nav)
    template = disk_template(radius)
    sum_peaks, sum_heights, _ = find_peaks(total, template, n_peaks, refine=refine)
    try:
        lattice = find_lattice(sum_peaks[0], sum_heights[0], centre=centre)
    except LatticeNotFoundError as e:
        raise LatticeNotFoundError(
            f"no lattice in the sum frame's correlation peaks: {e}"
        ) from None
    shortest = min(math.hypot(*lattice.a), math.hypot(*lattice.b))
    search = max(2, round(0.1 * shortest)) if search is None else int(search)
    positions, hk = lattice_points(lattice.origin, lattice.a, lattice.b, sig, radius + search + 1)
    if len(positions) < min_peaks:
        raise LatticeNotFoundError(
            f"only {len(positions)} disks of the sum frame's lattice lie {radius + search + 1} "
            f"px inside the frame; at least min_peaks={min_peaks} are needed"
        )
    _, expected, _ = find_peaks_sparse(total, template, positions, search=search, refine=refine)
    # a disk the sum frame lacks is left out of every frame's fit
    mean_height = expected[0].astype(np.float64) / n_frames
    min_heights = np.where(np.isfinite(mean_height), min_height_fraction * mean_height, np.inf)
    udf = LatticeFitUDF(
        peaks=positions,
        template=template,
        search=search,
        refine=refine,
        hk=hk,
        origin=lattice.origin,
        a=lattice.a,
        b=lattice.b,
        min_heights=min_heights,
        weighted=weighted,
        max_residual=max_residual,
        outlier_sigma=outlier_sigma,
        min_peaks=min_peaks,
    )
    res = ctx.run_udf(dataset=ds, udf=udf, roi=roi_mask)
    fit = LatticeFit(
        origin=res["origin"].data,
        a=res["a"].data,
        b=res["b"].data,
        residual_rms=res["residual_rms"].data,
        n_matched=res["n_matched"].data,
        covariance=res["covariance"].data,
    )
    if reference is not None:
        a_ref, b_ref = _reference_in_basis(reference, lattice.a, lattice.b)
    else:
        a_ref, b_ref = reference_basis(fit.a, fit.b, ref_mask)
    strain = strain_from_basis(
        fit.a, fit.b, a_ref, b_ref, fit.covariance, method=method, space=space
    )
    return LatticeStrainResult(
        exx=strain.exx,
        eyy=strain.eyy,
        exy=strain.exy,
        rotation=strain.rotation,
        exx_std=strain.exx_std,
        eyy_std=strain.eyy_std,
        exy_std=strain.exy_std,
        rotation_std=strain.rotation_std,
        fit=fit,
        peaks=res["peaks"].data,
        heights=res["heights"].data,
        positions=positions,
        hk=hk,
        reference_a=a_ref,
        reference_b=b_ref,
        sum_frame=total,
        sum_lattice=lattice,
    )
