"""The memory floor that every CPU benchmark compares with: how fast this machine can read the
bytes of a file that sits in the page cache, with nothing else to do.

Usage::

    from floor import MappedFile, floor

    with MappedFile(path) as mapped:          # mapped once, outside any timed region
        result = floor(mapped, repeat=5)      # FloorResult: gbps, kernel, seconds, times_s
        single = floor(mapped, repeat=5, threads=1)   # one core (micro benchmarks)

Why it is built this way (the floor bounds every ratio, so it must not be slow for reasons of
its own; an earlier floor was, and flattered the ratios):

- **Mapped once, outside the timed region.** :class:`MappedFile` maps the file read-only
  (``MAP_SHARED | MAP_POPULATE`` where the platform has it, so the page tables are filled at
  once) when it is opened; the timed runs only read. Mapping 1 GiB took 11-15 ms on the 2-vCPU
  VM, serially, a third of the old floor's time on small-folio page cache. The library pays
  its own mapping costs inside its runs; the floor measures reading alone.
- **Nothing widens per element.** The old uint16 floor added each element into a uint64
  register: a conversion per element, partly compute-bound (26-31 GB/s against 33-37 GB/s for
  float32 in the same runs). Here the bytes are viewed as ``uint32`` and summed in wrapping
  32-bit lanes per row of :data:`ROW_WORDS` words (one ``vpaddd`` per vector of input), then
  the rows' sums are added, still wrapping. Each row is a slice indexed from 0: indexing the
  whole array from ``r * row`` leaves Numba's negative-index check in the loop, which stops it
  vectorising (measured 2 GB/s against 30 GB/s on one core).
- **And a float kernel, the faster counts.** The same bytes viewed as ``float32`` and summed
  with ``fastmath`` (float32 lanes, reordered freely). Whatever the file holds, one of the two
  is a plain load-and-add stream; integer bit patterns seen as floats may be subnormal, NaN or
  infinite, which some CPUs handle slowly, hence both. :func:`floor` times them alternately
  and reports the faster (``kernel``: ``"uint32"`` or ``"float32"``) and both sets of times.
- **All cores.** Rows are spread over Numba's threads with ``prange`` (``threads=None``: one
  per usable core); ``threads=1`` gives the single-threaded floor of the same kernels.
- **Best of N.** Each kernel runs ``repeat`` times after the compile; the best time counts.
- **Its threads sleep when it is done.** The threads are OpenMP's (Numba's ``omp`` threading
  layer, where TBB is not installed), and GNU OpenMP keeps them spinning for a while after each
  parallel region. On a 2-vCPU VM whatever ran right after the floor shared both cores with
  them: the same kernel timed twice after each floor (30 rounds) took 48.4-48.8 ms the first
  time and 41.8-43.4 the second. ``run_cpu.py`` times the windowed floor and the runs with the
  file kept mapped right after a floor (its default runs come after the windowed floor), and
  the kernel benchmarks each kernel pass. ``OMP_WAIT_POLICY=PASSIVE`` (set on import unless
  the environment sets it; OpenMP reads it when Numba first loads it) puts them to sleep at
  once: 42.0 against 41.9 ms, the floor itself no slower. :func:`wait_policy` says what a run used.
- **Checked.** The first time a buffer is measured, the integer kernel's sum is compared with
  NumPy's wrapping ``uint32`` sum of the same words (outside the timed runs): a floor that
  skipped bytes would be fast and wrong.

:func:`windowed_floor` is the same sum with the mapping inside the timed run (windows mapped,
faulted while read, unmapped, one thread per core): what a reader that maps cannot beat. On the
2-vCPU VM faulting and unmapping 1 GiB cost about as much as reading it where the page cache
holds the file in small folios.

The trailing ``nbytes % 4`` bytes (at most 3) are not read; GB/s count the bytes read.
"""

from __future__ import annotations

import functools
import mmap
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ROW_WORDS",
    "FloorResult",
    "MappedFile",
    "floor",
    "merge",
    "wait_policy",
    "windowed_floor",
]

# Before Numba loads OpenMP (at the floor's first parallel run): see the module's docstring.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: 32-bit words per row: each thread sums rows of 64 KiB, far more rows than threads.
ROW_WORDS = 16384
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


