"""Chunked outputs of :func:`libertem_gpu.export.export_dataset`: HDF5 and Zarr arrays with
optional compression, and the writer that fills them one whole chunk at a time."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from libertem_gpu.errors import DataSetError

__all__ = ["ChunkWriter", "create_hdf5", "create_zarr"]


def _missing(codec: str, package: str, fmt: str) -> DataSetError:
    return DataSetError(
        f"--compression {codec} for {fmt} needs {package}, which is not installed: "
        f"pip install {package}"
    )


def _hdf5_filter(compression: str | None) -> dict[str, Any]:
    if compression is None:
        return {}
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    try:
        import hdf5plugin
    except ImportError:
        raise _missing(compression, "hdf5plugin", "HDF5") from None
    if compression == "lz4":
        return dict(hdf5plugin.LZ4())
    return dict(hdf5plugin.Zstd())


@contextlib.contextmanager
def create_hdf5(
    path: str,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype,
    compression: str | None,
) -> Iterator[Any]:
    """Yield a new HDF5 dataset ``/data`` in a new file ``path``."""
    try:
        import h5py
    except ImportError:
        raise DataSetError(
            "exporting to HDF5 needs h5py, which is not installed: pip install h5py"
        ) from None
    options = _hdf5_filter(compression)
    with h5py.File(path, "w") as f:
        yield f.create_dataset("data", shape=shape, dtype=dtype, chunks=chunks, **options)


def create_zarr(
    path: str,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    dtype: np.dtype,
    compression: str | None,
) -> Any:
    """A new Zarr array ``data`` in a new group at ``path`` (Zarr 3 or 2)."""
    try:
        import zarr
    except ImportError:
        raise DataSetError(
            "exporting to Zarr needs zarr, which is not installed: pip install zarr"
        ) from None
    root = zarr.open_group(path, mode="w")
    if hasattr(root, "create_array"):  # zarr 3
        from zarr import codecs

        compressors: Any = None
        if compression == "gzip":
            compressors = [codecs.GzipCodec(level=4)]
        elif compression == "zstd":
            compressors = [codecs.ZstdCodec(level=3)]
        elif compression == "lz4":
            compressors = [codecs.BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")]
        kwargs: dict[str, Any] = {} if compressors is None else {"compressors": compressors}
        # Every chunk on disk, blank frames too: readers then find no chunks missing.
        kwargs["config"] = {"write_empty_chunks": True}
        return root.create_array(
            "data",
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            fill_value=0,
            **kwargs,
        )
    compressor: Any = None
    if compression is not None:
        try:
            import numcodecs
        except ImportError:
            raise _missing(compression, "numcodecs", "Zarr") from None
        compressor = {"gzip": numcodecs.GZip(4), "lz4": numcodecs.LZ4(), "zstd": numcodecs.Zstd()}[
            compression
        ]
    return root.create_dataset(
        "data", shape=shape, chunks=chunks, dtype=dtype, compressor=compressor, fill_value=0
    )


class ChunkWriter:
    """Takes frames in scan order (``writer[a:b] = frames``, flat indices) and writes each chunk
    of ``target`` once it is complete.

    The chunks of :func:`~libertem_gpu.export.choose_chunks` are contiguous runs of frames in
    scan order (the last along a row may be shorter), so one chunk-sized buffer suffices; gaps
    (positions without data) are written as zero frames.
    """

    def __init__(
        self, target: Any, nav_shape: tuple[int, ...], chunks: tuple[int, ...], dtype: np.dtype
    ) -> None:
        self.target = target
        self.nav_shape = tuple(nav_shape)
        nav_chunks = chunks[: len(nav_shape)]
        self.sig_shape = tuple(chunks[len(nav_shape) :])
        self.total = math.prod(self.nav_shape)
        self.per_chunk = math.prod(nav_chunks)
        # The axis along which chunks are runs: every axis after it is whole in a chunk.
        self.axis = len(nav_shape) - 1
        while self.axis > 0 and nav_chunks[self.axis] == nav_shape[self.axis]:
            self.axis -= 1
        self.buffer = np.zeros((self.per_chunk, *self.sig_shape), dtype=dtype)
        self.run = nav_chunks[self.axis]
        self.inner = math.prod(self.nav_shape[self.axis + 1 :])
        self.pos = 0  # next flat frame expected
        self.chunk_start = 0  # flat frame of buffer[0]
        self.chunk_end = self._end_of_chunk(0)

    def _end_of_chunk(self, start: int) -> int:
        """Flat frame after the chunk that starts at ``start`` (the last chunk along the run's
        axis may be shorter)."""
        if start >= self.total:
            return self.total
        along = int(np.unravel_index(start, self.nav_shape)[self.axis])
        count = min(self.run, self.nav_shape[self.axis] - along)
        return start + count * self.inner

    def __setitem__(self, frames: slice, values: np.ndarray) -> None:
        start, stop = int(frames.start), int(frames.stop)
        if start < self.pos:
            raise DataSetError(
                f"export: frames {start}..{stop - 1} arrived after frame {self.pos - 1} "
                "(expected scan order)"
            )
        self._advance_to(start)
        k = 0
        while start + k < stop:
            room = self.chunk_end - self.pos
            n = min(room, stop - start - k)
            at = self.pos - self.chunk_start
            self.buffer[at : at + n] = values[k : k + n]
            k += n
            self.pos += n
            if self.pos == self.chunk_end:
                self._flush()

    def _advance_to(self, flat: int) -> None:
        """Zero frames up to ``flat`` (positions without data)."""
        while self.pos < flat:
            end = min(flat, self.chunk_end)
            self.buffer[self.pos - self.chunk_start : end - self.chunk_start] = 0
            self.pos = end
            if self.pos == self.chunk_end:
                self._flush()

    def _flush(self) -> None:
        n = min(self.pos, self.total) - self.chunk_start
        if n <= 0:
            return
        index = np.unravel_index(self.chunk_start, self.nav_shape)
        # The chunk: single positions along the axes before ``axis``, a run along ``axis``,
        # everything along the axes after it.
        axis = self.axis
        count = n // self.inner
        region = [slice(int(i), int(i) + 1) for i in index[:axis]]
        region.append(slice(int(index[axis]), int(index[axis]) + count))
        region += [slice(None)] * (len(self.nav_shape) - axis - 1)
        block_shape = [1] * axis + [count, *self.nav_shape[axis + 1 :]]
        block = self.buffer[:n].reshape(*block_shape, *self.sig_shape)
        self.target[tuple(region)] = block
        self.chunk_start += n
        self.chunk_end = self._end_of_chunk(self.chunk_start)
        self.buffer[:] = 0

    def finish(self) -> None:
        """Write the last, partial chunk and zero frames for positions never written."""
        self._advance_to(self.total)
        if self.pos > self.chunk_start:
            self._flush()
