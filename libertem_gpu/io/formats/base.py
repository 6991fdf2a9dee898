"""The :class:`FileDataSet` base of the file formats: the shared constructor, its parameters
documented once, and the helpers every format uses to check and sniff its files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from libertem_gpu.errors import DataSetError, MissingFileError
from libertem_gpu.io.dataset import DataSet, DataSetOptions

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["FileDataSet", "StoreDataSet", "read_head", "require_file"]


class FileDataSet(DataSet):
    """A data set read from one or more files: the base of every file format.

    A format subclass parses its headers in ``_initialize`` and says where its frames lie
    (a :class:`~libertem_gpu.io.fixed_layout.FixedLayoutReader` over
    :class:`~libertem_gpu.io.layout.FileSegment` runs, or a reader that decodes). Its
    constructor takes its own options and hands the shared ones below to this class
    (``**options``); its docstring documents only its own.

    Parameters
    ----------
    path : str or os.PathLike
        The file to open (for multi-file formats: the file that names or finds the others).
        Files are opened read-only.
    nav_shape : tuple of int, optional
        Scan shape (1 to 3 dims); by default what the file says (formats whose files hold no
        scan shape document their default).
    sig_shape : tuple of int, optional
        Frame shape (1 to 3 dims), e.g. to reshape the frames (same number of pixels); by
        default what the file says.
    sync_offset : int
        Positive: skip this many frames at the start of the file. Negative: insert this many
        blank frames before the first frame. Frames past the end of the file are blank.
    num_partitions : int, optional
        Split into this many partitions instead of sizing them by bytes.
    """

    def __init__(self, path: str | os.PathLike[str], **options: Unpack[DataSetOptions]) -> None:
        super().__init__(**options)
        self.path = os.fspath(path)

    def initialize(self) -> FileDataSet:
        """Read and check the metadata; returns ``self``. Besides the format's own checks, the
        frames a header declares must lie inside the files: a header that claims more data
        than the files hold is an error now, not a run that reads past the end (or plans
        buffers for a scan that is not there)."""
        super().initialize()
        with self.get_reader() as reader:
            layout = reader.raw_layout()
            if layout is not None:
                layout.check_file_sizes(
                    f"{self.image_count} frames of {self.sig_shape} {self.storage_dtype}"
                )
        return self


class StoreDataSet(FileDataSet):
    """An array inside a hierarchical store (HDF5 file, Zarr store): scan axes first, then
    ``sig_dims`` frame axes.

    Parameters
    ----------
    path : str or os.PathLike
        The file or store.
    ds_path : str, optional
        Path of the array inside the store, e.g. ``"/entry/data/data"``. By default the largest
        numeric array with more axes than ``sig_dims``.
    sig_dims : int
        How many trailing axes form a frame (1 or 2).
    **options
        ``nav_shape``, ``sig_shape`` (the frame keeps its number of pixels), ``sync_offset``,
        ``num_partitions`` (rounded to chunk boundaries): see :class:`FileDataSet`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        ds_path: str | None = None,
        sig_dims: int = 2,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self.ds_path = ds_path
        self.sig_dims = int(sig_dims)
        if self.sig_dims not in (1, 2):
            raise DataSetError(f"sig_dims must be 1 or 2, got {sig_dims}")


def require_file(path: str | os.PathLike[str], what: str = "data file") -> str:
    """Return ``path`` as a string if it is an existing file, else raise
    :class:`MissingFileError`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"{what} {path!r} does not exist or is not a file")
    return path


def read_head(path: str | os.PathLike[str], nbytes: int) -> bytes:
    """The first ``nbytes`` bytes of ``path`` (fewer where the file is shorter), or ``b""`` where
    it cannot be read (missing, a directory): what ``guess_can_open`` looks at."""
    try:
        with open(path, "rb") as f:
            return f.read(nbytes)
    except OSError:
        return b""
