"""Gatan DigitalMicrograph ``.dm3``/``.dm4`` files holding 2-D to 4-D image data (4D-STEM stacks).

Layout, as Gatan's tag file format defines it:

- a header of big-endian integers: version (3 or 4), length of the root tag group, and the byte
  order of the tag data (1: little-endian);
- a tree of tag groups and tags. A group entry: type ``20``, label length (big-endian ``u2``),
  label, [DM4: entry length, ``u8``], sorted and open flags, number of entries. A data entry: type
  ``21``, label, [DM4: entry length], ``"%%%%"``, the number of type descriptors and the
  descriptors (big-endian, ``u8`` in DM4, ``u4`` in DM3), then the value in the data byte order.
  Descriptors: a simple type code; ``18`` string; ``15`` struct (name length, field count, then
  name length and type per field); ``20`` array (element type or struct descriptor, length).
- images live in ``ImageList``: each unnamed group holds ``ImageData`` (``Data`` array,
  ``DataType``, ``Dimensions`` listed fastest axis first) and ``ImageTags``.

4-D stacks come in two orders: C order (``ImageTags/Meta Data/Data Order Swapped`` = 1, written by
recent GMS), with dimensions ``(sig_x, sig_y, nav_x, nav_y)``; and GMS's older transposed order
(all scan positions of one detector pixel together), with dimensions ``(nav_x, nav_y, sig_x,
sig_y)``. Both are memory-mapped; the transposed one is read with a pixel-major stride (correct,
but every frame touches the whole file: convert such files for repeated use).
"""

from __future__ import annotations

import logging
import math
import mmap
import os
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError
from libertem_gpu.io.calibration import AxisCalibration, Calibration, axis
from libertem_gpu.io.dataset import DataSetOptions
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment, check_file_size
from libertem_gpu.io.reader import FrameReader

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

#: Simple tag value types: code -> struct format character.
_SIMPLE = {
    2: "h",
    3: "i",
    4: "H",
    5: "I",
    6: "f",
    7: "d",
    8: "?",
    9: "b",
    10: "B",
    11: "q",
    12: "Q",
}
_STRUCT, _STRING, _ARRAY = 15, 18, 20
#: Image DataType codes -> element type (byte order applied separately).
_IMAGE_DTYPES = {
    1: "i2",
    2: "f4",
    6: "u1",
    7: "i4",
    9: "i1",
    10: "u2",
    11: "u4",
    12: "f8",
    14: "u1",
}
_MAX_DEPTH = 64
_MAX_INFO = 4096
_SMALL_ARRAY = 4096  # arrays up to this many elements are read as values (labels, units)


@dataclass(frozen=True)
class ArrayRef:
    """A tag array: ``length`` elements of ``dtype`` at byte ``offset``; ``values`` holds them
    for small arrays of simple types (labels, units), ``None`` for large ones (image data)."""

    offset: int
    dtype: np.dtype
    length: int
    values: np.ndarray | None = None


