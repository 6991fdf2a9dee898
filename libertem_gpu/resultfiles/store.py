"""Saving named result arrays with their metadata as HDF5, NPZ or Zarr, and loading them back.

Layout (the same in each format): one array per result at the top level, named
``ANALYSIS_RESULT`` (e.g. ``sum_intensity``); the metadata document
(:mod:`~libertem_gpu.resultfiles.provenance`) as the JSON string root attribute
``libertem_gpu_metadata`` (HDF5, Zarr) or the array of that name (NPZ, a 0-d unicode array, so
that ``np.load`` needs no pickle); in HDF5 and Zarr each array also carries ``analysis``,
``result``, ``kind`` and its dimension names (``dims``; ``_ARRAY_DIMENSIONS`` in Zarr, as
xarray reads them).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from libertem_gpu.errors import DataSetError, LiberTEMGPUError
from libertem_gpu.outputs import atomic_dir, atomic_path
from libertem_gpu.resultfiles.provenance import METADATA_KEY, dumps

__all__ = ["RESULT_FORMATS", "SavedResults", "load_results", "save_results"]

#: Extensions :func:`save_results` writes.
RESULT_FORMATS = {".h5": "HDF5 (h5py)", ".hdf5": "HDF5 (h5py)", ".npz": "NumPy", ".zarr": "Zarr"}


@dataclasses.dataclass
class SavedResults(Mapping[str, np.ndarray]):
    """Results loaded from a file: a mapping of name to NumPy array, with their metadata.

    Attributes
    ----------
    arrays : dict of str to numpy.ndarray
    metadata : dict
        The provenance document: ``analyses``, ``dataset`` (with ``calibration``), ``version``,
        ``created``, ``arrays`` (per array: ``analysis``, ``result``, ``kind``, ``dims``).
    path : str
    """

    arrays: dict[str, np.ndarray]
    metadata: dict[str, Any]
    path: str = ""

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrays)

    def __len__(self) -> int:
        return len(self.arrays)

    def dims(self, name: str) -> list[str]:
        """Dimension names of array ``name``."""
        entry = self.metadata.get("arrays", {}).get(name, {})
        dims = entry.get("dims")
        return list(dims) if dims else [f"dim_{i}" for i in range(self.arrays[name].ndim)]


def _extension(path: str) -> str:
    return os.path.splitext(path.rstrip("/\\"))[1].lower()


def _check_format(path: str, what: str) -> str:
    ext = _extension(path)
    if ext not in RESULT_FORMATS:
        raise DataSetError(
            f"{what} {path!r}: unknown extension {ext or '(none)'!r}; expected one of "
            f"{', '.join(sorted(RESULT_FORMATS))}"
        )
    return ext


def save_results(
    path: str | os.PathLike[str],
    arrays: Mapping[str, Any],
    metadata: dict[str, Any],
) -> str:
    """Write ``arrays`` and ``metadata`` to ``path`` (``.h5``, ``.npz`` or ``.zarr``),
    atomically: the file (or folder) appears complete or not at all; an existing one is
    replaced.

    Returns
    -------
    str
        ``path``.
    """
    target = os.fspath(path)
    ext = _check_format(target, "results file")
    folder = os.path.dirname(os.path.abspath(target))
    os.makedirs(folder, exist_ok=True)
    entries = metadata.get("arrays", {})
    if ext == ".npz":
        with atomic_path(target) as tmp:
            named: dict[str, Any] = {k: np.asarray(v) for k, v in arrays.items()}
            named[METADATA_KEY] = np.array(dumps(metadata))
            np.savez(tmp, **named)
    elif ext == ".zarr":
        with atomic_dir(target, overwrite=True) as tmp:
            _write_zarr(tmp, arrays, metadata, entries)
    else:
        h5py = _import("h5py", "saving results as HDF5")
        with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
            f.attrs[METADATA_KEY] = dumps(metadata)
            for key in ("version", "created"):
                f.attrs[key] = str(metadata.get(key, ""))
            f.attrs["analyses"] = ", ".join(a["name"] for a in metadata.get("analyses", []))
            for name, value in arrays.items():
                ds = f.create_dataset(name, data=np.asarray(value))
                for key, item in _array_attrs(entries.get(name, {})).items():
                    ds.attrs[key] = item
    return target


def _array_attrs(entry: dict[str, Any]) -> dict[str, Any]:
    attrs: dict[str, Any] = {k: entry[k] for k in ("analysis", "result", "kind") if k in entry}
    if "dims" in entry:
        attrs["dims"] = json.dumps(entry["dims"])
    return attrs


def _write_zarr(
    folder: str, arrays: Mapping[str, Any], metadata: dict[str, Any], entries: dict[str, Any]
) -> None:
    zarr = _import("zarr", "saving results as Zarr")
    root = zarr.open_group(folder, mode="w")
    root.attrs[METADATA_KEY] = dumps(metadata)
    for name, value in arrays.items():
        data = np.asarray(value)
        if hasattr(root, "create_array"):
            arr = root.create_array(name, shape=data.shape, dtype=data.dtype, chunks=data.shape)
        else:  # zarr 2
            arr = root.create_dataset(name, shape=data.shape, dtype=data.dtype, chunks=data.shape)
        if data.size:
            arr[...] = data
        attrs = _array_attrs(entries.get(name, {}))
        if "dims" in entries.get(name, {}):
            attrs["_ARRAY_DIMENSIONS"] = list(entries[name]["dims"])
        arr.attrs.update(attrs)


def load_results(
    path: str | os.PathLike[str], *, as_xarray: bool = False, as_hyperspy: bool = False
) -> Any:
    """Load results saved by ``libertem-gpu run`` (or :func:`save_results`).

    Parameters
    ----------
    path : str or path-like
        A ``.h5``, ``.npz`` or ``.zarr`` results file.
    as_xarray : bool
        Return a dict of ``xarray.DataArray`` with named dimensions (``scan_y``, ``scan_x``,
        ``sig_y``, ``sig_x``, ...), calibrated coordinates where the data set had calibration,
        and the provenance in ``attrs`` (needs xarray).
    as_hyperspy : bool
        Return a dict of HyperSpy signals with calibrated axes (needs hyperspy).

    Returns
    -------
    SavedResults or dict
        By default a :class:`SavedResults` (a mapping of name to NumPy array, with
        ``.metadata``).

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from libertem_gpu.resultfiles import save_results
    >>> p = save_results(os.path.join(tempfile.mkdtemp(), "r.npz"), {"a": np.ones(3)}, {})
    >>> load_results(p)["a"].tolist()
    [1.0, 1.0, 1.0]
    """
    if as_xarray and as_hyperspy:
        raise LiberTEMGPUError("load_results: pass as_xarray=True or as_hyperspy=True, not both")
    source = os.fspath(path)
    ext = _check_format(source, "results file")
    if not os.path.exists(source):
        from libertem_gpu.errors import MissingFileError

        raise MissingFileError(f"{source!r} does not exist")
    arrays: dict[str, np.ndarray] = {}
    text = None
    if ext == ".npz":
        with np.load(source, allow_pickle=False) as f:
            for name in f.files:
                if name == METADATA_KEY:
                    text = str(f[name])
                else:
                    arrays[name] = f[name]
    elif ext == ".zarr":
        zarr = _import("zarr", "loading Zarr results")
        root = zarr.open_group(source, mode="r")
        text = root.attrs.get(METADATA_KEY)
        for name, arr in root.arrays():
            arrays[name] = np.asarray(arr[...])
    else:
        h5py = _import("h5py", "loading HDF5 results")
        with h5py.File(source, "r") as f:
            text = f.attrs.get(METADATA_KEY)
            for name, ds in f.items():
                if isinstance(ds, h5py.Dataset):
                    arrays[name] = ds[()]
    if isinstance(text, bytes):
        text = text.decode()
    metadata = json.loads(text) if text else {}
    saved = SavedResults(arrays=arrays, metadata=metadata, path=source)
    if as_xarray:
        from libertem_gpu.resultfiles.views import to_xarray

        return to_xarray(saved)
    if as_hyperspy:
        from libertem_gpu.resultfiles.views import to_hyperspy

        return to_hyperspy(saved)
    return saved


def _import(name: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise LiberTEMGPUError(
            f"{what} needs {name}, which is not installed: pip install {name}"
        ) from None
