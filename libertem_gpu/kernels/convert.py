"""Converting tiles to the element type a UDF asked for (``UDF.get_preferred_input_dtype``),
once per type and tile whatever the number of UDFs that want it, with the detector corrections
of the run applied in the same pass (the ``correct`` operation)."""

from __future__ import annotations

from types import ModuleType
from typing import Any, Protocol

import numpy as np

from libertem_gpu.kernels.registry import get_kernel

__all__ = ["TileConverter"]

#: Output types the ``correct`` kernels write (complex data is corrected with array code).
_KERNEL_OUT = (np.dtype(np.float32), np.dtype(np.float64))


class CorrectionArrays(Protocol):
    """What the converter needs of the corrections (a
    :class:`~libertem_gpu.corrections.corrset.FrameCorrection`)."""

    def arrays(
        self, dtype: np.dtype, sig_rows: tuple[int, int] | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]: ...


class TileConverter:
    """Hands out one tile in each element type asked for, converting it at most once per type.

    Parameters
    ----------
    xp : module
        The array module of the backend (NumPy or CuPy): conversion happens where the tile is,
        so a GPU converts raw integers on the device.
    corrections : CorrectionArrays, optional
        Detector corrections: every type asked for is then corrected (the run plan gives every
        UDF a float type), in one pass with the conversion.
    backend : str
        The run's kernel set (the backend's name, or ``"plain"``: see ``RunPlan.kernels``), to
        look up the ``correct`` operation.
    """

    def __init__(
        self, xp: ModuleType, corrections: CorrectionArrays | None = None, backend: str = "numpy"
    ) -> None:
        self.xp = xp
        self._tile: Any = None
        self._converted: dict[tuple[np.dtype, bool], Any] = {}
        self._corrections = corrections
        self._kernel = None if corrections is None else get_kernel("correct", backend)
        # Correction arrays on the backend, per (type, row slab).
        self._arrays: dict[tuple[np.dtype, tuple[int, int] | None], tuple[Any, ...]] = {}
        # Converted tiles are written to one buffer per type (and corrected or not), reused
        # from tile to tile: a fresh allocation page-faults on every tile, which made the
        # conversion of a 64 MiB mapped tile of uint16 cost more than four times the copy
        # itself (a no-op UDF over 1 GiB: 436 ms). A tile's data is valid until the next
        # tile, as in LiberTEM.
        self._buffers: dict[tuple[np.dtype, bool], Any] = {}

    def get(
        self,
        tile: Any,
        dtype: np.dtype,
        sig_rows: tuple[int, int] | None = None,
        corrected: bool = True,
    ) -> Any:
        """``tile`` as ``dtype``, corrected where the run has corrections (and ``corrected``:
        False for UDFs that fold them into their weights): the tile itself where it has that
        type and nothing is corrected, else a converted copy shared by every caller asking for
        the same until the next tile. ``sig_rows``: the rows of the frames the tile holds
        (None: whole frames)."""
        corrected = corrected and self._corrections is not None
        if tile.dtype == dtype and not corrected:
            return tile
        if tile is not self._tile:
            self._tile = tile
            self._converted = {}
        key = (np.dtype(dtype), corrected)
        converted = self._converted.get(key)
        if converted is None:
            out = self._buffer(key, tile.shape)
            if corrected:
                self._correct(tile, out, sig_rows)
            else:
                self.xp.copyto(out, tile, casting="unsafe")
            self._converted[key] = converted = out
        return converted

    def _buffer(self, key: tuple[np.dtype, bool], shape: tuple[int, ...]) -> Any:
        """A C-contiguous array of ``shape`` in the reused buffer of ``key``'s type."""
        size = int(np.prod(shape))
        buf = self._buffers.get(key)
        if buf is None or buf.size < size:
            buf = self.xp.empty(size, dtype=key[0])
            self._buffers[key] = buf
        return buf[:size].reshape(shape)

    def _correct(self, tile: Any, out: Any, sig_rows: tuple[int, int] | None) -> None:
        """Write ``tile`` corrected into ``out`` (same shape, the wanted type)."""
        assert self._corrections is not None and self._kernel is not None
        dtype = np.dtype(out.dtype)
        key = (dtype, sig_rows)
        arrays = self._arrays.get(key)
        if arrays is None:
            arrays = tuple(self.xp.asarray(a) for a in self._corrections.arrays(dtype, sig_rows))
            self._arrays[key] = arrays
        n = tile.shape[0]
        flat = tile.reshape(n, -1)
        flat_out = out.reshape(n, -1)
        if dtype in _KERNEL_OUT and flat.dtype.kind != "c":
            self._kernel(flat, *arrays, flat_out)
        else:  # complex data: plain array code, same arithmetic
            from libertem_gpu.kernels.correct import apply_xp

            dark, gain, exclude, env, counts = arrays
            apply_xp(self.xp, flat, dark, gain, exclude, env, counts, flat_out)
