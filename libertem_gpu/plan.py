"""The run plan: every decision about how a run executes, made once, on the client.

:func:`plan_run` turns (data set, UDFs, roi, backend request, devices, executor) into an
immutable :class:`RunPlan`: the backend and its devices, the partitions, the tiling, whether
byte order is converted by the backend or by the kernels as they read, and the settings the run
started with. Executors run :meth:`RunPlan.tasks`; each task carries the plan to its thread or
worker process, which applies the plan's settings and never decides any of these again.
"""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu import config
from libertem_gpu.backends.base import Backend
from libertem_gpu.backends.registry import get_backend, resolve_backend
from libertem_gpu.corrections.corrset import CorrectionSet, as_correction_set
from libertem_gpu.errors import DataSetError, UDFDefinitionError
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.partition import Partition
from libertem_gpu.io.tiles import TilingScheme
from libertem_gpu.kernels.byteorder import SWAPPABLE_DTYPES
from libertem_gpu.udf import run_cache
from libertem_gpu.udf.aux import AuxData
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl
from libertem_gpu.udf.partition_task import declare_buffers, set_meta, tile_request

if TYPE_CHECKING:
    from libertem_gpu.udf.partition_task import PartitionTask

__all__ = ["RunPlan", "choose_kernels", "choose_scheme", "plan_run", "plan_tiling"]


@dataclass(frozen=True, eq=False)
class RunPlan:
    """How one run executes; picklable, shipped once to each worker.

    Attributes
    ----------
    dataset : DataSet
        The data set (metadata only; readers open where the work runs).
    udf_specs : tuple of (type, dict)
        Each UDF as its class and parameters, instantiated afresh in every task.
    roi_flat : numpy.ndarray or None
        Flat boolean scan mask, or None for every position.
    backend : str
        The backend every task runs on.
    devices : tuple of int or None
        The devices the backend's workers use (None: its default).
    partitions : tuple of Partition
        Every partition of the data set, in navigation order.
    selected : tuple of int
        Positions inside the roi, per partition: the layout of ``nav`` results.
    with_data : tuple of (int, int)
        The range of flat scan positions that hold data (``sync_offset`` may shift the scan
        past either end of the file); positions outside it are never processed.
    processed : tuple of int
        Positions inside the roi that hold data, per partition: the frames each task reads.
    scheme : TilingScheme
        Tile depth, row split, and whether kernels get big-endian tiles in stored order.
    settings : mapping
        :func:`libertem_gpu.config.snapshot` at planning time, applied in every task.
    worker_resource : str
        The dask worker resource the tasks ask for (see ``Backend.worker_resource``).
    run_id : str
        Unique per run: the key for state that the partitions of one run share in a process.
    corrections : CorrectionSet or None
        Detector corrections applied to every tile as it is converted for the UDFs.
    kernels : str
        The kernel set every task looks its operations up in (``meta.kernels``): the backend's
        name, or ``"plain"`` (the plain-NumPy kernels) for a CPU run that reads at most
        ``small_run_bytes`` (see :func:`choose_kernels`).
    """

    dataset: DataSet
    udf_specs: tuple[tuple[type[UDF], dict[str, Any]], ...]
    roi_flat: np.ndarray | None
    backend: str
    devices: tuple[int, ...] | None
    partitions: tuple[Partition, ...]
    selected: tuple[int, ...]
    with_data: tuple[int, int]
    processed: tuple[int, ...]
    scheme: TilingScheme
    settings: Mapping[str, Any] = field(default_factory=dict)
    worker_resource: str = "CPU"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    corrections: CorrectionSet | None = None
    kernels: str = "numpy"

    @property
    def nav_offsets(self) -> list[int]:
        """Where each partition's selected positions start among all selected positions (one
        more entry at the end: their total)."""
        return np.concatenate([[0], np.cumsum(self.selected)]).astype(int).tolist()

    @property
    def n_selected(self) -> int:
        """Positions the run processes."""
        return int(sum(self.selected))

    def tasks(self) -> list[PartitionTask]:
        """One task per partition that holds a position to process."""
        from libertem_gpu.udf.partition_task import PartitionTask

        return [
            PartitionTask(self, p)
            for p, count in zip(self.partitions, self.processed, strict=True)
            if count > 0
        ]


