"""Converting tiles to the element type a UDF asked for (``UDF.get_preferred_input_dtype``),
once per type and tile whatever the number of UDFs that want it."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["TileConverter"]


class TileConverter:
    """Hands out one tile in each element type asked for, converting it at most once per type.

    Parameters
    ----------
    xp : module
        The array module of the backend (NumPy or CuPy): conversion happens where the tile is,
        so a GPU converts raw integers on the device.
    """

    def __init__(self, xp: ModuleType) -> None:
        self.xp = xp
        self._tile: Any = None
        self._converted: dict[np.dtype, Any] = {}

    def get(self, tile: Any, dtype: np.dtype) -> Any:
        """``tile`` as ``dtype``: the tile itself where it has that type, else a converted copy
        shared by every caller asking for the same type until the next tile."""
        if tile.dtype == dtype:
            return tile
        if tile is not self._tile:
            self._tile = tile
            self._converted = {}
        converted = self._converted.get(dtype)
        if converted is None:
            converted = self.xp.asarray(tile, dtype=dtype)
            self._converted[dtype] = converted
        return converted
