"""Lattice fitting: the zero-order disk and two basis vectors of a diffraction pattern from its
peak list (:func:`find_lattice`), and per frame a least-squares fit of origin and basis to the
indexed peaks with outlier rejection (:func:`fit_lattice`), vectorised over many frames.

Positions are ``(y, x)`` in frame pixels, as the peak finders return them. The lattice point
``(h, k)`` sits at ``origin + h * a + k * b``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, LiberTEMGPUError

__all__ = [
    "LatticeFit",
    "LatticeNotFoundError",
    "find_lattice",
    "fit_lattice",
    "index_peaks",
    "lattice_points",
]

#: Median of the length of a 2-D isotropic Gaussian vector in units of its per-axis sigma.
_RAYLEIGH_MEDIAN = math.sqrt(2 * math.log(2))
#: Residuals below this many pixels are never called outliers: a sigma clip on very precise
#: peaks must not throw away good ones.
CLIP_FLOOR = 0.1
#: Implementations of :func:`fit_lattice`.
IMPLEMENTATIONS = ("auto", "numba", "numpy")
#: Fewest frames for which ``implementation="auto"`` picks the compiled loop: below, its
#: first-use compilation (seconds) costs more than it saves.
NUMBA_MIN_FRAMES = 256
#: Names of the fit parameters, in the order of :attr:`LatticeFit.covariance`'s axes.
PARAMETERS = ("origin_y", "origin_x", "a_y", "a_x", "b_y", "b_x")


class LatticeNotFoundError(LiberTEMGPUError, ValueError):
    """No lattice could be found in a peak list (too few peaks, or no two non-collinear
    difference vectors)."""


@dataclass(frozen=True)
class LatticeFit:
    """Lattice fitted to the peaks of one or many frames (leading shape ``S``).

    Attributes
    ----------
    origin, a, b : numpy.ndarray, shape (*S, 2)
        Zero-order position and basis vectors ``(y, x)`` in frame pixels; NaN where no lattice
        was fitted.
    residual_rms : numpy.ndarray, shape S
        Root mean square of the length of the matched peaks' residual vectors, in pixels.
    n_matched : numpy.ndarray, shape S, int32
        Number of peaks the fit used (indexed and not rejected); 0 where no lattice was fitted.
    covariance : numpy.ndarray, shape (*S, 6, 6)
        Covariance of the parameters ``(origin_y, origin_x, a_y, a_x, b_y, b_x)``, from the
        residuals (the scale of the weights is estimated from the data); NaN where the fit has
        no degrees of freedom left (3 peaks) or no lattice was fitted.
    """

    origin: np.ndarray
    a: np.ndarray
    b: np.ndarray
    residual_rms: np.ndarray
    n_matched: np.ndarray
    covariance: np.ndarray

    def reshape(self, shape: tuple[int, ...]) -> LatticeFit:
        """The same fit with leading shape ``shape`` (for example the scan's)."""
        shape = tuple(shape)
        return LatticeFit(
            origin=self.origin.reshape(*shape, 2),
            a=self.a.reshape(*shape, 2),
            b=self.b.reshape(*shape, 2),
            residual_rms=self.residual_rms.reshape(shape),
            n_matched=self.n_matched.reshape(shape),
            covariance=self.covariance.reshape(*shape, 6, 6),
        )

    @property
    def basis(self) -> np.ndarray:
        """``(*S, 2, 2)``: the basis vectors as columns, ``[[a_y, b_y], [a_x, b_x]]``."""
        return np.stack([self.a, self.b], axis=-1)


def index_peaks(peaks: Any, origin: Any, a: Any, b: Any) -> np.ndarray:
    """The nearest lattice indices ``(h, k)`` of each peak (float, NaN for NaN peaks).

    Parameters
    ----------
    peaks : array_like, shape (..., N, 2)
        ``(y, x)`` positions.
    origin, a, b : array_like, shape (..., 2)
        Lattice, broadcastable against the peaks' leading shape.

    Returns
    -------
    numpy.ndarray, shape (..., N, 2)
    """
    p = np.asarray(peaks, np.float64)
    o, va, vb = (np.asarray(v, np.float64)[..., None, :] for v in (origin, a, b))
    basis = np.stack([va, vb], axis=-1)  # (..., 1, 2, 2), columns a and b
    det = basis[..., 0, 0] * basis[..., 1, 1] - basis[..., 0, 1] * basis[..., 1, 0]
    with np.errstate(invalid="ignore"):
        good = np.isfinite(det) & (det != 0)
    inv = np.linalg.inv(np.where(good[..., None, None], basis, np.eye(2)))
    frac = np.einsum("...ij,...j->...i", inv, p - o)
    frac = np.where(good[..., None], frac, np.nan)
    return np.round(frac)


def lattice_points(
    origin: Any, a: Any, b: Any, sig_shape: tuple[int, int], margin: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """The lattice points ``origin + h a + k b`` at least ``margin`` pixels inside a frame.

    Parameters
    ----------
    origin, a, b : array_like, shape (2,)
        Zero-order position and basis vectors ``(y, x)`` in frame pixels.
    sig_shape : (int, int)
        Frame shape.
    margin : float
        Minimum distance of a point from the frame's edges (for example the disk radius).

    Returns
    -------
    positions : numpy.ndarray, shape (N, 2)
        ``(y, x)`` of each point, zero order first, then by distance from it.
    hk : numpy.ndarray, shape (N, 2), int
        Their indices.
    """
    o, va, vb = (np.asarray(v, np.float64).reshape(2) for v in (origin, a, b))
    basis = np.stack([va, vb], axis=1)
    if abs(np.linalg.det(basis)) < 1e-9:
        raise InvalidParameterError(f"basis vectors a={va} and b={vb} are collinear")
    corners = np.array([[0, 0], [0, sig_shape[1]], [sig_shape[0], 0], sig_shape], float) - o
    frac = corners @ np.linalg.inv(basis).T
    lo = np.floor(frac.min(axis=0)).astype(int)
    hi = np.ceil(frac.max(axis=0)).astype(int)
    h, k = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
    hk = np.stack([h.ravel(), k.ravel()], axis=1)
    pos = o + hk @ basis.T
    inside = (
        (pos[:, 0] >= margin)
        & (pos[:, 0] <= sig_shape[0] - 1 - margin)
        & (pos[:, 1] >= margin)
        & (pos[:, 1] <= sig_shape[1] - 1 - margin)
    )
    pos, hk = pos[inside], hk[inside]
    order = np.argsort(np.hypot(*(pos - o).T), kind="stable")
    return pos[order], hk[order]


def _residuals(
    p: np.ndarray, hk: np.ndarray, o: np.ndarray, va: np.ndarray, vb: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``p - (o + h a + k b)`` per frame, as its y and x planes ``(F, N)``."""
    h, k = hk[..., 0], hk[..., 1]
    ry = p[..., 0] - (o[:, 0:1] + h * va[:, 0:1] + k * vb[:, 0:1])
    rx = p[..., 1] - (o[:, 1:2] + h * va[:, 1:2] + k * vb[:, 1:2])
    return ry, rx


def _robust_sigma(res: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Per-axis sigma of residual vectors from the median of their lengths, per frame."""
    ordered = np.sort(np.where(use, res, np.inf), axis=1)
    n = use.sum(axis=1)
    lo = np.take_along_axis(ordered, np.maximum(n - 1, 0)[:, None] // 2, axis=1)[:, 0]
    hi = np.take_along_axis(ordered, (n // 2)[:, None], axis=1)[:, 0]
    with np.errstate(invalid="ignore"):
        return np.where(n > 0, (lo + hi) / 2, np.nan) / _RAYLEIGH_MEDIAN


def _unique_hk(hk: np.ndarray, res: np.ndarray, use: np.ndarray) -> np.ndarray:
    """``use`` with only the nearest of several peaks indexed to the same ``(h, k)`` kept."""
    n = hk.shape[1]
    if n < 2 or not use.any():
        return use
    h = np.where(use, hk[..., 0], 0).astype(np.int64)
    k = np.where(use, hk[..., 1], 0).astype(np.int64)
    h -= h.min()
    k -= k.min()
    code = np.where(use, h * (k.max() + 1) + k, -1 - np.arange(n))
    order = np.lexsort((np.where(use, res, np.inf), code), axis=-1)
    sorted_code = np.take_along_axis(code, order, axis=1)
    first = np.ones(code.shape, dtype=bool)
    first[:, 1:] = sorted_code[:, 1:] != sorted_code[:, :-1]
    keep = np.empty_like(first)
    np.put_along_axis(keep, order, first, axis=1)
    return use & keep


def _solve(
    p: np.ndarray, hk: np.ndarray, w: np.ndarray, use: np.ndarray, min_peaks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares of ``p = origin + h a + k b`` per frame over the peaks ``use``;
    x and y share the design matrix ``[1, h, k]`` and are solved together."""
    frames = p.shape[0]
    wi = np.where(use, w, 0.0)
    h = np.where(use, hk[..., 0], 0.0)
    k = np.where(use, hk[..., 1], 0.0)
    wh, wk = wi * h, wi * k
    # normal equations of the design [1, h, k], shared by y and x
    sw, swh, swk = wi.sum(1), wh.sum(1), wk.sum(1)
    shh, shk, skk = (wh * h).sum(1), (wh * k).sum(1), (wk * k).sum(1)
    normal = np.stack(
        [
            np.stack([sw, swh, swk], -1),
            np.stack([swh, shh, shk], -1),
            np.stack([swk, shk, skk], -1),
        ],
        axis=1,
    )
    py = np.where(use, p[..., 0], 0.0)
    px = np.where(use, p[..., 1], 0.0)
    rhs = np.stack(
        [
            np.stack([wi_p.sum(1), (wh * q).sum(1), (wk * q).sum(1)], -1)
            for q, wi_p in ((py, wi * py), (px, wi * px))
        ],
        axis=-1,
    )  # (F, 3, 2)
    n = use.sum(axis=1)
    scale = (sw + shh + skk) / 3
    with np.errstate(invalid="ignore", divide="ignore"):
        ok = (n >= min_peaks) & (np.linalg.det(normal) > 1e-9 * scale**3)
    safe = np.where(ok[:, None, None], normal, np.eye(3))
    inv = np.linalg.inv(safe)
    params = inv @ rhs  # (F, 3, 2): rows origin, a, b
    ry, rx = _residuals(np.stack([py, px], -1), np.stack([h, k], -1), *params.transpose(1, 0, 2))
    res2 = (ry**2 + rx**2) * use
    with np.errstate(invalid="ignore", divide="ignore"):
        rms = np.sqrt(res2.sum(axis=1) / n)
        dof = 2 * n - 6
        s2 = np.where(dof > 0, (wi * res2).sum(axis=1) / np.maximum(dof, 1), np.nan)
    cov = np.zeros((frames, 6, 6))
    cov[:, 0::2, 0::2] = s2[:, None, None] * inv  # y components of (origin, a, b)
    cov[:, 1::2, 1::2] = s2[:, None, None] * inv  # x components
    params[~ok] = np.nan
    rms[~ok] = np.nan
    cov[~ok] = np.nan
    n_matched = np.where(ok, n, 0).astype(np.int32)
    return params[:, 0], params[:, 1], params[:, 2], rms, n_matched, cov


def fit_lattice(
    peaks: Any,
    origin: Any,
    a: Any,
    b: Any,
    *,
    hk: Any = None,
    weights: Any = None,
    max_residual: float | None = None,
    outlier_sigma: float = 5.0,
    n_iter: int = 5,
    min_peaks: int = 4,
    implementation: str = "auto",
) -> LatticeFit:
    """Fit origin and basis to the peaks of each frame by weighted least squares.

    The starting origin is first moved by the median offset of the peaks from their nearest
    lattice points (a shift of the whole pattern). Each iteration then indexes the peaks to
    the nearest point of the current lattice (unless ``hk`` is given), keeps those within
    ``max_residual`` (and, from the second iteration on, within ``outlier_sigma`` robust
    standard deviations of the last fit, never rejecting residuals under :data:`CLIP_FLOOR`
    pixels), keeps the nearest peak where several share an index, and refits; it stops when
    the set of matched peaks no longer changes.

    Parameters
    ----------
    peaks : array_like, shape (*S, N, 2)
        Peak positions ``(y, x)`` of each frame; NaN rows are missing peaks.
    origin, a, b : array_like, shape (2,) or (*S, 2)
        Starting lattice (for example the reference lattice from :func:`find_lattice`).
    hk : array_like, shape (N, 2) or (*S, N, 2), optional
        Known indices of the peaks (for peaks found at expected lattice positions); otherwise
        they are indexed against the current lattice.
    weights : array_like, shape (*S, N), optional
        Relative weights (inverse variances) of the peaks, for example the correlation peak
        heights; peaks with a weight that is not positive or not finite are ignored.
        Default: equal weights.
    max_residual : float, optional
        Largest distance in pixels of a matched peak from its lattice point. Default: a
        quarter of the shorter starting basis vector.
    outlier_sigma : float
        Rejection threshold in robust standard deviations of the residuals.
    n_iter : int
        Most fits per frame.
    min_peaks : int
        Fewest matched peaks (at least 3) for a lattice; frames with fewer get NaN and a
        match count of 0.
    implementation : {"auto", "numba", "numpy"}
        The compiled per-frame loop (:mod:`libertem_gpu.kernels.lattice_fit`, 5-7x faster,
        compiled on first use) or the NumPy reference, vectorised over frames; equal to
        rounding. ``"auto"``: Numba from :data:`NUMBA_MIN_FRAMES` frames on.

    Returns
    -------
    LatticeFit
        With leading shape ``S``.

    Raises
    ------
    InvalidParameterError
        For arrays of the wrong shape or out-of-range settings.
    """
    p = np.asarray(peaks, dtype=np.float64)
    if p.ndim < 2 or p.shape[-1] != 2:
        raise InvalidParameterError(f"peaks must have shape (..., N, 2), got {p.shape}")
    if min_peaks < 3:
        raise InvalidParameterError(f"min_peaks must be at least 3, got {min_peaks}")
    if n_iter < 1:
        raise InvalidParameterError(f"n_iter must be at least 1, got {n_iter}")
    if not outlier_sigma > 0:
        raise InvalidParameterError(f"outlier_sigma must be positive, got {outlier_sigma}")
    if max_residual is not None and not max_residual > 0:
        raise InvalidParameterError(f"max_residual must be positive, got {max_residual}")
    if implementation not in IMPLEMENTATIONS:
        raise InvalidParameterError(
            f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
        )
    lead, n = p.shape[:-2], p.shape[-2]
    frames = math.prod(lead)
    p = p.reshape(frames, n, 2)
    try:
        o, va, vb = (
            np.broadcast_to(np.asarray(v, np.float64), (*lead, 2)).reshape(frames, 2)
            for v in (origin, a, b)
        )
        w = (
            np.ones((frames, n))
            if weights is None
            else np.broadcast_to(np.asarray(weights, np.float64), (*lead, n)).reshape(frames, n)
        )
        fixed = (
            None
            if hk is None
            else np.broadcast_to(np.asarray(hk, np.float64), (*lead, n, 2)).reshape(frames, n, 2)
        )
    except ValueError as e:
        raise InvalidParameterError(
            f"origin, a, b must have shape (2,) or {(*lead, 2)}, weights {(*lead, n)} and hk "
            f"{(n, 2)} or {(*lead, n, 2)} for peaks of shape {(*lead, n, 2)}: {e}"
        ) from None
    if max_residual is None:
        limit = 0.25 * np.minimum(np.hypot(*va.T), np.hypot(*vb.T))
    else:
        limit = np.full(frames, float(max_residual))
    if implementation == "numba" or (implementation == "auto" and frames >= NUMBA_MIN_FRAMES):
        from libertem_gpu.kernels.lattice_fit import fit_frames
        from libertem_gpu.kernels.tiles import read_only

        o_out, a_out, b_out = (np.empty((frames, 2)) for _ in range(3))
        rms, n_matched = np.empty(frames), np.empty(frames, np.int32)
        cov = np.empty((frames, 6, 6))
        # Inputs read-only whatever the caller passed (broadcast views are, fresh arrays are
        # not): one compiled variant of the kernel instead of one per combination (about 10 s
        # of compiling each on a 2-vCPU Zen 3).
        inputs = (p, o, va, vb, w, np.zeros((1, 1, 2)) if fixed is None else fixed, limit)
        p_c, o_c, a_c, b_c, w_c, fixed_c, limit_c = (
            read_only(np.ascontiguousarray(x, dtype=np.float64)) for x in inputs
        )
        fit_frames(
            p_c, o_c, a_c, b_c, w_c, fixed_c, fixed is not None, limit_c, float(outlier_sigma),
            int(n_iter), int(min_peaks), CLIP_FLOOR, _RAYLEIGH_MEDIAN,
            o_out, a_out, b_out, rms, n_matched, cov,
        )  # fmt: skip
        return LatticeFit(o_out, a_out, b_out, rms, n_matched, cov).reshape(lead)
    fit = _fit_numpy(p, o, va, vb, w, fixed, limit, outlier_sigma, n_iter, min_peaks)
    return LatticeFit(*fit).reshape(lead)


def _fit_numpy(
    p: np.ndarray,
    o: np.ndarray,
    va: np.ndarray,
    vb: np.ndarray,
    w: np.ndarray,
    fixed: np.ndarray | None,
    limit: np.ndarray,
    outlier_sigma: float,
    n_iter: int,
    min_peaks: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fit, vectorised over frames (the reference of the Numba implementation in
    :mod:`libertem_gpu.kernels.lattice_fit`)."""
    frames, n = p.shape[:2]
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(p).all(axis=-1) & (w > 0) & np.isfinite(w)
    rms = np.full(frames, np.nan)
    n_matched = np.zeros(frames, np.int32)
    cov = np.full((frames, 6, 6), np.nan)
    # Re-centre on the median residual vector first: the whole pattern may be shifted (descan)
    # by more than max_residual, while the lattice itself barely changes.
    index = index_peaks(p, o, va, vb) if fixed is None else fixed
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames without any peak
        off = np.stack(_residuals(p, index, o, va, vb), axis=-1)
        shift = np.nanmedian(np.where(valid[..., None], off, np.nan), axis=1)
    o = o + np.nan_to_num(shift)
    va, vb = va.copy(), vb.copy()
    used = np.zeros((frames, n), dtype=bool)
    active = np.arange(frames)  # frames whose matched set may still change
    for it in range(n_iter):
        pa, oa, aa, ba = p[active], o[active], va[active], vb[active]
        index = index_peaks(pa, oa, aa, ba) if fixed is None else fixed[active]
        res = np.hypot(*_residuals(pa, index, oa, aa, ba))
        with np.errstate(invalid="ignore"):
            use = valid[active] & (res <= limit[active, None])
            if it > 0:
                clip = np.maximum(outlier_sigma * _robust_sigma(res, use), CLIP_FLOOR)
                use &= res <= clip[:, None]
        if fixed is None:
            use = _unique_hk(index, res, use)
        changed = (use != used[active]).any(axis=1) | (it == 0)
        active, use, index = active[changed], use[changed], index[changed]
        if len(active) == 0:
            break
        used[active] = use
        fit = _solve(p[active], np.nan_to_num(index), w[active], use, min_peaks)
        o[active], va[active], vb[active], rms[active], n_matched[active], cov[active] = fit
    return o, va, vb, rms, n_matched, cov


def _reduce(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gauss (Lagrange) reduction: the shortest basis of the same lattice, ``|a| <= |b|``,
    ``|a.b| <= |a|^2 / 2``, turned so that ``a_x b_y - a_y b_x > 0``."""
    for _ in range(100):
        if b @ b < a @ a:
            a, b = b, a
        m = round(float(a @ b) / float(a @ a))
        if m == 0:
            break
        b = b - m * a
    if a[1] * b[0] - a[0] * b[1] < 0:
        b = -b
    return a, b


def find_lattice(
    peaks: Any,
    heights: Any = None,
    *,
    centre: Any = None,
    min_length: float = 2.0,
    min_angle: float = 20.0,
    tolerance: float = 0.15,
    n_candidates: int = 10,
    **fit_kwargs: Any,
) -> LatticeFit:
    """The zero-order disk and a reduced basis of the lattice in one peak list (for example the
    peaks of the sum frame's correlation), refined by :func:`fit_lattice` over all its peaks.

    The zero order is the peak nearest to ``centre`` if given, else the strongest (``heights``),
    else the one nearest to the peaks' centroid. Basis candidates are its ``n_candidates``
    shortest difference vectors to the other peaks; of each non-collinear pair, the one that
    indexes most peaks within ``tolerance`` (a fraction of the shorter vector) wins, the
    smaller cell on ties; the winner is reduced to the shortest basis, with
    ``a_x b_y - a_y b_x > 0``.

    Parameters
    ----------
    peaks : array_like, shape (N, 2)
        ``(y, x)`` positions; NaN rows are ignored.
    heights : array_like, shape (N,), optional
        Peak strengths (also the fit's weights).
    centre : array_like, shape (2,), optional
        Where the zero-order disk is expected.
    min_length : float
        Shortest basis vector in pixels (closer peaks are taken for duplicates).
    min_angle : float
        Smallest angle between the basis vectors, in degrees.
    tolerance : float
        How close to a lattice point a peak must lie to count, as a fraction of the shorter
        basis vector.
    n_candidates : int
        Number of shortest difference vectors tried.
    **fit_kwargs
        Passed to :func:`fit_lattice`.

    Returns
    -------
    LatticeFit
        With leading shape ``()``.

    Raises
    ------
    LatticeNotFoundError
        With fewer than 3 peaks or no two non-collinear difference vectors.
    """
    p = np.asarray(peaks, np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise InvalidParameterError(f"peaks must have shape (N, 2), got {p.shape}")
    h = None if heights is None else np.asarray(heights, np.float64).reshape(-1)
    if h is not None and h.shape[0] != p.shape[0]:
        raise InvalidParameterError(f"heights must have shape ({p.shape[0]},), got {h.shape}")
    keep = np.isfinite(p).all(axis=1) & (True if h is None else np.isfinite(h))
    p = p[keep]
    h = None if h is None else h[keep]
    if len(p) < 3:
        raise LatticeNotFoundError(f"a lattice needs at least 3 peaks, found {len(p)}")
    if centre is not None:
        zero = int(np.argmin(np.hypot(*(p - np.asarray(centre, np.float64)).T)))
    elif h is not None:
        zero = int(np.argmax(h))
    else:
        zero = int(np.argmin(np.hypot(*(p - p.mean(axis=0)).T)))
    diff = np.delete(p - p[zero], zero, axis=0)
    length = np.hypot(*diff.T)
    diff = diff[length >= min_length]
    cands = diff[np.argsort(np.hypot(*diff.T), kind="stable")[:n_candidates]]
    sin_min = math.sin(math.radians(min_angle))
    best: tuple[tuple[int, float, float], np.ndarray, np.ndarray] | None = None
    for i in range(len(cands)):
        for j in range(i + 1, len(cands)):
            va, vb = cands[i], cands[j]
            cross = abs(va[1] * vb[0] - va[0] * vb[1])
            la, lb = math.hypot(*va), math.hypot(*vb)
            if cross < sin_min * la * lb:
                continue
            index = index_peaks(p, p[zero], va, vb)
            res = np.hypot(*(p - p[zero] - index @ np.stack([va, vb])).T)
            score = (-int((res <= tolerance * min(la, lb)).sum()), cross, la + lb)
            if best is None or score < best[0]:
                best = (score, va, vb)
    if best is None:
        raise LatticeNotFoundError(
            f"no two non-collinear difference vectors (at least {min_angle} degrees apart and "
            f"{min_length} px long) among {len(p)} peaks"
        )
    va, vb = _reduce(best[1], best[2])
    fit_kwargs.setdefault("max_residual", tolerance * min(math.hypot(*va), math.hypot(*vb)))
    fit = fit_lattice(p, p[zero], va, vb, weights=h, **fit_kwargs)
    if fit.n_matched == 0:
        raise LatticeNotFoundError(f"the lattice a={va}, b={vb} indexes too few of {len(p)} peaks")
    return fit