def plan_run(
    dataset: DataSet,
    udfs: Sequence[UDF],
    *,
    roi: Any = None,
    backend: str | None = None,
    devices: Any = None,
    n_workers: int = 1,
    worker_backends: Sequence[str] | None = None,
    tiling: TilingScheme | None = None,
    corrections: Any = None,
) -> RunPlan:
    """Plan a run of ``udfs`` over ``dataset``.

    Parameters
    ----------
    dataset : DataSet
        The data set.
    udfs : sequence of UDF
        The UDF instances of the run (their ``meta`` is set for the client).
    roi : array of bool, optional
        Scan positions to process.
    backend : str, optional
        ``"auto"``, a backend name, or None for the ``backend`` setting.
    devices : int or sequence of int, optional
        Devices for the backend (checked here where the backend has devices).
    n_workers : int
        Tasks the executor runs at once; partitions are sized to give each several.
    worker_backends : sequence of str, optional
        Backends the executor's workers can run (a cluster's may lack this process's GPU).
    tiling : TilingScheme, optional
        Force a tile depth and frame split (tests, tuning), as far as the UDFs allow.
    corrections : CorrectionSet, optional
        Detector corrections (checked here against the frame shape); None: the data set's
        default (``ctx.load(..., corrections=...)``), if any.

    Raises
    ------
    InvalidParameterError, ShapeMismatchError
        If ``corrections`` do not fit the data set.
    UDFDefinitionError
        If ``udfs`` is empty or holds something that is not a UDF instance.
    BackendError
        If no backend suits every UDF and worker.
    """
    if not isinstance(dataset, DataSet):
        raise DataSetError(
            f"expected a data set (from ctx.load(...)), got {type(dataset).__name__}: "
            f"{dataset!r:.80}"
        )
    if not udfs:
        raise UDFDefinitionError("run_udf needs at least one UDF")
    if not all(isinstance(u, UDF) for u in udfs):
        raise UDFDefinitionError(f"expected UDF instances, got {list(udfs)!r}")
    for u in udfs:
        u.get_method()  # a UDF with no or two process methods fails before any work
    roi_flat = dataset.check_roi(roi)
    corrected = as_correction_set(
        dataset.get_correction_data() if corrections is None else corrections
    )
    if corrected is not None:
        corrected.check(dataset.sig_shape)
    supported: list[Sequence[str]] = [u.get_backends() for u in udfs]
    if worker_backends is not None:
        supported.append(worker_backends)
    name = resolve_backend(backend, supported)
    backend_cls = get_backend(name)
    chosen_devices = backend_cls.select_devices(devices)
    settings = config.snapshot()
    with_data = _positions_with_data(dataset)
    whole = Partition(index=0, start=0, stop=dataset.shape.nav_size)
    to_read = _count_selected([whole], roi_flat, with_data)[0]
    kernels = choose_kernels(backend_cls, to_read * dataset.frame_bytes)
    run_id = uuid.uuid4().hex
    try:
        result_bytes = _declare(udfs, dataset, roi_flat, corrected, kernels, run_id)
    except BaseException:
        run_cache.forget_run(run_id)  # what it built for a run that will not be
        raise
    bounds = _partition_bounds(backend_cls, dataset, result_bytes, n_workers)
    with config.set(**bounds):
        partitions = dataset.get_partitions(n_workers)
    selected = _count_selected(partitions, roi_flat, None)
    processed = _count_selected(partitions, roi_flat, with_data)
    return RunPlan(
        dataset=dataset,
        udf_specs=tuple((type(u), dict(u._kwargs)) for u in udfs),
        roi_flat=roi_flat,
        backend=name,
        devices=chosen_devices,
        partitions=tuple(partitions),
        selected=selected,
        with_data=with_data,
        processed=processed,
        scheme=plan_tiling(
            dataset, udfs, backend_cls, partitions, forced=tiling, corrections=corrected
        ),
        settings=settings,
        worker_resource=backend_cls.worker_resource,
        corrections=corrected,
        kernels=kernels,
        run_id=run_id,
    )


