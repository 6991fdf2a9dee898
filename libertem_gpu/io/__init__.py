"""Data sets and file formats, partitioning, and readers."""

from libertem_gpu.io.dataset import DataSet
from libertem_gpu.io.partition import Partition
from libertem_gpu.io.reader import FrameReader
from libertem_gpu.io.registry import format_names, get_format, load, register_format

__all__ = [
    "DataSet",
    "FrameReader",
    "Partition",
    "format_names",
    "get_format",
    "load",
    "register_format",
]