class TagGroup:
    """A DM tag group: ordered ``(label, value)`` entries; unnamed entries have label ``""``."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, Any]] = []

    def get(self, label: str, default: Any = None) -> Any:
        """The first entry called ``label``, or ``default``."""
        for name, value in self.entries:
            if name == label:
                return value
        return default

    def find(self, *labels: str) -> Any:
        """Follow a path of labels; ``None`` where it breaks off."""
        node: Any = self
        for label in labels:
            if not isinstance(node, TagGroup):
                return None
            node = node.get(label)
        return node

    def items(self) -> list[Any]:
        """The values of all entries, in file order."""
        return [value for _, value in self.entries]


class _TagParser:
    def __init__(self, f: BinaryIO, path: str, size: int) -> None:
        self.f = f
        self.path = path
        self.size = size

    def fail(self, what: str) -> FileFormatError:
        return FileFormatError(
            f"{self.path}: malformed DM tag tree at byte {self.f.tell()}: {what}"
        )

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise FileFormatError(
                f"{self.path}: file ends at byte {self.f.tell()} inside the tag tree, expected "
                f"{n - len(data)} more bytes (truncated file?)"
            )
        return data

    def unpack(self, fmt: str) -> Any:
        values = struct.unpack(fmt, self.read(struct.calcsize(fmt)))
        return values[0] if len(values) == 1 else values

    def parse(self) -> tuple[int, TagGroup]:
        version = self.unpack(">i")
        if version not in (3, 4):
            raise FileFormatError(
                f"{self.path}: not a DigitalMicrograph file: expected version 3 or 4 in the first "
                f"4 bytes (big-endian), found {version}"
            )
        self.version = version
        self.count = ">Q" if version == 4 else ">I"
        self.unpack(self.count)  # root length: unreliable in the wild, not needed
        order = self.unpack(">i")
        if order not in (0, 1):
            raise FileFormatError(f"{self.path}: byte order flag must be 0 or 1, found {order}")
        self.order = "<" if order == 1 else ">"
        return version, self.group(0)

    def group(self, depth: int) -> TagGroup:
        if depth > _MAX_DEPTH:
            raise self.fail(f"tag groups nested deeper than {_MAX_DEPTH}")
        self.read(2)  # sorted, open
        n = self.unpack(self.count)
        if n > self.size:
            raise self.fail(f"group claims {n} entries in a file of {self.size} bytes")
        group = TagGroup()
        for _ in range(n):
            kind = self.unpack(">B")
            if kind == 0:  # end-of-file marker written after the root group
                break
            label = self.read(self.unpack(">H")).decode("latin-1")
            if self.version == 4:
                self.unpack(">Q")  # entry length
            if kind == 20:
                group.entries.append((label, self.group(depth + 1)))
            elif kind == 21:
                group.entries.append((label, self.data()))
            else:
                raise self.fail(f"entry {label!r} has type {kind}, expected 20 or 21")
        return group

    def data(self) -> Any:
        if self.read(4) != b"%%%%":
            raise self.fail("data entry does not start with '%%%%'")
        n = self.unpack(self.count)
        if not 0 < n <= _MAX_INFO:
            raise self.fail(f"{n} type descriptors")
        info = list(self.unpack(f">{n}{self.count[1]}") if n > 1 else [self.unpack(self.count)])
        return self.value(info)

    def simple_format(self, code: int) -> str:
        fmt = _SIMPLE.get(code)
        if fmt is None:
            raise self.fail(f"unknown tag value type {code}")
        return fmt

    def struct_format(self, info: list[int], at: int) -> tuple[str, int]:
        """The struct format of a struct descriptor starting at ``info[at]`` (the ``15``), and
        the index after it."""
        if at + 2 >= len(info):
            raise self.fail("struct descriptor is cut short")
        fields = info[at + 2]
        end = at + 3 + 2 * fields
        if fields > _MAX_INFO or end > len(info):
            raise self.fail(f"struct descriptor with {fields} fields is cut short")
        fmt = "".join(self.simple_format(info[at + 4 + 2 * k]) for k in range(fields))
        return fmt, end

    def value(self, info: list[int]) -> Any:
        code = info[0]
        if code in _SIMPLE:
            return self.unpack(self.order + _SIMPLE[code])
        if code == _STRING:
            if len(info) < 2:
                raise self.fail("string descriptor without a length")
            return self.read(self.checked(info[1], 1)).decode("latin-1")
        if code == _STRUCT:
            fmt, _ = self.struct_format(info, 0)
            return self.unpack(self.order + fmt)
        if code == _ARRAY:
            if len(info) < 3:
                raise self.fail("array descriptor is cut short")
            if info[1] == _STRUCT:
                fmt, end = self.struct_format(info, 1)
                if end >= len(info):
                    raise self.fail("struct array descriptor without a length")
                dtype = np.dtype([(f"f{k}", self.order + c) for k, c in enumerate(fmt)])
                length = info[end]
            else:
                dtype = np.dtype(self.order + self.simple_format(info[1]))
                length = info[2]
            offset = self.f.tell()
            nbytes = self.checked(length, dtype.itemsize)
            if length <= _SMALL_ARRAY and dtype.names is None:
                return ArrayRef(offset, dtype, length, np.frombuffer(self.read(nbytes), dtype))
            self.f.seek(offset + nbytes)
            return ArrayRef(offset, dtype, length)
        raise self.fail(f"unknown tag value type {code}")

    def checked(self, length: int, itemsize: int) -> int:
        nbytes = length * itemsize
        if nbytes > self.size - self.f.tell():
            raise FileFormatError(
                f"{self.path}: a tag value of {nbytes} bytes at byte {self.f.tell()} runs past the "
                f"end of the file ({self.size} bytes; truncated file?)"
            )
        return nbytes


def read_dm_tags(path: str) -> tuple[int, TagGroup]:
    """Parse the tag tree of a DM3/DM4 file; large arrays stay in the file as :class:`ArrayRef`.

    Returns
    -------
    version : int
        3 or 4.
    root : TagGroup
        The root tag group.

    Raises
    ------
    FileFormatError
        If the file is not a well-formed DM file.
    """
    size = os.stat(path).st_size
    with open(path, "rb") as f:
        return _TagParser(f, path, size).parse()


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _dimensions(path: str, index: int, group: TagGroup) -> list[int]:
    """The entries of an image's Dimensions tag group as ints; a clear error where one is not
    a whole number (a damaged file can hold a group, a string or a fraction there)."""
    values = [_scalar(d) for d in group.items()]
    for d in values:
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not float(d).is_integer():
            shown = d if isinstance(d, (int, float, str)) else type(d).__name__
            raise FileFormatError(
                f"{path}: image {index} has Dimensions entry {shown!r}, expected whole numbers"
            )
    return [int(d) for d in values]


def _text(value: Any) -> str:
    """A DM string tag as ``str`` (DM stores strings as arrays of UTF-16 code units); ``""``
    for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, ArrayRef) and value.values is not None and value.values.dtype.kind in "ui":
        return "".join(chr(c) for c in value.values.tolist() if 0 < c < 0xD800)
    return ""


