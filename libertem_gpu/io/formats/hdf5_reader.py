"""Reading HDF5 datasets: h5py (with the filters of ``hdf5plugin``) for compressed chunks, and
the byte ranges of uncompressed frames for direct reads through the transports.

h5py and hdf5plugin are imported where a file is opened, never when ``libertem_gpu`` is imported.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError
from libertem_gpu.io.chunked import library_errors, nav_blocks
from libertem_gpu.io.layout import FileSegment, split_at
from libertem_gpu.io.reader import FrameReader

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
# Where HDF5 looks for its superblock: 0, then 512, 1024, 2048, ... bytes (after a user block).
_SUPERBLOCK_OFFSETS = (0, 512, 1024, 2048, 4096)
# More runs of evenly spaced frames than this and the chunk table costs more to ship to every
# task than it saves: such files are read through h5py.
_MAX_DIRECT_SEGMENTS = 4096
_CHUNK_CACHE_MIN = 32 * 2**20
_CHUNK_CACHE_MAX = 512 * 2**20


def import_h5py() -> Any:
    """Import h5py with the compression filters of hdf5plugin (bitshuffle/LZ4, Blosc, Zstd, ...)
    registered, or raise a clear :class:`ImportError`."""
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - h5py is a dependency of the hdf5 extra
        raise ImportError("reading HDF5 files needs h5py: pip install h5py hdf5plugin") from e
    try:
        import hdf5plugin  # noqa: F401 - registers the filters with the HDF5 library
    except ImportError:  # pragma: no cover - compressed files then fail with a clear error
        pass
    return h5py


def has_hdf5_magic(path: str) -> bool:
    """Whether ``path`` is a file with an HDF5 superblock signature; never raises."""
    try:
        with open(path, "rb") as f:
            for offset in _SUPERBLOCK_OFFSETS:
                f.seek(offset)
                if f.read(len(HDF5_MAGIC)) == HDF5_MAGIC:
                    return True
    except OSError:
        return False
    return False


# --- where the frames are in the file -----------------------------------------------------------


def filter_ids(dset: Any) -> list[int]:
    plist = dset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def check_filters(dset: Any, path: str) -> None:
    """Raise :class:`FileFormatError` if a compression filter of ``dset`` is not available."""
    h5py = import_h5py()
    missing = [f for f in filter_ids(dset) if not h5py.h5z.filter_avail(f)]
    if missing:
        raise FileFormatError(
            f"{path}: dataset {dset.name} is compressed with HDF5 filter(s) {missing}, which are "
            "not available; install hdf5plugin (pip install hdf5plugin) for bitshuffle/LZ4, "
            "Blosc, Zstd and LZ4"
        )


BITSHUFFLE_FILTER = 32008


def bitshuffle_options(dset: Any) -> tuple[int, ...] | None:
    """The ``cd_values`` of the dataset's bitshuffle filter, or ``None`` if it has none."""
    plist = dset.id.get_create_plist()
    for i in range(plist.get_nfilters()):
        fid, _, values, _ = plist.get_filter(i)
        if fid == BITSHUFFLE_FILTER:
            return tuple(int(v) for v in values)
    return None


def check_bitshuffle_chunk(raw: bytes, chunk_bytes: int, itemsize: int, compressed: bool) -> str:
    """Check the framing of one bitshuffle-filtered chunk before HDF5 decodes it; return what is
    wrong, or ``""``.

    The bitshuffle filter trusts the sizes in a chunk (uncompressed size, block size, each
    block's compressed size), so a corrupt chunk could make it read or write out of bounds;
    checking them here turns that into an error instead of a crash.
    """
    if not compressed:
        return "" if len(raw) == chunk_bytes else f"holds {len(raw)} bytes, not {chunk_bytes}"
    if len(raw) < 12:
        return f"holds {len(raw)} bytes, too few for the 12-byte bitshuffle header"
    total, block = struct.unpack_from(">QI", raw, 0)
    if total != chunk_bytes:
        return f"header says {total} bytes uncompressed, the chunk holds {chunk_bytes}"
    if block == 0 or block % (8 * itemsize) or block > 2**30:
        return f"header gives an invalid block size of {block} bytes"
    elements, per_block = total // itemsize, block // itemsize
    blocks = elements // per_block + (1 if (elements % per_block) // 8 else 0)
    pos = 12
    for _ in range(blocks):
        if pos + 4 > len(raw):
            return f"ends at byte {len(raw)} inside the block table"
        (size,) = struct.unpack_from(">I", raw, pos)
        pos += 4 + size
        if size == 0 or pos > len(raw):
            return f"a block of {size} bytes runs past the chunk's end ({len(raw)} bytes)"
    if len(raw) - pos != (elements % 8) * itemsize:
        return f"{len(raw) - pos} bytes left after the blocks, expected {(elements % 8) * itemsize}"
    return ""


