"""Dense masks laid out for the CPU kernels of several masks (:mod:`.masks_cpu`): packed by
chunk of pixels for the blocked kernels (:class:`PackedMasks`, made by :func:`pack_dense`), and,
made from the same stack on first use, the AMX layout and the groups of 16 of the
outer-product kernel."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from libertem_gpu.errors import ShapeMismatchError
from libertem_gpu.kernels import amx
from libertem_gpu.kernels.cpu_target import target_has

__all__ = ["PackedMasks", "pack_dense"]

# The k masks' values for a chunk of pixels as rows of one small block, padded so that the rows
# start on different cache sets (unpadded, rows 4 KiB apart compete for the same L1 sets); see
# masks_cpu for the kernels.
_PACK_CHUNK = 1024
# Without AVX-512 (6 x 2 block), fewer chunk ends (12 lane reductions each). Zen 3, 16 float32
# masks on uint16: 1024 px 2.2-3.0 GB/s, 4096 3.1-3.3 (1.3e-7 from exact, against 7.9e-8).
_PACK_CHUNK_AVX2 = 4096
_PACK_PAD = 16
# Held while a layout is made: threads of one run that need the same layout at once (every
# partition starts on the first row slab) wait for it instead of each making a copy. One lock
# for all: layouts are made once per run, and a thread that waits has nothing else to do.
_BUILDING = threading.Lock()
_UNMADE: Any = object()


class PackedMasks:
    """Dense masks laid out for the CPU kernels of several masks (k > 1); see
    :func:`pack_dense`. Each layout is made on first use and kept, so that a run builds only
    the one its kernel reads; threads may share it.

    Attributes
    ----------
    npix : int
        Pixels per mask.
    chunk : int
        Pixels per chunk of :attr:`data`.
    """

    __slots__ = ("_amx", "_data", "_groups", "_source", "chunk", "npix")

    def __init__(self, source: np.ndarray, chunk: int) -> None:
        self.npix = int(source.shape[0])
        self.chunk = chunk
        # The transposed stack ``(npix, k)``, which every layout is made from.
        self._source = source
        # Each layout: _UNMADE until first asked for, then what it is (None where it cannot be).
        self._data: Any = _UNMADE
        self._amx: Any = _UNMADE
        self._groups: Any = _UNMADE

    def _made(self, slot: str, make: Callable[[], Any]) -> Any:
        """The layout in ``slot``, made by ``make`` the first time (once, whichever thread asks
        first; the others wait for it)."""
        value = getattr(self, slot)
        if value is _UNMADE:
            with _BUILDING:
                value = getattr(self, slot)
                if value is _UNMADE:
                    value = make()
                    setattr(self, slot, value)
        return value

    @property
    def data(self) -> np.ndarray:
        """``(nchunks, k, chunk + pad)``: for each chunk of ``chunk`` pixels, the k masks'
        values as padded rows (zero beyond the last pixel), for the blocked kernels."""
        return self._made("_data", self._chunked)  # type: ignore[no-any-return]

    def _chunked(self) -> np.ndarray:
        source, chunk = self._source, self.chunk
        nchunks = -(-self.npix // chunk)
        data = np.zeros((nchunks, self.k, chunk + _PACK_PAD), source.dtype)
        for c in range(nchunks):
            p0 = c * chunk
            p1 = min(p0 + chunk, self.npix)
            data[c, :, : p1 - p0] = source[p0:p1].T
        return data

    def amx(self) -> Any:
        """The masks laid out for the AMX kernel (:func:`libertem_gpu.kernels.amx.pack`), or
        None where it cannot take them (more than 16 masks, a value not finite); made on
        first use and kept."""
        return self._made("_amx", lambda: amx.pack(self._source) if self.k <= 16 else None)

    def groups(self) -> np.ndarray | None:
        """float32 masks in groups of 16 for the outer-product kernel
        (:func:`libertem_gpu.kernels.masks_outer_cpu.group_masks`), or None where they are
        not float32; made on first use and kept."""
        if self.dtype != np.float32:
            return None
        from libertem_gpu.kernels.masks_outer_cpu import group_masks

        return self._made("_groups", lambda: group_masks(self._source))  # type: ignore[no-any-return]

    @property
    def k(self) -> int:
        """Number of masks."""
        return int(self._source.shape[1])

    @property
    def dtype(self) -> np.dtype:
        """float32 or float64."""
        return self._source.dtype

    @property
    def shape(self) -> tuple[int, int]:
        """``(npix, k)``, the shape of the transposed stack it was packed from."""
        return (self.npix, self.k)

    @property
    def nbytes(self) -> int:
        """Bytes held by the layouts made so far (the stack they are made from not counted)."""
        total = 0
        for value in (self._data, self._amx, self._groups):
            if value is not _UNMADE and value is not None:
                total += value.digits.nbytes if value is self._amx else value.nbytes
        return int(total)


def pack_dense(masks_t: np.ndarray, chunk: int | None = None) -> PackedMasks:
    """Lay out a transposed dense mask stack for the CPU kernels of several masks (each
    layout on first use).

    Parameters
    ----------
    masks_t : numpy.ndarray
        ``(npix, k)`` float32 or float64, any memory layout.
    chunk : int, optional
        Pixels per chunk; by default 1024 where the compiled target has AVX-512, else 4096.

    Returns
    -------
    PackedMasks
        To pass to :func:`cpu_dense` in place of ``masks_t``, for every tile of a run.
    """
    if chunk is None:
        chunk = _PACK_CHUNK if target_has("avx512f") else _PACK_CHUNK_AVX2
    if masks_t.ndim != 2:
        raise ShapeMismatchError(f"masks_t must have shape (npix, k), got {masks_t.shape}")
    if masks_t.dtype not in (np.float64, np.float32):
        raise TypeError(f"masks_t must be float32 or float64, got {masks_t.dtype}")
    if chunk < 1:
        raise ValueError(f"chunk must be positive, got {chunk}")
    return PackedMasks(masks_t, chunk)
