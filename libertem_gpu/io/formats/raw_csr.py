"""Sparse frames in compressed sparse row (CSR) form: LiberTEM's ``raw_csr`` format, as event
counting detectors (Timepix3, Dectris in counting mode) are often converted to.

A TOML file names three raw files, paths relative to it::

    [params]
    filetype = "raw_csr"
    nav_shape = [512, 512]
    sig_shape = [516, 516]

    [raw_csr]
    indptr_file = "rowind.dat"
    indptr_dtype = "<i4"
    indices_file = "coords.dat"
    indices_dtype = "<i4"
    data_file = "values.dat"
    data_dtype = "<i4"

Row ``i`` of the matrix is frame ``i`` (scan positions flattened): its non-zero pixels are
``indices[indptr[i]:indptr[i + 1]]`` (flat pixel indices of the frame) with the values
``data[indptr[i]:indptr[i + 1]]``, the layout of ``scipy.sparse.csr_matrix``. The frames are
made dense as they are read (repeated indices add up, as in SciPy), so every analysis runs
on them unchanged.
"""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError
from libertem_gpu.io.dataset import DataSetOptions, parse_dtype
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.reader import FrameReader

if TYPE_CHECKING:
    from typing_extensions import Unpack

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["CSRDataSet", "CSRReader", "read_descriptor"]

#: What format detection reads of a TOML file: its [params] table comes first.
_HEAD_BYTES = 2**16
_FILES = ("indptr", "indices", "data")


def read_descriptor(path: str) -> dict[str, Any]:
    """The checked contents of a ``raw_csr`` TOML file.

    Returns
    -------
    dict
        ``nav_shape``, ``sig_shape`` (tuples), and for each of ``indptr``, ``indices`` and
        ``data``: ``<name>_file`` (absolute path) and ``<name>_dtype`` (numpy dtype).

    Raises
    ------
    FileFormatError
        Naming the file and the key that is missing, malformed or of the wrong kind.
    """
    try:
        with open(path, "rb") as f:
            conf = tomllib.load(f)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: not a valid TOML file: {e}") from None
    params = conf.get("params")
    if not isinstance(params, dict) or str(params.get("filetype", "")).lower() != "raw_csr":
        found = params.get("filetype") if isinstance(params, dict) else None
        raise FileFormatError(
            f'{path}: expected a [params] table with filetype = "raw_csr", found '
            f"{'no [params] table' if not isinstance(params, dict) else repr(found)}"
        )
    # LiberTEM names the table after the filetype as written; accept any case.
    table = next((v for k, v in conf.items() if k.lower() == "raw_csr"), None)
    if not isinstance(table, dict):
        raise FileFormatError(f"{path}: no [raw_csr] table naming the three files")
    out: dict[str, Any] = {}
    for key in ("nav_shape", "sig_shape"):
        value = params.get(key)
        if not (
            isinstance(value, list)
            and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
        ):
            raise FileFormatError(
                f"{path}: [params] {key} must be a list of positive integers, got {value!r}"
            )
        out[key] = tuple(value)
    base = os.path.dirname(os.path.abspath(path))
    for name in _FILES:
        file, dtype = table.get(f"{name}_file"), table.get(f"{name}_dtype")
        if not isinstance(file, str) or not isinstance(dtype, str):
            raise FileFormatError(
                f"{path}: [raw_csr] needs {name}_file and {name}_dtype as strings, got "
                f"{file!r} and {dtype!r}"
            )
        try:
            parsed = np.dtype(dtype)
        except TypeError:
            raise FileFormatError(f"{path}: [raw_csr] {name}_dtype {dtype!r} is no dtype") from None
        wanted = "iu" if name != "data" else "biuf"
        if parsed.kind not in wanted:
            kinds = "an integer" if name != "data" else "a real number"
            raise FileFormatError(f"{path}: [raw_csr] {name}_dtype must be {kinds}, got {dtype}")
        out[f"{name}_file"] = os.path.join(base, file)
        out[f"{name}_dtype"] = parsed
    return out


