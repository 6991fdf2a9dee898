"""Writing a data set's frames to a new file (``ctx.export_dataset``), streamed with bounded memory.

Frames are read partition by partition through the CPU data path (memory-mapped views or one
reused buffer) and written in scan order; the file appears complete or not at all
(:func:`libertem_gpu.outputs.atomic_path`). Positions without data (a ``sync_offset`` past
either end of the file) are written as zero frames, so that the result keeps the scan's shape.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from libertem_gpu.errors import DataSetError
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.host_tiles import iter_host_tiles
from libertem_gpu.io.tiles import TilePlan, TilingScheme
from libertem_gpu.outputs import atomic_path

__all__ = ["EXPORT_FORMATS", "export_dataset"]

#: File name extensions :func:`export_dataset` writes, and what it writes for each.
EXPORT_FORMATS = {
    ".npy": "NumPy array file, shape nav + sig, the data set's (native) dtype",
    ".h5": "HDF5 file, dataset '/data' of shape nav + sig, chunked by frame (needs h5py)",
    ".hdf5": "as .h5",
}

#: Bytes read per step: a few tiles, whatever the data set's size.
_STEP_BYTES = 64 * 2**20


def export_dataset(
    dataset: DataSet,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Write every frame of ``dataset`` to ``path``, in scan order, with bounded memory.

    Parameters
    ----------
    dataset : DataSet
        From ``ctx.load(...)``.
    path : str or path-like
        The new file; its extension chooses the format (see :data:`EXPORT_FORMATS`).
    overwrite : bool
        Replace an existing file (it is replaced only once the new one is complete).
    progress : callable, optional
        ``progress(frames_done, frames_total)``, called after each step.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    DataSetError
        For an unknown extension, or an existing file without ``overwrite``.
    """
    target = os.fspath(path)
    ext = os.path.splitext(target)[1].lower()
    if ext not in EXPORT_FORMATS:
        raise DataSetError(
            f"cannot export to {target!r}: unknown extension {ext!r}; valid: "
            f"{', '.join(sorted(EXPORT_FORMATS))}"
        )
    if os.path.exists(target) and not overwrite:
        raise DataSetError(f"{target} exists; pass overwrite=True to replace it")
    shape = (*dataset.nav_shape, *dataset.sig_shape)
    with atomic_path(target) as tmp:
        if ext == ".npy":
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dataset.dtype, shape=shape)
            _copy_frames(dataset, out.reshape(-1, *dataset.sig_shape), progress)
            out.flush()
            del out
        else:
            _write_hdf5(dataset, tmp, shape, progress)
    return target


def _copy_frames(dataset: DataSet, out: Any, progress: Callable[[int, int], None] | None) -> None:
    """Fill ``out`` (flat scan x sig, array-like) with every frame, a partition at a time."""
    total = dataset.shape.nav_size
    depth = max(1, _STEP_BYTES // max(1, dataset.frame_bytes))
    done = 0
    for partition in dataset.get_partitions():
        plan = TilePlan.for_partition(partition, None, TilingScheme(depth=depth), dataset.sig_shape)
        for tile, data in iter_host_tiles(dataset, plan):
            frames = tile.frames
            out[int(frames[0]) : int(frames[-1]) + 1] = data
            done += len(frames)
            if progress is not None:
                progress(done, total)


def _write_hdf5(
    dataset: DataSet,
    path: str,
    shape: tuple[int, ...],
    progress: Callable[[int, int], None] | None,
) -> None:
    try:
        import h5py
    except ImportError as e:
        raise DataSetError(f"exporting to HDF5 needs h5py (pip install h5py): {e}") from None
    nav = dataset.nav_shape
    chunks = (*(1,) * len(nav), *dataset.sig_shape)
    with h5py.File(path, "w") as f:
        data = f.create_dataset("data", shape=shape, dtype=dataset.dtype, chunks=chunks)
        _copy_frames(dataset, _ByFrame(data, nav), progress)


class _ByFrame:
    """Writes flat frame ranges into a scan-shaped HDF5 dataset, one chunk (frame) at a time."""

    def __init__(self, target: Any, nav_shape: tuple[int, ...]) -> None:
        self.target = target
        self.nav_shape = nav_shape

    def __setitem__(self, frames: slice, values: np.ndarray) -> None:
        for k, flat in enumerate(range(frames.start, frames.stop)):
            self.target[np.unravel_index(flat, self.nav_shape)] = values[k]
