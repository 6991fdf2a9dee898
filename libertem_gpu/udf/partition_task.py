"""Running a set of UDFs over one partition: the task every executor runs in its workers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu import config
from libertem_gpu.backends.base import Backend
from libertem_gpu.backends.registry import get_backend
from libertem_gpu.errors import UDFDefinitionError
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.partition import Partition
from libertem_gpu.io.tiles import TilePlan, TileSlice
from libertem_gpu.kernels.convert import TileConverter
from libertem_gpu.udf.aux import AuxData
from libertem_gpu.udf.base import UDF, UDFMeta
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace

if TYPE_CHECKING:
    from libertem_gpu.plan import RunPlan


def declare_buffers(udf: UDF) -> dict[str, BufferDecl]:
    """Ask ``udf`` for its buffers (its ``meta`` must be set) and check the answer."""
    decls = udf.get_result_buffers()
    if not isinstance(decls, dict) or not all(isinstance(d, BufferDecl) for d in decls.values()):
        raise UDFDefinitionError(
            f"{type(udf).__name__}.get_result_buffers() must return a dict of name -> "
            f"self.buffer(...), got {decls!r}"
        )
    udf.__dict__["_decls_cache"] = decls
    return decls


def set_meta(
    udf: UDF,
    dataset: DataSet,
    roi_flat: np.ndarray | None,
    backend: Backend | None = None,
    partition: Partition | None = None,
    corrections: Any = None,
    kernels: str | None = None,
) -> UDFMeta:
    """Give ``udf`` the ``meta`` it sees for this data set and run: in a worker, with its
    ``backend`` and ``partition``; on the client (``backend=None``), where buffers are NumPy
    arrays. Its ``input_dtype`` is the type the UDF asked for (see :func:`input_dtype`), a
    float type where the run has ``corrections``; ``kernels`` is the plan's kernel set (None:
    the backend's own)."""
    roi = None if roi_flat is None else roi_flat.reshape(dataset.nav_shape)
    name = "numpy" if backend is None else backend.name
    udf.meta = UDFMeta(
        dataset_shape=dataset.shape,
        dataset_dtype=dataset.storage_dtype,
        input_dtype=dataset.dtype,
        roi=roi,
        backend=name,
        xp=np if backend is None else backend.xp,
        device_class="cpu" if backend is None else backend.device_class,
        partition=partition,
        corrections=corrections,
        kernels=name if kernels is None else kernels,
    )
    # Asked with meta in place: a UDF may choose by the data set's type.
    corrected = corrections is not None and not udf._folds_corrections
    udf.meta.input_dtype = input_dtype(udf, dataset.dtype, corrected=corrected)
    return udf.meta


def tile_request(udf: UDF) -> tuple[np.dtype, bool]:
    """What ``udf`` gets its tiles as: its input type (``meta`` set) and whether corrected
    (False for UDFs that fold the run's corrections into their weights). The converter hands
    out a copy where the type is not the stored one, or where it corrects."""
    assert udf.meta is not None
    return np.dtype(udf.meta.input_dtype), not udf._folds_corrections


def input_dtype(udf: UDF, native: np.dtype, corrected: bool = False) -> np.dtype:
    """The element type ``udf`` receives its tiles in, for a data set of type ``native``: the
    stored type where it asks for ``UDF.USE_NATIVE_DTYPE``, else its preferred type widened as
    far as the data needs (``numpy.result_type``: float32 for 8/16-bit integers and float16,
    float64 for 32/64-bit integers and float64, complex64 for complex64 data), as in LiberTEM.

    With detector corrections (``corrected``) the data is first taken as
    ``result_type(float32, native)``, as LiberTEM does: a UDF that asks for the stored type
    gets that float type, others their preferred type widened to it."""
    preferred = udf.get_preferred_input_dtype()
    if corrected:
        native = np.result_type(np.float32, native)
    if preferred is UDF.USE_NATIVE_DTYPE:
        return np.dtype(native)
    try:
        return np.result_type(np.dtype(preferred), native)
    except TypeError:
        raise UDFDefinitionError(
            f"{type(udf).__name__}.get_preferred_input_dtype() returned {preferred!r}, which is "
            "not a NumPy dtype (return UDF.USE_NATIVE_DTYPE for the stored type)"
        ) from None


def _task_data(udf: UDF) -> dict[str, Any]:
    data = udf.get_task_data()
    if not isinstance(data, dict):
        raise UDFDefinitionError(
            f"{type(udf).__name__}.get_task_data() must return a dict, got {type(data).__name__}"
        )
    return dict(data)


@dataclass
class PartitionResult:
    """The buffers of every UDF after one partition, as NumPy arrays; ``nav`` buffers hold the
    ``num_frames`` processed frames."""

    partition: Partition
    num_frames: int
    buffers: list[dict[str, np.ndarray]]
    #: Where the partition's processed frames start among its selected positions.
    nav_base: int = 0
    #: Bytes of its tiles by the I/O path that brought them (``Backend.io_paths``).
    io_paths: dict[str, int] = field(default_factory=dict)


