"""Benchmark case for :mod:`run_analyses`: the radial Fourier analysis, ours against LiberTEM
0.16's ``create_radial_fourier_analysis`` with the same parameters (4 radial bins, orders 0 to
8, around the centre of 256 x 256 uint16 frames; LiberTEM's default choice of dense or sparse
masks, which both sides share), compared as the complex coefficients."""

from __future__ import annotations

from typing import Any

import numpy as np
from run_analyses import AnalysisCase, close

PARAMS = dict(cx=128, cy=128, ri=10, ro=90, n_bins=4, max_order=8)


def _coefficients(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    analysis = ctx.create_radial_fourier_analysis(dataset=ds, **PARAMS)
    res = ctx.run(analysis)
    return {"complex": np.asarray(res.raw_results)}


def radial_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    from libertem_gpu.udf.radial_fourier import radial_fourier_masks

    masks = radial_fourier_masks(frames.shape[1:], **PARAMS).reshape(-1, frames[0].size)
    coeffs = frames.reshape(len(frames), -1) @ masks.astype(np.complex128).T
    return {"complex": np.abs(coeffs)}


def _ours_for_reference(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import RadialFourierUDF

    res = ctx.run_udf(dataset=ds, udf=RadialFourierUDF(**PARAMS))
    return {"complex": np.abs(np.asarray(res["complex"].data))}


def _compare(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    close(rtol=1e-4)({"abs": np.abs(ours["complex"])}, {"abs": np.abs(theirs["complex"])})


CASES = [
    AnalysisCase(
        "radial_fourier",
        _coefficients,
        _coefficients,
        _compare,
    ),
    AnalysisCase(
        "radial_fourier_udf",
        _ours_for_reference,
        None,
        close(rtol=1e-4),
        reference=radial_reference,
    ),
]
