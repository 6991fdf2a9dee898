"""Result buffer declarations, the namespaces UDFs see them through, and the results returned to
callers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import UDFDefinitionError

KINDS = ("nav", "sig", "single")
USES = (None, "private", "result_only")


@dataclass(frozen=True)
class BufferDecl:
    """A result buffer a UDF declares in ``get_result_buffers``.

    Attributes
    ----------
    kind : {"nav", "sig", "single"}
        One value per frame, one frame-shaped accumulator, or one fixed-size value.
    extra_shape : tuple of int
        Extra trailing dimensions of each value.
    dtype : numpy.dtype
        Element type.
    use : {None, "private", "result_only"}
        ``"private"``: processed and merged, not returned. ``"result_only"``: not processed,
        computed in ``get_results``.
    where : str or None
        Accepted for LiberTEM compatibility; buffers live where the backend computes.
    """

    kind: str
    extra_shape: tuple[int, ...]
    dtype: np.dtype
    use: str | None = None
    where: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UDFDefinitionError(f"buffer kind must be one of {KINDS}, got {self.kind!r}")
        if self.use not in USES:
            raise UDFDefinitionError(f"buffer use must be one of {USES}, got {self.use!r}")

    def shape(self, num_frames: int, sig_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of this buffer for ``num_frames`` selected frames (raw, roi-compressed)."""
        if self.kind == "nav":
            return (num_frames, *self.extra_shape)
        if self.kind == "sig":
            return (*sig_shape, *self.extra_shape)
        return self.extra_shape or (1,)

    @property
    def is_processed(self) -> bool:
        """Whether the buffer exists while tiles are processed (not ``result_only``)."""
        return self.use != "result_only"


class BufferNamespace(Mapping[str, Any]):
    """Named arrays reachable as attributes (``ns.intensity``) or items (``ns["intensity"]``)."""

    __slots__ = ("_arrays",)

    def __init__(self, arrays: dict[str, Any]) -> None:
        object.__setattr__(self, "_arrays", arrays)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._arrays[name]
        except KeyError:
            raise AttributeError(
                f"no buffer named {name!r}; buffers: {sorted(self._arrays)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._arrays:
            raise AttributeError(f"no buffer named {name!r}; buffers: {sorted(self._arrays)}")
        self._arrays[name][...] = value

    def __getitem__(self, name: str) -> Any:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    def __repr__(self) -> str:
        return f"BufferNamespace({sorted(self._arrays)})"


def fill_value(dtype: np.dtype) -> Any:
    """What a navigation result holds outside the roi: NaN for floats, 0 otherwise."""
    return np.nan if np.dtype(dtype).kind in "fc" else 0


class BufferResult:
    """One result of a UDF run.

    Attributes
    ----------
    kind : str
        ``"nav"``, ``"sig"`` or ``"single"``.
    raw_data : numpy.ndarray
        For ``nav`` results the values of the selected frames only, in scan order (shape
        ``(frames_in_roi, *extra_shape)``); otherwise the same as :attr:`data`.
    """

    def __init__(
        self,
        kind: str,
        raw_data: np.ndarray,
        nav_shape: tuple[int, ...],
        roi: np.ndarray | None,
        valid: np.ndarray | None = None,
    ) -> None:
        self.kind = kind
        self.raw_data = raw_data
        self._nav_shape = nav_shape
        self._roi = roi
        self._valid = valid
        self._data: np.ndarray | None = None

    @property
    def dtype(self) -> np.dtype:
        """Element type."""
        return self.raw_data.dtype

    @property
    def data(self) -> np.ndarray:
        """The result; for ``nav`` results shaped like the scan, with NaN (floats) or 0 (others)
        outside the roi."""
        if self._data is None:
            if self.kind != "nav":
                self._data = self.raw_data
            else:
                extra = self.raw_data.shape[1:]
                if self._roi is None:
                    self._data = self.raw_data.reshape(self._nav_shape + extra)
                else:
                    full = np.full(
                        (int(np.prod(self._nav_shape)), *extra),
                        fill_value(self.dtype),
                        dtype=self.dtype,
                    )
                    full[self._roi] = self.raw_data
                    self._data = full.reshape(self._nav_shape + extra)
        return self._data

    @property
    def valid_mask(self) -> np.ndarray:
        """Boolean mask of the scan positions whose values are final (in the roi and processed);
        for ``sig``/``single`` results a scalar True once every frame is processed."""
        if self.kind != "nav":
            return np.asarray(self._valid is None or bool(np.all(self._valid)))
        mask = np.ones(int(np.prod(self._nav_shape)), dtype=bool)
        if self._roi is not None:
            mask &= self._roi
        if self._valid is not None:
            mask &= self._valid
        return mask.reshape(self._nav_shape)

    @property
    def masked_data(self) -> np.ma.MaskedArray:
        """:attr:`data` as a masked array, masking positions outside the roi and positions not
        yet processed (``nav`` results; others are masked as a whole until complete)."""
        data = self.data
        valid = self.valid_mask
        if self.kind == "nav":
            extra = data.ndim - valid.ndim
            mask = np.broadcast_to(~valid.reshape(valid.shape + (1,) * extra), data.shape)
        else:
            mask = np.broadcast_to(~valid, data.shape)
        return np.ma.MaskedArray(data, mask=mask)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of :attr:`data`."""
        return self.data.shape

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        data = self.data
        return data if dtype is None else data.astype(dtype)

    def __repr__(self) -> str:
        return f"<BufferResult kind={self.kind} shape={self.shape} dtype={self.dtype}>"
