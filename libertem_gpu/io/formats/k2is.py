"""Gatan K2 IS raw data sets: a ``.gtg`` metadata file and 8 sector files ``<name>_1.bin`` to
``<name>_8.bin``.

Layout, as the K2 IS acquisition writes it:

- each sector file is a stream of blocks of ``0x5758`` bytes: a 40-byte big-endian header (sync
  word ``0xFFFF0055``, 4 bytes, version ``u1``, flags ``u1`` (bit 0: shutter active), 6 bytes,
  block count ``u4``, sector width ``u2`` = 256, sector height ``u2`` = 1860, frame id ``u4``,
  first and last pixel x and y within the sector ``u2`` each, block size ``u4``) and 930 x 16
  pixels of 12 bits, packed little-endian (3 bytes hold 2 pixels);
- a frame is 32 blocks per sector: two rows of 16 blocks, the first block at the right edge;
  sector ``k`` (file ``_k+1``) fills columns ``256 k`` to ``256 k + 255`` of the 1860 x 2048 frame;
- sectors start at different points of the stream: frames are matched across sectors by frame id,
  incomplete frames at the start are skipped, and the data set starts at the first frame whose
  shutter-active flag is set;
- the ``.gtg`` file is a DigitalMicrograph tag file; ``SI Dimensions/Size Y, Size X`` give the
  scan shape of a STEM acquisition (the shutter flag of such scans comes one frame late, so
  the data set starts one frame earlier).

This is a decoding format: :meth:`K2ISReader.read_into` unpacks pixels; there is no zero-copy
view.
"""

from __future__ import annotations

import glob
import os
import re
from typing import TYPE_CHECKING, Any

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError, MissingFileError
from libertem_gpu.io.dataset import DataSetOptions
from libertem_gpu.io.formats.base import FileDataSet, read_head, require_file
from libertem_gpu.io.formats.dm import TagGroup, has_dm_magic, read_dm_tags
from libertem_gpu.io.reader import FrameReader

if TYPE_CHECKING:
    from typing_extensions import Unpack

HEADER_BYTES = 40
BLOCK_BYTES = 0x5758
DATA_BYTES = BLOCK_BYTES - HEADER_BYTES
BLOCK_SHAPE = (930, 16)
BLOCKS_PER_FRAME = 32  # per sector
NUM_SECTORS = 8
SECTOR_SHAPE = (1860, 256)
FRAME_SHAPE = (1860, 2048)
SYNC = 0xFFFF0055
FRAME_BYTES = BLOCK_BYTES * BLOCKS_PER_FRAME  # per sector
SHUTTER_ACTIVE = 0x1
#: Structured view of a block header (big-endian).
HEADER_DTYPE = np.dtype(
    [
        ("sync", ">u4"),
        ("pad1", "V4"),
        ("version", "u1"),
        ("flags", "u1"),
        ("pad2", "V6"),
        ("block_count", ">u4"),
        ("width", ">u2"),
        ("height", ">u2"),
        ("frame_id", ">u4"),
        ("x_start", ">u2"),
        ("y_start", ">u2"),
        ("x_end", ">u2"),
        ("y_end", ">u2"),
        ("block_size", ">u4"),
    ]
)
_SYNC_SEARCH_FRAMES = 4  # leading partial frames tolerated per sector
_SHUTTER_SEARCH_FRAMES = 100_000


