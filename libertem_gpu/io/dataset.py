"""The :class:`DataSet` base class: what every file format implements."""

from __future__ import annotations

import dataclasses
import math
import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError, ShapeMismatchError
from libertem_gpu.io.partition import Partition, make_partitions, partition_frame_count
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.shape import Shape, as_integer, validate_dims

if TYPE_CHECKING:
    from libertem_gpu.io.calibration import Calibration


class SyncOptions(TypedDict, total=False):
    """The keyword arguments of data sets that require the shapes (see :class:`DataSet`)."""

    sync_offset: int
    num_partitions: int | None


class DataSetOptions(SyncOptions, total=False):
    """The keyword arguments that every data set takes (see :class:`DataSet`)."""

    nav_shape: tuple[int, ...] | None
    sig_shape: tuple[int, ...] | None


def parse_dtype(dtype: Any, what: str = "dtype") -> np.dtype:
    """Return ``dtype`` as a numeric :class:`numpy.dtype`, or raise a clear
    :class:`DataSetError`."""
    try:
        result = np.dtype(dtype)
    except TypeError:
        raise DataSetError(
            f"unknown {what} {dtype!r}: expected a NumPy dtype such as 'uint16', '>u2' "
            "(big-endian) or 'float32'"
        ) from None
    if result.kind not in "biufc" or result.hasobject:
        raise DataSetError(
            f"unsupported {what} {result}: expected a boolean, integer, floating point or "
            "complex type"
        )
    return result


