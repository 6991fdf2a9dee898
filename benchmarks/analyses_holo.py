"""Benchmark cases (see :mod:`run_analyses`) of the Fourier-space analyses and holography.

- ``apply_fft_mask``: LiberTEM 0.16's ``ApplyFFTMask`` analysis (its ``CrystallinityUDF``), a
  ring in Fourier space, both run as ``ctx.run(ApplyFFTMask(dataset=ds, parameters=...))``.
- ``sumfft``: LiberTEM 0.16's ``SumfftAnalysis`` (the sum of frames, shown transformed).
- ``sumfft_power``: our :class:`~libertem_gpu.SumFFTUDF` (the sum of the frames' power
  spectra), which LiberTEM lacks; against the LiberTEM UDF a user would write for it (one
  ``numpy.fft.fft2`` per frame).
- ``holo``: :class:`~libertem_gpu.HoloReconstructUDF`; LiberTEM 0.16 has no holography (it
  moved to LiberTEM-holo), so frames/s and the floor only.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
from run_analyses import AnalysisCase, close

RING = dict(rad_in=12, rad_out=40, real_centerx=None, real_centery=None, real_rad=None)
HOLO = dict(out_shape=(64, 64), sb_position=(64, 48), sb_size=24)


def _raw(result_set: Any) -> dict[str, np.ndarray]:
    return {r.key: np.asarray(r.raw_data) for r in result_set}


# --- ApplyFFTMask -----------------------------------------------------------------------------


def _ring_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu.analysis.fft import ApplyFFTMask

    return _raw(ctx.run(ApplyFFTMask(dataset=ds, parameters=RING)))


def _ring_libertem(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem.analysis import ApplyFFTMask

    return _raw(ctx.run(ApplyFFTMask(dataset=ds, parameters=RING)))


def _ring_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    rows, cols = frames.shape[1:]
    y, x = np.mgrid[:rows, :cols]
    d2 = (y - rows / 2) ** 2 + (x - cols / 2) ** 2
    ring = (d2 <= RING["rad_out"] ** 2) & ~(d2 <= RING["rad_in"] ** 2)
    half = np.fft.fftshift(ring.astype(float))[:, : cols // 2 + 1]
    return {"intensity": np.array([np.sum(np.abs(np.fft.rfft2(f)) * half) for f in frames])}


# --- SumfftAnalysis ---------------------------------------------------------------------------


def _sumfft_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu.analysis.fft import SumfftAnalysis

    return _raw(ctx.run(SumfftAnalysis(dataset=ds, parameters={})))


def _sumfft_libertem(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem.analysis import SumfftAnalysis

    return _raw(ctx.run(SumfftAnalysis(dataset=ds, parameters={})))


# --- SumFFTUDF --------------------------------------------------------------------------------


def _power_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import SumFFTUDF

    return {"intensity": np.asarray(ctx.run_udf(dataset=ds, udf=SumFFTUDF())["intensity"].data)}


@cache
def _lt_power_udf() -> type:
    """The LiberTEM UDF a user would write for the sum of power spectra."""
    from libertem.udf import UDF

    class PowerSpectrumSumUDF(UDF):
        def get_result_buffers(self) -> dict[str, Any]:
            return {"intensity": self.buffer(kind="sig", dtype=np.float64)}

        def process_frame(self, frame: np.ndarray) -> None:
            self.results.intensity[:] += np.abs(np.fft.fft2(frame)) ** 2

        def merge(self, dest: Any, src: Any) -> None:
            dest.intensity[:] += src.intensity

        def get_results(self) -> dict[str, Any]:
            return {"intensity": np.fft.fftshift(self.results.intensity)}

    return PowerSpectrumSumUDF


def _power_libertem(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    res = ctx.run_udf(dataset=ds, udf=_lt_power_udf()())
    return {"intensity": np.asarray(res["intensity"])}


def _power_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    total = sum(np.abs(np.fft.fft2(f)) ** 2 for f in frames)
    return {"intensity": np.fft.fftshift(total)}


# --- HoloReconstructUDF -----------------------------------------------------------------------


def _holo_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import HoloReconstructUDF

    return {
        "wave": np.asarray(ctx.run_udf(dataset=ds, udf=HoloReconstructUDF(**HOLO))["wave"].data)
    }


def _holo_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    from libertem_gpu.kernels.fourier import reference_holo
    from libertem_gpu.udf.holography import holo_aperture

    aperture = holo_aperture(HOLO["out_shape"], HOLO["sb_size"])
    return {"wave": reference_holo(frames, HOLO["out_shape"], HOLO["sb_position"], aperture)}


CASES = [
    AnalysisCase(
        "apply_fft_mask", _ring_ours, _ring_libertem, close(1e-4), reference=_ring_reference
    ),
    AnalysisCase("sumfft", _sumfft_ours, _sumfft_libertem, close(1e-5)),
    AnalysisCase(
        "sumfft_power", _power_ours, _power_libertem, close(1e-5), reference=_power_reference
    ),
    AnalysisCase("holo", _holo_ours, None, close(1e-6), reference=_holo_reference),
]
