"""LiberTEM 0.16's Fourier-space analyses, ``SumfftAnalysis`` and ``ApplyFFTMask``.

LiberTEM's ``Context`` has no ``create_*_analysis`` method for them: build them as LiberTEM
does, ``ctx.run(SumfftAnalysis(dataset=ds, parameters={...}))``. Parameters and result keys
are LiberTEM's.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from libertem_gpu.analysis.analyses import Analysis, SumAnalysis, _sig2
from libertem_gpu.analysis.results import AnalysisResult, AnalysisResultSet, visualize_simple
from libertem_gpu.errors import InvalidParameterError

__all__ = ["ApplyFFTMask", "SumfftAnalysis"]


def _real_center(parameters: dict[str, Any]) -> tuple[Any, Any] | None:
    cy, cx = parameters.get("real_centery"), parameters.get("real_centerx")
    return None if cy is None or cx is None else (cy, cx)


def _spectrum_image(total: np.ndarray, parameters: dict[str, Any]) -> np.ndarray:
    """``log(|fftshift(fft2(total * blank))| + 1)``, what LiberTEM shows."""
    from libertem_gpu.udf.fft import real_space_mask

    blank = real_space_mask(total.shape, _real_center(parameters), parameters.get("real_rad"))
    values = total if blank is None else total * blank
    return np.log(np.abs(np.fft.fftshift(np.fft.fft2(values))) + 1)


class SumfftAnalysis(SumAnalysis):
    """The sum of all frames, shown as its Fourier transform (LiberTEM's ``SumfftAnalysis``).

    Parameters (all optional): ``real_centerx``, ``real_centery``, ``real_rad``, a disk blanked
    in the sum before the transform. Result ``intensity``: the raw data is the sum of frames
    (as in LiberTEM), the image ``log(|fftshift(fft2(sum * blank))| + 1)``. For the sum of the
    frames' power spectra use :class:`~libertem_gpu.SumFFTUDF`.
    """

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        stored = np.dtype(self.dataset.dtype)
        # LiberTEM's SumUDF sums in float32 (wider for wider float data)
        dtype = np.result_type(np.float32, stored) if stored.kind in "fc" else np.float32
        total = np.array(udf_results["intensity"].data).astype(dtype, copy=False)
        image = _spectrum_image(total, self.parameters)
        return AnalysisResultSet(
            [
                AnalysisResult(
                    raw_data=total,
                    visualized=partial(visualize_simple, image),
                    key="intensity",
                    title="intensity",
                    desc="fft of sum of all frames",
                )
            ],
            raw_results=udf_results,
        )


class ApplyFFTMask(Analysis):
    """Each frame's spectrum amplitude summed over a ring (LiberTEM's ``ApplyFFTMask``, its
    ``CrystallinityUDF``), run by :class:`~libertem_gpu.ApplyFFTMaskUDF`.

    Parameters: ``rad_in``, ``rad_out`` (the ring, frequency pixels), ``real_centerx``,
    ``real_centery``, ``real_rad`` (a disk blanked in each frame first; None for none). Result
    ``intensity``: scan-shaped float32.
    """

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        missing = [k for k in ("rad_in", "rad_out") if parameters.get(k) is None]
        if missing:
            raise InvalidParameterError(
                f"ApplyFFTMask needs the ring's radii: {', '.join(missing)} missing"
            )
        _sig2(self.dataset)
        return {"real_centerx": None, "real_centery": None, "real_rad": None, **parameters}

    def get_udf(self) -> Any:
        from libertem_gpu import ApplyFFTMaskUDF

        p = self.parameters
        return ApplyFFTMaskUDF(
            rad_in=p["rad_in"],
            rad_out=p["rad_out"],
            real_center=_real_center(p),
            real_rad=p["real_rad"],
        )

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        data = np.asarray(udf_results["intensity"].data)
        return AnalysisResultSet(
            [
                AnalysisResult(
                    raw_data=data,
                    visualized=partial(visualize_simple, data, damage=damage),
                    key="intensity",
                    title="intensity",
                    desc="result from integration over mask in Fourier space",
                )
            ],
            raw_results=udf_results,
        )