class _UDFInPartition:
    """One UDF instance with its partition buffers, feeding it tiles by its process method."""

    def __init__(self, udf: UDF, backend: Backend, num_frames: int, sig_shape: tuple[int, ...]):
        self.udf = udf
        self.method = udf.get_method()
        self.decls = {n: d for n, d in declare_buffers(udf).items() if d.is_processed}
        self.buffers = {
            name: backend.zeros(decl.shape(num_frames, sig_shape), decl.dtype)
            for name, decl in self.decls.items()
        }
        udf.results = BufferNamespace(dict(self.buffers))
        self.xp = backend.xp
        self.aux = {n: v for n, v in udf._kwargs.items() if isinstance(v, AuxData)}
        # Frame-shaped and single aux data move to the backend once per partition.
        self.aux_whole = {
            n: self.xp.asarray(a.data) for n, a in self.aux.items() if a.kind != "nav"
        }
        for name, whole in self.aux_whole.items():  # as seen by get_task_data and preprocess
            udf.params._show(name, whole)

    def _show_aux(self, tile: TileSlice, frame: int | None = None) -> None:
        """Let each aux data parameter read as its slice for ``tile`` (or one of its frames)."""
        for name, aux in self.aux.items():
            if aux.kind == "nav":
                frames = tile.frames if frame is None else tile.frames[frame : frame + 1]
                value = self.xp.asarray(aux.for_frames(frames, single_frame=frame is not None))
            elif aux.kind == "sig" and tile.sig_rows is not None:
                value = self.aux_whole[name][tile.sig_rows[0] : tile.sig_rows[1]]
            else:
                value = self.aux_whole[name]
            self.udf.params._show(name, value)

    def _views(self, tile: TileSlice, frame: int | None = None) -> BufferNamespace:
        views = {}
        for name, decl in self.decls.items():
            buf = self.buffers[name]
            if decl.kind == "nav":
                if frame is None:
                    views[name] = buf[tile.nav_start : tile.nav_stop]
                elif decl.extra_shape:
                    views[name] = buf[tile.nav_start + frame]
                else:
                    views[name] = buf[tile.nav_start + frame : tile.nav_start + frame + 1]
            elif decl.kind == "sig" and tile.sig_rows is not None:
                views[name] = buf[tile.sig_rows[0] : tile.sig_rows[1]]
            else:
                views[name] = buf
        return BufferNamespace(views)

    def process(self, tile: TileSlice, data: Any) -> None:
        udf = self.udf
        assert udf.meta is not None
        if self.method == "frame":
            for i in range(tile.num_frames):
                udf.meta.tile = TileSlice(
                    tile.nav_start + i, tile.nav_start + i + 1, tile.frames[i : i + 1]
                )
                udf.results = self._views(tile, frame=i)
                if self.aux:
                    self._show_aux(tile, frame=i)
                udf.process_frame(data[i])  # type: ignore[attr-defined]
        else:
            udf.meta.tile = tile
            udf.results = self._views(tile)
            if self.aux:
                self._show_aux(tile)
            if self.method == "tile":
                udf.process_tile(data)  # type: ignore[attr-defined]
            else:
                udf.process_partition(data)  # type: ignore[attr-defined]

    def finish(self, backend: Backend) -> dict[str, np.ndarray]:
        assert self.udf.meta is not None
        self.udf.meta.tile = None
        self.udf.results = BufferNamespace(dict(self.buffers))
        self.udf.postprocess()
        return {name: backend.to_numpy(buf) for name, buf in self.buffers.items()}


@dataclass
class PartitionTask:
    """One partition of a planned run: what every executor runs in its workers; picklable.

    The plan is shared by all tasks of a run (executors that ship tasks elsewhere send it once
    per worker). UDFs travel as (class, parameters) and are instantiated afresh in the worker,
    which applies the settings the run was planned with.
    """

    plan: RunPlan
    partition: Partition

    @property
    def resource(self) -> str:
        """The worker resource this task needs (see ``Backend.worker_resource``)."""
        return self.plan.worker_resource

    def __call__(self) -> PartitionResult:
        with config.applied(self.plan.settings):
            backend = get_backend(self.plan.backend)(self.plan.devices)
            try:
                return self._run(backend)
            finally:
                backend.close()

    def _run(self, backend: Backend) -> PartitionResult:
        plan = self.plan
        dataset = plan.dataset
        tiles = TilePlan.for_partition(
            self.partition, plan.roi_flat, plan.scheme, dataset.sig_shape, plan.with_data
        )
        states = []
        for index, (cls, kwargs) in enumerate(plan.udf_specs):
            udf = cls(**kwargs)
            meta = set_meta(
                udf, dataset, plan.roi_flat, backend, self.partition, plan.corrections, plan.kernels
            )
            meta.byteswapped = plan.scheme.stored_byteorder
            meta.run_key = (plan.run_id, index)
            states.append(_UDFInPartition(udf, backend, tiles.num_frames, dataset.sig_shape))
            udf.task_data = BufferNamespace(_task_data(udf))
            udf.preprocess()
        if tiles.num_frames:
            # Each UDF gets the element type it asked for, each type made once per tile.
            # Detector corrections are applied in that conversion, in the same pass.
            corrections = (
                None if plan.corrections is None else plan.corrections.for_frames(dataset.sig_shape)
            )
            converter = TileConverter(backend.xp, corrections, plan.kernels)
            wanted = [tile_request(state.udf) for state in states]
            for tile, data in backend.iter_tiles(dataset, tiles):
                for state, (dtype, corrected) in zip(states, wanted, strict=True):
                    state.process(tile, converter.get(data, dtype, tile.sig_rows, corrected))
        return PartitionResult(
            partition=self.partition,
            num_frames=tiles.num_frames,
            buffers=[state.finish(backend) for state in states],
            nav_base=tiles.nav_base,
            io_paths=backend.io_paths(),
        )
