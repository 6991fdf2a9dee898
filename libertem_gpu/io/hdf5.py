"""HDF5 data sets through h5py: any dataset in a file, chunk-aligned partitions, compressed chunks
decoded by the filters of ``hdf5plugin``, and direct byte-range reads (``mmap``/``preadv``, and
kvikio on the GPU path) wherever the frames sit uncompressed at known offsets in the file.

h5py and hdf5plugin are imported where a file is opened, never when ``libertem_gpu`` is imported.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError, LiberTEMGPUError
from libertem_gpu.io.dataset import DataSet, native, parse_dtype
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.layout import FileSegment
from libertem_gpu.io.partition import Partition, make_partitions, partition_frame_count
from libertem_gpu.io.raw import require_file
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


@contextlib.contextmanager
def library_errors(path: str, doing: str) -> Iterator[None]:
    """Turn whatever h5py/zarr/codecs raise while ``doing`` into a :class:`FileFormatError` that
    names ``path``; the library's own errors pass through."""
    try:
        yield
    except LiberTEMGPUError:
        raise
    except MemoryError:
        raise
    except Exception as e:
        raise FileFormatError(f"{path}: {doing} failed: {type(e).__name__}: {e}") from e


# --- geometry: flat frame ranges, hyperslabs, chunk-aligned partitions -------------------------


def nav_blocks(
    nav_shape: Sequence[int], start: int, stop: int
) -> list[tuple[tuple[tuple[int, int], ...], int]]:
    """Split the flat (C-order) frame range ``[start, stop)`` of an array with scan shape
    ``nav_shape`` into rectangular blocks.

    Returns ``(ranges, out_offset)`` per block: ``ranges`` holds ``(lo, hi)`` for each scan axis,
    ``out_offset`` is the position of the block's first frame in the range. Blocks are in order;
    at most ``2 * len(nav_shape) - 1`` of them.
    """
    blocks: list[tuple[tuple[tuple[int, int], ...], int]] = []

    def split(
        prefix: tuple[tuple[int, int], ...], dims: tuple[int, ...], lo: int, hi: int, out: int
    ) -> None:
        if len(dims) == 1:
            blocks.append(((*prefix, (lo, hi)), out))
            return
        inner = math.prod(dims[1:])
        a, ra = divmod(lo, inner)
        b, rb = divmod(hi, inner)
        if a == b:
            split((*prefix, (a, a + 1)), dims[1:], ra, rb, out)
            return
        if ra:
            split((*prefix, (a, a + 1)), dims[1:], ra, inner, out)
            out += inner - ra
            a += 1
        if b > a:
            blocks.append(((*prefix, (a, b), *((0, d) for d in dims[1:])), out))
            out += (b - a) * inner
        if rb:
            split((*prefix, (b, b + 1)), dims[1:], 0, rb, out)

    if stop > start:
        split((), tuple(int(d) for d in nav_shape), start, stop, 0)
    return blocks


def chunk_snapper(nav_shape: Sequence[int], chunk_nav: Sequence[int]) -> Callable[[int], int]:
    """A function that moves a flat frame index to the nearest index where no chunk of an array
    with scan shape ``nav_shape`` and scan chunk shape ``chunk_nav`` is cut in two."""
    nav = [int(d) for d in nav_shape]
    chunks = [max(1, min(int(c), n)) for c, n in zip(chunk_nav, nav, strict=True)]
    j = next((k for k, c in enumerate(chunks) if c > 1), len(chunks) - 1)
    inner = math.prod(nav[j + 1 :])
    row = nav[j] * inner  # frames per index of the axes before j (all chunked by 1)
    step = chunks[j] * inner
    if step == 1:
        return lambda f: f

    def snap(f: int) -> int:
        r, within = divmod(f, row)
        return r * row + min(round(within / step) * step, row)

    return snap


def aligned_partitions(
    nav_size: int,
    frames_per_partition: int,
    sync_offset: int,
    snap: Callable[[int], int] | None,
) -> list[Partition]:
    """Partitions of about ``frames_per_partition`` frames whose boundaries, as source frames
    (``nav + sync_offset``), are where ``snap`` puts them (chunk boundaries)."""
    if snap is None:
        return make_partitions(nav_size, frames_per_partition)
    bounds = [0]
    target = 0
    while True:
        target += frames_per_partition
        if target >= nav_size:
            break
        b = snap(target + sync_offset) - sync_offset
        if b <= bounds[-1]:  # a chunk larger than a partition: take the next chunk boundary
            b = snap(target + sync_offset + frames_per_partition) - sync_offset
            if b <= bounds[-1]:
                continue
        if b >= nav_size:
            break
        bounds.append(b)
        target = b
    bounds.append(nav_size)
    pairs = itertools.pairwise(bounds)
    return [Partition(index=i, start=a, stop=b) for i, (a, b) in enumerate(pairs)]


# --- where the frames are in the file -----------------------------------------------------------


def _filter_ids(dset: Any) -> list[int]:
    plist = dset.id.get_create_plist()
    return [plist.get_filter(i)[0] for i in range(plist.get_nfilters())]