def _positive(value: Any) -> float | None:
    """A tag's value as a positive finite float, or None."""
    value = _scalar(value)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    return float(value) if math.isfinite(value) and value > 0 else None


def dimension_calibrations(image: TagGroup, ndim: int) -> list[AxisCalibration | None]:
    """The calibration of each of ``ndim`` dimensions of an ``ImageList`` entry, in DM's order
    (fastest axis first), from ``ImageData/Calibrations/Dimension``.

    DM maps index ``i`` to ``(i - Origin) * Scale`` in ``Units``, so our offset is
    ``-Origin * Scale``. A dimension without units is uncalibrated (DM writes scale 1, origin 0
    and no units for those): None, as is any missing or malformed entry.
    """
    group = image.find("ImageData", "Calibrations", "Dimension")
    entries = group.items() if isinstance(group, TagGroup) else []
    found: list[AxisCalibration | None] = []
    for k in range(ndim):
        entry = entries[k] if k < len(entries) else None
        if not isinstance(entry, TagGroup):
            found.append(None)
            continue
        units = _text(entry.get("Units")).strip()
        if not units:
            found.append(None)
            continue
        scale, origin = _scalar(entry.get("Scale")), _scalar(entry.get("Origin", 0.0))
        try:
            offset = -float(origin) * float(scale)
        except (TypeError, ValueError):
            offset = 0.0
        found.append(axis(scale, units, offset))
    return found


class TransposedReader(FrameReader):
    """Frames of an array stored pixel-major (``sig`` before ``nav``), memory-mapped."""

    def __init__(
        self,
        path: str,
        offset: int,
        nav_size: int,
        file_sig: tuple[int, ...],
        sig_shape: tuple[int, ...],
        dtype: np.dtype,
    ) -> None:
        self.path = path
        self.offset = offset
        self.nav_size = nav_size
        self.file_sig = file_sig
        self.sig_shape = tuple(sig_shape)
        self.dtype = np.dtype(dtype)
        self._fd: int | None = None
        self._array: np.ndarray | None = None

    def _mapped(self) -> np.ndarray:
        if self._array is None:
            self._fd = os.open(self.path, os.O_RDONLY)
            mapping = mmap.mmap(self._fd, 0, prot=mmap.PROT_READ)
            count = math.prod(self.file_sig) * self.nav_size
            flat = np.frombuffer(mapping, dtype=self.dtype, count=count, offset=self.offset)
            self._array = flat.reshape(math.prod(self.file_sig), self.nav_size)
        return self._array

    def view(self, start: int, stop: int) -> np.ndarray | None:
        return self._mapped()[:, start:stop].T.reshape(stop - start, *self.sig_shape)

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        np.copyto(out, self._mapped()[:, start:stop].T.reshape(out.shape))

    def close(self) -> None:
        self._array = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def has_dm_magic(path: str) -> bool:
    """Whether ``path`` starts like a DM3/DM4 file (its version, big-endian); never raises."""
    head = read_head(path, 4)
    return len(head) == 4 and struct.unpack(">i", head)[0] in (3, 4)


