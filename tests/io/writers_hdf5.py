"""Writers of small HDF5 test files: plain datasets in any layout, and DECTRIS ARINA acquisitions
(a NeXus master file whose ``/entry/data/data_NNNNNN`` entries are external links to data files
holding ``/entry/data/data`` stacks, bitshuffle/LZ4-compressed and chunked per frame)."""

from __future__ import annotations

import math
import os
from typing import Any

import h5py
import hdf5plugin
import numpy as np


def write_h5(
    path: os.PathLike[str] | str,
    data: np.ndarray,
    ds_path: str = "/entry/data/data",
    chunks: tuple[int, ...] | bool | None = None,
    compression: Any = None,
    extra: dict[str, np.ndarray] | None = None,
    **kwargs: Any,
) -> str:
    """Write ``data`` at ``ds_path`` (plus ``extra`` datasets) and return the path."""
    path = os.fspath(path)
    with h5py.File(path, "w") as f:
        comp: dict[str, Any] = {}
        if compression == "bslz4":
            comp = dict(hdf5plugin.Bitshuffle(cname="lz4"))
        elif compression is not None:
            comp = {"compression": compression}
        f.create_dataset(ds_path, data=data, chunks=chunks, **comp, **kwargs)
        for name, value in (extra or {}).items():
            f.create_dataset(name, data=value)
    return path


def write_arina(
    directory: os.PathLike[str] | str,
    frames: np.ndarray,
    frames_per_file: int = 7,
    prefix: str = "scan",
    compress: bool = True,
    nimages: int | None = None,
) -> str:
    """Write ``frames`` (shape ``(n, h, w)``) as an ARINA acquisition; returns the master path."""
    directory = os.fspath(directory)
    master = os.path.join(directory, f"{prefix}_master.h5")
    n = len(frames)
    comp = dict(hdf5plugin.Bitshuffle(cname="lz4")) if compress else {}
    with h5py.File(master, "w") as m:
        m.attrs["NX_class"] = "NXroot"
        entry = m.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        data = entry.create_group("data")
        data.attrs["NX_class"] = "NXdata"
        spec = entry.create_group("instrument/detector/detectorSpecific")
        spec["nimages"] = np.uint32(n if nimages is None else nimages)
        spec["ntrigger"] = np.uint32(1)
        spec["x_pixels_in_detector"] = np.uint32(frames.shape[2])
        spec["y_pixels_in_detector"] = np.uint32(frames.shape[1])
        entry["instrument/detector/description"] = "Dectris ARINA Si"
        for k in range(math.ceil(n / frames_per_file)):
            name = f"{prefix}_data_{k + 1:06d}.h5"
            block = frames[k * frames_per_file : (k + 1) * frames_per_file]
            with h5py.File(os.path.join(directory, name), "w") as d:
                dset = d.create_dataset(
                    "entry/data/data", data=block, chunks=(1, *frames.shape[1:]), **comp
                )
                dset.attrs["image_nr_low"] = np.uint64(k * frames_per_file + 1)
                dset.attrs["image_nr_high"] = np.uint64(k * frames_per_file + len(block))
            data[f"data_{k + 1:06d}"] = h5py.ExternalLink(name, "/entry/data/data")
    return master