def check_filters(dset: Any, path: str) -> None:
    """Raise :class:`FileFormatError` if a compression filter of ``dset`` is not available."""
    h5py = import_h5py()
    missing = [f for f in _filter_ids(dset) if not h5py.h5z.filter_avail(f)]
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
    if dset.external or _filter_ids(dset) or frame_bytes == 0 or num_frames == 0:
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


def check_segments(segments: Sequence[FileSegment], frame_bytes: int, what: str) -> None:
    """Raise :class:`FileFormatError` if a file ends before the last frame it should hold."""
    needed: dict[str, int] = {}
    for s in segments:
        needed[s.path] = max(needed.get(s.path, 0), s.end_offset(frame_bytes))
    for path, end in needed.items():
        size = os.stat(path).st_size
        if size < end:
            raise FileFormatError(
                f"{path}: file is too short for {what}: its frames end at byte {end}, but the "
                f"file has {size} bytes (truncated file?)"
            )


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
        self._starts = np.cumsum([0] + [p.num_frames for p in self.parts]).tolist()
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
        if start < 0 or stop > self._starts[-1] or start > stop:
            raise IndexError(f"frames [{start}, {stop}) outside [0, {self._starts[-1]})")
        if out.dtype != self.dtype or not out.flags.c_contiguous:
            raise ValueError(f"read_into needs a C-contiguous {self.dtype} buffer, got {out.dtype}")
        pos = start
        while pos < stop:
            k = int(np.searchsorted(self._starts, pos, side="right")) - 1
            first = pos - self._starts[k]
            last = min(stop, self._starts[k + 1]) - self._starts[k]
            self._read_part(k, out[pos - start : pos - start + last - first], first, last)
            pos += last - first

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


# --- the data set -------------------------------------------------------------------------------


