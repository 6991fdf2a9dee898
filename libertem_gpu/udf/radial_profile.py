"""Azimuthal integration: each frame's mean (or sum) over rings around a centre, optionally
split into angular sectors, a polar transform of every frame: :class:`RadialProfileUDF`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels.masks import MaskStack
from libertem_gpu.masks import SparseMask
from libertem_gpu.udf._common import PROFILE_MASKS_SPARSE, check_center, check_radii
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.ellipse import check_ellipse, ellipse_center, elliptic_polar
from libertem_gpu.udf.mask_shifts import as_shifts, check_shifts, frame_shifts
from libertem_gpu.udf.masks import ApplyMasksUDF, build_mask_stack

__all__ = ["PolarBins", "RadialProfileUDF", "polar_bins"]

_MODES = ("mean", "sum")


@dataclass(frozen=True)
class PolarBins:
    """Which bin each pixel of a frame falls in.

    Attributes
    ----------
    labels : numpy.ndarray
        int64, one per pixel of the flattened frame: ``ring * n_sectors + sector``, or -1 for
        pixels outside every ring.
    pixels : numpy.ndarray
        int64 ``(n_bins, n_sectors)``: pixels per bin (0 for a bin no pixel centre falls in).
    radius : numpy.ndarray
        float64 ``(n_bins,)``: the centre radius of each ring, in pixels.
    angle : numpy.ndarray
        float64 ``(n_sectors,)``: the centre angle of each sector, in radians.
    edges : numpy.ndarray
        float64 ``(n_bins + 1,)``: the rings' radii, from ``rad_min`` to ``rad_max``.
    center : tuple of float
        ``(row, column)`` of the rings' centre.
    ellipse : tuple of float or None
        ``(ratio, angle)`` of the elliptical distortion undone, or None.
    """

    labels: np.ndarray
    pixels: np.ndarray
    radius: np.ndarray
    angle: np.ndarray
    edges: np.ndarray
    center: tuple[float, float]
    ellipse: tuple[float, float] | None = None

    @property
    def count(self) -> int:
        """Number of bins, rings times sectors."""
        return int(self.pixels.size)


def count_at_least_one(value: Any, name: str, what: str = "RadialProfileUDF") -> int:
    """``value`` as an int, else an :class:`InvalidParameterError` naming ``what`` and
    ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidParameterError(f"{what}: {name} must be an integer >= 1, got {value!r}")
    return int(value)


