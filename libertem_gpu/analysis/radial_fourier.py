"""LiberTEM's radial Fourier analysis over :class:`~libertem_gpu.RadialFourierUDF`."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from libertem_gpu.analysis.analyses import Analysis
from libertem_gpu.analysis.results import (
    AnalysisResult,
    AnalysisResultSet,
    rgb_from_2dvector,
    visualize_simple,
)

__all__ = ["RadialFourierAnalysis", "RadialFourierResultSet", "dominant_orders"]


class RadialFourierResultSet(AnalysisResultSet):
    """What ``ctx.run`` returns for a :class:`RadialFourierAnalysis`.

    For each bin ``b`` and order ``n`` (scan-shaped): ``dominant_<b>`` (the strongest order
    above 0, or 0 where no order reaches a fifth of the bin's strongest), ``absolute_<b>_<n>``,
    ``phase_<b>_<n>`` and ``complex_<b>_<n>`` (for ``n >= 1`` divided by
    ``max(1, |complex_<b>_0|)``). ``raw_results`` is the complex array
    ``(n_bins, max_order + 1, *nav_shape)``, as in LiberTEM.
    """


def dominant_orders(absolute: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The dominant order of each bin and position.

    Parameters
    ----------
    absolute : numpy.ndarray
        ``|coefficients|``, shape ``(n_bins, orders, *nav)``.
    valid : numpy.ndarray of bool
        The positions that hold values, shape ``nav``.

    Returns
    -------
    numpy.ndarray
        int64 ``(n_bins, *nav)``: the order ``>= 1`` of the largest magnitude, or 0 where every
        order ``>= 1`` stays under 0.2 of the bin's largest over the valid positions (and at
        positions without values).
    """
    upper = np.where(valid, absolute[:, 1:], 0.0)
    n_bins = absolute.shape[0]
    if upper.shape[1] == 0:
        return np.zeros((n_bins, *absolute.shape[2:]), dtype=np.int64)
    threshold = upper.reshape(n_bins, -1).max(axis=1) * 0.2
    below = np.all(upper < threshold.reshape(-1, 1, *(1,) * (upper.ndim - 2)), axis=1)
    dominant = np.argmax(upper, axis=1).astype(np.int64) + 1
    dominant[below | ~valid] = 0
    return dominant


def _largest(values: np.ndarray, valid: np.ndarray) -> float:
    """The largest of ``values[..., valid]`` (1 where there is none), for colour scales."""
    chosen = values[..., valid]
    return float(chosen.max()) if chosen.size else 1.0


class RadialFourierAnalysis(Analysis):
    """Angular Fourier coefficients of radial bins; parameters ``cx, cy, ri, ro, n_bins,
    max_order, use_sparse`` (LiberTEM's defaults); results: see
    :class:`RadialFourierResultSet`."""

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        from libertem_gpu.udf.radial_fourier import radial_fourier_parameters

        return radial_fourier_parameters(tuple(self.dataset.shape.sig), **parameters)

    def get_udf(self) -> Any:
        from libertem_gpu import RadialFourierUDF

        p = self.parameters
        return RadialFourierUDF(
            cx=p["cx"],
            cy=p["cy"],
            ri=p["ri"],
            ro=p["ro"],
            n_bins=p["n_bins"],
            max_order=p["max_order"],
            use_sparse=p["use_sparse"],
        )

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        values = np.asarray(udf_results["complex"].data)  # (*nav, n_bins, orders)
        nav = values.shape[:-2]
        coeffs = np.moveaxis(values, (-2, -1), (0, 1))  # (n_bins, orders, *nav)
        n_bins, orders = coeffs.shape[:2]
        absolute = np.abs(coeffs)
        angle = np.angle(coeffs)
        valid = np.broadcast_to(np.asarray(damage, dtype=bool), nav) & np.all(
            np.isfinite(absolute), axis=(0, 1)
        )
        normal = np.maximum(1, absolute[:, 0])
        dominant = dominant_orders(absolute, valid)
        with np.errstate(invalid="ignore"):
            scaled = absolute[:, 1:] / normal[:, None]
        vmax = _largest(scaled, valid)

        def result(raw: Any, vis: Any, key: str, title: str, desc: str) -> AnalysisResult:
            return AnalysisResult(raw_data=raw, visualized=vis, key=key, title=title, desc=desc)

        def results() -> list[AnalysisResult]:
            out = []
            for b in range(n_bins):
                out.append(
                    result(
                        dominant[b],
                        partial(visualize_simple, dominant[b]),
                        f"dominant_{b}",
                        f"dominant order of bin {b}",
                        "Dominant Fourier component",
                    )
                )
                for n in range(orders):
                    shown = absolute[b, 0] if n == 0 else scaled[b, n - 1]
                    out.append(
                        result(
                            absolute[b, n],
                            partial(visualize_simple, shown, damage=valid),
                            f"absolute_{b}_{n}",
                            f"absolute of bin {b} order {n}",
                            "Absolute value of Fourier component",
                        )
                    )
            for b in range(n_bins):
                for n in range(orders):
                    out.append(
                        result(
                            angle[b, n],
                            partial(visualize_simple, angle[b, n], damage=valid),
                            f"phase_{b}_{n}",
                            f"phase of bin {b} order {n}",
                            "Phase of Fourier component",
                        )
                    )
            for b in range(n_bins):
                for n in range(orders):
                    with np.errstate(invalid="ignore"):  # NaN outside the roi
                        data = coeffs[b, n] if n == 0 else coeffs[b, n] / normal[b]
                    top = vmax if n else _largest(np.abs(data), valid)
                    out.append(
                        result(
                            data,
                            partial(rgb_from_2dvector, data.real, data.imag, top),
                            f"complex_{b}_{n}",
                            f"bin {b} order {n}",
                            "Fourier component",
                        )
                    )
            return out

        return RadialFourierResultSet(results, raw_results=coeffs)
