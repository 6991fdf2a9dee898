"""The table of file formats: names to :class:`~libertem_gpu.io.dataset.DataSet` classes.

Built-in formats are listed as ``"module:Class"`` strings and imported when first used; third-party
formats register through the ``libertem_gpu.datasets`` entry point group (name = format name,
value = ``"package.module:DataSetClass"``) or by calling :func:`register_format`.
"""

from __future__ import annotations

import importlib
import logging
import os
from importlib.metadata import entry_points
from typing import Any

from libertem_gpu.errors import MissingFileError, UnknownFormatError
from libertem_gpu.io.dataset import DataSet

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "libertem_gpu.datasets"

_FORMATS: dict[str, str | type[DataSet]] = {
    "raw": "libertem_gpu.io.formats.raw:RawFileDataSet",
    "npy": "libertem_gpu.io.formats.npy:NPYDataSet",
    "memory": "libertem_gpu.io.memory:MemoryDataSet",
    "dask": "libertem_gpu.io.dask_array:DaskDataSet",
    "hdf5": "libertem_gpu.io.formats.hdf5:H5DataSet",
    "arina": "libertem_gpu.io.formats.arina:ArinaDataSet",
    "zarr": "libertem_gpu.io.formats.zarr_store:ZarrDataSet",
    "mib": "libertem_gpu.io.formats.mib:MIBDataSet",
    "blo": "libertem_gpu.io.formats.blo:BloDataSet",
    "empad": "libertem_gpu.io.formats.empad:EMPADDataSet",
    "ser": "libertem_gpu.io.formats.tia:SERDataSet",
    "mrc": "libertem_gpu.io.formats.mrc:MRCDataSet",
    "tvips": "libertem_gpu.io.formats.tvips:TVIPSDataSet",
    "dm": "libertem_gpu.io.formats.dm:DMDataSet",
    "k2is": "libertem_gpu.io.formats.k2is:K2ISDataSet",
    "frms6": "libertem_gpu.io.formats.frms6:FRMS6DataSet",
    "seq": "libertem_gpu.io.formats.seq:SEQDataSet",
    "raw_csr": "libertem_gpu.io.formats.raw_csr:CSRDataSet",
}
_entry_points_loaded = False


def register_format(name: str, target: str | type[DataSet]) -> None:
    """Add a format: ``target`` is a DataSet subclass or a ``"module:Class"`` string."""
    _FORMATS[name.lower()] = target


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _FORMATS.setdefault(ep.name.lower(), ep.value)


def format_names() -> list[str]:
    """Names of all registered formats."""
    _load_entry_points()
    return sorted(_FORMATS)


def get_format(name: str) -> type[DataSet]:
    """The DataSet class registered as ``name``.

    Raises
    ------
    UnknownFormatError
        Listing the valid names.
    """
    _load_entry_points()
    target = _FORMATS.get(str(name).lower())
    if target is None:
        raise UnknownFormatError(
            f"unknown data set format {name!r}; valid formats: {', '.join(format_names())}, "
            "or 'auto' to detect it from the file"
        )
    if isinstance(target, str):
        module_name, _, class_name = target.partition(":")
        target = getattr(importlib.import_module(module_name), class_name)
        _FORMATS[str(name).lower()] = target
    return target


def detect_format(path: str | os.PathLike[str]) -> type[DataSet]:
    """The first registered format whose ``guess_can_open`` accepts ``path``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(f"{path!r} does not exist")
    for name in format_names():
        try:
            cls = get_format(name)
        except (ImportError, AttributeError) as e:  # an optional dependency is missing
            log.debug("format %s not available: %s", name, e)
            continue
        if cls.guess_can_open(path):
            return cls
    raise UnknownFormatError(
        f"{path}: no format recognises this file; tried {', '.join(format_names())}. Pass the "
        "format name to load(), e.g. load('raw', path=..., nav_shape=..., sig_shape=..., dtype=...)"
    )


def load(kind: str, *args: Any, **kwargs: Any) -> DataSet:
    """Create and initialize a data set of format ``kind`` (or ``"auto"``)."""
    if str(kind).lower() == "auto":
        path = kwargs.get("path", args[0] if args else None)
        if path is None:
            raise UnknownFormatError("load('auto', ...) needs path=<file>")
        cls = detect_format(path)
    else:
        cls = get_format(kind)
    return cls(*args, **kwargs).initialize()