def polar_bins(
    sig_shape: Sequence[int],
    center: Any = None,
    n_bins: int | None = None,
    rad_max: float | None = None,
    rad_min: float = 0.0,
    n_sectors: int = 1,
    angle_offset: float = 0.0,
    exclude: Any = None,
    ellipse: Any = None,
) -> PolarBins:
    """The bins of :class:`RadialProfileUDF` for frames of shape ``sig_shape``.

    Ring ``b`` holds the pixels whose centres lie at ``rad_min + b * w < distance <= rad_min +
    (b + 1) * w`` from ``center``, ``w = (rad_max - rad_min) / n_bins`` (the first ring also
    holds ``distance == rad_min``): LiberTEM's and :class:`~libertem_gpu.FEMProfileUDF`'s
    rings. Sector ``s`` holds the angles ``angle_offset + s * 2 pi / n_sectors`` up to the
    next sector's, the angle being ``atan2(row - cy, column - cx)``: 0 along increasing
    columns, ``pi / 2`` along increasing rows. With ``ellipse``, distance and angle are those
    with the elliptical distortion undone (:func:`~libertem_gpu.udf.ellipse.elliptic_polar`).
    Parameters as in :class:`RadialProfileUDF`.

    Returns
    -------
    PolarBins
    """
    sig = tuple(int(d) for d in sig_shape)
    if len(sig) != 2:
        raise InvalidParameterError(
            f"RadialProfileUDF needs two signal dimensions, got sig_shape {sig}"
        )
    ny, nx = sig
    stretch = check_ellipse(ellipse, "RadialProfileUDF")
    center = ellipse_center(ellipse, center)
    if center is None:
        cy, cx = (ny - 1) / 2, (nx - 1) / 2
    else:
        cy, cx = check_center(center, "RadialProfileUDF")
    y, x = np.mgrid[:ny, :nx]
    distance = elliptic_polar(y - cy, x - cx, stretch)[0]
    whole = None  # pixels from rad_min out to rad_max, where rad_max is ours
    if rad_max is None:  # whole pixels beyond rad_min, out to the farthest pixel centre
        try:
            base = float(rad_min)
        except (TypeError, ValueError):
            base = 0.0  # check_radii names the bad value
        base = base if math.isfinite(base) else 0.0
        whole = max(1, math.ceil(float(distance.max()) - base))
        rad_max = base + whole
    lo, hi = check_radii(rad_min, rad_max, "RadialProfileUDF", ("rad_min", "rad_max"))
    if n_bins is not None:
        rings = count_at_least_one(n_bins, "n_bins")
    else:  # the fewest rings no wider than a pixel
        rings = whole if whole is not None else max(1, math.ceil(hi - lo))
    sectors = count_at_least_one(n_sectors, "n_sectors")
    try:
        offset = float(angle_offset)
    except (TypeError, ValueError):
        raise InvalidParameterError(
            f"RadialProfileUDF: angle_offset must be a number (radians), got {angle_offset!r}"
        ) from None
    edges = lo + np.arange(rings + 1) * ((hi - lo) / rings)
    left_out = None
    if exclude is not None:
        left_out = np.asarray(exclude)
        if left_out.shape != sig or left_out.dtype != np.bool_:
            raise InvalidParameterError(
                f"RadialProfileUDF: exclude must be a boolean array of the frame's shape {sig}, "
                f"got {left_out.dtype} {left_out.shape}"
            )
    bins = _label_pixels(sig, (cy, cx), edges, sectors, offset, left_out, stretch)
    if not bins.pixels.any():
        raise InvalidParameterError(
            f"RadialProfileUDF: no pixel of the {ny} x {nx} frame lies between rad_min={lo} and "
            f"rad_max={hi} from center (row {cy}, column {cx})"
            + ("" if exclude is None else " that exclude leaves in")
        )
    return bins


def _label_pixels(
    sig: tuple[int, int],
    center: tuple[float, float],
    edges: np.ndarray,
    sectors: int,
    offset: float,
    left_out: np.ndarray | None,
    ellipse: tuple[float, float] | None,
) -> PolarBins:
    """The bins of rings ``edges`` and ``sectors`` sectors around ``center``, the distortion
    ``ellipse`` undone (all checked)."""
    cy, cx = center
    lo, hi = edges[0], edges[-1]
    rings = len(edges) - 1
    y, x = np.mgrid[: sig[0], : sig[1]]
    distance, direction = elliptic_polar(
        (y - cy).reshape(-1).astype(np.float64), (x - cx).reshape(-1).astype(np.float64), ellipse
    )
    ring = np.searchsorted(edges, distance, side="left") - 1
    ring[distance == lo] = 0
    inside = (distance >= lo) & (distance <= hi) & (ring >= 0) & (ring < rings)
    if left_out is not None:
        inside &= ~left_out.reshape(-1)
    turn = 2 * np.pi
    angle = np.mod(direction - offset, turn)
    sector = np.minimum((angle / (turn / sectors)).astype(np.int64), sectors - 1)
    labels = np.where(inside, ring * sectors + sector, -1).astype(np.int64)
    pixels = np.bincount(labels[inside], minlength=rings * sectors).reshape(rings, sectors)
    return PolarBins(
        labels=labels,
        pixels=pixels,
        radius=(edges[:-1] + edges[1:]) / 2,
        angle=offset + (np.arange(sectors) + 0.5) * (turn / sectors),
        edges=edges,
        center=(float(cy), float(cx)),
        ellipse=ellipse,
    )


