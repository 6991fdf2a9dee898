"""EMPAD detector data: an ``.xml`` description and a ``.raw`` file of 130-row frames, whose last
two rows are metadata (dropped here as a frame footer)."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError, MissingFileError
from libertem_gpu.io.dataset import DataSetOptions, parse_dtype
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.layout import FileSegment

if TYPE_CHECKING:
    from typing_extensions import Unpack

SIG_SHAPE = (128, 128)
RAW_ROWS = 130
_DTYPE_TAGS = ("data_type", "datatype", "pixel_type", "dtype")


def parse_empad_xml(text: bytes, path: str) -> dict[str, Any]:
    """Raw file name, scan shape and element type from an EMPAD ``.xml``.

    Raises
    ------
    FileFormatError
        If the XML is malformed or lacks the raw file name or a scan shape.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise FileFormatError(f"{path}: not a valid EMPAD .xml file: {e}") from None
    raw_node = root.find("raw_file")
    raw_name = raw_node.get("filename") if raw_node is not None else None
    if not raw_name:
        raise FileFormatError(
            f"{path}: expected a <raw_file filename=...> element naming the .raw data file"
        )

    def integer(node: ET.Element | None, what: str) -> int | None:
        if node is None or node.text is None:
            return None
        try:
            value = int(node.text.strip())
        except ValueError:
            raise FileFormatError(
                f"{path}: {what} should be an integer, found {node.text.strip()[:20]!r}"
            ) from None
        if value <= 0:
            raise FileFormatError(f"{path}: {what} must be positive, found {value}")
        return value

    kind = (root.findtext("type") or "scan").strip()
    nav: tuple[int, ...] | None = None
    if kind == "series":
        count = integer(root.find("count"), "<count>") or integer(
            root.find("scan_parameters/series_count"), "<series_count>"
        )
        nav = (count,) if count else None
    elif kind == "scan":
        for params in root.findall("scan_parameters"):
            if params.get("mode", "acquire") == "acquire":
                x = integer(params.find("scan_resolution_x"), "<scan_resolution_x>")
                y = integer(params.find("scan_resolution_y"), "<scan_resolution_y>")
                if x and y:
                    nav = (y, x)
                    break
        if nav is None:
            x = integer(root.find("pix_x"), "<pix_x>")
            y = integer(root.find("pix_y"), "<pix_y>")
            if x and y:
                nav = (y, x)
        if nav is None:
            match = re.search(r"_x(\d+)_y(\d+)\.raw$", raw_name)
            if match:
                nav = (int(match.group(2)), int(match.group(1)))
    else:
        raise FileFormatError(f"{path}: unknown EMPAD <type> {kind!r}, expected scan or series")
    dtype = None
    for tag in _DTYPE_TAGS:
        text_value = root.findtext(tag)
        if text_value:
            dtype = text_value.strip().lower()
            if dtype not in ("float32", "uint32"):
                raise FileFormatError(f"{path}: <{tag}> is {dtype!r}, expected float32 or uint32")
            break
    return {"raw_filename": raw_name, "nav_shape": nav, "dtype": dtype, "type": kind}


class EMPADDataSet(FileDataSet):
    """An EMPAD acquisition.

    Parameters
    ----------
    path : str
        The ``.xml`` file (the ``.raw`` it names is read from the same folder), or the ``.raw``
        file itself together with ``nav_shape``.
    nav_shape : tuple of int, optional
        Scan shape; defaults to what the XML says.
    sig_shape : tuple of int, optional
        Reshape the 128x128 frames (same number of pixels).
    dtype : str, optional
        ``"float32"`` (the EMPAD default) or ``"uint32"``; defaults to what the XML says.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("empad", path="acquisition.xml")  # doctest: +SKIP
    """

    format_name = "empad"
    extensions = ("xml",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        dtype: Any = None,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self._dtype_arg = None if dtype is None else parse_dtype(dtype)

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        if not str(path).lower().endswith(".xml"):
            return False
        return b"<raw_file" in read_head(path, 4096)

    def _initialize(self) -> None:
        path = require_file(self.path, "EMPAD file")
        info: dict[str, Any] = {"nav_shape": None, "dtype": None}
        if path.lower().endswith(".xml"):
            with open(path, "rb") as f:
                info = parse_empad_xml(f.read(1 << 22), path)
            # The XML may name the file with a Windows path: only its last part is used.
            raw_name = re.split(r"[\\/]", info["raw_filename"])[-1]
            raw_path = os.path.join(os.path.dirname(path), raw_name)
            if not os.path.isfile(raw_path):
                raise MissingFileError(
                    f"{path}: the data file {raw_path!r} it names does not exist"
                )
        else:
            raw_path = path
            if self._nav_shape_arg is None:
                raise MissingFileError(
                    f"{path}: the scan shape is in the EMPAD .xml file; open the .xml, or pass "
                    "nav_shape="
                )
        nav = self._nav_shape_arg or info["nav_shape"]
        if nav is None:
            raise FileFormatError(f"{path}: no scan shape found in the XML; pass nav_shape=")
        dtype = self._dtype_arg or np.dtype(info["dtype"] or "float32")
        if dtype.itemsize != 4:
            raise DataSetError(f"EMPAD frames hold 4-byte pixels, got dtype {dtype}")
        row_bytes = SIG_SHAPE[1] * dtype.itemsize
        stride = RAW_ROWS * row_bytes
        footer = (RAW_ROWS - SIG_SHAPE[0]) * row_bytes
        size = os.stat(raw_path).st_size
        # The last frame's footer rows may be missing; a partial frame is truncation.
        count = (size + footer) // stride
        if count == 0:
            raise FileFormatError(
                f"{raw_path}: file has {size} bytes, less than one {RAW_ROWS}x{SIG_SHAPE[1]} "
                f"{dtype} frame (truncated file?)"
            )
        self._raw_path = raw_path
        self._set_layout(tuple(nav), SIG_SHAPE, dtype.newbyteorder("<"), count, source=raw_path)
        self._meta = {"path": path, "raw_path": raw_path, "file_size": size, "xml": info}

    def get_reader(self) -> FixedLayoutReader:
        stride = RAW_ROWS * SIG_SHAPE[1] * self.storage_dtype.itemsize
        segment = FileSegment(self._raw_path, 0, stride, self.image_count)
        return FixedLayoutReader([segment], self.sig_shape, self.storage_dtype)