def wait_policy() -> dict[str, str | None]:
    """How the floor's threads wait between runs: Numba's threading layer (``None`` before the
    first parallel run) and ``OMP_WAIT_POLICY``, for a benchmark's record."""
    import numba

    try:
        layer: str | None = numba.threading_layer()
    except ValueError:  # no parallel region has run yet
        layer = None
    return {"threading_layer": layer, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


class MappedFile:
    """A file (or a byte range of it) mapped read-only once, for :func:`floor`.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    offset, length : int
        Byte range; ``length=None`` maps to the end of the file. ``offset`` is rounded down to
        the allocation granularity for the mapping, the view starts at ``offset``.

    Use as a context manager; :attr:`data` is a read-only ``uint8`` view of the range.
    """

    def __init__(self, path: str | os.PathLike[str], offset: int = 0, length: int | None = None):
        self.path = os.fspath(path)
        size = os.path.getsize(self.path)
        if length is None:
            length = size - offset
        if offset < 0 or length <= 0 or offset + length > size:
            raise ValueError(f"byte range {offset}+{length} outside {self.path} ({size} bytes)")
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self._map = mmap.mmap(
                fd, offset + length - start, flags=_MAP_FLAGS, prot=mmap.PROT_READ, offset=start
            )
        finally:
            os.close(fd)
        self.data: np.ndarray = np.frombuffer(
            self._map, dtype=np.uint8, count=length, offset=offset - start
        )
        self.nbytes = length

    def close(self) -> None:
        """Unmap (views of :attr:`data` must be gone)."""
        if self._map.closed:
            return
        del self.data
        self._map.close()

    def __enter__(self) -> MappedFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class FloorResult:
    """What :func:`floor` measured.

    Attributes
    ----------
    gbps : float
        Bytes read / best time of the faster kernel, in GB/s (1e9 bytes).
    kernel : str
        The faster kernel: ``"uint32"`` (wrapping integer lanes) or ``"float32"`` (fastmath).
    seconds : float
        Its best time.
    nbytes : int
        Bytes read per run.
    threads : int
        Numba threads used.
    times_s : dict
        Every timed run of each kernel, in seconds.
    """

    gbps: float
    kernel: str
    seconds: float
    nbytes: int
    threads: int
    times_s: dict[str, list[float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields, prefixed ``floor_``."""
        return {
            "floor_gbps": self.gbps,
            "floor_kernel": self.kernel,
            "floor_seconds": self.seconds,
            "floor_threads": self.threads,
            "floor_times_s": self.times_s,
        }


@functools.cache
def _kernels() -> dict[str, Callable[..., Any]]:
    """The two summing kernels (compiled lazily, per input type: :func:`floor` warms them up on
    a slice of its input, since a read-only mapping is another type than a writable array)."""
    import numba

    @numba.njit(parallel=True, nogil=True, cache=True)
    def sum_uint32(a: np.ndarray, row: int) -> int:
        n = a.shape[0]
        nrows = (n + row - 1) // row
        part = np.zeros(nrows, np.uint32)
        for r in numba.prange(nrows):
            b = a[r * row : min(r * row + row, n)]
            s = np.uint32(0)
            for i in range(b.shape[0]):
                s = np.uint32(s + b[i])  # truncating keeps the lanes 32-bit (vpaddd)
            part[r] = s
        total = np.uint32(0)
        for r in range(nrows):
            total = np.uint32(total + part[r])
        return total

    @numba.njit(parallel=True, nogil=True, cache=True, fastmath=True)
    def sum_float32(a: np.ndarray, row: int) -> float:
        n = a.shape[0]
        nrows = (n + row - 1) // row
        part = np.zeros(nrows, np.float32)
        for r in numba.prange(nrows):
            b = a[r * row : min(r * row + row, n)]
            s = np.float32(0)
            for i in range(b.shape[0]):
                s += b[i]
            part[r] = s
        return part.sum()

    return {"uint32": sum_uint32, "float32": sum_float32}


@functools.cache
def _serial_sum() -> Callable[..., Any]:
    """The wrapping uint32 sum on one thread (for :func:`windowed_floor`'s own threads)."""
    import numba

    @numba.njit(nogil=True, cache=True)
    def sum_uint32_serial(a: np.ndarray) -> int:
        s = np.uint32(0)
        for i in range(a.shape[0]):
            s = np.uint32(s + a[i])
        return s

    return sum_uint32_serial  # type: ignore[no-any-return]


def windowed_floor(
    path: str | os.PathLike[str],
    nbytes: int,
    window: int = 16 * 2**20,
    repeat: int = 3,
    threads: int | None = None,
) -> FloorResult:
    """Read the first ``nbytes`` of ``path`` as an engine that maps must: each thread maps its
    share in ``window``-byte read-only windows (no pre-faulting), sums each as wrapping uint32
    words on one core, and unmaps it, all inside the timed run. Its distance to :func:`floor`
    is what the page tables cost (faults and unmapping); no mapping reader can beat it.

    Returns
    -------
    FloorResult
        ``kernel`` is ``"uint32-windows"``.
    """
    from concurrent.futures import ThreadPoolExecutor

    kernel = _serial_sum()
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    window -= window % mmap.ALLOCATIONGRANULARITY
    nbytes -= nbytes % 4
    kernel(np.zeros(16, np.uint32))
    fd = os.open(path, os.O_RDONLY)

    def share(k: int) -> None:
        lo = nbytes * k // threads
        lo -= lo % mmap.ALLOCATIONGRANULARITY
        hi = nbytes if k == threads - 1 else nbytes * (k + 1) // threads
        hi -= hi % mmap.ALLOCATIONGRANULARITY if k < threads - 1 else 0
        for start in range(lo, hi, window):
            size = min(window, hi - start)
            m = mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ, offset=start)
            words = np.frombuffer(m, np.uint8, size - size % 4).view(np.uint32)
            kernel(words)
            del words
            m.close()

    times: list[float] = []
    try:
        with ThreadPoolExecutor(threads) as pool:
            for _ in range(max(1, repeat)):
                t0 = time.perf_counter()
                list(pool.map(share, range(threads)))
                times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
    return _result({"uint32-windows": times}, nbytes, threads)


_checked: set[tuple[int, int]] = set()


def _words(source: MappedFile | np.ndarray) -> np.ndarray:
    """The bytes of ``source`` as a 1-D uint32 view (a copy only if it is not contiguous)."""
    raw = source.data if isinstance(source, MappedFile) else np.asarray(source)
    raw = np.ascontiguousarray(raw).reshape(-1).view(np.uint8)
    return raw[: raw.size - raw.size % 4].view(np.uint32)


def _check(words: np.ndarray, kernel: Callable[..., Any]) -> None:
    key = (words.__array_interface__["data"][0], words.size)
    if key in _checked:
        return
    got = int(kernel(words, ROW_WORDS))
    want = int(np.add.reduce(words, dtype=np.uint32))
    if got != want:
        raise AssertionError(f"floor kernel summed {got:#x}, NumPy {want:#x}: the floor is wrong")
    _checked.add(key)


def floor(
    source: MappedFile | np.ndarray, repeat: int = 3, threads: int | None = None
) -> FloorResult:
    """Time both summing kernels over ``source``'s bytes, ``repeat`` times each, alternately.

    Parameters
    ----------
    source : MappedFile or numpy.ndarray
        A mapped file, or any C-contiguous array (its bytes are read as they are).
    repeat : int
        Timed runs per kernel; the best counts.
    threads : int, optional
        Numba threads; default one per usable core (``1``: the single-threaded floor).

    Returns
    -------
    FloorResult
        The faster kernel's GB/s and all the times.
    """
    import numba

    kernels = _kernels()
    words = _words(source)
    if threads is None:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        _check(words, kernels["uint32"])
        floats = words.view(np.float32)
        inputs = {"uint32": words, "float32": floats}
        for name, kernel in kernels.items():  # compile for this input type, untimed
            kernel(inputs[name][:ROW_WORDS], ROW_WORDS)
        times: dict[str, list[float]] = {name: [] for name in kernels}
        for _ in range(max(1, repeat)):
            for name, kernel in kernels.items():
                t0 = time.perf_counter()
                kernel(inputs[name], ROW_WORDS)
                times[name].append(time.perf_counter() - t0)
    finally:
        numba.set_num_threads(previous)
    return _result(times, words.nbytes, threads)


def _result(times: dict[str, list[float]], nbytes: int, threads: int) -> FloorResult:
    kernel = min(times, key=lambda name: min(times[name]))
    best = min(times[kernel])
    return FloorResult(nbytes / best / 1e9, kernel, best, nbytes, threads, times)


def merge(results: Iterable[FloorResult]) -> FloorResult:
    """One result from several :func:`floor` calls on the same bytes (e.g. alternated with
    another contender): all times pooled, the best counts."""
    results = list(results)
    if not results:
        raise ValueError("nothing to merge")
    times: dict[str, list[float]] = {}
    for r in results:
        for name, ts in r.times_s.items():
            times.setdefault(name, []).extend(ts)
    return _result(times, results[0].nbytes, results[0].threads)
