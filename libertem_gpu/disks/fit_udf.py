"""Per-frame lattice fits inside a run: :class:`LatticeFitUDF`, the sparse disk correlation
at expected lattice positions plus, in each partition's ``postprocess`` (in the workers), the
fit of every frame's lattice to its peaks."""

from __future__ import annotations

from typing import Any

import numpy as np

from libertem_gpu.disks.lattice import LatticeFit, fit_lattice
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels.fourier import _host
from libertem_gpu.udf.base import UDFParams
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.disks import SparseCorrelationUDF

__all__ = ["FIT_RESULTS", "LatticeFitUDF", "check_fit_params", "fit_frames"]

#: The nav results the fit adds: name -> (extra shape, dtype).
FIT_RESULTS: dict[str, tuple[tuple[int, ...], Any]] = {
    "origin": ((2,), np.float64),
    "a": ((2,), np.float64),
    "b": ((2,), np.float64),
    "residual_rms": ((), np.float64),
    "n_matched": ((), np.int32),
    "covariance": ((6, 6), np.float64),
}


def check_fit_params(
    n_positions: int,
    hk: Any,
    origin: Any,
    a: Any,
    b: Any,
    min_heights: Any = None,
    weighted: bool = True,
    max_residual: float | None = None,
    outlier_sigma: float = 5.0,
    n_iter: int = 5,
    min_peaks: int = 4,
) -> dict[str, Any]:
    """The fit's parameters checked and as plain arrays, or an
    :class:`~libertem_gpu.errors.InvalidParameterError` naming the bad one."""
    hk_arr = np.asarray(hk, np.float64)
    if hk_arr.shape != (n_positions, 2) or not np.array_equal(hk_arr, np.round(hk_arr)):
        raise InvalidParameterError(
            f"hk must be integer indices of shape ({n_positions}, 2), one row per expected "
            f"position, got {hk_arr.shape}"
        )
    vecs = []
    for name, v in (("origin", origin), ("a", a), ("b", b)):
        arr = np.asarray(v, np.float64)
        if arr.shape != (2,) or not np.isfinite(arr).all():
            raise InvalidParameterError(f"{name} must be a finite (y, x) pair, got {v!r}")
        vecs.append(arr)
    if min_heights is None:
        mh = np.zeros(n_positions)
    else:
        try:
            mh = np.broadcast_to(np.asarray(min_heights, np.float64), (n_positions,)).copy()
        except ValueError:
            raise InvalidParameterError(
                f"min_heights must be a number or have shape ({n_positions},), got "
                f"{np.shape(min_heights)}"
            ) from None
        if np.isnan(mh).any():
            raise InvalidParameterError("min_heights must not hold NaN (use inf to skip a disk)")
    # the fit's own checks, on one dummy frame
    fit_lattice(
        np.zeros((1, 4, 2)),
        vecs[0],
        vecs[1],
        vecs[2],
        max_residual=max_residual,
        outlier_sigma=outlier_sigma,
        n_iter=n_iter,
        min_peaks=min_peaks,
    )
    return {
        "hk": hk_arr,
        "origin": vecs[0],
        "a": vecs[1],
        "b": vecs[2],
        "min_heights": mh,
        "weighted": bool(weighted),
        "max_residual": max_residual,
        "outlier_sigma": float(outlier_sigma),
        "n_iter": int(n_iter),
        "min_peaks": int(min_peaks),
    }


def fit_frames(peaks: Any, heights: Any, params: dict[str, Any]) -> LatticeFit:
    """Fit each frame's lattice to its peaks at the expected positions (NumPy arrays
    ``(n, N, 2)`` and ``(n, N)``), with the parameters of :func:`check_fit_params`: peaks below
    or at their position's ``min_heights`` are left out, the rest weighted by height if
    ``weighted``."""
    h = np.asarray(heights, np.float64)
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(h) & (h > params["min_heights"])
    weights = np.where(keep, h if params["weighted"] else 1.0, 0.0)
    return fit_lattice(
        peaks,
        params["origin"],
        params["a"],
        params["b"],
        hk=params["hk"],
        weights=weights,
        max_residual=params["max_residual"],
        outlier_sigma=params["outlier_sigma"],
        n_iter=params["n_iter"],
        min_peaks=params["min_peaks"],
    )