class DMDataSet(FileDataSet):
    """A 2-D image, 3-D stack or 4-D STEM data set in a Gatan ``.dm3``/``.dm4`` file.

    Parameters
    ----------
    path : str
        The file.
    dataset_index : int, optional
        Which image of ``ImageList`` to read; default: the largest one of 2 to 4 dimensions
        (files often start with a thumbnail).
    force_c_order : bool
        Read a 4-D stack in C order even where its tags do not say so.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("dm", path="4dstem.dm4")  # doctest: +SKIP
    """

    format_name = "dm"
    extensions = ("dm3", "dm4")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dataset_index: int | None = None,
        force_c_order: bool = False,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self.dataset_index = dataset_index
        self.force_c_order = bool(force_c_order)
        self._offset = 0
        self._transposed = False
        self._file_sig: tuple[int, ...] = ()
        self._dm_calibration = Calibration()

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        if not super().guess_can_open(path):
            return False
        return has_dm_magic(path)

    def _images(self, root: TagGroup) -> list[tuple[int, TagGroup]]:
        images = root.get("ImageList")
        if not isinstance(images, TagGroup):
            raise FileFormatError(f"{self.path}: no ImageList tag group: not an image file")
        found = []
        self._skipped: list[tuple[int, str]] = []
        for index, image in enumerate(images.items()):
            data = image.find("ImageData", "Data") if isinstance(image, TagGroup) else None
            dims = image.find("ImageData", "Dimensions") if isinstance(image, TagGroup) else None
            if isinstance(data, ArrayRef) and isinstance(dims, TagGroup):
                found.append((index, image))
            else:
                missing = [
                    name
                    for name, ok in (
                        ("ImageData/Data", isinstance(data, ArrayRef)),
                        ("ImageData/Dimensions", isinstance(dims, TagGroup)),
                    )
                    if not ok
                ]
                self._skipped.append((index, f"no {' or '.join(missing)} tag"))
        if not found:
            raise FileFormatError(f"{self.path}: ImageList holds no image with data")
        return found

    def _pick(
        self, images: list[tuple[int, TagGroup]], image_list: TagGroup
    ) -> tuple[int, TagGroup]:
        """The largest image of 2 to 4 dimensions; an error where a larger one (or one of
        unknown size) has broken tags, since files often hold a small thumbnail first and
        silently reading the thumbnail instead of the data is worse than failing."""
        candidates, unusable = [], list(self._skipped)
        for idx, img in images:
            dims = [_scalar(d) for d in img.find("ImageData", "Dimensions").items()]
            if 2 <= len(dims) <= 4:
                candidates.append((idx, img))
            else:
                unusable.append((idx, f"Dimensions {dims}"))
        if not candidates:
            raise FileFormatError(f"{self.path}: holds no image of 2 to 4 dimensions")
        index, image = max(candidates, key=lambda c: (_data_length(c[1]), c[0]))
        chosen = _data_length(image)
        unknown = {i for i, _ in self._skipped}  # no Data tag: its size is unknown
        larger = [
            (i, why)
            for i, why in unusable
            if i in unknown or _data_length(_item(image_list, i)) >= chosen
        ]
        if larger:
            listed = "; ".join(f"image {i}: {why}" for i, why in larger)
            raise FileFormatError(
                f"{self.path}: the largest image cannot be read ({listed}); the only readable "
                f"one is image {index} ({chosen} bytes, often a thumbnail). Damaged tags? Pass "
                f"dataset_index={index} to read image {index} anyway"
            )
        return index, image

    def _initialize(self) -> None:
        path = require_file(self.path, "DM file")
        version, root = read_dm_tags(path)
        images = self._images(root)
        if self.dataset_index is None:
            index, image = self._pick(images, root.get("ImageList"))
        else:
            matches = [(idx, img) for idx, img in images if idx == self.dataset_index]
            if not matches:
                raise DataSetError(
                    f"{path}: no image with dataset_index={self.dataset_index}; images with data: "
                    f"{[idx for idx, _ in images]}"
                )
            index, image = matches[0]
        data = image.find("ImageData", "Data")
        dims = _dimensions(path, index, image.find("ImageData", "Dimensions"))
        code = _scalar(image.find("ImageData", "DataType"))
        if code not in _IMAGE_DTYPES:
            raise FileFormatError(
                f"{path}: image {index} has DataType {code}; supported: {sorted(_IMAGE_DTYPES)} "
                "(integer and real types)"
            )
        dtype = np.dtype(_IMAGE_DTYPES[code]).newbyteorder(data.dtype.byteorder)
        if len(dims) not in (2, 3, 4) or any(d <= 0 for d in dims):
            raise FileFormatError(f"{path}: image {index} has Dimensions {dims}, expected 2 to 4")
        if data.length * data.dtype.itemsize != math.prod(dims) * dtype.itemsize:
            raise FileFormatError(
                f"{path}: image {index}: Data holds {data.length * data.dtype.itemsize} bytes, but "
                f"Dimensions {dims} of {dtype} need {math.prod(dims) * dtype.itemsize}"
            )
        check_file_size(path, data.offset + math.prod(dims) * dtype.itemsize, "the image data")
        meta_tags = image.find("ImageTags", "Meta Data")
        fmt = meta_tags.get("Format") if isinstance(meta_tags, TagGroup) else None
        swapped = meta_tags.get("Data Order Swapped") if isinstance(meta_tags, TagGroup) else None
        if isinstance(fmt, ArrayRef) and fmt.values is not None:
            fmt = _text(fmt)
        if isinstance(fmt, str) and fmt.strip().lower() == "spectrum image":
            raise DataSetError(f"{path}: holds a spectrum image; this reader reads image stacks")
        rev = tuple(reversed(dims))
        # Calibrations are listed per dimension like Dimensions, so they take the same path.
        cal_rev = tuple(reversed(dimension_calibrations(image, len(dims))))
        nav: tuple[int, ...]
        sig: tuple[int, ...]
        nav_cal: tuple[AxisCalibration | None, ...]
        sig_cal: tuple[AxisCalibration | None, ...]
        self._transposed = False
        if len(dims) == 2:
            nav, sig = (1,), rev
            nav_cal, sig_cal = (None,), cal_rev
        elif len(dims) == 3:
            nav, sig = rev[:1], rev[1:]
            nav_cal, sig_cal = cal_rev[:1], cal_rev[1:]
        elif self.force_c_order or (swapped is not None and bool(_scalar(swapped))):
            nav, sig = rev[:2], rev[2:]
            nav_cal, sig_cal = cal_rev[:2], cal_rev[2:]
        else:
            # Transposed order: memory is (sig_y, sig_x, nav_y, nav_x).
            self._transposed = True
            nav, sig = rev[2:], rev[:2]
            nav_cal, sig_cal = cal_rev[2:], cal_rev[:2]
            log.warning(
                "%s: 4-D data in DM's transposed (pixel-major) order: reading frames is slow; "
                "pass force_c_order=True if the file is in fact C-ordered",
                path,
            )
        self._offset = data.offset
        self._file_sig = tuple(sig)
        camera = _positive(image.find("ImageTags", "Microscope Info", "STEM Camera Length"))
        self._dm_calibration = Calibration(
            nav=nav_cal,
            sig=sig_cal,
            camera_length=camera,
            camera_length_units="mm" if camera is not None else "",
            source="dm tags",
        )
        self._set_layout(nav, sig, dtype, math.prod(nav), source=path)
        self._meta = {
            "path": path,
            "dm_version": version,
            "dataset_index": index,
            "dm_dimensions": dims,
            "dm_data_type": code,
            "transposed": self._transposed,
            "format_tag": fmt,
        }

    def _calibration(self) -> Calibration:
        return self._dm_calibration

    def get_reader(self) -> FrameReader:
        if self._transposed:
            return TransposedReader(
                self.path,
                self._offset,
                self.image_count,
                self._file_sig,
                self.sig_shape,
                self.storage_dtype,
            )
        segment = FileSegment(self.path, self._offset, self.frame_bytes, self.image_count)
        return FixedLayoutReader([segment], self.sig_shape, self.storage_dtype)


def _data_length(image: Any) -> int:
    """Bytes of an image's data; 0 where its Data tag is missing (nothing to compare)."""
    if not isinstance(image, TagGroup):
        return 0
    data = image.find("ImageData", "Data")
    return data.length * data.dtype.itemsize if isinstance(data, ArrayRef) else 0


def _item(group: TagGroup, index: int) -> Any:
    items = group.items()
    return items[index] if 0 <= index < len(items) else None
