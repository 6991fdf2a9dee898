"""Data sets and file formats, partitioning, and readers.

``io/formats/`` holds one module per file format (what bytes make a frame); beside it sits the
machinery: the data set base, the frame layout (:class:`FrameLayout`, which bytes hold which
frames), readers, transports (how the bytes get into a buffer the caller chose), partitions,
tiles and the CPU and GPU data paths.
"""

from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.formats.base import FileDataSet
from libertem_gpu.io.layout import ByteRange, FileSegment, FrameLayout
from libertem_gpu.io.partition import Partition
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.io.registry import format_names, get_format, load, register_format

__all__ = [
    "ByteRange",
    "DataSet",
    "FileDataSet",
    "FileSegment",
    "FrameLayout",
    "FrameReader",
    "Partition",
    "format_names",
    "get_format",
    "load",
    "register_format",
]
