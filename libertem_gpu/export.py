"""Writing a data set's frames to a new file (``ctx.export_dataset``), streamed with bounded memory.

Frames are read partition by partition through the CPU data path (memory-mapped views or one
reused buffer) and written in scan order; the file appears complete or not at all
(:func:`libertem_gpu.outputs.atomic_path`). Positions without data (a ``sync_offset`` past
either end of the file) are written as zero frames, so that the result keeps the scan's shape.
With ``crop_nav`` only a box of scan positions is read and written; with ``crop_sig`` a box of
each frame (:mod:`libertem_gpu.cropping`); with ``bin_sig``, blocks of detector pixels of the
(cropped) frames are summed on the way (:mod:`libertem_gpu.binning`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from libertem_gpu.binning import FrameBinner, NavBinner, binned_dtype, block_factors
from libertem_gpu.cropping import NavCrop, axis_slices, cropped_shape
from libertem_gpu.errors import DataSetError
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.host_tiles import iter_host_tiles
from libertem_gpu.io.tiles import TilePlan, TilingScheme
from libertem_gpu.outputs import atomic_dir, atomic_path

__all__ = ["COMPRESSIONS", "EXPORT_FORMATS", "choose_chunks", "export_dataset"]

#: File name extensions :func:`export_dataset` writes, and what it writes for each.
EXPORT_FORMATS = {
    ".npy": "NumPy array file, shape nav + sig, the data set's (native) dtype",
    ".h5": "HDF5 file, dataset '/data' of shape nav + sig, chunked by whole frames (needs h5py)",
    ".hdf5": "as .h5",
    ".zarr": "Zarr store (a folder), array 'data' of shape nav + sig, chunked by whole frames "
    "(needs zarr)",
    ".toml": "sparse frames (raw_csr): the TOML file and, beside it, <stem>_indptr.raw, "
    "<stem>_indices.raw and <stem>_data.raw holding the non-zero pixels as a CSR matrix",
}

#: ``compression=`` values of :func:`export_dataset` (HDF5: gzip built in, lz4 and zstd through
#: hdf5plugin; Zarr: its own codecs, or numcodecs for Zarr 2).
COMPRESSIONS = ("gzip", "lz4", "zstd")

#: Bytes read per step: a few tiles, whatever the data set's size.
_STEP_BYTES = 64 * 2**20

#: Target size of a chunk of the HDF5 / Zarr output: a few MB of whole frames, so that a
#: partition reads whole chunks and a compressor has enough to work with.
CHUNK_BYTES = 4 * 2**20


def choose_chunks(
    nav_shape: tuple[int, ...], sig_shape: tuple[int, ...], itemsize: int, target: int = CHUNK_BYTES
) -> tuple[int, ...]:
    """Chunk shape of whole frames, about ``target`` bytes, for reading back by partitions.

    Chunks are ``(1, ..., 1, c, n_k+1, ..., n_last, *sig_shape)``: full along the fastest scan
    axes, so that every chunk is one contiguous run of frames in scan order (a partition is
    such a run) and a writer fills each chunk once.

    Examples
    --------
    >>> choose_chunks((64, 64), (256, 256), 2)  # 128 kiB frames: 32 per chunk
    (1, 32, 256, 256)
    >>> choose_chunks((64, 8), (16, 16), 4)  # 1 kiB frames: whole rows
    (64, 8, 16, 16)
    """
    frame = max(1, math.prod(sig_shape) * itemsize)
    frames = max(1, target // frame)
    chunks = [1] * len(nav_shape)
    for axis in range(len(nav_shape) - 1, -1, -1):
        n = nav_shape[axis]
        if frames >= n:
            chunks[axis] = n
            frames //= max(1, n)
        else:
            chunks[axis] = max(1, frames)
            break
    return (*chunks, *sig_shape)


def export_dataset(
    dataset: DataSet,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    compression: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
    bin_sig: int | Sequence[int] | None = None,
    crop_nav: Sequence[Any] | None = None,
    crop_sig: Sequence[Any] | None = None,
    bin_nav: int | Sequence[int] | None = None,
) -> str:
    """Write every frame of ``dataset`` to ``path``, in scan order, with bounded memory.

    Parameters
    ----------
    dataset : DataSet
        From ``ctx.load(...)``.
    path : str or path-like
        The new file (a folder for ``.zarr``); its extension chooses the format (see
        :data:`EXPORT_FORMATS`).
    overwrite : bool
        Replace an existing file (it is replaced only once the new one is complete).
    progress : callable, optional
        ``progress(frames_done, frames_total)``, called after each step.
    compression : str, optional
        ``"gzip"``, ``"lz4"`` or ``"zstd"`` (HDF5 and Zarr only; see :data:`COMPRESSIONS`).
    chunk_bytes : int
        Target chunk size of HDF5 and Zarr output (:func:`choose_chunks`).
    bin_sig : int or sequence of int, optional
        Write each frame binned: the sums of blocks of this many pixels along each signal axis
        (one number: the same along all), in :func:`~libertem_gpu.binning.binned_dtype` (wider
        integers, so that no sum overflows). Pixels at the far edges that fill no whole block
        are left out, with a warning.
    crop_nav : sequence, optional
        Only a box of scan positions, one entry per scan axis: None (the whole axis), a
        ``slice`` or ``(start, stop[, step])``, negative numbers counting from the end; only
        those frames are read. The file's scan has the box's shape.
    crop_sig : sequence, optional
        Only a box of each frame, one entry per signal axis as for ``crop_nav``; cropped
        before ``bin_sig`` bins it.
    bin_nav : int or sequence of int, optional
        Sum blocks of this many scan positions along each scan axis (after ``crop_nav``):
        the file's scan is that much smaller, its frames the sums, in
        :func:`~libertem_gpu.binning.binned_dtype` of all the values summed. Positions at the
        far edges that fill no whole block are left out, with a warning. Memory: one row of
        binned frames.

    Returns
    -------
    str
        The path written.

    Raises
    ------
    DataSetError
        For an unknown extension or compression, a codec that is not installed, or an
        existing file without ``overwrite``.
    InvalidParameterError
        For a ``bin_sig``, ``bin_nav``, ``crop_nav`` or ``crop_sig`` that does not fit the
        data set.
    """
    target = os.fspath(path)
    ext = os.path.splitext(target.rstrip("/\\"))[1].lower()
    if ext not in EXPORT_FORMATS:
        raise DataSetError(
            f"cannot export to {target!r}: unknown extension {ext!r}; valid: "
            f"{', '.join(sorted(EXPORT_FORMATS))}"
        )
    if compression is not None:
        if compression not in COMPRESSIONS:
            raise DataSetError(
                f"compression must be one of {', '.join(COMPRESSIONS)} or None, got {compression!r}"
            )
        if ext in (".npy", ".toml"):
            raise DataSetError(f"{target}: {ext} output cannot be compressed; use .h5 or .zarr")
    written = [target]
    if ext == ".toml":
        from libertem_gpu.export_sparse import csr_files

        written = list(csr_files(target).values())
    for path_out in written:
        if os.path.lexists(path_out) and not overwrite:
            raise DataSetError(f"{path_out} exists; pass overwrite=True to replace it")
    nav_crop = None if crop_nav is None else NavCrop(dataset.nav_shape, crop_nav)
    sig_slices = None if crop_sig is None else axis_slices(crop_sig, dataset.sig_shape, "crop_sig")
    frame_shape = (
        dataset.sig_shape if sig_slices is None else cropped_shape(sig_slices, dataset.sig_shape)
    )
    binner = None if bin_sig is None else FrameBinner(frame_shape, bin_sig, dataset.dtype)
    if binner is not None and any(binner.dropped):
        warnings.warn(
            f"{target}: binning frames of {frame_shape} by {binner.factors} leaves out "
            f"the last {binner.dropped} pixels along the signal axes (no whole block)",
            stacklevel=2,
        )
    sig_shape = frame_shape if binner is None else binner.sig_shape
    dtype = dataset.dtype if binner is None else binner.dtype
    nav_shape = dataset.nav_shape if nav_crop is None else nav_crop.nav_shape
    nav_binner = None
    if bin_nav is not None:
        factors = block_factors(bin_nav, nav_shape, "bin_nav", "positions per scan axis")
        summed = math.prod(factors) * (1 if binner is None else math.prod(binner.factors))
        dtype = binned_dtype(dataset.dtype, summed)
        nav_binner = NavBinner(nav_shape, factors, sig_shape, dtype)
        if any(nav_binner.dropped):
            warnings.warn(
                f"{target}: binning a scan of {nav_shape} by {factors} leaves out the last "
                f"{nav_binner.dropped} positions along the scan axes (no whole block)",
                stacklevel=2,
            )
        nav_shape = nav_binner.nav_shape
    steps = _Steps(nav_crop, sig_slices, binner, nav_binner)
    shape = (*nav_shape, *sig_shape)
    chunks = choose_chunks(nav_shape, sig_shape, dtype.itemsize, chunk_bytes)
    if ext == ".npy":
        with atomic_path(target) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape)
            _copy_frames(dataset, out.reshape(-1, *sig_shape), progress, steps)
            out.flush()
            del out
    elif ext == ".toml":
        from libertem_gpu.export_sparse import open_csr

        with open_csr(target, nav_shape, sig_shape, dtype) as writer:
            _copy_frames(dataset, writer, progress, steps)
    elif ext == ".zarr":
        from libertem_gpu.export_chunked import create_zarr

        with atomic_dir(target, overwrite=overwrite) as tmp:
            array = create_zarr(tmp, shape, chunks, dtype, compression)
            _write_chunked(dataset, array, nav_shape, chunks, dtype, progress, steps)
    else:
        from libertem_gpu.export_chunked import create_hdf5

        with (
            atomic_path(target) as tmp,
            create_hdf5(tmp, shape, chunks, dtype, compression) as array,
        ):
            _write_chunked(dataset, array, nav_shape, chunks, dtype, progress, steps)
    return target


class _Steps:
    """What happens to the frames on their way to the file: which scan positions are read
    and where they go (``nav``), the box of each frame kept (``sig``), the binning."""

    def __init__(
        self,
        nav: NavCrop | None,
        sig: tuple[slice, ...] | None,
        binner: FrameBinner | None,
        nav_binner: NavBinner | None = None,
    ) -> None:
        self.nav = nav
        self._sig = None if sig is None else (slice(None), *sig)
        self._binner = binner
        self._nav_binner = nav_binner

    def write(self, out: Any, frames: np.ndarray, data: np.ndarray) -> None:
        """Write a tile's frames (scan positions ``frames``, in order) to ``out``, or add
        them to the blocks of scan positions and write the rows of blocks they finish."""
        written = self.frames(data)
        if self._nav_binner is None:
            first = self.first(frames)
            out[first : first + len(frames)] = written
            return
        positions = frames if self.nav is None else self.nav.index[frames]
        for start, rows in self._nav_binner.add(positions, written):
            out[start : start + len(rows)] = rows

    def finish(self, out: Any) -> None:
        """Write the last row of blocks of scan positions."""
        if self._nav_binner is not None:
            for start, rows in self._nav_binner.finish():
                out[start : start + len(rows)] = rows

    def frames(self, data: np.ndarray) -> np.ndarray:
        """A tile's frames ``(n, *sig)`` as written."""
        if self._sig is not None:
            data = data[self._sig]
        return data if self._binner is None else self._binner(data)

    def first(self, frames: np.ndarray) -> int:
        """Where a tile's frames (consecutive in the written scan) start in it."""
        first = int(frames[0])
        return first if self.nav is None else int(self.nav.index[first])