def list_datasets(group: Any) -> list[tuple[str, tuple[int, ...], str]]:
    """``(path, shape, dtype)`` of every dataset under an h5py group (hard links only)."""
    h5py = import_h5py()
    found: list[tuple[str, tuple[int, ...], str]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            found.append(("/" + name.lstrip("/"), tuple(obj.shape), str(obj.dtype)))

    group.visititems(visit)
    return found


def _suitable(shape: tuple[int, ...], dtype: str, sig_dims: int) -> bool:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return False
    return len(shape) > sig_dims and dt.kind in "biuf" and math.prod(shape) > 0


def describe_datasets(found: Sequence[tuple[str, tuple[int, ...], str]]) -> str:
    """A short human-readable list of datasets for error messages."""
    if not found:
        return "the file holds no datasets"
    shown = ", ".join(f"{p} {s} {d}" for p, s, d in found[:20])
    more = f" and {len(found) - 20} more" if len(found) > 20 else ""
    return f"datasets found: {shown}{more}"


def pick_dataset(
    found: Sequence[tuple[str, tuple[int, ...], str]], sig_dims: int, source: str
) -> str:
    """The path of the largest dataset with at least one scan axis and numeric elements."""
    candidates = [f for f in found if _suitable(f[1], f[2], sig_dims)]
    if not candidates:
        raise DataSetError(
            f"{source}: no dataset with {sig_dims} frame axes and at least one scan axis "
            f"(numeric, {sig_dims + 1}-D or more); {describe_datasets(found)}"
        )
    return max(candidates, key=lambda f: math.prod(f[1]) * np.dtype(f[2]).itemsize)[0]


class H5DataSet(DataSet):
    """A dataset in an HDF5 file: scan axes first, then ``sig_dims`` frame axes.

    Contiguous and uncompressed per-frame-chunked datasets are read as plain byte ranges of the
    file (memory-mapped on the CPU, kvikio/pread on the GPU path); compressed or otherwise
    chunked ones through h5py, with the filters of ``hdf5plugin`` (bitshuffle/LZ4 as DECTRIS
    writes it, Blosc, Zstd, LZ4, ...). Partitions end on chunk boundaries.

    Parameters
    ----------
    path : str
        The HDF5 file (``.h5``, ``.hdf5``, ``.hdf``, ``.nxs``).
    ds_path : str, optional
        Path of the dataset inside the file, e.g. ``"/entry/data/data"``. By default the largest
        numeric dataset with more axes than ``sig_dims``.
    sig_dims : int
        How many trailing axes form a frame (1 or 2).
    nav_shape, sig_shape : tuple of int, optional
        Reshape the scan or the frame (the frame keeps its number of pixels).
    sync_offset : int
        See :class:`~libertem_gpu.io.dataset.DataSet`.
    num_partitions : int, optional
        Number of partitions (rounded to chunk boundaries).

    Examples
    --------
    >>> ctx = Context()  # doctest: +SKIP
    >>> ds = ctx.load("hdf5", path="scan.h5", ds_path="/entry/data/data")  # doctest: +SKIP
    """

    format_name = "hdf5"
    extensions = ("h5", "hdf5", "hdf", "nxs")

    def __init__(
        self,
        path: str | os.PathLike[str],
        ds_path: str | None = None,
        sig_dims: int = 2,
        *,
        nav_shape: tuple[int, ...] | None = None,
        sig_shape: tuple[int, ...] | None = None,
        sync_offset: int = 0,
        num_partitions: int | None = None,
    ) -> None:
        super().__init__(
            nav_shape=nav_shape,
            sig_shape=sig_shape,
            sync_offset=sync_offset,
            num_partitions=num_partitions,
        )
        self.path = os.fspath(path)
        self.ds_path = ds_path
        self.sig_dims = int(sig_dims)
        if self.sig_dims not in (1, 2):
            raise DataSetError(f"sig_dims must be 1 or 2, got {sig_dims}")
        self._parts: list[H5Part] = []
        self._segments: list[FileSegment] | None = None
        self._chunk_nav: tuple[int, ...] | None = None

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        ext = os.path.splitext(str(path))[1].lower().lstrip(".")
        return os.path.isfile(path) and (ext in cls.extensions or has_hdf5_magic(path))

    def _initialize(self) -> None:
        path = require_file(self.path, "HDF5 file")
        h5py = import_h5py()
        if not has_hdf5_magic(path):
            raise FileFormatError(
                f"{path}: not an HDF5 file (no HDF5 signature {HDF5_MAGIC!r} at byte 0 or 512)"
            )
        with library_errors(path, "opening the HDF5 file"), h5py.File(path, "r") as f:
            found = list_datasets(f)
            ds_path = self.ds_path
            if ds_path is None:
                ds_path = pick_dataset(found, self.sig_dims, path)
            elif ds_path not in f:
                raise DataSetError(f"{path}: no dataset at {ds_path!r}; {describe_datasets(found)}")
            dset = f[ds_path]
            if not isinstance(dset, h5py.Dataset):
                raise DataSetError(
                    f"{path}: {ds_path!r} is a group, not a dataset; {describe_datasets(found)}"
                )
            self._describe(dset, path, ds_path, found)

    def _describe(self, dset: Any, path: str, ds_path: str, found: Sequence[Any]) -> None:
        shape = tuple(int(d) for d in dset.shape)
        if len(shape) <= self.sig_dims:
            raise DataSetError(
                f"{path}: dataset {ds_path} has shape {shape}, expected {self.sig_dims} frame "
                f"axes after at least one scan axis; {describe_datasets(found)}"
            )
        dtype = parse_dtype(dset.dtype, what=f"dtype of {path}:{ds_path}")
        nav, sig = shape[: -self.sig_dims], shape[-self.sig_dims :]
        if len(nav) > 3 and self._nav_shape_arg is None:
            raise DataSetError(
                f"{path}: dataset {ds_path} has {len(nav)} scan axes {nav}; at most 3 are "
                "supported: pass nav_shape to flatten them"
            )
        check_filters(dset, path)
        file_path = os.path.abspath(dset.file.filename)
        segments = direct_segments(dset, file_path, self.sig_dims)
        frame_bytes = math.prod(sig) * dtype.itemsize
        if segments is not None:
            check_segments(segments, frame_bytes, f"dataset {ds_path} of shape {shape}")
        chunks = None if dset.chunks is None else tuple(int(c) for c in dset.chunks)
        part = H5Part(file_path, dset.name, shape, self.sig_dims, chunks, bitshuffle_options(dset))
        self._parts = [part]
        self._segments = segments
        storage = dtype if segments is not None else native(dtype)
        self._set_layout(nav, sig, storage, math.prod(nav), source=f"{path}:{ds_path}")
        if segments is None:
            self._check_first_frame(path)
        self.ds_path = ds_path
        self._chunk_nav = None if chunks is None else chunks[: -self.sig_dims]
        self._meta = {
            "path": path,
            "ds_path": ds_path,
            "dataset_shape": shape,
            "chunks": chunks,
            "compression": dset.compression,
            "filters": _filter_ids(dset),
            "direct_io": segments is not None,
        }

    def _check_first_frame(self, path: str) -> None:
        """Decode one frame now, so that a missing filter or a broken file shows at load."""
        with H5Reader(self._parts, self._parts[0].shape[-self.sig_dims :], self.dtype) as r:
            r.read_into(np.empty((1, *r.sig_shape), dtype=self.dtype), 0, 1)

    def get_partitions(self, n_workers: int = 1) -> list[Partition]:
        frames = partition_frame_count(
            self.shape.nav_size, self.frame_bytes, n_workers, num_partitions=self._num_partitions
        )
        snap = None
        if self._chunk_nav is not None:
            snap = chunk_snapper(self._parts[0].nav, self._chunk_nav)
        return aligned_partitions(self.shape.nav_size, frames, self.sync_offset, snap)

    def get_reader(self) -> FrameReader:
        if self._segments is not None:
            return FixedLayoutReader(self._segments, self.sig_shape, self.storage_dtype)
        return H5Reader(self._parts, self.sig_shape, self.storage_dtype)
