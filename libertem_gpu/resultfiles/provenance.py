"""What saved results say about themselves: the analysis and its parameters, the data set, the
library version, the date and the calibration; and the names of each result's dimensions."""

from __future__ import annotations

import datetime
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "array_entry",
    "dataset_provenance",
    "dim_names",
    "make_metadata",
    "nav_dim_names",
    "sig_dim_names",
]

#: Name of the metadata entry (HDF5/Zarr root attribute, NPZ array of a JSON string).
METADATA_KEY = "libertem_gpu_metadata"

#: Version of the layout of :data:`METADATA_KEY`'s document.
SCHEMA = 1


def nav_dim_names(n: int) -> list[str]:
    """Names of ``n`` scan dimensions: ``scan``; ``scan_y, scan_x``; ``scan_z, ...``."""
    if n == 1:
        return ["scan"]
    if n == 2:
        return ["scan_y", "scan_x"]
    if n == 3:
        return ["scan_z", "scan_y", "scan_x"]
    return [f"scan_{i}" for i in range(n)]


def sig_dim_names(n: int, prefix: str = "sig") -> list[str]:
    """Names of ``n`` frame dimensions: ``sig``; ``sig_y, sig_x``; ``sig_0, ...``."""
    if n == 1:
        return [prefix]
    if n == 2:
        return [f"{prefix}_y", f"{prefix}_x"]
    return [f"{prefix}_{i}" for i in range(n)]


def dim_names(
    kind: str,
    shape: Sequence[int],
    nav_ndim: int,
    sig_ndim: int,
    *,
    extra: Sequence[str] | None = None,
    sig_prefix: str = "sig",
) -> list[str]:
    """Names of the dimensions of a result of ``shape``.

    ``nav`` results start with the scan's (``scan_y``, ``scan_x``, ...), ``sig`` results with
    the frame's (``sig_y``, ``sig_x``; ``sig_prefix`` for results on another grid, e.g.
    ``freq`` for spectra); the rest are named by ``extra`` or ``extra_0``, ``extra_1``, ...
    """
    lead: list[str] = []
    if kind == "nav":
        lead = nav_dim_names(nav_ndim)
    elif kind == "sig" and len(shape) >= sig_ndim:
        lead = sig_dim_names(sig_ndim, sig_prefix)
    rest = len(shape) - len(lead)
    names = list(extra or [])[:rest]
    names += [f"extra_{i}" for i in range(len(names), rest)]
    return lead + names


def _jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars/arrays and tuples made JSON-ready."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array {value.shape} {value.dtype}>"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def dataset_provenance(
    dataset: Any, *, roi: np.ndarray | None = None, roi_source: str | None = None
) -> dict[str, Any]:
    """The data set's part of the metadata: path, format, shapes, dtype, sync offset, roi and
    calibration."""
    meta = dataset.meta
    path = meta.get("path") or (meta.get("files") or [None])[0]
    if isinstance(path, str):
        path = os.path.abspath(path)
    entry: dict[str, Any] = {
        "path": path,
        "format": dataset.format_name,
        "nav_shape": list(dataset.nav_shape),
        "sig_shape": list(dataset.sig_shape),
        "dtype": str(dataset.storage_dtype),
        "image_count": int(dataset.image_count),
        "sync_offset": int(dataset.sync_offset),
        "roi": None,
        "calibration": dataset.calibration.to_dict(),
    }
    if roi is not None:
        flat = np.asarray(roi, dtype=bool).reshape(-1)
        entry["roi"] = {"source": roi_source, "positions": int(flat.sum()), "of": flat.size}
    return entry


def array_entry(
    analysis: str, result: str, kind: str, dims: Sequence[str], **more: Any
) -> dict[str, Any]:
    """The metadata of one saved array."""
    return {"analysis": analysis, "result": result, "kind": kind, "dims": list(dims), **more}


def make_metadata(
    *,
    analyses: list[dict[str, Any]],
    dataset: dict[str, Any] | None,
    arrays: dict[str, dict[str, Any]],
    corrections: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metadata document saved with results.

    Parameters
    ----------
    analyses : list of dict
        One per analysis: ``{"name", "udf", "parameters"}``.
    dataset : dict, optional
        From :func:`dataset_provenance`.
    arrays : dict
        Per saved array, from :func:`array_entry`.
    corrections : dict, optional
        What corrections were applied (file names of dark, gain, excluded pixels).
    extra : dict, optional
        Anything else (e.g. the command line).
    """
    from libertem_gpu import __version__

    doc = {
        "schema": SCHEMA,
        "library": "libertem_gpu",
        "version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "analyses": analyses,
        "dataset": dataset,
        "corrections": corrections,
        "arrays": arrays,
        **(extra or {}),
    }
    return _jsonable(doc)


def dumps(metadata: dict[str, Any]) -> str:
    """The metadata as a JSON string."""
    return json.dumps(metadata, sort_keys=False)