def _copy_frames(
    dataset: DataSet,
    out: Any,
    progress: Callable[[int, int], None] | None,
    steps: _Steps,
) -> None:
    """Fill ``out`` (flat scan x sig, array-like) with every frame kept (cropped and binned as
    ``steps`` says), a partition at a time."""
    roi = None if steps.nav is None else steps.nav.roi_flat
    total = dataset.shape.nav_size if roi is None else int(roi.sum())
    depth = max(1, _STEP_BYTES // max(1, dataset.frame_bytes))
    done = 0
    for partition in dataset.get_partitions():
        plan = TilePlan.for_partition(partition, roi, TilingScheme(depth=depth), dataset.sig_shape)
        if plan.num_frames == 0:
            continue
        for tile, data in iter_host_tiles(dataset, plan):
            steps.write(out, tile.frames, data)
            done += len(tile.frames)
            if progress is not None:
                progress(done, total)
    steps.finish(out)


def _write_chunked(
    dataset: DataSet,
    array: Any,
    nav_shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype,
    progress: Callable[[int, int], None] | None,
    steps: _Steps,
) -> None:
    from libertem_gpu.export_chunked import ChunkWriter

    writer = ChunkWriter(array, nav_shape, chunks, dtype)
    _copy_frames(dataset, writer, progress, steps)
    writer.finish()