class RadialProfileUDF(ApplyMasksUDF):
    """Azimuthal integration of every frame: its mean (or sum) over rings of equal width
    around ``center``, each ring optionally split into ``n_sectors`` angular sectors (a polar
    transform, bins ``(radius, angle)``).

    Each pixel counts, whole, in the bin its centre falls in (no splitting of pixels between
    bins, unlike pyFAI and pyxem's integrators). The bins are a linear functional of each
    frame: they run as masks (:class:`~libertem_gpu.ApplyMasksUDF`, on the CPU and the GPU).

    Parameters
    ----------
    center : tuple of float, optional
        ``(row, column)`` of the rings' centre, in pixels; it may lie off the frame. Default:
        the frame's centre, ``((rows - 1) / 2, (columns - 1) / 2)``.
    n_bins : int, optional
        Number of rings. Default: the fewest rings no wider than a pixel,
        ``ceil(rad_max - rad_min)`` (one pixel wide with the default ``rad_max``).
    rad_max : float, optional
        Outer radius of the last ring. Default: ``rad_min`` plus the distance from there to
        the farthest pixel centre, rounded up to whole pixels, so that every pixel from
        ``rad_min`` out is counted.
    rad_min : float
        Inner radius of the first ring (default 0).
    n_sectors : int
        Angular sectors per ring (default 1: a radial profile).
    angle_offset : float
        Where the first sector starts, in radians from the direction of increasing columns
        towards increasing rows (default 0).
    exclude : numpy.ndarray, optional
        Boolean, the frame's shape: pixels left out of every bin (a beam stop's shadow, the
        gaps between detector chips, dead or hot pixels). ``pixels`` counts those left in.
    mode : {"mean", "sum"}
        The mean of each bin's pixels (NaN for a bin that holds none), or their sum.
    shifts : array_like or AuxData, optional
        Move the rings with the beam (descan compensation), in whole pixels, as
        :class:`~libertem_gpu.ApplyMasksUDF`'s ``shifts``: ``(dy, dx)`` for every frame, or one
        per scan position, ``(*nav_shape, 2)``. A frame of shift ``(dy, dx)`` is binned around
        ``center + (dy, dx)`` with the same rings and sectors; ``exclude`` stays where it is on
        the detector. Means are over the pixels of each frame's own bins (NaN where the shift
        left a bin none); ``pixels`` counts those of the unmoved bins.
    ellipse : EllipseFit or tuple of float, optional
        Undo an elliptical distortion of the pattern: ``(ratio, angle)``, the major over the
        minor semi-axis and the major axis' direction in radians (as ``angle_offset``), or an
        :class:`~libertem_gpu.EllipseFit` from :func:`~libertem_gpu.fit_ellipse` (whose
        centre is used where ``center`` is not given). Pixels are binned by the radius of the
        ellipse through them, as the circle of equal area (``sqrt(a * b)``), and by their angle
        with the stretch undone; ``radius`` and ``rad_min``/``rad_max`` are such radii.
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    intensity : nav, extra_shape ``(n_bins,)``, or ``(n_bins, n_sectors)`` with sectors
        float64 (complex128 for complex data).
    radius : single, ``(n_bins,)``, float64
        The centre radius of each ring, in pixels.
    angle : single, ``(n_sectors,)``, float64
        The centre angle of each sector, in radians.
    pixels : single, ``(n_bins, n_sectors)``, int64
        Pixels per bin.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, RadialProfileUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.random.default_rng(0).poisson(5, (3, 4, 16, 16)))
    >>> res = ctx.run_udf(dataset=ds, udf=RadialProfileUDF(n_bins=8, rad_max=8))
    >>> res["intensity"].data.shape
    (3, 4, 8)
    >>> polar = RadialProfileUDF(n_bins=8, rad_max=8, n_sectors=12)
    >>> ctx.run_udf(dataset=ds, udf=polar)["intensity"].data.shape
    (3, 4, 8, 12)
    """

    def __init__(
        self,
        center: Any = None,
        n_bins: int | None = None,
        rad_max: float | None = None,
        rad_min: float = 0.0,
        n_sectors: int = 1,
        angle_offset: float = 0.0,
        exclude: Any = None,
        mode: str = "mean",
        backends: Sequence[str] | None = None,
        shifts: Any = None,
        ellipse: Any = None,
    ) -> None:
        if mode not in _MODES:
            raise InvalidParameterError(
                f"RadialProfileUDF: mode must be one of {_MODES}, got {mode!r}"
            )
        count_at_least_one(n_sectors, "n_sectors")
        if n_bins is not None:
            count_at_least_one(n_bins, "n_bins")
        check_ellipse(ellipse, "RadialProfileUDF")
        # Not ApplyMasksUDF.__init__: the parameters are ours, the masks are made from them.
        super(ApplyMasksUDF, self).__init__(
            center=center,
            n_bins=n_bins,
            rad_max=rad_max,
            rad_min=rad_min,
            n_sectors=n_sectors,
            angle_offset=angle_offset,
            exclude=exclude,
            mode=mode,
            backends=backends,
            shifts=as_shifts(shifts),
            ellipse=ellipse,
        )

    @property
    def _mode(self) -> str:
        """``"mean"`` or ``"sum"`` (subclasses without the parameter fix it)."""
        return str(self.params.mode)

    def _bins(self, sig: tuple[int, ...]) -> PolarBins:
        found = self.__dict__.get("_polar_bins")
        if found is None or found[0] != sig:
            p = self.params
            found = (
                sig,
                polar_bins(
                    sig,
                    p.center,
                    p.n_bins,
                    p.rad_max,
                    p.rad_min,
                    p.n_sectors,
                    p.angle_offset,
                    p.exclude,
                    p.ellipse,
                ),
            )
            self.__dict__["_polar_bins"] = found
        return found[1]

    def _moved_bins(self, sig: tuple[int, ...], shift: tuple[int, ...]) -> PolarBins:
        """The bins of a frame whose beam moved by ``shift``: the same rings and sectors around
        the moved centre, the excluded pixels where they are."""
        bins = self._bins(sig)
        rows, cols = int(sig[0]), int(sig[1])
        dy, dx = (int(s) for s in shift)
        pad, grid = self._padded_labels(sig, max(abs(dy), abs(dx)))
        # A frame's pixel (y, x) seen from the moved centre is (y - dy, x - dx) seen from the
        # centre: a window of the labels laid out once on a frame padded all round.
        labels = grid[pad - dy : pad - dy + rows, pad - dx : pad - dx + cols].copy()
        if self.params.exclude is not None:
            labels[np.asarray(self.params.exclude)] = -1
        labels = labels.reshape(-1)
        inside = labels[labels >= 0]
        pixels = np.bincount(inside, minlength=bins.count).reshape(bins.pixels.shape)
        cy, cx = bins.center
        return PolarBins(
            labels, pixels, bins.radius, bins.angle, bins.edges, (cy + dy, cx + dx), bins.ellipse
        )

    def _padded_labels(self, sig: tuple[int, ...], reach: int) -> tuple[int, np.ndarray]:
        """The unmoved bins' labels on the frame padded by at least ``reach`` pixels on every
        side (made again, twice as wide, when a shift reaches further)."""
        found = self.__dict__.get("_padded")
        if found is None or found[0] != sig or found[1] < reach:
            bins = self._bins(sig)
            pad = max(reach, 2 * (found[1] if found is not None and found[0] == sig else 4))
            rows, cols = int(sig[0]) + 2 * pad, int(sig[1]) + 2 * pad
            cy, cx = bins.center
            sectors = bins.angle.shape[0]
            offset = float(self.params.angle_offset)
            grid = _label_pixels(
                (rows, cols), (cy + pad, cx + pad), bins.edges, sectors, offset, None, bins.ellipse
            ).labels.reshape(rows, cols)
            found = (sig, pad, grid)
            self.__dict__["_padded"] = found
        return found[1], found[2]

    def _shifted_stack(self, sig: tuple[int, ...], shift: tuple[int, ...]) -> MaskStack:
        return build_mask_stack(*self._stack_source(sig, self._moved_bins(sig, shift)))

    def _mask_source(self, sig: tuple[int, ...]) -> tuple[Any, tuple[int, ...], Any, Any, Any]:
        return self._stack_source(sig, self._bins(sig))

    def _stack_source(
        self, sig: tuple[int, ...], bins: PolarBins
    ) -> tuple[Any, tuple[int, ...], Any, Any, Any]:
        """The arguments of :func:`build_mask_stack` for ``bins``: one sparse mask per bin,
        weighted ``1 / pixels`` for means."""
        inside = np.flatnonzero(bins.labels >= 0)
        label = bins.labels[inside]
        order = np.lexsort((inside, label))  # mask by mask, pixels ascending
        counts = bins.pixels.reshape(-1)
        weight = 1.0 / counts[label] if self._mode == "mean" else np.ones(len(label))
        npix = math.prod(sig)
        stack = SparseMask((bins.count, *sig), label[order] * npix + inside[order], weight[order])
        return (lambda: stack), sig, PROFILE_MASKS_SPARSE, np.float64, bins.count

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """The bins' values (``intensity``, nav) and their geometry (single)."""
        assert self.meta is not None
        sig = tuple(self.meta.dataset_shape.sig)
        bins = self._bins(sig)  # bad parameters fail here
        check_shifts(self._shifts, sig)
        shape = bins.pixels.shape if self.params.n_sectors > 1 else bins.pixels.shape[:1]
        dtype = self._result_dtype()
        real = np.empty(0, dtype).real.dtype
        flat = (bins.count,)
        buffers = {"parts_re": self.buffer(kind="nav", extra_shape=flat, dtype=real, use="private")}
        if self._complex_data:
            buffers["parts_im"] = self.buffer(
                kind="nav", extra_shape=flat, dtype=real, use="private"
            )

        def single(shape: tuple[int, ...], dtype: Any) -> BufferDecl:
            return self.buffer(kind="single", extra_shape=shape, dtype=dtype, use="result_only")

        return {
            **buffers,
            "intensity": self.buffer(
                kind="nav", extra_shape=tuple(shape), dtype=dtype, use="result_only"
            ),
            "radius": single(bins.radius.shape, np.float64),
            "angle": single(bins.angle.shape, np.float64),
            "pixels": single(bins.pixels.shape, np.int64),
        }

    def process_tile(self, tile: Any) -> None:
        """Accumulate the tile's bins (or a row slab's share of them)."""
        self._masks_into(tile, "parts_re")

    def _filled(self, bins: PolarBins, shape: tuple[int, ...]) -> np.ndarray:
        """Whether each frame's bins hold a pixel: the same for every frame without shifts,
        else per position from the bins moved by its shift (each shift's bins made once)."""
        filled = bins.pixels.reshape(-1) > 0
        shifts = self._shifts
        if shifts is None or (isinstance(shifts, tuple) and not any(shifts)):
            return filled
        assert self.meta is not None
        sig = tuple(self.meta.dataset_shape.sig)
        nav = tuple(self.meta.dataset_shape.nav)
        per_frame = frame_shifts(shifts, np.arange(math.prod(nav)))
        if self.meta.roi is not None:
            per_frame = per_frame[self.meta.roi.reshape(-1)]
        unique, which = np.unique(per_frame, axis=0, return_inverse=True)
        table = np.empty((len(unique), bins.count), dtype=bool)
        for i, shift in enumerate(unique):
            moved = self._moved_bins(sig, tuple(int(v) for v in shift)) if shift.any() else bins
            table[i] = moved.pixels.reshape(-1) > 0
        return table[which.reshape(-1)].reshape(shape)

    def get_results(self) -> dict[str, Any]:
        """The bins in their ``(ring[, sector])`` shape, NaN for empty bins' means."""
        assert self.meta is not None
        bins = self._bins(tuple(self.meta.dataset_shape.sig))
        if self._complex_data:
            values = self._complex_data_results()
        else:
            values = np.asarray(self.results.parts_re)
        if self._mode == "mean":
            values = np.where(self._filled(bins, values.shape), values, np.nan)
        shape = bins.pixels.shape if self.params.n_sectors > 1 else bins.pixels.shape[:1]
        return {
            "intensity": values.reshape(*values.shape[:-1], *shape),
            "radius": bins.radius,
            "angle": bins.angle,
            "pixels": bins.pixels,
        }
