"""The client side of a run: merging partition results in completion order, and turning merged
buffers into the results callers get."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from libertem_gpu import host_memory, host_threads
from libertem_gpu.errors import UDFDefinitionError, UDFResultError
from libertem_gpu.io.dataset import DataSet
from libertem_gpu.plan import RunPlan
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace, BufferResult, fill_value
from libertem_gpu.udf.partition_task import (
    PartitionResult,
    PartitionTask,
    declare_buffers,
    set_meta,
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
    io_paths : dict of str to int
        Bytes of the partitions merged so far by the I/O path that brought them to the
        backend, e.g. ``{"pinned": n}`` on the GPU (see ``CupyBackend.io_paths``); empty
        where the backend does not record them (the CPU).
    """

    buffers: tuple[dict[str, BufferResult], ...]
    damage: BufferResult
    io_paths: dict[str, int] = field(default_factory=dict)


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

    def __init__(
        self,
        udf: UDF,
        dataset: DataSet,
        roi_flat: np.ndarray | None,
        n_selected: int,
        corrections: Any = None,
        kernels: str | None = None,
    ):
        if not isinstance(udf, UDF):
            raise UDFDefinitionError(f"expected a UDF instance, got {udf!r}")
        udf.get_method()  # a UDF with no or two process methods fails before any work
        self.udf = udf
        self.dataset = dataset
        self.roi_flat = roi_flat
        self.n_selected = n_selected
        set_meta(udf, dataset, roi_flat, corrections=corrections, kernels=kernels)
        self.decls = declare_buffers(udf)
        self.buffers = {
            name: host_memory.zeros(decl.shape(n_selected, dataset.sig_shape), decl.dtype)
            for name, decl in self.decls.items()
            if decl.is_processed
        }
        udf.results = BufferNamespace(dict(self.buffers))
        udf.preprocess()
        # A UDF with merge_all gets every partition's buffers at once (in partition order);
        # its nav buffers are placed here as they arrive, the rest kept until results are asked.
        self.merge_all = callable(getattr(udf, "merge_all", None))
        self.parts: dict[int, dict[str, np.ndarray]] = {}

    def merge(
        self, nav_offset: int, result: dict[str, np.ndarray], num_frames: int, index: int = 0
    ) -> None:
        dest = {}
        for name, buf in self.buffers.items():
            if self.decls[name].kind == "nav":
                dest[name] = buf[nav_offset : nav_offset + num_frames]
            else:
                dest[name] = buf
        if self.merge_all:
            for name, view in dest.items():
                if self.decls[name].kind == "nav":
                    view[...] = result[name]
            self.parts[index] = result
            return
        self.udf.results = BufferNamespace(dict(self.buffers))
        self.udf.merge(BufferNamespace(dest), BufferNamespace(result))

    def _merged_buffers(self, final: bool) -> dict[str, np.ndarray]:
        """The merged buffers (through ``merge_all`` where the UDF has one): copies while merges
        may still come, so that results already handed out do not change; the buffers
        themselves once every partition is merged (``final``), since nothing writes to them
        after that. Copying them at the end took 14 ms (SumUDF) and 31 ms (StdDevUDF) of a run
        over 64 frames of 4096 x 4096, on the client alone after the last partition."""
        if final:
            buffers = dict(self.buffers)
        else:
            buffers = {name: host_memory.copy(buf) for name, buf in self.buffers.items()}
        if not self.merge_all or not self.parts:
            return buffers
        udf = self.udf
        ordered = {i: BufferNamespace(dict(self.parts[i])) for i in sorted(self.parts)}
        merged = udf.merge_all(ordered)  # type: ignore[attr-defined]
        if not isinstance(merged, dict):
            raise UDFResultError(
                f"{type(udf).__name__}.merge_all() must return a dict of buffer name -> array, "
                f"got {type(merged).__name__}"
            )
        for name, value in merged.items():
            if name not in buffers:
                raise UDFResultError(
                    f"{type(udf).__name__}.merge_all() returned {name!r}, which is not a "
                    f"processed buffer; buffers: {sorted(buffers)}"
                )
            expected = buffers[name].shape
            buffers[name] = _check_result(udf, name, self.decls[name], value, expected)
        return buffers

    def results(self, damage: np.ndarray, complete: bool) -> dict[str, BufferResult]:
        """The UDF's results, given which scan positions have been processed (``damage``,
        flat, inside the roi) and whether every position to process has been (``complete``).
        ``nav`` values of positions not processed are NaN (or 0 for integers)."""
        udf = self.udf
        valid = damage[self.roi_flat] if self.roi_flat is not None else damage
        udf.results = BufferNamespace(self._merged_buffers(final=complete))
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
            if decl.kind == "nav" and not valid.all():
                array = array.copy()
                array[~valid] = fill_value(array.dtype)
            out[name] = BufferResult(
                decl.kind,
                array,
                nav_shape,
                self.roi_flat,
                valid=damage if decl.kind == "nav" else np.asarray(complete),
            )
        return out


