"""Centre of mass of each frame, and the shift field it gives over the scan: :class:`CoMUDF`."""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any, NamedTuple

import numpy as np

from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from libertem_gpu.kernels import com as com_op
from libertem_gpu.udf import run_cache
from libertem_gpu.udf._common import (
    kernel_backends,
    kernel_input_dtype,
    on_worker,
    preferences,
    refuse_complex,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.com_fields import integrate_field

__all__ = [
    "CoMParams",
    "CoMUDF",
    "RegressionOptions",
    "apply_correction",
    "masked_gradient",
    "transform_matrix",
]


class RegressionOptions(IntEnum):
    """What :class:`CoMUDF` subtracts from the field (LiberTEM's values)."""

    NO_REGRESSION = -1
    SUBTRACT_MEAN = 0
    SUBTRACT_LINEAR = 1


class CoMParams(NamedTuple):
    """Parameters of :class:`CoMUDF`; build them with :meth:`CoMUDF.with_params`."""

    cy: float | None = None
    cx: float | None = None
    r: float = float("inf")
    ri: float | None = 0.0
    scan_rotation: float = 0.0
    flip_y: bool = False
    regression: Any = RegressionOptions.NO_REGRESSION


def transform_matrix(scan_rotation: float, flip_y: bool) -> np.ndarray:
    """The 2x2 matrix that maps detector shifts ``(dy, dx)`` to the scan's frame of reference:
    an optional flip of y, then a rotation by ``scan_rotation`` degrees (clockwise for
    positive angles, as in LiberTEM)."""
    a = math.radians(scan_rotation)
    rotation = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    flip = np.diag([-1.0, 1.0]) if flip_y else np.eye(2)
    return rotation @ flip


def apply_correction(
    y_centers: np.ndarray,
    x_centers: np.ndarray,
    scan_rotation: float,
    flip_y: bool,
    forward: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate (and flip) shift components, as LiberTEM's ``com.apply_correction``.

    Parameters
    ----------
    y_centers, x_centers : numpy.ndarray
        Shift components, any matching shapes.
    scan_rotation : float
        Degrees.
    flip_y : bool
        Flip the detector's y axis first.
    forward : bool
        False applies the inverse transformation.

    Returns
    -------
    y, x : numpy.ndarray
        The transformed components, shaped like the inputs.
    """
    t = transform_matrix(scan_rotation, flip_y)
    if not forward:
        t = np.linalg.inv(t)
    y = np.asarray(y_centers, dtype=np.float64)
    x = np.asarray(x_centers, dtype=np.float64)
    return t[0, 0] * y + t[0, 1] * x, t[1, 0] * y + t[1, 1] * x


def masked_gradient(values: np.ndarray, valid: np.ndarray, axis: int) -> np.ndarray:
    """Derivative along ``axis`` that only uses valid neighbours.

    Central differences where both neighbours are valid, one-sided differences where only one
    is, NaN where none is or the position itself is invalid. On a fully valid grid this equals
    :func:`numpy.gradient` (``edge_order=1``); with a roi, values outside it never leak in.
    """
    f = np.moveaxis(np.asarray(values, dtype=np.float64), axis, 0)
    ok = np.moveaxis(np.asarray(valid, dtype=bool), axis, 0)
    out = np.full(f.shape, np.nan)
    if f.shape[0] < 2:
        return np.moveaxis(out, 0, axis)
    step = f[1:] - f[:-1]  # step[i] = f[i+1] - f[i]
    pair = ok[1:] & ok[:-1]
    has_next = np.zeros(f.shape, dtype=bool)
    has_prev = np.zeros(f.shape, dtype=bool)
    has_next[:-1] = pair
    has_prev[1:] = pair
    fwd = np.zeros(f.shape)
    bwd = np.zeros(f.shape)
    fwd[:-1] = step
    bwd[1:] = step
    out = np.where(
        has_next & has_prev,
        (fwd + bwd) / 2,
        np.where(has_next, fwd, np.where(has_prev, bwd, np.nan)),
    )
    out[~ok] = np.nan
    return np.moveaxis(out, 0, axis)


def _regression_kind(regression: Any, nav_dims: int) -> int | np.ndarray:
    """-1, 0, 1, or a ``(1 + nav_dims, 2)`` array; raise for anything else."""
    if regression is None:
        return -1
    if isinstance(regression, (int, np.integer)) and not isinstance(regression, bool):
        if int(regression) in (-1, 0, 1):
            return int(regression)
        raise InvalidParameterError(
            f"regression must be None, -1, 0, 1 or a ({1 + nav_dims}, 2) array, got {regression}"
        )
    array = np.asarray(regression, dtype=np.float64)
    if array.shape != (1 + nav_dims, 2):
        raise InvalidParameterError(
            f"a regression array must have shape ({1 + nav_dims}, 2) for {nav_dims} scan "
            f"dimensions ([[y, x], [dy/dnav0, dx/dnav0], ...]), got {array.shape}"
        )
    return array


#: Frames per step where corrections are folded into the weights (see ``process_tile``).
_FOLD_FRAMES = 32


class CoMUDF(UDF):
    """Centre of mass of each frame, within an optional disk or annulus, and the field of its
    shifts over the scan.

    Use :meth:`with_params` to build one. Frames must be 2-D; the scan may have any number of
    dimensions (``divergence`` and ``curl`` exist only for 2-D scans).

    Results (all ``nav``, float64)
    ------------------------------
    raw_com : extra_shape (2,)
        Centre of mass ``(y, x)`` in pixel coordinates of the frame; ``(cy, cx)`` for a frame
        whose (masked) intensity sums to 0.
    raw_shifts : extra_shape (2,)
        ``raw_com - (cy, cx)``.
    field : extra_shape (2,)
        The shifts rotated by ``scan_rotation`` (after ``flip_y``), minus the regression.
    field_y, field_x
        The components of ``field``.
    magnitude
        Length of ``field``.
    divergence, curl
        ``d field_y/dy + d field_x/dx`` and ``d field_y/dx - d field_x/dy`` over a 2-D scan
        (axis 0 is y), by central differences, one-sided at the scan's and the roi's borders.
    icom
        Integrated CoM over a 2-D scan: the potential whose gradient is ``field``
        (:func:`~libertem_gpu.udf.com_fields.integrate_field`: mirror-extended FFT
        integration, zero mean), in detector pixels x scan steps; positions outside the roi
        count as zero field and are NaN.
    regression : single, extra_shape (1 + nav_dims, 2)
        What was subtracted: ``[[y, x], [dy/dnav0, dx/dnav0], ...]``.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import CoMUDF, Context
    >>> ctx = Context("inline")
    >>> data = np.zeros((2, 3, 9, 9), dtype=np.uint16)
    >>> data[..., 5, 3] = 7  # all intensity in one pixel: 1 down and 1 left of the centre
    >>> res = ctx.run_udf(dataset=ctx.load("memory", data=data), udf=CoMUDF.with_params())
    >>> res["raw_shifts"].data[0, 0].tolist()
    [1.0, -1.0]
    """

    def __init__(self, com_params: CoMParams = CoMParams()) -> None:  # noqa: B008 - immutable
        if not isinstance(com_params, CoMParams):
            raise InvalidParameterError(
                f"CoMUDF takes a CoMParams (see CoMUDF.with_params), got {com_params!r}"
            )
        super().__init__(com_params=com_params)

    @classmethod
    def with_params(
        cls,
        *,
        cy: float | None = None,
        cx: float | None = None,
        r: float = float("inf"),
        ri: float | None = 0.0,
        scan_rotation: float = 0.0,
        flip_y: bool = False,
        regression: Any = None,
    ) -> CoMUDF:
        """A :class:`CoMUDF` with these parameters.

        Parameters
        ----------
        cy, cx : float, optional
            Centre of the disk/annulus and reference point of the shifts, as (row, column);
            default: the frame centre ``(rows // 2, cols // 2)``.
        r : float
            Outer radius of the disk around ``(cy, cx)``; ``inf`` (default): the whole frame.
        ri : float
            Inner radius: pixels at distance ``<= ri`` are left out (annular CoM). 0: a disk.
        scan_rotation : float
            Degrees by which the shifts are rotated into the scan's axes (positive: clockwise).
        flip_y : bool
            Flip the detector's y axis before rotating (detectors with pixel (0, 0) at the
            bottom left).
        regression : None, int or array
            ``None`` or ``-1``: nothing subtracted; ``0``: subtract the mean field; ``1``:
            subtract a field linear in the scan coordinates (least squares); or an array
            ``(1 + nav_dims, 2)`` to subtract as given.

        Raises
        ------
        InvalidParameterError
            For ``ri >= r``, negative radii or an unknown regression.
        """
        ri_value = 0.0 if ri is None else float(ri)
        if not float(r) > 0 or ri_value < 0:
            raise InvalidParameterError(f"CoM radii must be r > 0 and ri >= 0, got r={r}, ri={ri}")
        if ri_value >= float(r):
            raise InvalidParameterError(
                f"the inner radius ri={ri} must be smaller than the outer radius r={r}"
            )
        return cls(
            com_params=CoMParams(
                cy=cy,
                cx=cx,
                r=r,
                ri=ri,
                scan_rotation=scan_rotation,
                flip_y=flip_y,
                regression=-1 if regression is None else regression,
            )
        )

    def get_params(self) -> CoMParams:
        """The parameters with the defaults resolved for this data set (centre of the frame)."""
        assert self.meta is not None
        p: CoMParams = self.params.com_params
        sig = tuple(self.meta.dataset_shape.sig)
        return p._replace(
            cy=sig[0] // 2 if p.cy is None else p.cy,
            cx=sig[1] // 2 if p.cx is None else p.cx,
            ri=0.0 if p.ri is None else p.ri,
        )

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, which the kernels read directly (float32 where they cannot)."""
        refuse_complex(
            self.meta,
            "CoMUDF",
            "a centre of mass needs real intensities; take the intensity |x|**2 first "
            "(e.g. in a UDF of your own, or convert the data set)",
        )
        return kernel_input_dtype(self.meta, "com")

    def get_backends(self) -> tuple[str, ...]:
        """Where the centre-of-mass operation runs: the CPU and, where a GPU is, CuPy."""
        return kernel_backends("centre_of_mass")

    def get_tiling_preferences(self) -> dict[str, Any]:
        """Accepts frames split into row slabs (moments of slabs add up); big-endian integers
        unswapped where the operation's strategy swaps as it reads (a disk or annulus as
        runs)."""
        return preferences(
            stored_byteorder=self.meta is not None and self._prepare().reads_stored_order
        )

    #: Detector corrections are folded into the weights (exact: the moments are linear in
    #: the data), so the kernels keep reading stored integers.
    _folds_corrections = True

    def _folded(self) -> Any:
        """The weights with the run's corrections folded in, or None without corrections."""
        assert self.meta is not None
        if self.meta.corrections is None:
            return None
        from libertem_gpu.corrections.fold import folded_moments

        frame = self.meta.corrections.for_frames(tuple(self.meta.dataset_shape.sig))
        p = self.get_params()
        return folded_moments(frame, self.weights(), key=(p.cy, p.cx, p.r, p.ri))

    def _prepare(self, folded: Any = None) -> com_op.AppliedCoM:
        """The centre-of-mass operation prepared for this run's backend and weights."""
        assert self.meta is not None
        if folded is None:
            return com_op.prepare(self.meta.kernels, self.weights(), self.meta.input_dtype)
        # Folded weights are good to float32: a strategy may compute in float32.
        return com_op.prepare(
            self.meta.kernels,
            folded.weights,
            self.meta.input_dtype,
            single=folded.single,
            terms=folded.terms,
        )

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """Private per-frame moments, and the results computed from them at the end."""
        assert self.meta is not None
        sig = tuple(self.meta.dataset_shape.sig)
        if len(sig) != 2:
            raise ShapeMismatchError(
                f"CoMUDF needs 2-D frames, the data set has frames of shape {sig}"
            )
        nav_dims = len(self.meta.dataset_shape.nav)
        _regression_kind(self.params.com_params.regression, nav_dims)
        f8 = np.float64
        decls = {
            "com_total": self.buffer(kind="nav", dtype=f8, use="private"),
            "com_y": self.buffer(kind="nav", dtype=f8, use="private"),
            "com_x": self.buffer(kind="nav", dtype=f8, use="private"),
            "raw_com": self.buffer(kind="nav", extra_shape=(2,), dtype=f8, use="result_only"),
            "raw_shifts": self.buffer(kind="nav", extra_shape=(2,), dtype=f8, use="result_only"),
            "field": self.buffer(kind="nav", extra_shape=(2,), dtype=f8, use="result_only"),
            "field_y": self.buffer(kind="nav", dtype=f8, use="result_only"),
            "field_x": self.buffer(kind="nav", dtype=f8, use="result_only"),
            "magnitude": self.buffer(kind="nav", dtype=f8, use="result_only"),
        }
        if nav_dims == 2:
            decls["divergence"] = self.buffer(kind="nav", dtype=f8, use="result_only")
            decls["curl"] = self.buffer(kind="nav", dtype=f8, use="result_only")
            decls["icom"] = self.buffer(kind="nav", dtype=f8, use="result_only")
        decls["regression"] = self.buffer(
            kind="single", extra_shape=(1 + nav_dims, 2), dtype=f8, use="result_only"
        )
        return decls

    def weights(self) -> np.ndarray:
        """float64 frame-shaped weights: 1 inside the disk/annulus, 0 outside."""
        from libertem_gpu.masks import disk, ring

        assert self.meta is not None
        p = self.get_params()
        rows, cols = self.meta.dataset_shape.sig
        cy, cx, r, ri = float(p.cy or 0), float(p.cx or 0), float(p.r), float(p.ri or 0)
        if math.isinf(r) and np.isclose(ri, 0.0):
            return np.ones((rows, cols))
        if np.isclose(ri, 0.0):
            mask = disk((rows, cols), cy, cx, r)
        else:
            mask = ring((rows, cols), cy, cx, r, ri)
        return np.ascontiguousarray(mask, dtype=np.float64)

    def preprocess(self) -> None:
        """Prepare the operation (strategy, weights on the backend): once per run in a worker
        process, shared by the run's partitions (per device on a GPU)."""
        if not on_worker(self.meta):
            return
        assert self.meta is not None

        def build() -> tuple[Any, com_op.AppliedCoM]:
            fold = self._folded()
            return fold, self._prepare(fold)

        run_key = self.meta.run_key
        if run_key is None:
            self._fold, self._com = build()
        else:
            # Drawing the disk and finding its runs took about 1 ms a partition.
            key = (*run_key, "com", self.meta.kernels, run_cache.backend_device(self.meta))
            self._fold, self._com = run_cache.shared_for_run(key, build, run_cache.array_bytes)

    def process_tile(self, tile: Any) -> None:
        """Accumulate each frame's masked total and first moments (row slabs add up)."""
        assert self.meta is not None and self.meta.tile is not None
        rows = self.meta.tile.sig_rows
        row_offset = 0 if rows is None else rows[0]
        res = self.results
        if self._fold is None:
            self._com(tile, row_offset, res.com_total, res.com_y, res.com_x, self.meta.byteswapped)
            return
        # Folded corrections read a few pixels of each frame again: a few frames at a time,
        # while they are in the cache (in one step where they read none).
        added = self._com.adds_terms
        step = _FOLD_FRAMES if self._fold.gathers(added) else tile.shape[0]
        for s in range(0, tile.shape[0], step):
            e = s + step
            part = (res.com_total[s:e], res.com_y[s:e], res.com_x[s:e])
            self._com(tile[s:e], row_offset, *part, self.meta.byteswapped)
            self._fold.apply(self.meta.xp, tile[s:e], rows, *part, terms_added=added)

    def _selected(self) -> np.ndarray:
        assert self.meta is not None
        if self.meta.roi is None:
            return np.arange(self.meta.dataset_shape.nav_size)
        return np.flatnonzero(self.meta.roi.reshape(-1))

    def _regression(self, field: np.ndarray, coords: np.ndarray) -> np.ndarray:
        nav_dims = coords.shape[1] - 1
        kind = _regression_kind(self.params.com_params.regression, nav_dims)
        result = np.zeros((1 + nav_dims, 2))
        if not isinstance(kind, int):  # a regression given as an array
            result[:] = kind
        elif len(field) == 0 or kind == -1:
            pass
        elif kind == 0:
            result[0] = field.mean(axis=0)
        else:
            result[:] = np.linalg.lstsq(coords, field, rcond=None)[0]
        return result

    def get_results(self) -> dict[str, Any]:
        """Centres, shifts, the corrected field and its derived maps."""
        assert self.meta is not None
        p = self.get_params()
        total = np.asarray(self.results.com_total)
        zero = total == 0
        safe = np.where(zero, 1.0, total)
        com_y = np.where(zero, p.cy, self.results.com_y / safe)
        com_x = np.where(zero, p.cx, self.results.com_x / safe)
        raw_com = np.stack([com_y, com_x], axis=-1)
        raw_shifts = raw_com - np.array([p.cy, p.cx], dtype=np.float64)
        field = raw_shifts @ transform_matrix(p.scan_rotation, p.flip_y).T

        nav = tuple(self.meta.dataset_shape.nav)
        selected = self._selected()
        coords = np.ones((len(selected), 1 + len(nav)))
        coords[:, 1:] = np.stack(np.unravel_index(selected, nav), axis=-1)
        # Fits and derivatives use only the positions processed so far that hold data.
        merged = self.meta.get_valid_nav_mask()
        merged = np.ones(len(selected), bool) if merged is None else merged
        regression = self._regression(field[merged], coords[merged])
        field = field - coords @ regression

        results = {
            "raw_com": raw_com,
            "raw_shifts": raw_shifts,
            "field": field,
            "field_y": field[:, 0].copy(),
            "field_x": field[:, 1].copy(),
            "magnitude": np.hypot(field[:, 0], field[:, 1]),
            "regression": regression,
        }
        if len(nav) == 2:
            flat_valid = np.zeros(math.prod(nav), dtype=bool)
            flat_valid[selected[merged]] = True
            valid = flat_valid.reshape(nav)
            grids = []
            for component in (0, 1):
                grid = np.full(math.prod(nav), np.nan)
                grid[selected] = field[:, component]
                grids.append(grid.reshape(nav))
            fy, fx = grids
            div = masked_gradient(fy, valid, 0) + masked_gradient(fx, valid, 1)
            curl = masked_gradient(fy, valid, 1) - masked_gradient(fx, valid, 0)
            results["divergence"] = div.reshape(-1)[selected]
            results["curl"] = curl.reshape(-1)[selected]
            results["icom"] = integrate_field(fy, fx, valid).reshape(-1)[selected]
        return results
