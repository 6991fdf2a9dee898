"""The CPU backend: NumPy arrays, Numba kernels, memory-mapped or buffered host tiles."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu import host_memory
from libertem_gpu.backends.base import Backend
from libertem_gpu.io.host_tiles import iter_host_tiles

if TYPE_CHECKING:
    from libertem_gpu.io.dataset import DataSet
    from libertem_gpu.io.tiles import TilePlan, TileSlice


class NumpyBackend(Backend):
    """Process tiles on the CPU with NumPy and Numba."""

    name = "numpy"
    device_class = "cpu"
    mapped_tile_bytes_setting = "tile_bytes_cpu_mapped"
    converted_tile_bytes_setting = "tile_bytes_cpu_converted"
    kernels_read_stored_order = True

    @classmethod
    def is_available(cls) -> bool:
        return True

    @property
    def xp(self) -> ModuleType:
        return np

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return host_memory.zeros(shape, dtype)

    def iter_tiles(self, dataset: DataSet, plan: TilePlan) -> Iterator[tuple[TileSlice, Any]]:
        return iter_host_tiles(dataset, plan)
