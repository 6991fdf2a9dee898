"""Machinery of chunked array stores (HDF5, Zarr): flat frame ranges as hyperslabs,
partitions that end on chunk boundaries, picking the array in a store, and the store library's
errors turned into ones that name the file."""

from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from libertem_gpu.errors import DataSetError, FileFormatError, LiberTEMGPUError
from libertem_gpu.io.partition import Partition, make_partitions

__all__ = [
    "aligned_partitions",
    "check_stored_chunks",
    "chunk_snapper",
    "describe_datasets",
    "library_errors",
    "nav_blocks",
    "pick_dataset",
]


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


# --- picking the array in a store -----------------------------------------------------------


def _suitable(shape: tuple[int, ...], dtype: str, sig_dims: int) -> bool:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        return False
    return len(shape) > sig_dims and dt.kind in "biufc" and math.prod(shape) > 0


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


# --- what a header claims against what is stored -------------------------------------------

#: Missing chunks read as the fill value; a store missing more than this share of its chunks
#: claims more data than it holds (a damaged or hand-written header), not a sparse acquisition.
MAX_MISSING_SHARE = 0.5
#: Stored chunks expand to at most this many times their bytes on disk once the claimed size
#: passes :data:`PLAUSIBLE_FLOOR`; real detector data (even sparse counts) stays far below.
MAX_EXPANSION = 10_000
PLAUSIBLE_FLOOR = 2**30


def check_stored_chunks(
    source: str,
    shape: Sequence[int],
    chunks: Sequence[int],
    itemsize: int,
    stored_chunks: int,
    stored_bytes: int,
) -> None:
    """Check a chunked array's declared ``shape`` against the chunks that are stored.

    Parameters
    ----------
    source : str
        The file or store and array, for messages.
    shape, chunks : sequence of int
        The declared array and chunk (or shard) shapes.
    itemsize : int
        Bytes per element.
    stored_chunks : int
        How many chunks (shards) hold data in the file or store (counting may stop once it
        passes half the declared number).
    stored_bytes : int
        Their bytes on disk.

    Raises
    ------
    FileFormatError
        If more than half the chunks are missing, or the stored bytes cannot plausibly hold
        the declared size: memory and work would follow the header, not the data.
    """
    declared = math.prod(-(-int(n) // max(1, int(c))) for n, c in zip(shape, chunks, strict=True))
    claimed = math.prod(int(n) for n in shape) * itemsize
    what = (
        f"{source}: declares shape {tuple(shape)} ({claimed} bytes in {declared} chunks of "
        f"{tuple(chunks)}), but"
    )
    if stored_chunks < declared * (1 - MAX_MISSING_SHARE):
        raise FileFormatError(
            f"{what} only {stored_chunks} chunks ({stored_bytes} bytes) are stored; missing "
            "chunks would read as the fill value: damaged or truncated store, or a header that "
            "claims more data than it holds"
        )
    if claimed > PLAUSIBLE_FLOOR and claimed > MAX_EXPANSION * max(1, stored_bytes):
        raise FileFormatError(
            f"{what} the stored chunks hold only {stored_bytes} bytes, "
            f"{claimed // max(1, stored_bytes)} times less: not plausible for detector data"
        )
    if stored_chunks < declared:
        warnings.warn(
            f"{source}: {declared - stored_chunks} of {declared} chunks are not stored; they "
            "read as the array's fill value",
            stacklevel=3,
        )
