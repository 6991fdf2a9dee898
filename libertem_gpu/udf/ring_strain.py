"""Strain from the shape of a diffraction ring, frame by frame: :class:`RingStrainUDF`, the
amorphous (or fine-grained polycrystalline) strain mapping of metallic glasses and thin films.

A ring of constant scattering angle is a circle of radius ``r_ref`` for unstrained material.
A small strain ``e`` of the specimen (real space) turns it into an ellipse: to first order the
ring's radius in the direction ``t`` (from increasing columns towards increasing rows) is

    r(t) = r_ref * (1 - e_xx cos(t)**2 - e_yy sin(t)**2 - 2 e_xy sin(t) cos(t)),

the reciprocal lattice shrinking where the specimen stretches. Each frame's ring is measured
in ``n_sectors`` sectors, and ``r(t)`` is fitted by ``c0 + c1 cos t + s1 sin t + c2 cos 2t +
s2 sin 2t``: the first harmonics are a displacement of the ring's centre (descan), the second
its ellipticity, so that

    e_xx = 1 - (c0 + c2) / r_ref,  e_yy = 1 - (c0 - c2) / r_ref,  e_xy = -s2 / r_ref.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.udf._common import check_radii, refuse_complex
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.ellipse import check_ellipse, elliptic_polar
from libertem_gpu.udf.mask_shifts import as_shifts
from libertem_gpu.udf.masks import ApplyMasksUDF
from libertem_gpu.udf.radial_profile import RadialProfileUDF, count_at_least_one

__all__ = ["RingStrainUDF", "fit_harmonics", "ring_radii"]

_WHAT = "RingStrainUDF"
#: Mean-shift rounds of :func:`ring_radii`.
_ROUNDS = 8


def ring_radii(profiles: Any, radius: Any, xp: Any = np) -> Any:
    """Where the ring lies in each radial profile: ``(..., rings)`` means (NaN for bins without
    pixels) at radii ``radius`` (``(rings,)``, or broadcast against the profiles: each bin's
    own mean radius) to ``(...)`` radii, NaN where no peak stands out.

    The background is the straight line through the mean of the two first and the two last
    rings; the peak's centre is the fixed point of the centroid, above that background, over a
    tapered window as wide as the profile's run above half the peak's height, moved to it.
    The profile is weighed as a mean per ring, so that a ring's growing circumference does
    not pull the centre outwards.
    """
    p = xp.asarray(profiles, dtype=np.float64)
    r = xp.asarray(radius, dtype=np.float64)
    rings = p.shape[-1]
    filled = xp.where(xp.isfinite(p), p, 0.0)
    weight_valid = xp.isfinite(p).astype(np.float64)
    head = xp.sum(filled[..., :2], axis=-1) / xp.maximum(xp.sum(weight_valid[..., :2], -1), 1)
    tail = xp.sum(filled[..., -2:], axis=-1) / xp.maximum(xp.sum(weight_valid[..., -2:], -1), 1)
    r = xp.broadcast_to(r, p.shape)
    r_head, r_tail = (r[..., 0] + r[..., 1]) / 2, (r[..., -2] + r[..., -1]) / 2
    slope = (tail - head) / (r_tail - r_head)
    line = head[..., None] + slope[..., None] * (r - r_head[..., None])
    above = (filled - line) * weight_valid
    top = xp.argmax(above, axis=-1)
    height = xp.take_along_axis(above, top[..., None], axis=-1)[..., 0]
    step = (r[..., -1] - r[..., 0]) / max(rings - 1, 1)
    half = 2 * xp.maximum(xp.sum(above > height[..., None] / 2, axis=-1), 2) * step
    m = xp.take_along_axis(r, top[..., None], axis=-1)[..., 0]
    for _ in range(_ROUNDS):
        taper = xp.maximum(0.0, 1.0 - xp.abs(r - m[..., None]) / half[..., None])
        w = above * taper
        total = xp.sum(w, axis=-1)
        m = xp.where(total > 0, xp.sum(w * r, axis=-1) / xp.where(total > 0, total, 1.0), m)
    inside = (top > 0) & (top < rings - 1) & (height > 0)
    return xp.where(inside, m, np.nan)


def _design(angles: np.ndarray) -> np.ndarray:
    """``(sectors, 5)``: 1, cos t, sin t, cos 2t, sin 2t."""
    t = np.asarray(angles, dtype=np.float64)
    return np.stack([np.ones_like(t), np.cos(t), np.sin(t), np.cos(2 * t), np.sin(2 * t)], -1)


def fit_harmonics(radii: Any, angles: np.ndarray, xp: Any = np) -> tuple[Any, Any]:
    """Least-squares ``c0 + c1 cos t + s1 sin t + c2 cos 2t + s2 sin 2t`` through each row of
    ``radii`` (``(..., sectors)``, NaN sectors left out) at ``angles``.

    Returns
    -------
    coefficients : array
        ``(..., 5)``: ``c0, c1, s1, c2, s2``; NaN where fewer than five sectors hold a radius.
    residual : array
        ``(...)``: root mean square distance of the sectors' radii from the fit.
    """
    r = xp.asarray(radii, dtype=np.float64)
    design = xp.asarray(_design(angles))
    valid = xp.isfinite(r)
    w = valid.astype(np.float64)
    filled = xp.where(valid, r, 0.0)
    # Normal equations per row, the missing sectors weighted 0.
    normal = xp.einsum("...s,si,sj->...ij", w, design, design)
    rhs = xp.einsum("...s,si->...i", filled * w, design)
    enough = xp.sum(w, axis=-1) >= 5
    eye = xp.eye(5)
    safe = xp.where(enough[..., None, None], normal, eye)
    coef = xp.linalg.solve(safe, rhs[..., None])[..., 0]
    coef = xp.where(enough[..., None], coef, np.nan)
    fitted = xp.einsum("...i,si->...s", coef, design)
    squares = xp.sum(xp.where(valid, (r - fitted) ** 2, 0.0), axis=-1)
    residual = xp.sqrt(squares / xp.maximum(xp.sum(w, axis=-1), 1))
    return coef, xp.where(enough, residual, np.nan)


class RingStrainUDF(RadialProfileUDF):
    """Strain maps from the ellipticity of one diffraction ring per frame (amorphous strain
    mapping, as py4DSTEM's for metallic glasses): the ring's radius is measured in angular
    sectors, and its first two angular harmonics give the centre's displacement and the
    strain tensor (see the module's docstring).

    Each frame's polar transform (the means of :class:`~libertem_gpu.RadialProfileUDF`'s
    ``(ring, sector)`` bins, a pixel wide by default) is reduced as its tile is processed,
    so the memory holds a few numbers per frame.

    Parameters
    ----------
    rad_min, rad_max : float
        The band that holds the ring and some background on both sides, in pixels from
        ``center``.
    center : tuple of float, optional
        ``(row, column)`` of the pattern's centre (default: the frame's centre, or an
        :class:`~libertem_gpu.EllipseFit`'s).
    n_sectors : int
        Angular sectors, at least 6 (default 36).
    n_bins : int, optional
        Rings across the band, at least 4 (default: about a pixel wide; finer rings hold too
        few pixels per sector and measured worse).
    reference_radius : float, optional
        The unstrained ring's radius in pixels. Default: the median over the processed frames
        of each frame's mean radius (strain relative to the scan's typical state).
    ellipse : EllipseFit or tuple of float, optional
        A distortion of the optics to undo first (:func:`~libertem_gpu.fit_ellipse` on an
        unstrained area), so that it does not read as strain.
    shifts, exclude, angle_offset
        As for :class:`~libertem_gpu.RadialProfileUDF`.
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    strain : nav, ``(3,)``, float64
        ``e_xx, e_yy, e_xy`` of the specimen (real space, first order), x along columns and y
        along rows.
    radius : nav, float64
        The ring's mean radius ``c0``, in pixels.
    shift : nav, ``(2,)``, float64
        The ring centre's displacement ``(dy, dx)`` from ``center``, in pixels (``s1, c1``).
    residual : nav, float64
        Root mean square of the sectors' radii about the fit, in pixels.
    coefficients : nav, ``(5,)``, float64
        ``c0, c1, s1, c2, s2`` of the fit, in pixels.
    reference_radius : single, ``(1,)``, float64
        The ``r_ref`` the strain is relative to.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, RingStrainUDF
    >>> y, x = np.mgrid[:64, :64]
    >>> ring = np.exp(-((np.hypot(y - 31.5, x - 31.5) - 20) ** 2) / 4)
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.tile(ring, (2, 3, 1, 1)))
    >>> res = ctx.run_udf(dataset=ds, udf=RingStrainUDF(rad_min=12, rad_max=28))
    >>> bool(np.abs(res["strain"].data).max() < 1e-3)
    True
    """

    def __init__(
        self,
        rad_min: float,
        rad_max: float,
        center: Any = None,
        n_sectors: int = 36,
        n_bins: int | None = None,
        reference_radius: float | None = None,
        ellipse: Any = None,
        shifts: Any = None,
        exclude: Any = None,
        angle_offset: float = 0.0,
        backends: Sequence[str] | None = None,
    ) -> None:
        lo, hi = check_radii(rad_min, rad_max, _WHAT, ("rad_min", "rad_max"))
        if count_at_least_one(n_sectors, "n_sectors", _WHAT) < 6:
            raise InvalidParameterError(f"{_WHAT}: n_sectors must be 6 or more, got {n_sectors}")
        if n_bins is None:
            n_bins = max(4, math.ceil(hi - lo))
        elif count_at_least_one(n_bins, "n_bins", _WHAT) < 4:
            raise InvalidParameterError(f"{_WHAT}: n_bins must be 4 or more, got {n_bins}")
        if reference_radius is not None:
            try:
                ref = float(reference_radius)
            except (TypeError, ValueError):
                ref = math.nan
            if not (math.isfinite(ref) and ref > 0):
                raise InvalidParameterError(
                    f"{_WHAT}: reference_radius must be a number > 0, got {reference_radius!r}"
                )
        check_ellipse(ellipse, _WHAT)
        # Not RadialProfileUDF.__init__: the strain's parameters join the polar grid's.
        super(ApplyMasksUDF, self).__init__(
            rad_min=rad_min,
            rad_max=rad_max,
            center=center,
            n_sectors=int(n_sectors),
            n_bins=int(n_bins),
            reference_radius=reference_radius,
            ellipse=ellipse,
            shifts=as_shifts(shifts),
            exclude=exclude,
            angle_offset=angle_offset,
            backends=backends,
        )

    @property
    def _mode(self) -> str:
        """The polar image holds each bin's mean."""
        return "mean"

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, as for :class:`~libertem_gpu.RadialProfileUDF`; complex data is
        refused."""
        refuse_complex(self.meta, _WHAT, "a ring's radius is measured on intensities")
        return super().get_preferred_input_dtype()

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Whole frames: a frame's polar image must be complete before it is measured."""
        return {**super().get_tiling_preferences(), "partial_frames": False}

    def _bin_geometry(self) -> tuple[np.ndarray, np.ndarray]:
        """Each ``(sector, ring)`` bin's mean pixel radius ``(sectors, rings)`` and each
        sector's mean pixel angle within the band ``(sectors,)``: what the bins' means are
        measured at, rather than the bins' centres (on a grid of pixels they differ by
        hundredths of a pixel, as much as the strain to be measured)."""
        found = self.__dict__.get("_bin_radius")
        if found is None:
            assert self.meta is not None
            sig = tuple(self.meta.dataset_shape.sig)
            bins = self._bins(sig)
            y, x = np.mgrid[: sig[0], : sig[1]]
            cy, cx = bins.center
            dy, dx = (y - cy).ravel().astype(np.float64), (x - cx).ravel().astype(np.float64)
            distance, direction = elliptic_polar(dy, dx, bins.ellipse)
            inside = bins.labels >= 0
            label = bins.labels[inside]
            count = np.maximum(bins.pixels.reshape(-1), 1)
            mean_r = np.bincount(label, distance[inside], minlength=bins.count) / count
            rings, sectors = bins.pixels.shape
            radius = np.where(bins.pixels > 0, mean_r.reshape(rings, sectors), bins.radius[:, None])
            # The sectors' angles as unit vectors' means (no wrap at +-pi).
            sector = label % sectors
            c = np.bincount(sector, np.cos(direction[inside]), minlength=sectors)
            s = np.bincount(sector, np.sin(direction[inside]), minlength=sectors)
            found = (np.ascontiguousarray(radius.T), np.arctan2(s, c))
            self.__dict__["_bin_radius"] = found
        return found

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """The fit's coefficients and residual per frame; the rest is made from them."""
        assert self.meta is not None
        self._bins(tuple(self.meta.dataset_shape.sig))  # bad geometry fails here

        def nav(shape: tuple[int, ...] = (), use: str | None = None) -> BufferDecl:
            return self.buffer(kind="nav", extra_shape=shape, dtype=np.float64, use=use)

        done = "result_only"
        return {
            "coefficients": nav((5,)),
            "residual": nav(),
            "strain": nav((3,), done),
            "radius": nav((), done),
            "shift": nav((2,), done),
            "reference_radius": self.buffer(
                kind="single", extra_shape=(1,), dtype=np.float64, use=done
            ),
        }

    def process_tile(self, tile: Any) -> None:
        """Each frame's polar means, its ring's radius per sector, and the harmonics' fit."""
        assert self.meta is not None
        xp = self.xp
        bins = self._bins(tuple(self.meta.dataset_shape.sig))
        frames = int(tile.shape[0])
        polar = xp.zeros((frames, bins.count), dtype=np.float64)
        self._masks_into(tile, out=polar)
        rings, sectors = bins.pixels.shape
        # Bins without pixels (fine grids near the centre) are not part of any profile.
        empty = xp.asarray((bins.pixels == 0).T)
        profiles = xp.where(empty, np.nan, polar.reshape(frames, rings, sectors).transpose(0, 2, 1))
        radius, angle = self._bin_geometry()
        radii = ring_radii(profiles, xp.asarray(radius), xp)
        coef, residual = fit_harmonics(radii, angle, xp)
        self.results.coefficients[:] = coef
        self.results.residual[:] = residual

    def get_results(self) -> dict[str, Any]:
        """Strain, radius and shift from the coefficients."""
        coef = np.array(self.results.coefficients)
        residual = np.array(self.results.residual)
        unseen = (coef == 0).all(axis=-1)  # positions without data: never written
        coef[unseen] = np.nan
        residual[unseen] = np.nan
        c0, c1, s1, c2, s2 = (coef[..., i] for i in range(5))
        ref = self.params.reference_radius
        if ref is None:
            seen = c0[np.isfinite(c0)]
            ref = float(np.median(seen)) if seen.size else math.nan
        ref = float(ref)
        strain = np.stack([1 - (c0 + c2) / ref, 1 - (c0 - c2) / ref, -s2 / ref], axis=-1)
        return {
            "coefficients": coef,
            "residual": residual,
            "strain": strain,
            "radius": c0,
            "shift": np.stack([s1, c1], axis=-1),
            "reference_radius": np.array([ref]),
        }
