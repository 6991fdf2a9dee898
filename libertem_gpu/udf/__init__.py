"""The UDF model and the built-in analyses."""

from __future__ import annotations

import importlib
from typing import Any

from libertem_gpu.udf.base import UDF, UDFMeta
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace, BufferResult

# Built-in analyses importable from here too, resolved on first use (no kernels at import).
_ANALYSES = {
    "LogsumUDF": "libertem_gpu.udf.logsum",
    "FEMUDF": "libertem_gpu.udf.fem",
    "FEMProfileUDF": "libertem_gpu.udf.fem",
    "RadialProfileUDF": "libertem_gpu.udf.radial_profile",
    "TemplateMatchUDF": "libertem_gpu.udf.template_match",
    "RingStrainUDF": "libertem_gpu.udf.ring_strain",
    "CrystallinityUDF": "libertem_gpu.udf.crystallinity",
    "FullFrameCorrelationUDF": "libertem_gpu.udf.disks",
    "SparseCorrelationUDF": "libertem_gpu.udf.disks",
    "LatticeFitUDF": "libertem_gpu.disks.fit_udf",
}

__all__ = ["UDF", "BufferDecl", "BufferNamespace", "BufferResult", "UDFMeta", *_ANALYSES]


def __getattr__(name: str) -> Any:
    module = _ANALYSES.get(name)
    if module is None:
        raise AttributeError(f"module 'libertem_gpu.udf' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