def block_position(index: np.ndarray | int) -> tuple[Any, Any]:
    """``(y, x)`` pixel origin in its sector of block ``index`` (0 to 31) of a frame."""
    return 930 * (np.asarray(index) // 16), 16 * (15 - np.asarray(index) % 16)


def decode_12bit(packed: np.ndarray, out: np.ndarray) -> None:
    """Unpack little-endian 12-bit pixels: bytes ``(..., 3k)`` into values ``(..., 2k)``."""
    triples = packed.reshape(*packed.shape[:-1], -1, 3).astype(np.uint16)
    pairs = out.reshape(*packed.shape[:-1], -1, 2)
    pairs[..., 0] = triples[..., 0] | ((triples[..., 1] & 0x0F) << 8)
    pairs[..., 1] = (triples[..., 1] >> 4) | (triples[..., 2] << 4)


def read_headers(fd: int, path: str, offset: int, count: int) -> np.ndarray:
    """Headers of ``count`` consecutive blocks from ``offset`` (fewer where the file ends)."""
    data = os.pread(fd, count * BLOCK_BYTES, offset)
    n = len(data) // BLOCK_BYTES
    blocks = np.frombuffer(data, dtype=np.uint8, count=n * BLOCK_BYTES).reshape(n, BLOCK_BYTES)
    return np.ascontiguousarray(blocks[:, :HEADER_BYTES]).view(HEADER_DTYPE).reshape(n)


def check_headers(headers: np.ndarray, path: str, offset: int) -> None:
    """Raise :class:`FileFormatError` unless ``headers`` are valid K2 IS block headers."""
    bad = (
        (headers["sync"] != SYNC)
        | (headers["width"] != SECTOR_SHAPE[1])
        | (headers["height"] != SECTOR_SHAPE[0])
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        h = headers[i]
        raise FileFormatError(
            f"{path}: block at byte {offset + i * BLOCK_BYTES} is not a K2 IS block: expected "
            f"sync 0x{SYNC:08X} and sector size 256x1860, found 0x{int(h['sync']):08X} and "
            f"{int(h['width'])}x{int(h['height'])} (corrupt or not a K2 IS sector file?)"
        )


class K2ISReader(FrameReader):
    """Reads and decodes frames from the 8 sector files, checking frame ids as it goes."""

    def __init__(
        self, paths: list[str], starts: list[int], sig_shape: tuple[int, ...], first_id: int
    ) -> None:
        self.paths = paths
        self.starts = starts
        self.sig_shape = tuple(sig_shape)
        self.dtype = np.dtype("uint16")
        self.first_id = first_id
        self._fds: list[int] = []
        self._buffer = np.empty(0, dtype=np.uint8)
        y, x = block_position(np.arange(BLOCKS_PER_FRAME))
        self._y, self._x = y, x
        # Blocks in (row, column) order within the sector.
        self._order = np.lexsort((x, y))

    def _open(self) -> list[int]:
        if not self._fds:
            self._fds = [os.open(p, os.O_RDONLY) for p in self.paths]
        return self._fds

    def read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        n = stop - start
        frames = out.reshape(n, *FRAME_SHAPE)
        need = n * FRAME_BYTES
        if self._buffer.size < need:
            self._buffer = np.empty(need, dtype=np.uint8)
        raw = self._buffer[:need]
        fds = self._open()
        frame_ids = None
        for sector, (fd, path) in enumerate(zip(fds, self.paths, strict=True)):
            offset = self.starts[sector] + start * FRAME_BYTES
            got = os.preadv(fd, [memoryview(raw)], offset)  # type: ignore[arg-type]
            if got != need:
                raise FileFormatError(
                    f"{path}: file ended at byte {offset + got}, expected {need - got} more bytes "
                    "(truncated sector file?)"
                )
            blocks = raw.reshape(n, BLOCKS_PER_FRAME, BLOCK_BYTES)
            headers = np.ascontiguousarray(blocks[:, :, :HEADER_BYTES]).view(HEADER_DTYPE)
            headers = headers.reshape(n, BLOCKS_PER_FRAME)
            check_headers(headers.reshape(-1), path, offset)
            ids = headers["frame_id"]
            if frame_ids is None:
                frame_ids = ids[:, 0].copy()
            placed = (headers["y_start"] == self._y) & (headers["x_start"] == self._x)
            if (ids != frame_ids[:, None]).any() or not placed.all():
                raise FileFormatError(
                    f"{path}: frames {start} to {stop - 1} are out of step: blocks carry frame "
                    f"ids {sorted(set(ids.reshape(-1).tolist()))[:8]} (expected "
                    f"{frame_ids.tolist()[:8]}) or sit at unexpected positions (sectors lost "
                    "blocks?)"
                )
            pixels = np.empty((n, BLOCKS_PER_FRAME, *BLOCK_SHAPE), dtype=np.uint16)
            decode_12bit(blocks[:, :, HEADER_BYTES:], pixels.reshape(n, BLOCKS_PER_FRAME, -1))
            grid = pixels[:, self._order].reshape(n, 2, 16, *BLOCK_SHAPE)
            target = frames[:, :, SECTOR_SHAPE[1] * sector : SECTOR_SHAPE[1] * (sector + 1)]
            target.reshape(n, 2, BLOCK_SHAPE[0], 16, BLOCK_SHAPE[1])[...] = grid.transpose(
                0, 1, 3, 2, 4
            )

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def sector_files(path: str) -> tuple[str, list[str]]:
    """The base name and the 8 sector files of the data set that ``path`` belongs to."""
    base, ext = os.path.splitext(path)
    if ext.lower() == ".bin":
        base = re.sub(r"_?\d+$", "", base)
    elif ext.lower() != ".gtg":
        raise DataSetError(f"{path}: expected a .gtg or .bin file of a K2 IS data set")
    numbered = []
    for name in glob.glob(glob.escape(base) + "*.bin"):
        match = re.search(r"(\d+)\.bin$", name, re.IGNORECASE)
        if match and re.sub(r"_?\d+$", "", os.path.splitext(name)[0]) == base:
            numbered.append((int(match.group(1)), name))
    numbers = sorted(n for n, _ in numbered)
    if numbers != list(range(1, NUM_SECTORS + 1)):
        raise MissingFileError(
            f"{path}: a K2 IS data set needs the 8 sector files {base}_1.bin to {base}_8.bin; "
            f"found sector numbers {numbers}"
        )
    return base, [name for _, name in sorted(numbered)]


class K2ISDataSet(FileDataSet):
    """A Gatan K2 IS raw data set.

    Parameters
    ----------
    path : str
        The ``.gtg`` file or any of the sector ``.bin`` files.
    require_gtg : bool
        Whether the ``.gtg`` metadata file must exist (it holds the scan shape); ``False``
        reads the sector files alone (pass ``nav_shape``, or get a line of all frames).
    nav_shape, sig_shape : tuple of int, optional
        Override the scan or frame shape (frames are 1860 x 2048).
    sync_offset : int
        See :class:`~libertem_gpu.io.dataset.DataSet`; counted from the first frame found by
        synchronising the sectors.
    **options
        See :class:`~libertem_gpu.io.formats.base.FileDataSet`.

    Examples
    --------
    >>> ds = ctx.load("k2is", path="scan.gtg")  # doctest: +SKIP
    """

    format_name = "k2is"
    extensions = ("gtg", "bin")

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        require_gtg: bool = True,
        **options: Unpack[DataSetOptions],
    ) -> None:
        super().__init__(path, **options)
        self.require_gtg = bool(require_gtg)
        self._paths: list[str] = []
        self._starts: list[int] = []
        self._first_id = 0

    @classmethod
    def guess_can_open(cls, path: str) -> bool:
        ext = os.path.splitext(str(path))[1].lower()
        if ext == ".gtg":  # the metadata file is a DM tag file
            return has_dm_magic(path)
        if ext != ".bin":
            return False
        return read_head(path, 4) == SYNC.to_bytes(4, "big")

    def _gtg_nav_shape(self, gtg: str) -> tuple[int, ...] | None:
        _, root = read_dm_tags(gtg)
        dims = root.get("SI Dimensions")
        if not isinstance(dims, TagGroup):
            return None
        y, x = dims.get("Size Y"), dims.get("Size X")
        if y is None or x is None:
            return None
        try:
            shape = (int(y), int(x))
        except (TypeError, ValueError):
            raise FileFormatError(f"{gtg}: SI Dimensions are not integers: {y!r}, {x!r}") from None
        if min(shape) <= 0:
            raise FileFormatError(f"{gtg}: SI Dimensions {shape} are not positive")
        return shape

    def _initialize(self) -> None:
        require_file(self.path, "K2 IS file")
        base, paths = sector_files(self.path)
        gtg = base + ".gtg"
        scan = None
        if os.path.isfile(gtg):
            scan = self._gtg_nav_shape(gtg)
        elif self.require_gtg:
            raise MissingFileError(
                f"{self.path}: the metadata file {gtg!r} does not exist (it holds the scan "
                "shape); copy it beside the sector files, or pass require_gtg=False"
            )
        fds = [os.open(p, os.O_RDONLY) for p in paths]
        try:
            starts = [self._frame_start(fd, p) for fd, p in zip(fds, paths, strict=True)]
            starts, first_id = self._align(fds, paths, starts)
            skip = self._shutter_skip(fds[0], paths[0], starts[0])
            if scan is not None and skip > 0:
                skip -= 1  # STEMx sets the shutter flag one frame late
            starts = [s + skip * FRAME_BYTES for s in starts]
            first_id += skip
            sizes = [os.fstat(fd).st_size for fd in fds]
        finally:
            for fd in fds:
                os.close(fd)
        counts = [(size - s) // FRAME_BYTES for size, s in zip(sizes, starts, strict=True)]
        shortest = paths[int(np.argmin(counts))]  # the sector file that limits the frames
        count = min(counts)
        if count <= 0:
            raise FileFormatError(f"{shortest}: no complete frame after synchronising the sectors")
        self._paths, self._starts, self._first_id = paths, starts, first_id
        self._set_layout(
            scan or (count,), FRAME_SHAPE, np.dtype("uint16"), count, source=f"{base} ({shortest})"
        )
        self._meta = {
            "path": base,
            "gtg_path": gtg if os.path.isfile(gtg) else None,
            "sector_files": paths,
            "first_block_offsets": starts,
            "first_frame_id": first_id,
            "frames_in_files": count,
        }

    @staticmethod
    def _frame_start(fd: int, path: str) -> int:
        """Byte offset of the first block that starts a complete frame in a sector file."""
        window = (_SYNC_SEARCH_FRAMES + 1) * BLOCKS_PER_FRAME
        headers = read_headers(fd, path, 0, window)
        if len(headers) < BLOCKS_PER_FRAME:
            raise FileFormatError(
                f"{path}: file holds {len(headers)} blocks, less than one frame of "
                f"{BLOCKS_PER_FRAME} (truncated sector file?)"
            )
        check_headers(headers, path, 0)
        ids = headers["frame_id"].astype(np.int64)
        for k in range(len(ids) - BLOCKS_PER_FRAME + 1):
            if (k == 0 or ids[k - 1] != ids[k]) and (ids[k : k + BLOCKS_PER_FRAME] == ids[k]).all():
                return k * BLOCK_BYTES
        raise FileFormatError(
            f"{path}: no run of {BLOCKS_PER_FRAME} blocks with one frame id in the first "
            f"{len(ids)} blocks: cannot find the start of a frame"
        )

    @staticmethod
    def _align(fds: list[int], paths: list[str], starts: list[int]) -> tuple[list[int], int]:
        """Move each sector's start to the same frame id (the latest first frame)."""
        firsts = [
            int(read_headers(fd, p, s, 1)["frame_id"][0])
            for fd, p, s in zip(fds, paths, starts, strict=True)
        ]
        target = max(firsts)
        aligned = []
        for fd, path, start in zip(fds, paths, starts, strict=True):
            found = None
            for _ in range(_SYNC_SEARCH_FRAMES + 1):
                h = read_headers(fd, path, start, 1)
                if len(h) == 0:
                    break
                check_headers(h, path, start)
                if int(h["frame_id"][0]) == target:
                    found = start
                    break
                start += FRAME_BYTES
            if found is None:
                raise FileFormatError(
                    f"{path}: frame id {target} (the first frame of another sector) is not among "
                    f"the first {_SYNC_SEARCH_FRAMES + 1} frames here: sectors are out of step "
                    "or the file is truncated"
                )
            aligned.append(found)
        return aligned, target

    @staticmethod
    def _shutter_skip(fd: int, path: str, start: int) -> int:
        """Frames before the first one with the shutter-active flag (0 if none has it)."""
        size = os.fstat(fd).st_size
        frames = min(_SHUTTER_SEARCH_FRAMES, (size - start) // FRAME_BYTES)
        for k in range(frames):
            h = read_headers(fd, path, start + k * FRAME_BYTES, 1)
            if int(h["flags"][0]) & SHUTTER_ACTIVE:
                return k
        return 0

    def get_reader(self) -> K2ISReader:
        return K2ISReader(self._paths, self._starts, self.sig_shape, self._first_id)
