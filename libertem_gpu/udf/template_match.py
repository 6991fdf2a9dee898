"""Template matching of diffraction patterns (orientation and phase mapping):
:class:`TemplateMatchUDF` compares every frame's polar transform with a bank of simulated
spot patterns over every in-plane rotation, in the one pass, and keeps the best matches."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.kernels.masks import MaskStack
from libertem_gpu.masks import SparseMask
from libertem_gpu.udf._common import (
    PROFILE_MASKS_SPARSE,
    check_center,
    check_radii,
    on_worker,
    refuse_complex,
)
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.ellipse import (
    check_ellipse,
    ellipse_center,
    elliptic_to_detector,
)
from libertem_gpu.udf.mask_shifts import as_shifts, check_shifts
from libertem_gpu.udf.masks import ApplyMasksUDF, build_mask_stack
from libertem_gpu.udf.radial_profile import count_at_least_one
from libertem_gpu.udf.run_cache import backend_device, shared_for_run

__all__ = [
    "PolarGrid",
    "TemplateMatchUDF",
    "check_templates",
    "polar_grid",
    "polar_sampling",
    "polar_templates",
]

_WHAT = "TemplateMatchUDF"


def check_templates(templates: Any) -> list[np.ndarray]:
    """``templates`` as a list of float64 ``(spots, 3)`` arrays ``(dy, dx, intensity)``.

    Parameters
    ----------
    templates : sequence of array_like
        One array per template, ``(spots, 2)`` (intensity 1) or ``(spots, 3)``: each spot's
        row and column offset from the pattern's centre in pixels, and its intensity.

    Raises
    ------
    InvalidParameterError
        For no templates, a template without spots, other shapes, values that are not
        finite, or negative intensities.
    """
    if isinstance(templates, np.ndarray) and templates.ndim == 2:
        templates = [templates]  # one template given bare
    try:
        found = [np.asarray(t, dtype=np.float64) for t in templates]
    except (TypeError, ValueError) as e:
        raise InvalidParameterError(
            f"{_WHAT}: templates must be a sequence of (spots, 3) arrays of numbers "
            f"(dy, dx, intensity): {e}"
        ) from None
    if not found:
        raise InvalidParameterError(f"{_WHAT}: templates is empty; give at least one template")
    out = []
    for i, t in enumerate(found):
        if t.ndim != 2 or t.shape[1] not in (2, 3) or t.shape[0] == 0:
            raise InvalidParameterError(
                f"{_WHAT}: template {i} must be (spots, 3) (dy, dx, intensity) or (spots, 2) "
                f"with at least one spot, got shape {t.shape}"
            )
        if t.shape[1] == 2:
            t = np.concatenate([t, np.ones((len(t), 1))], axis=1)
        if not np.isfinite(t).all() or (t[:, 2] < 0).any():
            raise InvalidParameterError(
                f"{_WHAT}: template {i} holds values that are not finite or negative intensities"
            )
        out.append(t)
    return out


@dataclass(frozen=True)
class PolarGrid:
    """The polar grid of :class:`TemplateMatchUDF`: rings of equal width by sectors.

    Attributes
    ----------
    radius : numpy.ndarray
        float64 ``(rings,)``: each ring's centre radius, ``rad_min + (i + 0.5) * width``.
    angle : numpy.ndarray
        float64 ``(sectors,)``: each sector's centre angle, ``offset + (j + 0.5) * step``.
    rad_min, width, offset, step : float
        Where the rings start and their width; where the sectors start and their width.
    """

    radius: np.ndarray
    angle: np.ndarray
    rad_min: float
    width: float
    offset: float
    step: float

    @property
    def shape(self) -> tuple[int, int]:
        """``(rings, sectors)``."""
        return len(self.radius), len(self.angle)


def polar_grid(
    rad_min: float, rad_max: float, n_bins: int | None, n_sectors: int, angle_offset: float
) -> PolarGrid:
    """The grid from ``rad_min`` to ``rad_max`` in ``n_bins`` rings (default: about one pixel
    wide) and ``n_sectors`` sectors from ``angle_offset``; parameters checked."""
    lo, hi = check_radii(rad_min, rad_max, _WHAT, ("rad_min", "rad_max"))
    rings = (
        max(1, math.ceil(hi - lo))
        if n_bins is None
        else count_at_least_one(n_bins, "n_bins", _WHAT)
    )
    try:
        offset = float(angle_offset)
    except (TypeError, ValueError):
        offset = math.nan
    if not math.isfinite(offset):
        raise InvalidParameterError(
            f"{_WHAT}: angle_offset must be a finite number (radians), got {angle_offset!r}"
        )
    width, step = (hi - lo) / rings, 2 * math.pi / n_sectors
    return PolarGrid(
        radius=lo + (np.arange(rings) + 0.5) * width,
        angle=offset + (np.arange(n_sectors) + 0.5) * step,
        rad_min=lo,
        width=width,
        offset=offset,
        step=step,
    )


def polar_sampling(
    sig: tuple[int, int],
    center: tuple[float, float],
    grid: PolarGrid,
    ellipse: tuple[float, float] | None = None,
    exclude: np.ndarray | None = None,
) -> SparseMask:
    """The polar transform as a sparse mask stack ``(rings * sectors, *sig)``: each grid point
    (a ring's centre radius, a sector's centre angle, with ``ellipse``'s distortion put back)
    sampled by bilinear interpolation of its four pixels.

    A point off the frame samples 0; where ``exclude`` leaves out some of a point's pixels,
    the others' weights are scaled to sum to one (0 where none is left).
    """
    rows, cols = sig
    radius, angle = np.meshgrid(grid.radius, grid.angle, indexing="ij")
    points = elliptic_to_detector(radius.ravel(), angle.ravel(), center, ellipse)
    py, px = points[:, 0], points[:, 1]
    on = (py >= 0) & (py <= rows - 1) & (px >= 0) & (px <= cols - 1)
    y0 = np.clip(np.floor(py), 0, max(rows - 2, 0)).astype(np.int64)
    x0 = np.clip(np.floor(px), 0, max(cols - 2, 0)).astype(np.int64)
    fy, fx = py - y0, px - x0
    mask_of, pixel_of, weight_of = [], [], []
    point = np.arange(len(py))
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            y, x = np.minimum(y0 + dy, rows - 1), np.minimum(x0 + dx, cols - 1)
            keep = on & (wy * wx > 0)
            if exclude is not None:
                keep &= ~exclude[y, x]
            mask_of.append(point[keep])
            pixel_of.append((y * cols + x)[keep])
            weight_of.append((wy * wx)[keep])
    mask, pixel, weight = (np.concatenate(v) for v in (mask_of, pixel_of, weight_of))
    npix = rows * cols
    # Pixels shared by two corners (a point on the last row or column) count once, summed.
    flat, inverse = np.unique(mask * npix + pixel, return_inverse=True)
    values = np.bincount(inverse, weight)
    totals = np.bincount(flat // npix, values, minlength=len(py))
    values = values / totals[flat // npix]
    return SparseMask((len(py), rows, cols), flat, values)


def polar_templates(templates: Sequence[np.ndarray], grid: PolarGrid) -> np.ndarray:
    """The templates on ``grid``: float64 ``(K, rings, sectors)``.

    Each spot's intensity is shared between the four grid points around it, linearly in
    radius and angle, so that a spot between them keeps its position to a fraction of a bin.
    Spots outside ``rad_min .. rad_min + rings * width`` are left out.
    """
    rings, sectors = grid.shape
    top = grid.rad_min + rings * grid.width
    out = np.zeros((len(templates), rings, sectors))
    for k, spots in enumerate(templates):
        dy, dx, value = spots[:, 0], spots[:, 1], spots[:, 2]
        r = np.hypot(dy, dx)
        keep = (r >= grid.rad_min) & (r <= top)
        u = np.clip((r[keep] - grid.rad_min) / grid.width - 0.5, 0, rings - 1)
        v = np.mod(np.arctan2(dy[keep], dx[keep]) - grid.offset, 2 * np.pi) / grid.step - 0.5
        u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
        fu, fv = u - u0, v - v0
        for du, wu in ((0, 1 - fu), (1, fu)):
            for dv, wv in ((0, 1 - fv), (1, fv)):
                ring = np.minimum(u0 + du, rings - 1)
                np.add.at(out[k], (ring, (v0 + dv) % sectors), value[keep] * wu * wv)
    return out


class TemplateMatchUDF(ApplyMasksUDF):
    """Match every frame against a bank of templates over every in-plane rotation: the
    orientation (or phase) map of a scan, as pyxem's template matching and py4DSTEM's ACOM
    do it, in one streaming pass.

    Each frame is sampled on a polar grid (bilinear interpolation at each ring's centre
    radius and sector's centre angle, a sparse mask stack run as
    :class:`~libertem_gpu.ApplyMasksUDF`'s; raised to ``power``) and correlated with each
    template's spots on the same grid at every rotation by a sector (FFTs along the angle and
    one matrix product per frequency: BLAS on the CPU, cuBLAS and cuFFT on the GPU). The score
    is the cosine similarity of the frame's polar image and the rotated template, 1 for a
    perfect match. The ``n_best`` templates of highest score are kept per frame, each with
    its rotation refined between sectors.

    Parameters
    ----------
    templates : sequence of array_like
        The bank: one ``(spots, 3)`` array per template (or ``(spots, 2)``, intensities 1):
        each spot's row and column offset from the pattern's centre in pixels, and its
        intensity (for instance a simulated kinematic pattern of one orientation, from diffsims
        or orix, scaled to the detector's pixels). One template may be given bare.
    center : tuple of float, optional
        ``(row, column)`` of the patterns' centre (default: the frame's centre, or an
        :class:`~libertem_gpu.EllipseFit`'s).
    rad_max : float, optional
        Outer radius of the polar grid. Default: the farthest spot of any template, plus two
        pixels.
    rad_min : float
        Inner radius (default 0); leave the central beam out with a radius just beyond it.
    n_bins : int, optional
        Rings (default: about one pixel wide).
    n_sectors : int
        Angular sectors, at least 3 (default 180: rotations in steps of two degrees, refined
        between them).
    angle_offset : float
        Where the first sector starts, in radians (default 0); rotations do not depend on it.
    exclude : numpy.ndarray, optional
        Boolean, the frame's shape: pixels the interpolation leaves out (its other pixels'
        weights are scaled up).
    ellipse : EllipseFit or tuple of float, optional
        Undo an elliptical distortion: the grid's circles are laid on the distortion's
        ellipses (see :func:`~libertem_gpu.fit_ellipse`), so that templates match as
        simulated.
    shifts : array_like or AuxData, optional
        Move the grid with the beam (descan), as :class:`~libertem_gpu.ApplyMasksUDF`'s:
        whole-pixel ``(dy, dx)`` for every frame or per scan position, ``(*nav_shape, 2)``.
    mirror : bool
        Also match each template mirrored (``dy`` negated, before the rotation): for banks
        that hold one of each pair of mirror-image orientations. Default False.
    n_best : int
        Matches kept per frame (default 1).
    power : float
        Exponent applied to the polar image (negative values clipped to 0 first), as pyxem's
        intensity transform: 0.5 keeps strong reflections from dominating (default 1).
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    template : nav, ``(n_best,)``, int64
        Index into ``templates`` of the best matches, best first.
    rotation : nav, ``(n_best,)``, float64
        Their in-plane rotation in radians, ``[0, 2 pi)``: the frame shows the template turned
        by this angle, from increasing columns towards increasing rows.
    score : nav, ``(n_best,)``, float64
        Their cosine similarity, in ``[0, 1]`` for non-negative data (NaN at positions
        without data, whose ``template`` reads 0).
    mirrored : nav, ``(n_best,)``, bool
        Whether each match is the mirrored template (with ``mirror=True`` only).

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, TemplateMatchUDF
    >>> rng = np.random.default_rng(0)
    >>> bank = [rng.uniform(-12, 12, (6, 2)) for _ in range(5)]
    >>> y, x = np.mgrid[:32, :32]
    >>> frame = sum(np.exp(-((y - 15.5 - dy) ** 2 + (x - 15.5 - dx) ** 2) / 2)
    ...             for dy, dx in bank[3])
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.tile(frame, (2, 2, 1, 1)))
    >>> res = ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank))
    >>> res["template"].data[..., 0].tolist()
    [[3, 3], [3, 3]]
    """

    def __init__(
        self,
        templates: Any,
        center: Any = None,
        rad_max: float | None = None,
        rad_min: float = 0.0,
        n_bins: int | None = None,
        n_sectors: int = 180,
        angle_offset: float = 0.0,
        exclude: Any = None,
        ellipse: Any = None,
        shifts: Any = None,
        mirror: bool = False,
        n_best: int = 1,
        power: float = 1.0,
        backends: Sequence[str] | None = None,
    ) -> None:
        bank = check_templates(templates)
        check_ellipse(ellipse, _WHAT)
        if center is not None:
            check_center(center, _WHAT)
        if isinstance(n_sectors, bool) or not isinstance(n_sectors, (int, np.integer)):
            raise InvalidParameterError(f"{_WHAT}: n_sectors must be an integer, got {n_sectors!r}")
        if n_sectors < 3:
            raise InvalidParameterError(f"{_WHAT}: n_sectors must be 3 or more, got {n_sectors}")
        count = len(bank)
        if isinstance(n_best, bool) or not isinstance(n_best, (int, np.integer)):
            raise InvalidParameterError(f"{_WHAT}: n_best must be an integer, got {n_best!r}")
        if not 1 <= n_best <= count:
            raise InvalidParameterError(
                f"{_WHAT}: n_best must lie between 1 and the {count} templates, got {n_best}"
            )
        try:
            exponent = float(power)
        except (TypeError, ValueError):
            exponent = math.nan
        if not (math.isfinite(exponent) and exponent > 0):
            raise InvalidParameterError(f"{_WHAT}: power must be a number > 0, got {power!r}")
        if rad_max is None:
            rad_max = max(float(np.hypot(t[:, 0], t[:, 1]).max()) for t in bank) + 2.0
        grid = polar_grid(rad_min, rad_max, n_bins, int(n_sectors), angle_offset)  # checks them
        top = grid.rad_min + grid.shape[0] * grid.width
        for i, t in enumerate(bank):
            r = np.hypot(t[:, 0], t[:, 1])
            if not ((r >= grid.rad_min) & (r <= top) & (t[:, 2] > 0)).any():
                raise InvalidParameterError(
                    f"{_WHAT}: template {i} has no spot of intensity > 0 between rad_min="
                    f"{grid.rad_min} and rad_max={top} pixels (its spots lie at {r.min():.3g}.."
                    f"{r.max():.3g}); it could never match: widen the radii or leave it out"
                )
        # Not ApplyMasksUDF.__init__: the parameters are ours, the masks are made from them.
        super(ApplyMasksUDF, self).__init__(
            templates=bank,
            center=center,
            rad_max=rad_max,
            rad_min=rad_min,
            n_bins=n_bins,
            n_sectors=int(n_sectors),
            angle_offset=angle_offset,
            exclude=exclude,
            ellipse=ellipse,
            shifts=as_shifts(shifts),
            mirror=bool(mirror),
            n_best=int(n_best),
            power=exponent,
            backends=backends,
        )

    def _grid(self) -> PolarGrid:
        p = self.params
        return polar_grid(p.rad_min, p.rad_max, p.n_bins, p.n_sectors, p.angle_offset)

    def _geometry(
        self, sig: tuple[int, ...]
    ) -> tuple[tuple[float, float], tuple[float, float] | None, np.ndarray | None]:
        """The grid's centre on frames of shape ``sig``, the ellipse and the excluded pixels,
        checked."""
        if len(sig) != 2:
            raise InvalidParameterError(f"{_WHAT} needs two signal dimensions, got sig {sig}")
        p = self.params
        center = ellipse_center(p.ellipse, p.center)
        if center is None:
            center = ((sig[0] - 1) / 2, (sig[1] - 1) / 2)
        left_out = None
        if p.exclude is not None:
            left_out = np.asarray(p.exclude)
            if left_out.shape != tuple(sig) or left_out.dtype != np.bool_:
                raise InvalidParameterError(
                    f"{_WHAT}: exclude must be a boolean array of the frame's shape {sig}, got "
                    f"{left_out.dtype} {left_out.shape}"
                )
        return check_center(center, _WHAT), check_ellipse(p.ellipse, _WHAT), left_out

    def _sampling(self, sig: tuple[int, ...], shift: tuple[int, ...] = (0, 0)) -> SparseMask:
        center, ellipse, left_out = self._geometry(sig)
        moved = (center[0] + shift[0], center[1] + shift[1])
        rows, cols = int(sig[0]), int(sig[1])
        return polar_sampling((rows, cols), moved, self._grid(), ellipse, left_out)

    def _mask_source(self, sig: tuple[int, ...]) -> tuple[Any, tuple[int, ...], Any, Any, Any]:
        stack = self._sampling(sig)
        return (lambda: stack), sig, PROFILE_MASKS_SPARSE, np.float64, stack.shape[0]

    def _shifted_stack(self, sig: tuple[int, ...], shift: tuple[int, ...]) -> MaskStack:
        """The grid around the moved centre, sampled afresh (excluded pixels and the frame's
        edges stay where they are)."""
        stack = self._sampling(sig, shift)
        return build_mask_stack(
            lambda: stack, sig, PROFILE_MASKS_SPARSE, np.float64, stack.shape[0]
        )

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the mask kernels read; complex data is refused."""
        refuse_complex(
            self.meta,
            _WHAT,
            "templates match intensities; run it on the frames' magnitude, e.g. with ctx.map",
        )
        return super().get_preferred_input_dtype()

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Whole frames: a frame's polar image must be complete before it is matched."""
        return {**super().get_tiling_preferences(), "partial_frames": False}

    def _bank(self) -> np.ndarray:
        """The templates on the polar grid, the mirrored ones after them."""
        bank = list(self.params.templates)
        if self.params.mirror:
            bank += [t * np.array([-1.0, 1.0, 1.0]) for t in bank]
        return polar_templates(bank, self._grid())

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``template``, ``rotation``, ``score`` (and ``mirrored``): nav, ``(n_best,)``."""
        assert self.meta is not None
        sig = tuple(self.meta.dataset_shape.sig)
        self._geometry(sig)  # bad geometry fails here, before any read
        check_shifts(self._shifts, sig)
        n = (int(self.params.n_best),)
        buffers = {
            "template": self.buffer(kind="nav", extra_shape=n, dtype=np.int64),
            "rotation": self.buffer(kind="nav", extra_shape=n, dtype=np.float64),
            "score": self.buffer(kind="nav", extra_shape=n, dtype=np.float64),
        }
        if self.params.mirror:
            buffers["mirrored"] = self.buffer(kind="nav", extra_shape=n, dtype=bool)
        return buffers

    def preprocess(self) -> None:
        """Prepare the sampling masks and, once per run and device, the templates' spectra."""
        super().preprocess()
        if not on_worker(self.meta):
            return
        assert self.meta is not None
        backend = self.meta.backend

        def build() -> Any:
            return get_kernel("polar_correlate", backend)(self._bank())

        key = (self.meta.run_key, "templates", backend, backend_device(self.meta))
        self._correlate = shared_for_run(key, build, nbytes=lambda c: c.nbytes)

    def process_tile(self, tile: Any) -> None:
        """Polar images of the tile's frames, matched; the best ``n_best`` written."""
        xp = self.xp
        rings, sectors = self._grid().shape
        frames = int(tile.shape[0])
        polar = xp.zeros((frames, rings * sectors), dtype=np.float64)
        self._masks_into(tile, out=polar)
        if self.params.power != 1.0:
            polar = xp.maximum(polar, 0.0) ** self.params.power
        templates = len(self.params.templates) * (2 if self.params.mirror else 1)
        score = xp.empty((frames, templates), dtype=np.float64)
        shift = xp.empty((frames, templates), dtype=np.float64)
        self._correlate(polar.reshape(frames, rings, sectors), score, shift)
        mirrored = None
        if self.params.mirror:  # each template once: the better of it and its mirror image
            half = templates // 2
            mirrored = score[:, half:] > score[:, :half]
            score = xp.where(mirrored, score[:, half:], score[:, :half])
            shift = xp.where(mirrored, shift[:, half:], shift[:, :half])
        best = xp.argsort(-score, axis=1)[:, : int(self.params.n_best)]
        turn = xp.take_along_axis(shift, best, axis=1) * (2 * np.pi / sectors)
        self.results.template[:] = best
        self.results.rotation[:] = xp.mod(turn, 2 * np.pi)
        self.results.score[:] = xp.take_along_axis(score, best, axis=1)
        if mirrored is not None:
            self.results.mirrored[:] = xp.take_along_axis(mirrored, best, axis=1)

    def get_results(self) -> dict[str, Any]:
        """The best matches per frame."""
        names = ("template", "rotation", "score") + (("mirrored",) if self.params.mirror else ())
        return {name: getattr(self.results, name) for name in names}