class UDFRun:
    """The client's side of a planned run: the UDFs' full-size buffers, and the merge of what the
    workers return into them."""

    def __init__(
        self, plan: RunPlan, udfs: Sequence[UDF], client_threads: int | None = None
    ) -> None:
        if not udfs:
            raise UDFDefinitionError("run_udf needs at least one UDF")
        self.plan = plan
        # the most threads merges and results use (the executor's workers; see host_threads)
        self._client_threads = client_threads
        self.dataset = plan.dataset
        self.roi_flat = plan.roi_flat
        self._offsets = plan.nav_offsets
        self.states = [
            UDFClientState(
                u, plan.dataset, plan.roi_flat, plan.n_selected, plan.corrections, plan.kernels
            )
            for u in udfs
        ]
        # What meta.get_valid_nav_mask() answers in merge and results. Through a weak
        # reference: a bound method would make a cycle (run -> UDF -> meta -> run) that keeps
        # the run's scan-sized buffers alive until the cyclic garbage collector runs.
        valid_nav = weakref.WeakMethod(self._valid_nav)

        def current_valid_nav() -> np.ndarray:
            method = valid_nav()
            if method is None:
                raise RuntimeError("the run of this UDF is over: no valid-position mask")
            return method()

        for state in self.states:
            assert state.udf.meta is not None
            state.udf.meta.valid_nav = current_valid_nav
        self.tasks: list[PartitionTask] = plan.tasks()
        self.damage = np.zeros(plan.dataset.shape.nav_size, dtype=bool)
        self._merged: set[int] = set()
        self._to_merge = {i for i, count in enumerate(plan.processed) if count}
        self.io_paths: dict[str, int] = {}

    def merge(self, result: PartitionResult) -> bool:
        """Merge one partition's result; a partition reported twice is merged once.

        Returns whether it was merged.
        """
        index = result.partition.index
        if index in self._merged:
            return False
        self._merged.add(index)
        for path, nbytes in result.io_paths.items():
            self.io_paths[path] = self.io_paths.get(path, 0) + nbytes
        offset = self._offsets[index] + result.nav_base
        with host_threads.limited_to(self._client_threads):
            for state, buffers in zip(self.states, result.buffers, strict=True):
                state.merge(offset, buffers, result.num_frames, index)
        # Only positions that hold data were processed; the others never become valid.
        lo, hi = self.plan.with_data
        self.damage[max(lo, result.partition.start) : min(hi, result.partition.stop)] = True
        return True

    def _valid_nav(self) -> np.ndarray:
        """Flat mask of the positions merged so far (the roi's only, where there is one)."""
        return self.damage[self.roi_flat] if self.roi_flat is not None else self.damage.copy()

    def results(self) -> UDFResults:
        """Current results of every UDF."""
        damage = self.damage.copy()
        if self.roi_flat is not None:
            damage &= self.roi_flat
        complete = self._to_merge <= self._merged
        with host_threads.limited_to(self._client_threads):
            buffers = tuple(state.results(damage, complete) for state in self.states)
        damage_result = BufferResult("nav", damage, self.dataset.nav_shape, None)
        return UDFResults(buffers=buffers, damage=damage_result, io_paths=dict(self.io_paths))