def _declare(
    udfs: Sequence[UDF],
    dataset: DataSet,
    roi_flat: np.ndarray | None,
    corrections: CorrectionSet | None,
    kernels: str,
    run_id: str,
) -> int:
    """Give the client's UDFs their ``meta`` and check that each can run on ``dataset``
    (its buffers, its aux data), before any work; returns the bytes of the frame-shaped
    buffers a partition fills. Buffers and tiling wishes may depend on the data: they are
    asked with it known."""
    result_bytes = 0
    for index, u in enumerate(udfs):
        meta = set_meta(u, dataset, roi_flat, corrections=corrections, kernels=kernels)
        # The run's key here as in its tasks: what the UDF builds to declare its buffers (a
        # mask stack) is then built once, where the tasks run in this process.
        meta.run_key = (run_id, index)
        result_bytes += _sig_buffer_bytes(declare_buffers(u).values(), dataset.sig_shape)
        for param, value in u._kwargs.items():
            if isinstance(value, AuxData):
                value.check(param, dataset.shape.nav_size, dataset.sig_shape)
    return result_bytes


def choose_kernels(backend: type[Backend], read_bytes: int) -> str:
    """The kernel set of a run on ``backend`` that reads ``read_bytes`` (frames to process
    times the stored frame size): ``"plain"`` (plain NumPy, see
    :data:`libertem_gpu.kernels.registry.PLAIN`) for a CPU run of at most ``small_run_bytes``,
    else the backend's name.

    Decided by size alone, never by whether Numba is already loaded, so that the same data
    always takes the same kernels: a new process then gets its first small result without
    paying for Numba's start-up (about a second), and large runs keep the compiled kernels.
    """
    from libertem_gpu.kernels.registry import PLAIN

    limit = int(config.get("small_run_bytes"))
    if backend.name == "numpy" and 0 < read_bytes <= limit:
        return PLAIN
    return backend.name


def _positions_with_data(dataset: DataSet) -> tuple[int, int]:
    """Flat scan positions ``[lo, hi)`` whose frames exist: position ``i`` reads source frame
    ``i + sync_offset``."""
    nav_size = dataset.shape.nav_size
    lo = min(nav_size, max(0, -dataset.sync_offset))
    hi = max(lo, min(nav_size, dataset.image_count - dataset.sync_offset))
    return lo, hi


def _count_selected(
    partitions: Sequence[Partition], roi_flat: np.ndarray | None, span: tuple[int, int] | None
) -> tuple[int, ...]:
    """Positions per partition inside the roi (and inside ``span``, where given)."""
    counts = []
    for p in partitions:
        start, stop = p.start, p.stop
        if span is not None:
            start, stop = max(start, span[0]), min(stop, span[1])
        if stop <= start:
            counts.append(0)
        elif roi_flat is None:
            counts.append(stop - start)
        else:
            counts.append(int(roi_flat[start:stop].sum()))
    return tuple(counts)


def _sig_buffer_bytes(decls: Iterable[BufferDecl], sig_shape: tuple[int, ...]) -> int:
    """Bytes of the frame-shaped (``sig``) buffers among ``decls`` that a partition fills."""
    return sum(
        math.prod(d.shape(0, sig_shape)) * np.dtype(d.dtype).itemsize
        for d in decls
        if d.kind == "sig" and d.is_processed
    )


