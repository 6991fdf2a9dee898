"""libertem_gpu: GPU-first streaming reductions of large multidimensional detector data.

Everything public is importable from here. Names are resolved on first use, so that
``import libertem_gpu`` imports no Numba, CUDA or dask and compiles nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Context": "libertem_gpu.api",
    "UDF": "libertem_gpu.udf.base",
    "UDFMeta": "libertem_gpu.udf.base",
    "BufferResult": "libertem_gpu.udf.buffers",
    "UDFResults": "libertem_gpu.udf.client",
    "TilingScheme": "libertem_gpu.io.tiles",
    "DataSet": "libertem_gpu.io.dataset",
    "SumUDF": "libertem_gpu.udf.sum",
    "SumSigUDF": "libertem_gpu.udf.sumsig",
    "StdDevUDF": "libertem_gpu.udf.stddev",
    "MaxUDF": "libertem_gpu.udf.extrema",
    "MinUDF": "libertem_gpu.udf.extrema",
    "ApplyMasksUDF": "libertem_gpu.udf.masks",
    "PickUDF": "libertem_gpu.udf.pick",
    "AutoUDF": "libertem_gpu.udf.auto",
    "CoMUDF": "libertem_gpu.udf.com",
    "RadialFourierUDF": "libertem_gpu.udf.radial_fourier",
    "CoMParams": "libertem_gpu.udf.com",
    "estimate_scan_rotation": "libertem_gpu.udf.com_fields",
    "integrate_field": "libertem_gpu.udf.com_fields",
    "descan_shifts": "libertem_gpu.udf.mask_shifts",
    "estimate_descan": "libertem_gpu.udf.mask_shifts",
    "SumFFTUDF": "libertem_gpu.udf.fft",
    "ApplyFFTMaskUDF": "libertem_gpu.udf.fft",
    "HoloReconstructUDF": "libertem_gpu.udf.holography",
    "LogsumUDF": "libertem_gpu.udf.logsum",
    "FEMUDF": "libertem_gpu.udf.fem",
    "FEMProfileUDF": "libertem_gpu.udf.fem",
    "RadialProfileUDF": "libertem_gpu.udf.radial_profile",
    "fit_ellipse": "libertem_gpu.udf.ellipse",
    "TemplateMatchUDF": "libertem_gpu.udf.template_match",
    "kinematic_templates": "libertem_gpu.udf.template_bank",
    "zone_axis_orientation": "libertem_gpu.udf.template_bank",
    "match_orientations": "libertem_gpu.udf.template_bank",
    "direction_orientations": "libertem_gpu.udf.template_bank",
    "beam_directions": "libertem_gpu.udf.crystal_symmetry",
    "euler_angles": "libertem_gpu.udf.orientation_map",
    "rotations_from_euler": "libertem_gpu.udf.orientation_map",
    "ipf_colors": "libertem_gpu.udf.orientation_map",
    "ipf_key": "libertem_gpu.udf.orientation_map",
    "misorientation": "libertem_gpu.udf.orientation_map",
    "kernel_average_misorientation": "libertem_gpu.udf.orientation_map",
    "grain_labels": "libertem_gpu.udf.orientation_map",
    "write_ang": "libertem_gpu.export_ang",
    "Phase": "libertem_gpu.export_ang",
    "RingStrainUDF": "libertem_gpu.udf.ring_strain",
    "EllipseFit": "libertem_gpu.udf.ellipse",
    "ParallaxUDF": "libertem_gpu.udf.parallax",
    "SSBUDF": "libertem_gpu.udf.ssb",
    "WeightedSumUDF": "libertem_gpu.udf.weighted_sum",
    "decompose": "libertem_gpu.udf.decomposition",
    "Decomposition": "libertem_gpu.udf.decomposition",
    "cluster_frames": "libertem_gpu.udf.clustering",
    "ptychography": "libertem_gpu.ptycho.reconstruct",
    "Ptychography": "libertem_gpu.ptycho.reconstruct",
    "Clustering": "libertem_gpu.udf.clustering",
    "electron_wavelength": "libertem_gpu.udf.ssb_geometry",
    "AlignedSumUDF": "libertem_gpu.udf.aligned_sum",
    "estimate_parallax": "libertem_gpu.udf.parallax_fit",
    "parallax_optics": "libertem_gpu.udf.parallax_geometry",
    "parallax_shift_matrix": "libertem_gpu.udf.parallax_geometry",
    "ParallaxOptics": "libertem_gpu.udf.parallax_geometry",
    "CrystallinityUDF": "libertem_gpu.udf.crystallinity",
    "CorrectionSet": "libertem_gpu.corrections.corrset",
    "load_results": "libertem_gpu.resultfiles.store",
    "Calibration": "libertem_gpu.io.calibration",
    "FullFrameCorrelationUDF": "libertem_gpu.udf.disks",
    "SparseCorrelationUDF": "libertem_gpu.udf.disks",
    "LatticeFitUDF": "libertem_gpu.disks.fit_udf",
    "find_lattice_strain": "libertem_gpu.disks.helper",
    "masks": "libertem_gpu.masks",
    "config": "libertem_gpu.config",
    "errors": "libertem_gpu.errors",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'libertem_gpu' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name.endswith("." + name) else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
