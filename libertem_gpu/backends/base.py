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
    #: The resource a dask worker advertises when it can run this backend's partition tasks.
    worker_resource: ClassVar[str] = "CPU"
    #: The setting (see :mod:`libertem_gpu.config`) that sizes the tiles this backend fills.
    tile_bytes_setting: ClassVar[str] = "tile_bytes_cpu"
    #: The setting that sizes tiles which are views of a memory-mapped file, or None where this
    #: backend always fills buffers.
    mapped_tile_bytes_setting: ClassVar[str | None] = None
    #: The setting that caps the bytes of a tile converted to a UDF's element type (or
    #: corrected), so that the copy stays in the cache; None where tiles keep their size.
    converted_tile_bytes_setting: ClassVar[str | None] = None
    #: Tiles a partition should hold at least, so that a backend that overlaps reading, copying
    #: and computing reaches its steady state inside each partition.
    min_tiles_per_partition: ClassVar[int] = 1
    #: Whether the kernels may be handed big-endian tiles in stored byte order (swapping as
    #: they read); otherwise this backend converts byte order where it fills its buffers.
    kernels_read_stored_order: ClassVar[bool] = False

    @classmethod
    @abstractmethod
    def is_available(cls) -> bool:
        """Whether this backend can run here; must not raise."""

    @classmethod
    def unavailable_reason(cls) -> str:
        """Why :meth:`is_available` is False, for error messages."""
        return f"backend {cls.name!r} is not available"

    @classmethod
    def select_devices(cls, devices: Any) -> tuple[int, ...] | None:
        """Check a ``Context(devices=...)`` request when a run is planned and return the devices
        the run's workers use (None: the backend's default). Backends without devices ignore it.
        """
        return None

    def __init__(self, devices: tuple[int, ...] | None = None) -> None:  # noqa: B027
        """Set up for one partition task in this worker, on ``devices`` (from the run plan)."""

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

    def free_device_bytes(self) -> int | None:
        """Bytes free on this backend's device, for arrays kept there; None where its arrays
        are in host memory."""
        return None

    @abstractmethod
    def iter_tiles(self, dataset: DataSet, plan: TilePlan) -> Iterator[tuple[TileSlice, Any]]:
        """Yield each tile of ``plan`` with its data, in plan order.

        The data is an array of the backend (native byte order, the data set's dtype) of shape
        ``(frames, *sig)`` for whole frames or ``(frames, rows, *sig[1:])`` for partial frames. It
        is valid until the next tile is requested: buffers are reused.
        """

    def io_paths(self) -> dict[str, int]:
        """Bytes of the tiles of the partition last iterated, by the I/O path that brought
        them (e.g. ``{"pinned": n}``); empty where this backend does not record them."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release buffers and threads held by this backend instance."""
