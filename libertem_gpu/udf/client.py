"""The client side of a run: planning tiles, merging partition results in completion order, and
turning merged buffers into the results callers get."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu import config
from libertem_gpu.backends.registry import get_backend
from libertem_gpu.errors import UDFDefinitionError, UDFResultError
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.partition import Partition
from libertem_gpu.io.tiles import SWAPPABLE_DTYPES, TilingScheme, choose_scheme
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace, BufferResult
from libertem_gpu.udf.partition_task import (
    PartitionResult,
    PartitionTask,
    declare_buffers,
    make_meta,
)


@dataclass
class UDFResults:
    """Results of a run, complete or partial (from ``run_udf_iter``).

    Attributes
    ----------
    buffers : tuple of dict
        For each UDF, its results by name.
    damage : BufferResult
        Boolean ``nav`` result: which scan positions have been processed so far.
    """

    buffers: tuple[dict[str, BufferResult], ...]
    damage: BufferResult


def plan_tiling(
    dataset: DataSet,
    udfs: Sequence[UDF],
    backend: str,
    partitions: Sequence[Partition],
    forced: TilingScheme | None = None,
) -> TilingScheme:
    """Tile depth and frame splitting for a run, from the UDFs' wishes and the backend.

    A ``forced`` scheme (tests, tuning) is honoured as far as the UDFs allow: frames are split
    only if every UDF accepts partial frames, and ``process_partition`` gets whole partitions.
    """
    device_class = get_backend(backend).device_class
    tile_bytes = config.get("tile_bytes_gpu" if device_class == "cuda" else "tile_bytes_cpu")
    mapped_bytes = config.get("tile_bytes_cpu_mapped") if device_class == "cpu" else None
    prefs = [u.get_tiling_preferences() for u in udfs]
    sizes = [p["total_size"] for p in prefs if p.get("total_size")]
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
    # Big-endian integers go to the kernels unswapped (they swap as they read) where every UDF
    # can take that and the CPU computes on whole frames; the GPU swaps on the device anyway.
    storage = dataset.storage_dtype
    stored_order = (
        device_class == "cpu"
        and not storage.isnative
        and storage in SWAPPABLE_DTYPES
        and scheme.sig_rows is None
        and all(p.get("stored_byteorder") for p in prefs)
        and all(m == "tile" for m in methods)
    )
    return dataclasses.replace(scheme, stored_byteorder=stored_order)


def _check_result(udf: UDF, name: str, decl: BufferDecl, value: Any, expected: tuple) -> np.ndarray:
    array = np.asarray(value)
    if array.shape != expected:
        raise UDFResultError(
            f"{type(udf).__name__}.get_results(): result {name!r} of kind {decl.kind!r} must have "
            f"shape {expected}, got {array.shape}"
        )
    if not np.can_cast(array.dtype, decl.dtype, casting="same_kind"):
        raise UDFResultError(
            f"{type(udf).__name__}.get_results(): result {name!r} was declared as {decl.dtype}, "
            f"got {array.dtype}, which does not cast to it"
        )
    return array.astype(decl.dtype, copy=False)


class UDFClientState:
    """One UDF on the client: its full-size buffers, merges into them, and its results."""

    def __init__(self, udf: UDF, dataset: DataSet, roi_flat: np.ndarray | None, n_selected: int):
        if not isinstance(udf, UDF):
            raise UDFDefinitionError(f"expected a UDF instance, got {udf!r}")
        udf.get_method()  # a UDF with no or two process methods fails before any work
        self.udf = udf
        self.dataset = dataset
        self.roi_flat = roi_flat
        self.n_selected = n_selected
        udf.meta = make_meta(dataset, roi_flat)
        self.decls = declare_buffers(udf)
        self.buffers = {
            name: np.zeros(decl.shape(n_selected, dataset.sig_shape), decl.dtype)
            for name, decl in self.decls.items()
            if decl.is_processed
        }
        udf.results = BufferNamespace(dict(self.buffers))
        udf.preprocess()

    def merge(self, nav_offset: int, result: dict[str, np.ndarray], num_frames: int) -> None:
        dest = {}
        for name, buf in self.buffers.items():
            if self.decls[name].kind == "nav":
                dest[name] = buf[nav_offset : nav_offset + num_frames]
            else:
                dest[name] = buf
        self.udf.results = BufferNamespace(dict(self.buffers))
        self.udf.merge(BufferNamespace(dest), BufferNamespace(result))

    def results(self, damage: np.ndarray) -> dict[str, BufferResult]:
        udf = self.udf
        udf.results = BufferNamespace({n: b.copy() for n, b in self.buffers.items()})
        raw = udf.get_results()
        if not isinstance(raw, dict):
            raise UDFResultError(
                f"{type(udf).__name__}.get_results() must return a dict, got {type(raw).__name__}"
            )
        undeclared = sorted(set(raw) - set(self.decls))
        if undeclared:
            raise UDFResultError(
                f"{type(udf).__name__}.get_results() returned undeclared results {undeclared}; "
                f"declared: {sorted(self.decls)}"
            )
        out = {}
        nav_shape = self.dataset.nav_shape
        for name, decl in self.decls.items():
            if decl.use == "private":
                continue
            if name not in raw:
                raise UDFResultError(
                    f"{type(udf).__name__}.get_results() did not return the declared result "
                    f"{name!r}"
                )
            expected = decl.shape(self.n_selected, self.dataset.sig_shape)
            array = _check_result(udf, name, decl, raw[name], expected)
            valid = damage[self.roi_flat] if self.roi_flat is not None else damage
            out[name] = BufferResult(
                decl.kind,
                array,
                nav_shape,
                self.roi_flat,
                valid=damage if decl.kind == "nav" else valid,
            )
        return out


class UDFRun:
    """Plans one run of several UDFs over a data set and merges what the workers return."""

    def __init__(
        self,
        dataset: DataSet,
        udfs: Sequence[UDF],
        roi: Any,
        backend: str,
        n_workers: int,
        tiling: TilingScheme | None = None,
    ) -> None:
        if not udfs:
            raise UDFDefinitionError("run_udf needs at least one UDF")
        self.dataset = dataset
        self.roi_flat = dataset.check_roi(roi)
        self.partitions = dataset.get_partitions(n_workers)
        selected = np.full(dataset.shape.nav_size, True) if self.roi_flat is None else self.roi_flat
        counts = [int(selected[p.start : p.stop].sum()) for p in self.partitions]
        self._offsets = np.concatenate([[0], np.cumsum(counts)]).astype(int).tolist()
        self.states = [UDFClientState(u, dataset, self.roi_flat, self._offsets[-1]) for u in udfs]
        scheme = plan_tiling(dataset, udfs, backend, self.partitions, forced=tiling)
        specs = [(type(u), dict(u._kwargs)) for u in udfs]
        run_id = uuid.uuid4().hex
        self.tasks = [
            PartitionTask(dataset, p, specs, self.roi_flat, backend, scheme, run_id)
            for p in self.partitions
            if counts[p.index] > 0
        ]
        self.damage = np.zeros(dataset.shape.nav_size, dtype=bool)
        self._merged: set[int] = set()

    def merge(self, result: PartitionResult) -> bool:
        """Merge one partition's result; a partition reported twice is merged once.

        Returns whether it was merged.
        """
        index = result.partition.index
        if index in self._merged:
            return False
        self._merged.add(index)
        for state, buffers in zip(self.states, result.buffers, strict=True):
            state.merge(self._offsets[index], buffers, result.num_frames)
        self.damage[result.partition.start : result.partition.stop] = True
        return True

    def results(self) -> UDFResults:
        """Current results of every UDF."""
        damage = self.damage.copy()
        if self.roi_flat is not None:
            damage &= self.roi_flat
        buffers = tuple(state.results(damage) for state in self.states)
        damage_result = BufferResult("nav", damage, self.dataset.nav_shape, None)
        return UDFResults(buffers=buffers, damage=damage_result)
