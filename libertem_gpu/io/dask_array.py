"""Dask array interop: any data set as a lazy :mod:`dask.array` whose chunks are its partitions
(:func:`make_dask_array`), and any dask array as a data set (:class:`DaskDataSet`, format
``"dask"``).

dask is imported only when one of these is used.
"""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import DataSetError
from libertem_gpu.io.dataset import DataSet, DataSetOptions, parse_dtype, split_shape
from libertem_gpu.io.host_tiles import iter_host_tiles
from libertem_gpu.io.partition import Partition, make_partitions, partition_frame_count
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.io.tiles import TilePlan, TilingScheme

if TYPE_CHECKING:
    from typing_extensions import Unpack

# --- data set -> dask array ---------------------------------------------------------------------


def read_partition_frames(
    dataset: DataSet, partition: Partition, roi_part: np.ndarray | None = None
) -> np.ndarray:
    """The frames of ``partition`` (those selected by ``roi_part``, the roi's slice for this
    partition) as a new native-order array of shape ``(n, *sig_shape)``.

    Frames outside the source (``sync_offset``) are zero, as in a run.
    """
    frames = np.arange(partition.start, partition.stop, dtype=np.int64)
    if roi_part is not None:
        frames = frames[roi_part]
    out = np.empty((len(frames), *dataset.sig_shape), dtype=dataset.dtype)
    if len(frames):
        plan = TilePlan(
            partition=partition,
            frames=frames,
            scheme=TilingScheme(depth=len(frames)),
            sig_shape=dataset.sig_shape,
        )
        for tile, data in iter_host_tiles(dataset, plan):
            out[tile.nav_start : tile.nav_stop] = data
    return out


def make_dask_array(dataset: DataSet, roi: Any = None, n_workers: int = 1) -> Any:
    """A lazy dask array of the frames of ``dataset``, one chunk per partition.

    Parameters
    ----------
    dataset : DataSet
        An initialized data set of any format.
    roi : numpy.ndarray of bool, optional
        Keep only these scan positions (shaped like the scan, or flat).
    n_workers : int
        Sizes the partitions, as in a run on that many workers.

    Returns
    -------
    dask.array.Array
        Shape ``(n, *sig_shape)`` with the scan flattened (``n`` is the scan size, or the number
        of positions in ``roi``), dtype :attr:`DataSet.dtype` (native byte order). Chunks follow
        the partitions along the first axis, whole frames along the others; a partition without
        a selected frame gives no chunk. ``array.reshape(*dataset.nav_shape, *sig_shape)`` gives
        the scan's shape back where no roi is used.

    Notes
    -----
    Each chunk is read by the process that computes it, with the same readers as a run; the
    data set travels as one graph node shared by all chunks.
    """
    import dask
    import dask.array as da

    roi_flat = dataset.check_roi(roi)
    partitions = dataset.get_partitions(n_workers)
    ds_node = dask.delayed(dataset, name=f"libertem-gpu-dataset-{uuid.uuid4().hex}")
    read = dask.delayed(read_partition_frames, pure=True)
    blocks = []
    for p in partitions:
        roi_part = None if roi_flat is None else roi_flat[p.start : p.stop].copy()
        count = p.size if roi_part is None else int(roi_part.sum())
        if count == 0:
            continue
        blocks.append(
            da.from_delayed(
                read(ds_node, p, roi_part),
                shape=(count, *dataset.sig_shape),
                dtype=dataset.dtype,
            )
        )
    if not blocks:
        return da.zeros((0, *dataset.sig_shape), dtype=dataset.dtype)
    return da.concatenate(blocks, axis=0)


# --- dask array -> data set ---------------------------------------------------------------------


class DaskArrayReader(FrameReader):
    """Reads frames of a dask array by computing only the chunks that hold them."""

    def __init__(self, frames: Any, sig_shape: tuple[int, ...], scheduler: str) -> None:
        self._frames = frames  # (image_count, *array_sig) dask array
        self.dtype = np.dtype(frames.dtype)
        self.sig_shape = sig_shape
        self._scheduler = scheduler

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        block = self._frames[start:stop].compute(scheduler=self._scheduler)
        np.copyto(out, np.asarray(block).reshape(out.shape), casting="no")


