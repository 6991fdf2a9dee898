"""The interface every compute backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from libertem_gpu.io.dataset import DataSet
    from libertem_gpu.io.tiles import TilePlan, TileSlice


class Backend(ABC):
    """A place where tiles are processed.

    Subclasses are registered by name (see :func:`libertem_gpu.backends.register_backend`).
    One instance lives in a worker for the length of a partition task.
    """

    #: Name used in ``get_backends()`` of UDFs and in ``Context(backend=...)``.
    name: ClassVar[str]
    #: ``"cpu"`` or ``"cuda"``: which kind of device the data lives on.
    device_class: ClassVar[str]

    @classmethod
    @abstractmethod
    def is_available(cls) -> bool:
        """Whether this backend can run here; must not raise."""

    @classmethod
    def unavailable_reason(cls) -> str:
        """Why :meth:`is_available` is False, for error messages."""
        return f"backend {cls.name!r} is not available"

    @property
    @abstractmethod
    def xp(self) -> ModuleType:
        """The array module (``numpy`` or ``cupy``)."""

    def zeros(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """Allocate a zero-filled buffer where this backend computes."""
        return self.xp.zeros(shape, dtype=dtype)

    def to_numpy(self, array: Any) -> np.ndarray:
        """Return ``array`` as a NumPy array (a copy from the device where needed)."""
        return np.asarray(array)

    @abstractmethod
    def iter_tiles(self, dataset: DataSet, plan: TilePlan) -> Iterator[tuple[TileSlice, Any]]:
        """Yield each tile of ``plan`` with its data, in plan order.

        The data is an array of the backend (native byte order, the data set's dtype) of shape
        ``(frames, *sig)`` for whole frames or ``(frames, rows, *sig[1:])`` for partial frames. It
        is valid until the next tile is requested: buffers are reused.
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release buffers and threads held by this backend instance."""