def _partition_bounds(
    backend: type[Backend], dataset: DataSet, result_bytes: int, n_workers: int
) -> dict[str, int]:
    """Partition size bounds for ``backend``: at least its minimum number of tiles, and at
    least ``partition_result_ratio`` times ``result_bytes`` (the frame-shaped buffers each
    partition allocates, fills, merges and frees), short of leaving a worker without one."""
    low = int(config.get("min_partition_bytes"))
    high = int(config.get("max_partition_bytes"))
    tiles = backend.min_tiles_per_partition * int(config.get(backend.tile_bytes_setting))
    low = max(low, tiles)
    per_worker = -(-dataset.shape.nav_size // max(1, n_workers)) * dataset.frame_bytes
    for_results = min(int(config.get("partition_result_ratio")) * result_bytes, per_worker)
    low = max(low, for_results)
    return {"min_partition_bytes": low, "max_partition_bytes": max(high, low)}


def plan_tiling(
    dataset: DataSet,
    udfs: Sequence[UDF],
    backend: str | type[Backend],
    partitions: Sequence[Partition],
    forced: TilingScheme | None = None,
    corrections: CorrectionSet | None = None,
) -> TilingScheme:
    """Tile depth, frame splitting and byte order for a run, from the UDFs' wishes and the
    backend.

    A ``forced`` scheme (tests, tuning) is honoured as far as the UDFs allow: frames are split
    only if every UDF accepts partial frames, and ``process_partition`` gets whole partitions.
    With excluded pixels, row slabs are sized so that no slab boundary cuts a repair
    environment (whole frames where no height does); with any correction the backend converts
    byte order (the correction reads native values).
    """
    backend_cls = get_backend(backend) if isinstance(backend, str) else backend
    tile_bytes = config.get(backend_cls.tile_bytes_setting)
    mapped_setting = backend_cls.mapped_tile_bytes_setting
    mapped_bytes = None if mapped_setting is None else config.get(mapped_setting)
    prefs = [u.get_tiling_preferences() for u in udfs]
    sizes = [p["total_size"] for p in prefs if p.get("total_size")]
    converted = _converted_raw_bytes(dataset, udfs, backend_cls, corrections)
    if converted is not None:
        sizes.append(converted)
    if sizes:
        tile_bytes = min([tile_bytes, *sizes])
        mapped_bytes = None if mapped_bytes is None else min([mapped_bytes, *sizes])
    depths = [p["depth"] for p in prefs if p.get("depth")]
    methods = [u.get_method() for u in udfs]
    partial_ok = all(p.get("partial_frames") for p in prefs) and all(m == "tile" for m in methods)
    partition_frames = max((p.size for p in partitions), default=1)
    if forced is not None:
        if "partition" in methods:
            scheme = TilingScheme(depth=partition_frames)
        else:
            rows = forced.sig_rows if partial_ok else None
            scheme = TilingScheme(depth=forced.depth, sig_rows=rows)
    else:
        sig = dataset.sig_shape
        scheme = choose_scheme(
            frame_bytes=dataset.frame_bytes,
            row_bytes=dataset.frame_bytes // sig[0],
            sig_rows_total=sig[0] if len(sig) > 1 else 1,
            tile_bytes=int(tile_bytes),
            partial_frames_allowed=partial_ok,
            max_depth=min(depths) if depths else None,
            whole_partition="partition" in methods,
            partition_frames=partition_frames,
            mapped_tile_bytes=None if mapped_bytes is None else int(mapped_bytes),
        )
    if corrections is not None and scheme.sig_rows is not None:
        rows = corrections.slab_rows(dataset.sig_shape, scheme.sig_rows)
        thin = scheme.mapped_sig_rows
        if thin is not None:
            thin = corrections.slab_rows(dataset.sig_shape, thin)
        scheme = dataclasses.replace(scheme, sig_rows=rows, mapped_sig_rows=thin)
    # The one place where byte order is decided: big-endian integers go to the kernels
    # unswapped (they swap as they read) where the backend's kernels read host tiles, every UDF
    # can take that and tiles hold whole frames; otherwise the backend converts as it fills
    # its buffers (the GPU on the device, after the copy).
    storage = dataset.storage_dtype
    stored_order = (
        backend_cls.kernels_read_stored_order
        and not storage.isnative
        and storage in SWAPPABLE_DTYPES
        and scheme.sig_rows is None
        and all(p.get("stored_byteorder") for p in prefs)
        and all(m == "tile" for m in methods)
        and corrections is None
    )
    return dataclasses.replace(scheme, stored_byteorder=stored_order)


def _converted_raw_bytes(
    dataset: DataSet,
    udfs: Sequence[UDF],
    backend_cls: type[Backend],
    corrections: CorrectionSet | None,
) -> int | None:
    """Raw bytes of a tile whose converted copy (a UDF's element type, or corrected) fills the
    backend's ``converted_tile_bytes_setting``; None where no UDF gets a copy or the backend
    keeps tile sizes. Needs the UDFs' ``meta`` (``input_dtype``) set."""
    setting = backend_cls.converted_tile_bytes_setting
    if setting is None:
        return None
    native = np.dtype(dataset.dtype)
    requests = [tile_request(u) for u in udfs]
    widths = [
        dtype.itemsize
        for dtype, corrected in requests
        if dtype != native or (corrected and corrections is not None)
    ]
    if not widths:
        return None
    return max(1, int(config.get(setting)) * native.itemsize // max(widths))


#: Frames per stack of mapped row slabs of large frames: the kernels' frame-shaped sums (a
#: float64 sum of a 4096 x 4096 frame is 128 MiB) stream from memory once per stack.
DEEP_SLABS = 32


def choose_scheme(
    frame_bytes: int,
    row_bytes: int,
    sig_rows_total: int,
    tile_bytes: int,
    partial_frames_allowed: bool,
    max_depth: int | None = None,
    whole_partition: bool = False,
    partition_frames: int = 1,
    mapped_tile_bytes: int | None = None,
) -> TilingScheme:
    """Pick a tiling scheme that keeps tiles near ``tile_bytes`` of raw input (and tiles that
    are views of a mapped file near ``mapped_tile_bytes``, where given).

    Frames are split into row slabs only where every UDF accepts partial frames and one frame is
    larger than a tile. Slabs of a mapped file then come in stacks of up to ``DEEP_SLABS``
    frames (as many as the partition holds), cut thin enough (``mapped_sig_rows``) that a
    stack fills a mapped tile: the kernels read and write their sums over a slab's pixels once
    per stack, and for frames this large those sums stream from memory. Buffered tiles keep
    one frame and slabs of ``tile_bytes``: their buffer holds whole frames.
    """
    if whole_partition:
        return TilingScheme(depth=max(1, partition_frames))
    if partial_frames_allowed and frame_bytes > tile_bytes and sig_rows_total > 1:
        rows = min(max(1, tile_bytes // max(1, row_bytes)), sig_rows_total)
        if mapped_tile_bytes is None:
            return TilingScheme(depth=1, sig_rows=rows)
        # Mapped stacks as deep as the partition allows (up to DEEP_SLABS frames), their slabs
        # as thin as that takes to fill a mapped tile.
        deep = max(1, min(partition_frames, DEEP_SLABS, max_depth or DEEP_SLABS))
        thin = min(max(1, mapped_tile_bytes // max(1, deep * row_bytes)), sig_rows_total)
        slabs = _mapped_depth(mapped_tile_bytes, thin * row_bytes, 1, max_depth)
        return TilingScheme(depth=1, sig_rows=rows, mapped_depth=slabs, mapped_sig_rows=thin)
    depth = max(1, tile_bytes // max(1, frame_bytes))
    if max_depth is not None:
        depth = max(1, min(depth, max_depth))
    mapped = _mapped_depth(mapped_tile_bytes, frame_bytes, depth, max_depth)
    return TilingScheme(depth=depth, mapped_depth=mapped)


def _mapped_depth(
    mapped_tile_bytes: int | None, unit_bytes: int, at_least: int, max_depth: int | None
) -> int | None:
    """Frames (or frame slabs of ``unit_bytes``) per mapped tile: as many as fill
    ``mapped_tile_bytes``, at least ``at_least``, at most ``max_depth``; None where there are
    no mapped tiles."""
    if mapped_tile_bytes is None:
        return None
    depth = max(at_least, mapped_tile_bytes // max(1, unit_bytes))
    return depth if max_depth is None else max(1, min(depth, max_depth))
