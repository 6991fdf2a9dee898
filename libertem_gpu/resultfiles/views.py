"""Loaded results as xarray DataArrays or HyperSpy signals (both optional)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import LiberTEMGPUError
from libertem_gpu.io.calibration import AxisCalibration, Calibration

if TYPE_CHECKING:
    from libertem_gpu.resultfiles.store import SavedResults

__all__ = ["axis_calibrations", "to_hyperspy", "to_xarray"]


def _require(name: str, option: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise LiberTEMGPUError(
            f"load_results({option}=True) needs {name}, which is not installed: pip install {name}"
        ) from None


def axis_calibrations(saved: SavedResults, name: str) -> list[AxisCalibration | None]:
    """The calibration of each dimension of array ``name`` (None where there is none): its scan
    dimensions (``scan_y``, ...) from the data set's scan step, its frame dimensions
    (``sig_y``, ...) from the detector pixel size."""
    from libertem_gpu.resultfiles.provenance import nav_dim_names, sig_dim_names

    cal = Calibration.from_dict((saved.metadata.get("dataset") or {}).get("calibration"))
    known = dict(zip(nav_dim_names(len(cal.nav)), cal.nav, strict=True))
    known.update(zip(sig_dim_names(len(cal.sig)), cal.sig, strict=True))
    return [known.get(dim) for dim in saved.dims(name)]


def _attrs(saved: SavedResults, name: str) -> dict[str, Any]:
    meta = saved.metadata
    entry = meta.get("arrays", {}).get(name, {})
    dataset = meta.get("dataset") or {}
    attrs = {
        "analysis": entry.get("analysis", ""),
        "result": entry.get("result", ""),
        "kind": entry.get("kind", ""),
        "libertem_gpu_version": meta.get("version", ""),
        "created": meta.get("created", ""),
        "dataset_path": dataset.get("path") or "",
        "dataset_format": dataset.get("format") or "",
        # The whole document, as a string so that the DataArray can be written to netCDF.
        "provenance": json.dumps(meta),
    }
    return attrs


def to_xarray(saved: SavedResults) -> dict[str, Any]:
    """Each array as an ``xarray.DataArray``: named dimensions, calibrated coordinates (with
    ``units``), provenance in ``attrs``."""
    xr = _require("xarray", "as_xarray")
    out = {}
    for name, data in saved.items():
        dims = saved.dims(name)
        coords = {}
        for dim, size, cal in zip(dims, data.shape, axis_calibrations(saved, name), strict=True):
            if cal is not None:
                values = cal.offset + cal.scale * np.arange(size)
                coords[dim] = xr.Variable(dim, values, attrs={"units": cal.units})
        out[name] = xr.DataArray(
            data, dims=dims, coords=coords, name=name, attrs=_attrs(saved, name)
        )
    return out


def to_hyperspy(saved: SavedResults) -> dict[str, Any]:
    """Each array as a HyperSpy signal: a scan image or a frame is the signal (2-D: ``Signal2D``,
    1-D: ``Signal1D``), further dimensions navigate; axes named and calibrated."""
    hs = _require("hyperspy.api", "as_hyperspy")
    out = {}
    for name, data in saved.items():
        dims = saved.dims(name)
        cals = axis_calibrations(saved, name)
        lead = 0
        while lead < len(dims) and dims[lead].startswith(("scan", "sig", "freq")):
            lead += 1
        lead = lead or data.ndim
        n_sig = min(lead, 2)
        sig_pos = list(range(lead - n_sig, lead))
        # HyperSpy orders data as navigation dims then signal dims: the last two of the leading
        # (scan or frame) dims become the signal, so move them to the end.
        order = [*(i for i in range(data.ndim) if i not in sig_pos), *sig_pos]
        moved = np.transpose(data, order) if data.ndim else data
        if n_sig == 2:
            signal = hs.signals.Signal2D(moved)
        elif n_sig == 1:
            signal = hs.signals.Signal1D(moved)
        else:
            signal = hs.signals.BaseSignal(moved)
        signal.metadata.General.title = name
        signal.original_metadata.add_dictionary({"libertem_gpu": _attrs(saved, name)})
        # axes_manager lists navigation axes then signal axes, each in array order reversed
        # ("x" first); match them to our dims by array position instead.
        for axis_obj in signal.axes_manager._axes:
            pos = order[axis_obj.index_in_array]
            axis_obj.name = dims[pos]
            cal = cals[pos]
            if cal is not None:
                axis_obj.scale = cal.scale
                axis_obj.offset = cal.offset
                axis_obj.units = cal.units
        out[name] = signal
    return out