def split_shape(
    shape: tuple[int, ...], sig_dims: int, what: str
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Split an array's ``shape`` into scan axes and ``sig_dims`` frame axes, or raise a
    :class:`DataSetError` that names ``what`` (e.g. ``"array"``, ``"<path>: array"``)."""
    if not 1 <= sig_dims <= 3 or len(shape) <= sig_dims:
        raise DataSetError(
            f"{what} of shape {tuple(shape)} cannot be split into scan and {sig_dims} "
            "signal dimensions (sig_dims must be 1 to 3, with at least one scan axis)"
        )
    return tuple(shape[:-sig_dims]), tuple(shape[-sig_dims:])


def native(dtype: np.dtype) -> np.dtype:
    """``dtype`` in the machine's byte order."""
    return dtype.newbyteorder("=") if dtype.byteorder not in ("=", "|") else dtype


class DataSet(ABC):
    """A hyper-rectangular data set: ``nav_shape`` positions of ``sig_shape`` frames.

    Subclasses parse their headers in :meth:`_initialize` (calling :meth:`_set_layout`) and give
    a :class:`~libertem_gpu.io.reader.FrameReader`. A data set holds only metadata, so that it
    pickles cheaply to workers; readers are opened where the work runs.

    Parameters
    ----------
    nav_shape : tuple of int, optional
        Scan shape (1 to 3 dims); overrides what the file says.
    sig_shape : tuple of int, optional
        Frame shape (1 to 3 dims); overrides what the file says where a format allows.
    sync_offset : int
        Positive: skip this many frames at the start of the file. Negative: insert this many blank
        frames before the first frame. Frames past the end of the file are blank.
    num_partitions : int, optional
        Split into this many partitions instead of sizing them by bytes.
    """

    #: Name used in ``ctx.load(name, ...)``.
    format_name: ClassVar[str] = ""
    #: Lower-case file name extensions (without dot) that :meth:`guess_can_open` accepts.
    extensions: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        *,
        nav_shape: tuple[int, ...] | None = None,
        sig_shape: tuple[int, ...] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ) -> None:
        self._nav_shape_arg = (
            None if nav_shape is None else validate_dims(nav_shape, "nav_shape", 1, 3)
        )
        self._sig_shape_arg = (
            None if sig_shape is None else validate_dims(sig_shape, "sig_shape", 1, 3)
        )
        self._sync_offset = as_integer(sync_offset, "sync_offset")
        if num_partitions is not None:
            num_partitions = as_integer(num_partitions, "num_partitions")
            if num_partitions <= 0:
                raise DataSetError(f"num_partitions must be positive, got {num_partitions}")
        self._num_partitions = num_partitions
        self._shape: Shape | None = None
        self._storage_dtype: np.dtype | None = None
        self._image_count = 0
        self._meta: dict[str, Any] = {}

    # --- what a format implements -------------------------------------------------------------

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        """Whether ``path`` looks like this format; cheap (extension, magic bytes), never raises."""
        return os.path.splitext(str(path))[1].lower().lstrip(".") in cls.extensions

    @abstractmethod
    def _initialize(self) -> None:
        """Parse headers, validate them against the file sizes, call :meth:`_set_layout`."""

    @abstractmethod
    def get_reader(self) -> FrameReader:
        """A reader of this data set's frames, opened read-only."""

    # --- shared machinery ---------------------------------------------------------------------

    def initialize(self) -> DataSet:
        """Read and check the metadata; returns ``self``. Called by ``Context.load``."""
        self._initialize()
        if self._shape is None:
            raise NotImplementedError(f"{type(self).__name__}._initialize must call _set_layout")
        return self

    def _set_layout(
        self,
        nav_shape: tuple[int, ...],
        sig_shape: tuple[int, ...],
        storage_dtype: np.dtype,
        image_count: int,
        source: str = "",
    ) -> None:
        """Record the data set's shape, stored element type and number of frames in the source.

        ``nav_shape`` and ``sig_shape`` are what the file says; the user's overrides win. Checks
        that the frame count and ``sync_offset`` fit together.
        """
        file_sig = tuple(int(d) for d in sig_shape)
        sig = self._sig_shape_arg or file_sig
        if math.prod(sig) != math.prod(file_sig):
            raise ShapeMismatchError(
                f"{source or 'data set'}: sig_shape {sig} has {math.prod(sig)} pixels, but the "
                f"frames hold {math.prod(file_sig)} ({file_sig})"
            )
        nav = self._nav_shape_arg or validate_dims(nav_shape, "nav_shape", 1, 3)
        validate_dims(sig, "sig_shape", 1, 3)
        self._shape = Shape(nav=tuple(nav), sig=tuple(sig))
        self._storage_dtype = np.dtype(storage_dtype)
        self._image_count = int(image_count)
        nav_size = self._shape.nav_size
        if not -nav_size < self._sync_offset < max(1, self._image_count):
            raise DataSetError(
                f"{source or 'data set'}: sync_offset must lie between {-nav_size + 1} and "
                f"{max(1, self._image_count) - 1} for {nav_size} scan positions and "
                f"{self._image_count} frames, got {self._sync_offset}"
            )
        if self._sync_offset == 0 and self._image_count < nav_size:
            raise FileFormatError(
                f"{source or 'data set'}: holds {self._image_count} frames, but nav_shape "
                f"{tuple(nav)} needs {nav_size} (truncated file, or wrong nav_shape? pass a "
                "smaller nav_shape, or a sync_offset to pad with blank frames)"
            )

    @property
    def shape(self) -> Shape:
        """Navigation and signal shape."""
        if self._shape is None:
            raise DataSetError(f"{type(self).__name__} is not initialized: call initialize()")
        return self._shape

    @property
    def nav_shape(self) -> tuple[int, ...]:
        """Scan shape."""
        return self.shape.nav

    @property
    def sig_shape(self) -> tuple[int, ...]:
        """Frame shape."""
        return self.shape.sig

    @property
    def storage_dtype(self) -> np.dtype:
        """Element type as stored (may be big-endian)."""
        assert self._storage_dtype is not None, "initialize() first"
        return self._storage_dtype

    @property
    def dtype(self) -> np.dtype:
        """Element type of the frames in native byte order, as UDFs see them."""
        return native(self.storage_dtype)

    @property
    def image_count(self) -> int:
        """Number of frames in the source file(s)."""
        return self._image_count

    @property
    def sync_offset(self) -> int:
        """Frames skipped (positive) or blank frames inserted (negative) at the start."""
        return self._sync_offset

    @property
    def frame_bytes(self) -> int:
        """Bytes of one stored frame."""
        return self.shape.sig_size * self.storage_dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the whole data set as stored (one frame per scan position)."""
        return self.shape.nav_size * self.frame_bytes

    @property
    def meta(self) -> dict[str, Any]:
        """Format-specific metadata found in the file (for ``libertem-gpu info``)."""
        return dict(self._meta)

    @property
    def calibration(self) -> Calibration:
        """Physical calibration recorded in the file: scan step, detector pixel size, camera
        length and their units (:class:`~libertem_gpu.io.calibration.Calibration`; empty where
        the format records none). Saved with results and used for their axes."""
        from libertem_gpu.io.calibration import Calibration, fit

        found = self._calibration() or Calibration()
        return dataclasses.replace(
            found,
            nav=fit(found.nav, len(self.nav_shape)),
            sig=fit(found.sig, len(self.sig_shape)),
        )

    def _calibration(self) -> Calibration | None:
        """What the format records (formats that hold calibration override this)."""
        return None

    def get_partitions(self, n_workers: int = 1) -> list[Partition]:
        """Split the data set into partitions for ``n_workers`` workers."""
        frames = partition_frame_count(
            self.shape.nav_size, self.frame_bytes, n_workers, num_partitions=self._num_partitions
        )
        return make_partitions(self.shape.nav_size, frames)

    def get_correction_data(self) -> Any:
        """The detector corrections runs over this data set apply unless they pass their own
        (``ctx.load(..., corrections=...)``; LiberTEM's name), or None."""
        return getattr(self, "_corrections", None)

    def set_corrections(self, corrections: Any) -> None:
        """Make ``corrections`` (a :class:`~libertem_gpu.corrections.CorrectionSet` or None)
        this data set's default, checked against its frame shape."""
        from libertem_gpu.corrections.corrset import as_correction_set

        checked = as_correction_set(corrections)
        if checked is not None:
            checked.check(self.sig_shape)
        self._corrections = checked

    def check_roi(self, roi: Any) -> np.ndarray | None:
        """Return ``roi`` as a flat boolean mask over the scan, or ``None`` for all frames.

        Raises
        ------
        ShapeMismatchError
            If ``roi`` matches neither ``nav_shape`` nor the flat scan.
        """
        if roi is None:
            return None
        roi = np.asarray(roi)
        if roi.dtype != bool:
            raise ShapeMismatchError(f"roi must be a boolean array, got dtype {roi.dtype}")
        if roi.shape not in (self.nav_shape, (self.shape.nav_size,)):
            raise ShapeMismatchError(
                f"roi has shape {roi.shape}, expected the scan shape {self.nav_shape} "
                f"(or the flat {(self.shape.nav_size,)})"
            )
        return np.ascontiguousarray(roi.reshape(-1))

    def info(self) -> dict[str, Any]:
        """A summary of what the data set holds."""
        return {
            "format": self.format_name,
            "nav_shape": self.nav_shape,
            "sig_shape": self.sig_shape,
            "dtype": str(self.storage_dtype),
            "image_count": self.image_count,
            "sync_offset": self.sync_offset,
            "nbytes": self.nbytes,
            **self.meta,
        }

    def __repr__(self) -> str:
        if self._shape is None:
            return f"<{type(self).__name__} (not initialized)>"
        return (
            f"<{type(self).__name__} nav={self.nav_shape} sig={self.sig_shape} "
            f"dtype={self.storage_dtype}>"
        )
