"""LiberTEM's analyses as thin wrappers over the built-in UDFs.

An analysis holds a data set and parameters, says which UDF to run (:meth:`Analysis.get_udf`)
and on which positions (:meth:`Analysis.get_roi`), and turns the UDF's results into named images
(:meth:`Analysis.get_udf_results`). ``Context.create_*_analysis`` builds them and
``Context.run`` runs them; the classes, parameter names, defaults and result keys are LiberTEM
0.16's.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

from libertem_gpu.analysis.results import (
    AnalysisResult,
    AnalysisResultSet,
    complex_results,
    rgb_from_2dvector,
    visualize_simple,
)
from libertem_gpu.errors import InvalidParameterError

__all__ = [
    "Analysis",
    "COMAnalysis",
    "DiskMaskAnalysis",
    "MasksAnalysis",
    "PickFrameAnalysis",
    "PointMaskAnalysis",
    "RingMaskAnalysis",
    "SDAnalysis",
    "SumAnalysis",
    "roi_from_parameters",
]


def roi_from_parameters(parameters: dict[str, Any], nav_shape: tuple[int, ...]) -> Any:
    """The roi described by ``parameters["roi"]`` (LiberTEM's web-GUI form), or None.

    ``{"shape": "disk", "cx", "cy", "r"}`` or ``{"shape": "rect", "x", "y", "width", "height"}``
    over a 2-D scan.
    """
    from libertem_gpu import masks

    spec = parameters.get("roi")
    if not spec or "shape" not in spec:
        return None
    ny, nx = tuple(nav_shape)
    if spec["shape"] == "disk":
        return masks.circular(spec["cx"], spec["cy"], nx, ny, spec["r"])
    if spec["shape"] == "rect":
        return masks.rectangular(spec["x"], spec["y"], spec["width"], spec["height"], nx, ny)
    raise InvalidParameterError(f"unknown roi shape {spec['shape']!r}; expected 'disk' or 'rect'")


class Analysis:
    """Base class: a data set, parameters, a UDF to run and the images made from its results.

    Parameters
    ----------
    dataset : DataSet
        The data set to analyse.
    parameters : dict
        The analysis' parameters; :meth:`get_parameters` fills in defaults.
    """

    TYPE = "UDF"

    def __init__(self, dataset: Any, parameters: dict[str, Any]) -> None:
        self.dataset = dataset
        self.parameters = self.get_parameters(dict(parameters))
        self.parameters.update(parameters)

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        """The parameters with defaults filled in (override to add defaults)."""
        return parameters

    def get_udf(self) -> Any:
        """The UDF that computes this analysis."""
        raise NotImplementedError

    def get_roi(self) -> Any:
        """The positions to process when ``ctx.run`` is given no roi (None: all)."""
        return roi_from_parameters(self.parameters, tuple(self.dataset.shape.nav))

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        """The named results made from the UDF's results.

        Parameters
        ----------
        udf_results : dict
            The UDF's results by name.
        roi : numpy.ndarray or None
            The positions that were processed.
        damage : bool or numpy.ndarray
            Which positions hold values (True: all).
        """
        raise NotImplementedError

    def need_rerun(self, old_params: dict[str, Any], new_params: dict[str, Any]) -> bool:
        """Whether new parameters need another pass over the data."""
        return True


def _sig2(dataset: Any) -> tuple[int, int]:
    sig = tuple(dataset.shape.sig)
    if len(sig) != 2:
        raise InvalidParameterError(
            f"incompatible dataset: need two signal dimensions, got sig_shape {sig}"
        )
    return sig[0], sig[1]


class BaseMasksAnalysis(Analysis):
    """An analysis computed by :class:`~libertem_gpu.ApplyMasksUDF`: subclasses give
    :meth:`get_mask_factories`."""

    def get_mask_factories(self) -> Any:
        """The mask factories handed to the UDF."""
        raise NotImplementedError

    def get_udf(self) -> Any:
        from libertem_gpu import ApplyMasksUDF

        return ApplyMasksUDF(
            mask_factories=self.get_mask_factories(),
            use_sparse=self.parameters.get("use_sparse"),
            mask_count=self.parameters.get("mask_count"),
            mask_dtype=self.parameters.get("mask_dtype"),
            preferred_dtype=self.parameters.get("dtype"),
        )


class MasksAnalysis(BaseMasksAnalysis):
    """Any number of masks: results ``mask_0``, ``mask_1``, ... (scan-shaped); for complex data
    or masks also ``mask_<i>_real``, ``_imag``, ``_angle``, ``_complex``, with ``mask_<i>`` the
    magnitude."""

    def get_mask_factories(self) -> Any:
        return self.parameters["factories"]

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        data = np.asarray(udf_results["intensity"].data)
        results: list[AnalysisResult] = []
        for i in range(data.shape[-1]):
            values = data[..., i]
            if values.dtype.kind == "c":
                results.extend(
                    complex_results(
                        values,
                        f"mask_{i}",
                        f"mask {i}",
                        f"integrated intensity for mask {i}",
                        damage,
                    )
                )
            else:
                results.append(
                    AnalysisResult(
                        raw_data=values,
                        visualized=partial(visualize_simple, values, damage=damage),
                        key=f"mask_{i}",
                        title=f"mask {i}",
                        desc=f"integrated intensity for mask {i}",
                    )
                )
        return AnalysisResultSet(results, raw_results=udf_results)


class SingleMaskAnalysis(BaseMasksAnalysis):
    """One mask: results ``intensity`` (linear image) and ``intensity_log``."""

    description = "intensity"

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        data = np.asarray(udf_results["intensity"].data)[..., 0]
        return intensity_results(data, udf_results, self.description, damage, default_lin=True)


def _float32(mask: np.ndarray) -> np.ndarray:
    return np.asarray(mask, dtype=np.float32)


def _disk_mask(cx: float, cy: float, nx: int, ny: int, r: float) -> np.ndarray:
    from libertem_gpu import masks

    return _float32(masks.circular(centerX=cx, centerY=cy, imageSizeX=nx, imageSizeY=ny, radius=r))


def _ring_mask(cx: float, cy: float, nx: int, ny: int, ro: float, ri: float) -> np.ndarray:
    from libertem_gpu import masks

    ring = masks.ring(
        centerX=cx, centerY=cy, imageSizeX=nx, imageSizeY=ny, radius=ro, radius_inner=ri
    )
    return _float32(np.asarray(ring))


def _point_mask(cx: float, cy: float, nx: int, ny: int) -> np.ndarray:
    mask = np.zeros((ny, nx), dtype=np.float32)
    mask[int(cy), int(cx)] = 1
    return mask


class DiskMaskAnalysis(SingleMaskAnalysis):
    """Integrates each frame over a disk: ``cx``, ``cy`` (default: frame centre), ``r``
    (default: 0.3 of half the smaller frame side)."""

    description = "intensity of the integration over the selected disk"

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        ny, nx = _sig2(self.dataset)
        return {
            "cx": parameters.get("cx", nx / 2),
            "cy": parameters.get("cy", ny / 2),
            "r": parameters.get("r", min(ny, nx) / 2 * 0.3),
            "use_sparse": parameters.get("use_sparse", False),
            "mask_count": 1,
            "mask_dtype": np.float32,
        }

    def get_mask_factories(self) -> Any:
        ny, nx = _sig2(self.dataset)
        p = self.parameters
        return [partial(_disk_mask, p["cx"], p["cy"], nx, ny, p["r"])]


class RingMaskAnalysis(SingleMaskAnalysis):
    """Integrates each frame over a ring: ``cx``, ``cy`` (default: frame centre), ``ro``
    (default: half the smaller frame side), ``ri`` (default: ``0.8 * ro``)."""

    description = "intensity of the integration over the selected ring"

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        ny, nx = _sig2(self.dataset)
        ro = parameters.get("ro", min(ny, nx) / 2)
        return {
            "cx": parameters.get("cx", nx / 2),
            "cy": parameters.get("cy", ny / 2),
            "ro": ro,
            "ri": parameters.get("ri", ro * 0.8),
            "use_sparse": parameters.get("use_sparse", False),
            "mask_count": 1,
            "mask_dtype": np.float32,
        }

    def get_mask_factories(self) -> Any:
        ny, nx = _sig2(self.dataset)
        p = self.parameters
        return [partial(_ring_mask, p["cx"], p["cy"], nx, ny, p["ro"], p["ri"])]


class PointMaskAnalysis(SingleMaskAnalysis):
    """The value of one pixel of each frame: ``cx``, ``cy`` (default: frame centre)."""

    description = "intensity of the selected pixel"

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        ny, nx = _sig2(self.dataset)
        return {
            "cx": parameters.get("cx", nx / 2),
            "cy": parameters.get("cy", ny / 2),
            "mask_count": 1,
            "mask_dtype": np.float32,
        }

    def get_mask_factories(self) -> Any:
        ny, nx = _sig2(self.dataset)
        cx, cy = self.parameters["cx"], self.parameters["cy"]
        if not (0 <= int(cy) < ny and 0 <= int(cx) < nx):
            raise InvalidParameterError(f"point (y={cy}, x={cx}) lies outside the frame {(ny, nx)}")
        return [partial(_point_mask, cx, cy, nx, ny)]


def intensity_results(
    data: np.ndarray, udf_results: Any, desc: str, damage: Any, default_lin: bool
) -> AnalysisResultSet:
    """The two images of one intensity: ``intensity`` and ``intensity_log`` (linear first, as
    LiberTEM's single-mask analyses) or, with ``default_lin=False``, ``intensity`` log-scaled
    and ``intensity_lin`` (as its sum and pick); complex data get the complex set."""
    if data.dtype.kind == "c":
        return AnalysisResultSet(
            complex_results(data, "intensity", "intensity", desc, damage, default_lin),
            raw_results=udf_results,
        )
    lin = AnalysisResult(
        raw_data=data,
        visualized=partial(visualize_simple, data, damage=damage),
        key="intensity" if default_lin else "intensity_lin",
        title="intensity [lin]",
        desc=f"{desc} lin-scaled",
    )
    log = AnalysisResult(
        raw_data=data,
        visualized=partial(visualize_simple, data, logarithmic=True, damage=damage),
        key="intensity_log" if default_lin else "intensity",
        title="intensity [log]",
        desc=f"{desc} log-scaled",
    )
    return AnalysisResultSet([lin, log] if default_lin else [log, lin], raw_results=udf_results)


class SumAnalysis(Analysis):
    """Sum of all (selected) frames: ``intensity`` (log-scaled image) and ``intensity_lin``;
    float32 for integer data, else the data's type."""

    def get_udf(self) -> Any:
        from libertem_gpu import SumUDF

        dtype = np.dtype(self.dataset.dtype)
        return SumUDF(dtype=dtype if dtype.kind in "cf" else np.float32)

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        data = np.asarray(udf_results["intensity"].data)
        return intensity_results(data, udf_results, "sum of frames", True, default_lin=False)


class SDAnalysis(Analysis):
    """Per-pixel standard deviation over the (selected) frames: ``intensity`` (log-scaled
    image) and ``intensity_lin``."""

    def get_udf(self) -> Any:
        from libertem_gpu import StdDevUDF

        return StdDevUDF()

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        data = np.asarray(udf_results["std"].data)
        return intensity_results(
            data, udf_results, "standard deviation of frames", True, default_lin=False
        )


class PickFrameAnalysis(Analysis):
    """One whole frame, at ``x`` (1-D scan), ``x, y`` (2-D) or ``x, y, z`` (3-D): results
    ``intensity`` (log-scaled image) and ``intensity_lin``."""

    def get_origin(self) -> tuple[int, ...]:
        """The frame's scan position, slowest axis first."""
        dims = len(self.dataset.shape.nav)
        if dims not in (1, 2, 3):
            raise InvalidParameterError(f"can pick from 1-D to 3-D scans, this one has {dims}")
        zyx = tuple(self.parameters.get(k) for k in ("z", "y", "x"))
        keep, drop = zyx[3 - dims :], zyx[: 3 - dims]
        if any(v is None for v in keep) or any(v is not None for v in drop):
            names = ("z", "y", "x")[3 - dims :]
            raise InvalidParameterError(
                f"a {dims}-D scan needs exactly {', '.join(names)}; got z={zyx[0]}, "
                f"y={zyx[1]}, x={zyx[2]}"
            )
        origin = tuple(int(v) for v in keep)  # type: ignore[arg-type]
        nav = tuple(self.dataset.shape.nav)
        if any(not 0 <= o < n for o, n in zip(origin, nav, strict=True)):
            raise InvalidParameterError(f"position {origin} lies outside the scan {nav}")
        return origin

    def get_udf(self) -> Any:
        from libertem_gpu import PickUDF

        return PickUDF()

    def get_roi(self) -> np.ndarray:
        roi = np.zeros(tuple(self.dataset.shape.nav), dtype=bool)
        roi[self.get_origin()] = True
        return roi

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        data = np.asarray(udf_results["intensity"].data)[0]
        coords = " ".join(
            f"{k}={self.parameters[k]}" for k in ("x", "y", "z") if k in self.parameters
        )
        return intensity_results(
            data, udf_results, f"the frame at {coords}", True, default_lin=False
        )


class COMAnalysis(Analysis):
    """Centre of mass over a 2-D scan, by :class:`~libertem_gpu.CoMUDF`.

    Parameters (in ``parameters``): ``cx``, ``cy`` (default: frame centre, ``size / 2``),
    ``r`` (default: the whole frame), ``ri`` (annular CoM where given and non-zero),
    ``scan_rotation`` (degrees), ``flip_y``. Results: ``field`` (raw data the tuple
    ``(x, y)``), ``magnitude``, ``divergence`` and ``curl`` (where every scan axis is longer
    than 1), ``x``, ``y``.
    """

    def get_parameters(self, parameters: dict[str, Any]) -> dict[str, Any]:
        ny, nx = _sig2(self.dataset)
        return {
            "cx": parameters.get("cx", nx / 2),
            "cy": parameters.get("cy", ny / 2),
            "r": parameters.get("r", float("inf")),
            "ri": parameters.get("ri", 0.0),
            "scan_rotation": parameters.get("scan_rotation", 0.0),
            "flip_y": parameters.get("flip_y", False),
        }

    def get_udf(self) -> Any:
        from libertem_gpu import CoMUDF

        p = self.parameters
        return CoMUDF.with_params(
            cy=p["cy"],
            cx=p["cx"],
            r=p["r"],
            ri=p["ri"] or 0.0,
            scan_rotation=p["scan_rotation"],
            flip_y=p["flip_y"],
        )

    def get_udf_results(self, udf_results: dict[str, Any], roi: Any, damage: Any) -> Any:
        y = np.asarray(udf_results["field_y"].data)
        x = np.asarray(udf_results["field_x"].data)
        valid = np.asarray(damage, dtype=bool) & np.isfinite(x) & np.isfinite(y)
        magnitude = np.asarray(udf_results["magnitude"].data)
        vmax = float(np.sqrt(np.max(x[valid] ** 2 + y[valid] ** 2))) if valid.any() else 1.0

        def image(values: np.ndarray) -> Any:
            return partial(visualize_simple, values, damage=valid)

        results = [
            AnalysisResult(
                raw_data=(x, y),
                visualized=partial(rgb_from_2dvector, x, y, vmax),
                key="field",
                title="field",
                desc="colour wheel of the vector field",
                include_in_download=False,
            ),
            AnalysisResult(
                magnitude, image(magnitude), "magnitude", "magnitude of the field", "magnitude"
            ),
            AnalysisResult(x, image(x), "x", "x component of the center", "x"),
            AnalysisResult(y, image(y), "y", "y component of the center", "y"),
        ]
        if "divergence" in udf_results and all(n > 1 for n in y.shape):
            div = np.asarray(udf_results["divergence"].data)
            curl = np.asarray(udf_results["curl"].data)
            # LiberTEM's order: field, magnitude, divergence, curl, x, y
            results[2:2] = [
                AnalysisResult(
                    div, image(div), "divergence", "divergence of the field", "divergence"
                ),
                AnalysisResult(curl, image(curl), "curl", "curl of the 2D field", "curl"),
            ]
        return AnalysisResultSet(results, raw_results=udf_results)


def _check_nav_dims(dataset: Any, allowed: range, what: str) -> None:
    dims = len(dataset.shape.nav)
    if dims not in allowed:
        raise InvalidParameterError(
            f"incompatible dataset: {what} needs {allowed.start} to {allowed.stop - 1} "
            f"navigation dimensions, the data set has {dims}"
        )


def check_com_dataset(dataset: Any) -> None:
    """Raise unless ``dataset`` has a 2-D scan of 2-D frames (what CoM analysis needs)."""
    _check_nav_dims(dataset, range(2, 3), "CoM analysis")
    _sig2(dataset)


def check_point_dataset(dataset: Any) -> None:
    """Raise unless ``dataset`` has at most two navigation dimensions."""
    _check_nav_dims(dataset, range(1, 3), "point analysis")