class CSRReader(FrameReader):
    """Makes frames dense from the three memory-mapped files (opened read-only)."""

    def __init__(self, files: dict[str, Any], sig_shape: tuple[int, ...]) -> None:
        self.files = files
        self.sig_shape = tuple(sig_shape)
        self.dtype = parse_dtype(files["data_dtype"], what=files["data_file"])
        self._maps: dict[str, np.ndarray] | None = None

    def _map(self) -> dict[str, np.ndarray]:
        if self._maps is None:
            maps = {}
            for name in _FILES:
                path, dtype = self.files[f"{name}_file"], self.files[f"{name}_dtype"]
                size = os.path.getsize(path) // dtype.itemsize
                # np.memmap refuses empty files; an empty matrix has no indices or data.
                maps[name] = (
                    np.memmap(path, dtype=dtype, mode="r", shape=(size,))
                    if size
                    else np.empty(0, dtype)
                )
            self._maps = maps
        return self._maps

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        maps = self._map()
        n = stop - start
        ptr = np.asarray(maps["indptr"][start : stop + 1], dtype=np.int64)
        if len(ptr) != n + 1:
            raise FileFormatError(
                f"{self.files['indptr_file']}: frames {start}..{stop - 1} need {n + 1} row "
                f"pointers from {start}, the file holds {len(maps['indptr'])}"
            )
        counts = np.diff(ptr)
        if (counts < 0).any() or ptr[0] < 0 or ptr[-1] > len(maps["indices"]):
            raise FileFormatError(
                f"{self.files['indptr_file']}: row pointers of frames {start}..{stop - 1} "
                f"decrease or point past the {len(maps['indices'])} entries of "
                f"{self.files['indices_file']} (from {ptr[0]} to {ptr[-1]})"
            )
        if ptr[-1] > len(maps["data"]):
            raise FileFormatError(
                f"{self.files['data_file']}: holds {len(maps['data'])} values, frames "
                f"{start}..{stop - 1} need {ptr[-1]}"
            )
        pixels = np.asarray(maps["indices"][ptr[0] : ptr[-1]], dtype=np.int64)
        npix = math.prod(self.sig_shape)
        if pixels.size and (pixels.min() < 0 or pixels.max() >= npix):
            raise FileFormatError(
                f"{self.files['indices_file']}: pixel index {int(pixels.max())} (or "
                f"{int(pixels.min())}) in frames {start}..{stop - 1} lies outside the "
                f"{npix} pixels of a {self.sig_shape} frame"
            )
        flat = out.reshape(n, npix)
        flat[...] = 0
        rows = np.repeat(np.arange(n), counts)
        values = np.asarray(maps["data"][ptr[0] : ptr[-1]])
        np.add.at(flat, (rows, pixels), values.astype(flat.dtype, copy=False))

    def close(self) -> None:
        self._maps = None


class CSRDataSet(FileDataSet):
    """Sparse frames in LiberTEM's ``raw_csr`` form: a TOML file naming the row pointer,
    index and value files of a CSR matrix with one row per frame (see the module docstring).

    Parameters
    ----------
    path : str
        The TOML file.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`; ``nav_shape`` and ``sig_shape``
        default to the TOML file's. The matrix's rows are the frames in the file.
    """

    format_name = "raw_csr"
    extensions = ("toml",)

    def __init__(self, path: str | os.PathLike[str], **options: Unpack[DataSetOptions]) -> None:
        super().__init__(path, **options)

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        if not str(path).lower().endswith(".toml"):
            return False
        head = read_head(path, _HEAD_BYTES).lower()
        return b"[params]" in head and b"raw_csr" in head

    def _initialize(self) -> None:
        path = require_file(self.path)
        files = read_descriptor(path)
        for name in _FILES:
            require_file(files[f"{name}_file"])
        sizes = {}
        for name in _FILES:
            nbytes = os.path.getsize(files[f"{name}_file"])
            itemsize = files[f"{name}_dtype"].itemsize
            if nbytes % itemsize:
                raise FileFormatError(
                    f"{files[f'{name}_file']}: {nbytes} bytes is no whole number of "
                    f"{files[f'{name}_dtype']} values (the {name} named in {path})"
                )
            sizes[name] = nbytes // itemsize
        if sizes["indptr"] < 1:
            raise FileFormatError(
                f"{files['indptr_file']}: empty; a matrix of n frames has n + 1 row pointers"
            )
        if sizes["indices"] != sizes["data"]:
            raise FileFormatError(
                f"{path}: {files['indices_file']} holds {sizes['indices']} pixel indices but "
                f"{files['data_file']} holds {sizes['data']} values; they pair up one to one"
            )
        last = np.memmap(files["indptr_file"], dtype=files["indptr_dtype"], mode="r")[-1]
        if not 0 <= int(last) <= sizes["indices"]:
            raise FileFormatError(
                f"{files['indptr_file']}: the last row pointer is {int(last)}, expected the "
                f"{sizes['indices']} entries of {files['indices_file']} or fewer"
            )
        image_count = sizes["indptr"] - 1
        if image_count < 1:
            raise DataSetError(f"{path}: the matrix holds no frames (one row pointer)")
        self._set_layout(
            files["nav_shape"], files["sig_shape"], files["data_dtype"], image_count, source=path
        )
        self._files = files
        self._meta = {
            "path": path,
            "nonzeros": sizes["data"],
            "frames_in_file": image_count,
            **{f"{n}_dtype": str(files[f"{n}_dtype"]) for n in _FILES},
        }

    def get_reader(self) -> CSRReader:
        return CSRReader(self._files, self.sig_shape)