def _frames_contiguous_in_chunk(nav: Sequence[int], chunk_nav: Sequence[int]) -> bool:
    """Whether each chunk holds its frames back to back in flat scan order: chunked by 1 up to
    one axis, and by the full extent after it."""
    seen_partial = False
    for n, c in zip(nav, chunk_nav, strict=True):
        if seen_partial and c != n:
            return False
        if c > 1:
            seen_partial = True
    return True


def direct_segments(dset: Any, path: str, sig_dims: int) -> list[FileSegment] | None:
    """The file offsets of the frames of ``dset``, as runs of evenly spaced frames, where they
    can be read as plain bytes (uncompressed, every chunk allocated, whole frames per chunk);
    ``None`` where h5py must read them."""
    shape = tuple(dset.shape)
    nav, sig = shape[:-sig_dims], shape[-sig_dims:]
    frame_bytes = math.prod(sig) * dset.dtype.itemsize
    num_frames = math.prod(nav)
    if dset.external or filter_ids(dset) or frame_bytes == 0 or num_frames == 0:
        return None
    if dset.chunks is None:
        offset = dset.id.get_offset()
        if offset is None:  # never written: h5py returns the fill value
            return None
        return [FileSegment(path, int(offset), frame_bytes, num_frames)]
    chunk_nav, chunk_sig = dset.chunks[:-sig_dims], dset.chunks[-sig_dims:]
    if tuple(chunk_sig) != tuple(sig) or not _frames_contiguous_in_chunk(nav, chunk_nav):
        return None
    expected = math.prod(math.ceil(n / c) for n, c in zip(nav, chunk_nav, strict=True))
    found: list[tuple[tuple[int, ...], int]] = []
    try:
        dset.id.chunk_iter(lambda info: found.append((info.chunk_offset, info.byte_offset)))
    except AttributeError:  # pragma: no cover - h5py < 3.8 or HDF5 < 1.12.3
        return None
    if len(found) != expected:  # unallocated chunks hold the fill value
        return None
    found.sort()
    strides = [math.prod(nav[k + 1 :]) for k in range(len(nav))]
    segments: list[list[int]] = []  # [offset, stride, count]
    max_gap = max(4096, frame_bytes // 8)
    next_frame = 0
    for coords, byte_offset in found:
        first = sum(c * s for c, s in zip(coords[: len(nav)], strides, strict=True))
        if first != next_frame:
            return None
        count = min(math.prod(chunk_nav), num_frames - first)
        # a chunk cut by the end of its leading axis holds fewer valid frames
        j = next((k for k, c in enumerate(chunk_nav) if c > 1), None)
        if j is not None:
            count = min(chunk_nav[j], nav[j] - coords[j]) * strides[j]
        next_frame = first + count
        last = segments[-1] if segments else None
        if last is not None and count == 1:
            # evenly spaced single-frame chunks (chunk index nodes between them) form one
            # segment, as long as the gaps read along with them stay small
            stride = byte_offset - last[0] if last[2] == 1 else last[1]
            if (
                frame_bytes <= stride <= frame_bytes + max_gap
                and byte_offset == last[0] + last[2] * stride
            ):
                last[1], last[2] = stride, last[2] + 1
                continue
        if (
            last is not None
            and last[1] == frame_bytes
            and byte_offset == last[0] + last[2] * frame_bytes
        ):
            last[2] += count
            continue
        segments.append([int(byte_offset), frame_bytes, count])
        if len(segments) > _MAX_DIRECT_SEGMENTS:
            return None
    if next_frame != num_frames:
        return None
    return [FileSegment(path, o, s, n) for o, s, n in segments]


# --- reading through h5py -----------------------------------------------------------------------


@dataclass(frozen=True)
class H5Part:
    """One HDF5 dataset holding a run of frames.

    Parameters
    ----------
    path : str
        The file.
    ds_path : str
        Path of the dataset inside the file.
    shape : tuple of int
        The dataset's shape (scan axes, then ``sig_dims`` frame axes).
    sig_dims : int
        Number of frame axes.
    chunks : tuple of int or None
        The dataset's chunk shape.
    bitshuffle : tuple of int or None
        Options of the dataset's bitshuffle filter: its chunks are checked before decoding.
    """

    path: str
    ds_path: str
    shape: tuple[int, ...]
    sig_dims: int
    chunks: tuple[int, ...] | None = None
    bitshuffle: tuple[int, ...] | None = None

    @property
    def nav(self) -> tuple[int, ...]:
        """Scan axes of the dataset."""
        return self.shape[: -self.sig_dims]

    @property
    def num_frames(self) -> int:
        """Number of frames."""
        return math.prod(self.nav)

    def chunk_coords(self, frame: int) -> tuple[int, ...]:
        """Chunk grid coordinates of the chunk holding ``frame`` (scan axes, then frame axes)."""
        index = np.unravel_index(frame, self.nav)
        chunks = self.chunks or self.shape
        return (
            tuple(int(i) // c for i, c in zip(index, chunks, strict=False)) + (0,) * self.sig_dims
        )


class H5Reader(FrameReader):
    """Reads frames of one or more HDF5 datasets (numbered across them) through h5py, which
    decodes compressed chunks; files are opened read-only on first use."""

    def __init__(self, parts: Sequence[H5Part], sig_shape: tuple[int, ...], dtype: np.dtype):
        self.parts = list(parts)
        self.sig_shape = tuple(sig_shape)
        self.dtype = np.dtype(dtype)
        self._starts = [0, *itertools.accumulate(p.num_frames for p in self.parts)]
        self._open: dict[int, tuple[Any, Any]] = {}
        self._checked: dict[int, set[tuple[int, ...]]] = {}

    def _dataset(self, k: int) -> Any:
        if k not in self._open:
            h5py = import_h5py()
            part = self.parts[k]
            chunk_bytes = math.prod(part.chunks or (1,)) * self.dtype.itemsize
            cache = min(_CHUNK_CACHE_MAX, max(_CHUNK_CACHE_MIN, 4 * chunk_bytes))
            with library_errors(part.path, f"opening dataset {part.ds_path!r}"):
                f = h5py.File(part.path, "r", rdcc_nbytes=cache, rdcc_nslots=10007, rdcc_w0=1.0)
                self._open[k] = (f, f[part.ds_path])
        return self._open[k][1]

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        if out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"read_into needs a C-contiguous {self.dtype} buffer, got {out.dtype}")
        for k, first, last, pos in split_at(self._starts, start, stop):
            self._read_part(k, out[pos : pos + last - first], first, last)

    def _read_part(self, k: int, out: np.ndarray, first: int, last: int) -> None:
        part = self.parts[k]
        dset = self._dataset(k)
        file_sig = part.shape[-part.sig_dims :]
        frames = out.reshape(last - first, *file_sig)
        try:
            for ranges, offset in nav_blocks(part.nav, first, last):
                extent = tuple(hi - lo for lo, hi in ranges)
                dest = frames[offset : offset + math.prod(extent)].reshape(*extent, *file_sig)
                sel = tuple(slice(lo, hi) for lo, hi in ranges)
                if part.bitshuffle is not None:
                    self._check_chunks(k, dset, ranges)
                dset.read_direct(dest, source_sel=sel)
        except LiberTEMGPUError:
            raise
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as e:
            raise self._decode_error(k, first, last, e) from e

    def _check_chunks(self, k: int, dset: Any, ranges: tuple[tuple[int, int], ...]) -> None:
        """Check the bitshuffle framing of the chunks a hyperslab touches (once per chunk)."""
        part = self.parts[k]
        chunks = part.chunks or part.shape
        checked = self._checked.setdefault(k, set())
        sig_ranges = tuple((0, d) for d in part.shape[-part.sig_dims :])
        grid = [
            range(lo // c, (hi - 1) // c + 1)
            for (lo, hi), c in zip((*ranges, *sig_ranges), chunks, strict=True)
        ]
        itemsize = dset.dtype.itemsize
        compressed = len(part.bitshuffle or ()) > 4 and (part.bitshuffle or ())[4] != 0
        chunk_bytes = math.prod(chunks) * itemsize
        for coords in itertools.product(*grid):
            if coords in checked:
                continue
            offset = tuple(i * c for i, c in zip(coords, chunks, strict=True))
            try:
                mask, raw = dset.id.read_direct_chunk(offset)
            except Exception:
                continue  # unallocated chunk: HDF5 gives the fill value, nothing to decode
            problem = (
                check_bitshuffle_chunk(raw, chunk_bytes, itemsize, compressed)
                if mask == 0
                else check_bitshuffle_chunk(raw, chunk_bytes, itemsize, False)
            )
            if problem:
                raise FileFormatError(
                    f"{part.path}: dataset {part.ds_path}: chunk {coords} is corrupt: {problem} "
                    "(bitshuffle/LZ4 framing)"
                )
            checked.add(coords)

    def _decode_error(self, k: int, first: int, last: int, error: Exception) -> FileFormatError:
        """Find the first frame in ``[first, last)`` that fails to read and name its chunk."""
        part = self.parts[k]
        dset = self._dataset(k)
        frame = first
        for frame in range(first, last):
            index = tuple(int(x) for x in np.unravel_index(frame, part.nav))
            if part.bitshuffle is not None:  # never hand HDF5 an unchecked chunk
                self._check_chunks(k, dset, tuple((x, x + 1) for x in index))
            try:
                dset[index]
            except Exception:
                break
        coords = part.chunk_coords(frame)
        where = ""
        with contextlib.suppress(Exception):
            info = dset.id.get_chunk_info_by_coord(
                tuple(c * s for c, s in zip(coords, part.chunks or part.shape, strict=True))
            )
            where = f" at byte {info.byte_offset} ({info.size} bytes stored)"
        return FileFormatError(
            f"{part.path}: dataset {part.ds_path}: chunk {coords}{where} (frame {frame}) could not "
            f"be read or decoded: {type(error).__name__}: {error} (corrupt or truncated file?)"
        )

    def close(self) -> None:
        for f, _ in self._open.values():
            with contextlib.suppress(Exception):
                f.close()
        self._open.clear()