def fit_buffers(udf: Any) -> dict[str, BufferDecl]:
    """Declarations of :data:`FIT_RESULTS` for ``udf``."""
    return {
        name: udf.buffer(kind="nav", extra_shape=shape, dtype=dtype)
        for name, (shape, dtype) in FIT_RESULTS.items()
    }


def write_fit(udf: Any, params: dict[str, Any]) -> None:
    """Fit the frames of the current partition from ``udf.results.peaks`` and ``heights`` and
    write :data:`FIT_RESULTS` into its buffers (on the host; the fit is small next to the
    correlation)."""
    fit = fit_frames(_host(udf.results.peaks), _host(udf.results.heights), params)
    xp = udf.xp
    for name in FIT_RESULTS:
        udf.results[name][...] = xp.asarray(getattr(fit, name))


class LatticeFitUDF(SparseCorrelationUDF):
    """:class:`~libertem_gpu.udf.disks.SparseCorrelationUDF` at the expected disk positions of
    a lattice, plus each frame's lattice fitted to the peaks found (in ``postprocess``, per
    partition, in the workers; :func:`~libertem_gpu.disks.lattice.fit_lattice` with the known
    indices ``hk``).

    Parameters
    ----------
    peaks : array_like, shape (N, 2)
        Expected disk positions ``(y, x)``, for example ``origin + h a + k b``.
    template : array_like
        Correlation template (:func:`~libertem_gpu.disks.templates.disk_template`).
    hk : array_like, shape (N, 2)
        Lattice indices of the expected positions.
    origin, a, b : array_like, shape (2,)
        The lattice the fit starts from.
    search, refine, upsample, min_height
        As in :class:`~libertem_gpu.udf.disks.SparseCorrelationUDF`.
    min_heights : array_like, shape (N,) or scalar, optional
        A peak takes part in the fit only if its height exceeds its position's value here
        (inf leaves a position out); default 0.
    weighted : bool
        Weight peaks by their heights (else equally).
    max_residual, outlier_sigma, n_iter, min_peaks
        As in :func:`~libertem_gpu.disks.lattice.fit_lattice`.

    Results
    -------
    peaks, heights, n_found
        The correlation's (see :class:`~libertem_gpu.udf.disks.SparseCorrelationUDF`).
    origin, a, b : nav, float64 (2,)
        Each frame's fitted lattice ``(y, x)``; NaN where it has none.
    residual_rms : nav, float64
        RMS length of the matched peaks' residuals, pixels.
    n_matched : nav, int32
        Peaks used in the fit; 0 where the frame has no lattice.
    covariance : nav, float64 (6, 6)
        Covariance of ``(origin_y, origin_x, a_y, a_x, b_y, b_x)``.
    """

    label = "LatticeFitUDF"

    def __init__(
        self,
        peaks: Any,
        template: Any,
        hk: Any,
        origin: Any,
        a: Any,
        b: Any,
        search: int = 2,
        refine: str = "com",
        upsample: int = 20,
        min_height: float = 0.0,
        min_heights: Any = None,
        weighted: bool = True,
        max_residual: float | None = None,
        outlier_sigma: float = 5.0,
        n_iter: int = 5,
        min_peaks: int = 4,
    ) -> None:
        super().__init__(peaks, template, search, refine, upsample, min_height)
        fit = check_fit_params(
            len(self.params.peaks),
            hk,
            origin,
            a,
            b,
            min_heights,
            weighted,
            max_residual,
            outlier_sigma,
            n_iter,
            min_peaks,
        )
        self._fit_params = fit
        # every parameter travels with copies and to the workers
        self._kwargs = {**self._kwargs, **fit}
        self.params = UDFParams(dict(self._kwargs))

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """The correlation's buffers and :data:`FIT_RESULTS`."""
        return {**super().get_result_buffers(), **fit_buffers(self)}

    def postprocess(self) -> None:
        """Fit the lattice of every frame of the partition."""
        super().postprocess()
        write_fit(self, self._fit_params)