class DaskDataSet(DataSet):
    """A dask array as a data set (``ctx.load("dask", array)``).

    Partitions follow the array's chunks where the chunks split only the first scan axis
    (otherwise they are sized as usual), so that a partition computes each chunk once.

    Parameters
    ----------
    array : dask.array.Array
        Array of shape ``nav + sig``, of a boolean, integer or floating point type.
    sig_dims : int
        How many trailing axes form a frame (1 or 2).
    **options
        ``nav_shape``, ``sig_shape`` (reshape, same number of elements), ``sync_offset``,
        ``num_partitions`` (overrides following the chunks): see
        :class:`~libertem_gpu.io.dataset.DataSet`.
    scheduler : str
        The dask scheduler that computes chunks inside a partition task. ``"sync"`` (default)
        computes in the task's own thread, which is safe inside dask workers; arrays that depend
        on futures of a distributed cluster cannot be computed that way (persist them to NumPy
        or another store first).
    """

    format_name = "dask"

    def __init__(
        self,
        array: Any = None,
        sig_dims: int = 2,
        *,
        scheduler: str = "sync",
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(**options)
        if array is None:
            raise DataSetError("dask data sets need array=<dask.array.Array>")
        if not (hasattr(array, "dask") and hasattr(array, "chunks") and hasattr(array, "ndim")):
            raise DataSetError(
                f"expected a dask.array.Array, got {type(array).__name__}; wrap NumPy arrays with "
                "load('memory', data=...) or dask.array.from_array(...)"
            )
        self.array = array
        self.sig_dims = int(sig_dims)
        self.scheduler = scheduler

    def _initialize(self) -> None:
        array = self.array
        parse_dtype(array.dtype, what="dtype of the dask array")
        nav, sig = split_shape(array.shape, self.sig_dims, "dask array")
        if any(math.isnan(d) for d in array.shape):
            raise DataSetError(
                f"dask array of shape {array.shape} has unknown dimensions; call "
                "array.compute_chunk_sizes() first"
            )
        count = math.prod(nav)
        if len(nav) > 3 and self._nav_shape_arg is None:
            nav = (count,)
        self._set_layout(nav, sig, array.dtype, count)

    def _flat_frames(self) -> Any:
        array = self.array
        sig = array.shape[-self.sig_dims :]
        if array.ndim - self.sig_dims == 1:
            return array
        return array.reshape((self.image_count, *sig))

    def get_reader(self) -> DaskArrayReader:
        return DaskArrayReader(self._flat_frames(), self.sig_shape, self.scheduler)

    def chunk_boundaries(self) -> list[int] | None:
        """Source frame indices where the array's chunks start (after the first), if the chunks
        split only the first scan axis; else None."""
        nav_dims = self.array.ndim - self.sig_dims
        chunks = self.array.chunks
        if any(len(c) != 1 for c in chunks[1:]):
            return None
        inner = math.prod(self.array.shape[1:nav_dims])
        return (np.cumsum(chunks[0])[:-1] * inner).astype(int).tolist()

    def get_partitions(self, n_workers: int = 1) -> list[Partition]:
        """Partitions of about the usual size, cut only at chunk boundaries where possible."""
        boundaries = None if self._num_partitions is not None else self.chunk_boundaries()
        if boundaries is None:
            return super().get_partitions(n_workers)
        nav_size = self.shape.nav_size
        target = partition_frame_count(nav_size, self.frame_bytes, n_workers)
        # Chunk boundaries in scan positions (source frame = position + sync_offset).
        cuts = sorted({b - self.sync_offset for b in boundaries} & set(range(1, nav_size)))
        if not cuts:
            return make_partitions(nav_size, max(1, nav_size))
        partitions: list[Partition] = []
        start = 0
        for i, cut in enumerate(cuts):
            nxt = cuts[i + 1] if i + 1 < len(cuts) else nav_size
            # Close the partition at this cut if it is big enough, or if going on to the next cut
            # would take it further from the target than stopping here.
            if cut - start >= target or abs(nxt - start - target) > abs(cut - start - target):
                partitions.append(Partition(len(partitions), start, cut))
                start = cut
        partitions.append(Partition(len(partitions), start, nav_size))
        return partitions
