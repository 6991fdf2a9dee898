"""CPU benchmark runner: libertem_gpu against the memory floor, Dask arrays and LiberTEM 0.16.

Not a test. Run from the repository root::

    python benchmarks/run_cpu.py                       # 2 GiB uint16 + 2 GiB float32, best of 3
    python benchmarks/run_cpu.py --size 256MiB --repeat 2 --only sum,com --no-memory

In one run, on the same page-cached raw files (frames of 256 x 256; written, then read once
before any timing), it measures:

- the floor: a minimal Numba kernel, parallel over frames (``prange``, one thread per core), that
  sums the file through a fresh read-only ``mmap`` (``MAP_SHARED | MAP_POPULATE``, as the
  library's reader maps partitions), opened and closed inside each timed run, so that both pay
  the same page-mapping cost;
- libertem_gpu's ``threads`` executor for SumUDF, SumSigUDF, StdDevUDF, ApplyMasksUDF with 1 and
  with 16 dense random float32 masks, and CoMUDF;
- the Dask array equivalent (``da.from_array(np.memmap(...))``, threaded scheduler, one worker
  per core) and LiberTEM 0.16 (``Context.make_with("threads")``) where installed;
- start-up: a new Python process to the first SumUDF result on a small raw file, with Numba's
  on-disk cache cold (``NUMBA_CACHE_DIR`` pointed at a fresh folder) and warm;
- peak resident memory of ``libertem-gpu demo --size 4GiB`` (``ru_maxrss`` of the child).

Throughput is bytes of the data set over wall time, best of ``--repeat`` runs after one warm-up
run (which compiles). For each analysis the floor runs again, alternating with libertem_gpu, so
that the ratio to the floor compares runs taken under the same load of a shared machine.
Results go to ``benchmarks/results/<date>-cpu-<hostname>.json`` (the time of day is added where
that file exists) and a markdown table is printed.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import itertools
import json
import math
import mmap
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, ROOT)

ANALYSES = ("sum", "sumsig", "std", "masks1", "masks16", "vbf", "rings16", "com")
#: Minimum ratio to the floor (threads executor), from the issue's acceptance criteria.
FLOOR_TARGETS = {
    "sum": 0.8,
    "sumsig": 0.8,
    "masks1": 0.8,
    "std": 0.6,
    "com": 0.6,
    "masks16": 0.4,
    "vbf": 0.8,
    "rings16": 0.4,
}
MASK_ANALYSES = ("masks1", "masks16", "vbf", "rings16")
#: Minimum speed-up over LiberTEM 0.16, per dtype.
LIBERTEM_TARGETS = {"uint16": 3.0, "float32": 1.0}
SIG_SHAPE = (256, 256)
_MAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)


# --- machine and files ---


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory and the versions that matter."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = None
    try:
        import psutil

        mem = psutil.virtual_memory().total
    except ImportError:
        if hasattr(os, "sysconf"):
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    versions = {}
    for name in ("numpy", "numba", "dask", "libertem", "libertem_gpu"):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except Exception:  # optional: any import failure means "absent"
            versions[name] = None
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu,
        "cores_logical": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def n_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def layout(size: int, dtype: np.dtype) -> tuple[int, int]:
    """A near-square 2-D scan of 256 x 256 frames holding at least ``size`` bytes."""
    frame_bytes = math.prod(SIG_SHAPE) * dtype.itemsize
    frames = max(4, -(-size // frame_bytes))
    ny = max(2, math.isqrt(frames))
    nx = -(-frames // ny)
    return ny, nx


def write_file(path: str, nav: tuple[int, int], dtype: np.dtype, seed: int) -> int:
    """Random-ish data (12-bit integers, or floats around 100) in 64 MiB chunks."""
    rng = np.random.default_rng(seed)
    n = math.prod(nav) * math.prod(SIG_SHAPE)
    chunk = 32 * 2**20
    with open(path, "wb") as f:
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            if dtype.kind == "u":
                words = rng.bit_generator.random_raw(-(-m // 4)).view(np.uint16)[:m]
                words &= 0x0FFF
                words.astype(dtype, copy=False).tofile(f)
            else:
                (rng.random(m, dtype=np.float32) * 200).astype(dtype, copy=False).tofile(f)
    return n * dtype.itemsize


def read_once(path: str) -> None:
    """Bring the file into the page cache."""
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(64 * 2**20)
        while f.readinto(buf):
            pass


# --- the floor ---


@functools.cache
def _floor_kernels() -> dict[str, Callable[..., Any]]:
    import numba

    @numba.njit(parallel=True, nogil=True, cache=True)
    def sum_int(a):
        total = 0
        for i in numba.prange(a.shape[0]):
            s = np.uint64(0)
            for p in range(a.shape[1]):
                s += a[i, p]
            total += s
        return total

    # fastmath lets the float loop vectorise: the floor is about bandwidth, not rounding order.
    @numba.njit(parallel=True, nogil=True, cache=True, fastmath=True)
    def sum_float(a):
        total = 0.0
        for i in numba.prange(a.shape[0]):
            s = np.float32(0)
            for p in range(a.shape[1]):
                s += a[i, p]
            total += s
        return total

    return {"u": sum_int, "f": sum_float}


def gemm_ceiling(cores: int, dtype: np.dtype, frames: int = 256) -> float:
    """GB/s (of ``dtype`` input) of 16-mask products when the frames are already float32: one
    single-threaded sgemm per core, concurrently. 16 dense masks cost 16 multiply-adds per
    pixel, so this compute ceiling, not memory, bounds ``masks16``."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    npix = math.prod(SIG_SHAPE)
    rng = np.random.default_rng(5)
    blocks = [rng.random((frames, npix), dtype=np.float32) for _ in range(cores)]
    masks = rng.random((npix, 16), dtype=np.float32)

    def work() -> None:
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(lambda b: b @ masks, blocks))

    with threadpool_limits(1, "blas"):
        best, _ = best_of(work, 3)
    return cores * frames * npix * dtype.itemsize / best / 1e9


def floor_run(path: str, n_frames: int, dtype: np.dtype) -> float:
    """Map the file read-only, sum it in parallel over frames, unmap; returns the sum."""
    kernel = _floor_kernels()[dtype.kind]
    fd = os.open(path, os.O_RDONLY)
    try:
        size = n_frames * math.prod(SIG_SHAPE) * dtype.itemsize
        m = mmap.mmap(fd, size, flags=_MAP_FLAGS, prot=mmap.PROT_READ)
        try:
            a = np.frombuffer(m, dtype=dtype).reshape(n_frames, -1)
            result = float(kernel(a))
            del a
        finally:
            m.close()
    finally:
        os.close(fd)
    return result


# --- the contenders ---


def _masks(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SIG_SHAPE), dtype=np.float32)


def _drawn_masks(name: str) -> np.ndarray:
    """What users draw: a bright-field disk, or 16 concentric rings (binary masks)."""
    h, w = SIG_SHAPE
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2)
    if name == "vbf":
        return (r <= min(h, w) / 8)[np.newaxis]
    edges = np.linspace(0, min(h, w) / 2, 17)
    return np.stack([(r >= a) & (r < b) for a, b in itertools.pairwise(edges)])


def _mask_stack(name: str) -> np.ndarray:
    if name in ("vbf", "rings16"):
        return _drawn_masks(name)
    return _masks(1 if name == "masks1" else 16, 1)


def _com_geometry() -> dict[str, float]:
    h, w = SIG_SHAPE
    return {"cy": (h - 1) / 2, "cx": (w - 1) / 2, "r": min(h, w) / 4}


def _return(value: np.ndarray) -> np.ndarray:
    return value


def libertem_gpu_udf(name: str) -> Any:
    import libertem_gpu as lg

    if name == "sum":
        return lg.SumUDF()
    if name == "sumsig":
        return lg.SumSigUDF()
    if name == "std":
        return lg.StdDevUDF()
    if name in MASK_ANALYSES:
        stack = _mask_stack(name)
        # float32 arithmetic for float32 masks, as LiberTEM does (results float32); binary
        # masks are summed exactly whatever the dtype.
        return lg.ApplyMasksUDF(
            mask_factories=[functools.partial(_return, m) for m in stack], mask_dtype=np.float32
        )
    if name == "com":
        return lg.CoMUDF.with_params(**_com_geometry())
    raise KeyError(name)


def libertem_udf(name: str) -> Any:
    if name == "sum":
        from libertem.udf.sum import SumUDF

        return SumUDF()
    if name == "sumsig":
        from libertem.udf.sumsigudf import SumSigUDF

        return SumSigUDF()
    if name == "std":
        from libertem.udf.stddev import StdDevUDF

        return StdDevUDF()
    if name in MASK_ANALYSES:
        from libertem.udf.masks import ApplyMasksUDF

        stack = _mask_stack(name)
        return ApplyMasksUDF(
            mask_factories=[functools.partial(_return, m) for m in stack],
            use_sparse=False if name in ("masks1", "masks16") else None,
        )
    if name == "com":
        from libertem.udf.com import CoMUDF

        return CoMUDF.with_params(**_com_geometry())
    raise KeyError(name)


def dask_run(name: str, path: str, nav: tuple[int, int], dtype: np.dtype, cores: int) -> Any:
    """The Dask array equivalent of each analysis on a memmap, threaded scheduler."""
    import dask.array as da

    n = math.prod(nav)
    npix = math.prod(SIG_SHAPE)
    mm = np.memmap(path, dtype=dtype, mode="r", shape=(n, npix))
    frames_per_chunk = max(1, (128 * 2**20) // (npix * dtype.itemsize))
    arr = da.from_array(mm, chunks=(frames_per_chunk, npix))
    if name == "sum":
        expr = arr.sum(axis=0, dtype=np.float64)
    elif name == "sumsig":
        expr = arr.sum(axis=1, dtype=np.float64)
    elif name == "std":
        expr = arr.std(axis=0, dtype=np.float64)
    elif name in MASK_ANALYSES:
        stack = _mask_stack(name).reshape(-1, npix).astype(np.float32)
        expr = arr @ stack.T
    elif name == "com":
        g = _com_geometry()
        yy, xx = np.mgrid[0 : SIG_SHAPE[0], 0 : SIG_SHAPE[1]]
        disk = ((yy - g["cy"]) ** 2 + (xx - g["cx"]) ** 2 <= g["r"] ** 2).astype(np.float32)
        weights = np.stack([disk, disk * yy, disk * xx], axis=-1).reshape(npix, 3)
        moments = arr @ weights
        expr = moments[:, 1:] / moments[:, :1]
    else:
        raise KeyError(name)
    return expr.compute(scheduler="threads", num_workers=cores)


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, list[float]]:
    """Run ``fn`` once to warm up, then ``repeat`` timed times; best and all times."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), times


def interleaved_best(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """Warm up each of ``fns`` once, then time them in turn, ``repeat`` rounds: every contender
    sees the same drift of a shared machine. Returns all times per name."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


# --- start-up and memory ---

_STARTUP_CHILD = """
import time, sys
from libertem_gpu import Context, SumUDF
ctx = Context("threads")
ds = ctx.load("raw", path=sys.argv[1], nav_shape=(16, 16), sig_shape=(64, 64), dtype="uint16")
res = ctx.run_udf(dataset=ds, udf=SumUDF())
res["intensity"].data.sum()
print(time.time(), flush=True)
ctx.close()
"""


def startup(work: str, repeat: int) -> dict[str, Any]:
    """Seconds from spawning a Python process to its first SumUDF result (cold and warm
    Numba cache)."""
    path = os.path.join(work, "startup.raw")
    rng = np.random.default_rng(3)
    rng.integers(0, 4096, size=(256, 64, 64), dtype=np.uint16).tofile(path)

    def once(cache_dir: str) -> float:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, "-c", _STARTUP_CHILD, path],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1]) - t0

    colds = []
    warms = []
    for _ in range(max(1, repeat)):
        cache = tempfile.mkdtemp(prefix="numba-cache-", dir=work)
        colds.append(once(cache))
        warms.append(once(cache))
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "cold_s": min(colds),
        "warm_s": min(warms),
        "cold_all_s": colds,
        "warm_all_s": warms,
        "file": "16 x 16 scan of 64 x 64 uint16 frames",
    }


_MEMORY_CHILD = """
import sys
from libertem_gpu.cli import main
rc = main(sys.argv[1:])
with open("/proc/self/status") as f:
    peak = [line.split()[1] for line in f if line.startswith("VmHWM:")][0]
print("VmHWM_KiB", peak, flush=True)
sys.exit(rc)
"""


def demo_memory(work: str, size: str) -> dict[str, Any]:
    """Peak resident memory of ``libertem-gpu demo --size SIZE`` in a new process.

    Read as ``VmHWM`` from ``/proc/self/status`` by the process itself when the demo is done:
    ``ru_maxrss`` of a child would also count the forked image of this (large) parent process,
    which Linux keeps in the child's high-water mark across ``exec``.
    """
    out_dir = os.path.join(work, "demo-out")
    argv = ["demo", "--size", size, "--out", out_dir, "--tmp-dir", work]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, *argv],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"libertem-gpu {' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    peak = int(lines[-1].split()[1]) * 1024
    return {
        "size": size,
        "peak_rss_bytes": peak,
        "peak_rss_mib": peak / 2**20,
        "seconds": seconds,
        "method": "VmHWM of the demo process (libertem_gpu.cli.main in a fresh interpreter)",
        "output": lines[:-1],
    }


# --- the run ---


def bench_dtype(
    dtype: np.dtype,
    size: int,
    work: str,
    analyses: list[str],
    repeat: int,
    with_dask: bool,
    with_libertem: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    nav = layout(size, dtype)
    n = math.prod(nav)
    path = os.path.join(work, f"bench-{dtype.name}.raw")
    t0 = time.perf_counter()
    nbytes = write_file(path, nav, dtype, seed=7)
    read_once(path)
    log(
        f"{dtype.name}: {nbytes / 2**30:.2f} GiB, scan {nav}, frames {SIG_SHAPE}; written and "
        f"read in {time.perf_counter() - t0:.1f} s"
    )
    cores = n_cores()
    floor_s, floor_all = best_of(lambda: floor_run(path, n, dtype), repeat)
    floor = nbytes / floor_s / 1e9
    log(f"  floor: {floor:.2f} GB/s")
    gemm = gemm_ceiling(cores, dtype)
    log(f"  GEMM ceiling (16 masks, data already float32): {gemm:.2f} GB/s of {dtype.name}")
    result: dict[str, Any] = {
        "dtype": dtype.name,
        "nav_shape": list(nav),
        "sig_shape": list(SIG_SHAPE),
        "nbytes": nbytes,
        "floor_gbps": floor,
        "floor_times_s": floor_all,
        "gemm16_ceiling_gbps": gemm,
        "analyses": {},
    }

    from libertem_gpu import Context

    lt_ctx = lt_ds = None
    if with_libertem:
        try:
            from libertem.api import Context as LTContext

            lt_ctx = LTContext.make_with("threads", cpus=cores)
            lt_ds = lt_ctx.load(
                "raw", path=path, nav_shape=nav, sig_shape=SIG_SHAPE, dtype=dtype.name
            )
        except ImportError as e:
            log(f"  LiberTEM not available: {e}")
            lt_ctx = None
    try:
        with Context("threads") as ctx:
            ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=SIG_SHAPE, dtype=dtype.name)
            for name in analyses:
                # The floor runs again for each analysis, alternating with ours, so that the
                # ratio compares runs taken under the same load of a (shared) machine. The other
                # contenders run afterwards: a Dask run between them would leave the next one
                # slower (freed memory to zero, evicted caches) and bias the ratio.
                times = interleaved_best(
                    {
                        "floor": lambda: floor_run(path, n, dtype),
                        "ours": lambda name=name: ctx.run_udf(
                            dataset=ds, udf=libertem_gpu_udf(name)
                        ),
                    },
                    repeat,
                )
                if lt_ctx is not None:
                    times["libertem"] = best_of(
                        lambda name=name: lt_ctx.run_udf(dataset=lt_ds, udf=libertem_udf(name)),
                        repeat,
                    )[1]
                if with_dask:
                    times["dask"] = best_of(
                        lambda name=name: dask_run(name, path, nav, dtype, cores), repeat
                    )[1]
                gbps = {key: nbytes / min(ts) / 1e9 for key, ts in times.items()}
                entry: dict[str, Any] = {
                    "gbps": gbps["ours"],
                    "times_s": times["ours"],
                    "floor_gbps": gbps["floor"],
                    "floor_times_s": times["floor"],
                    "ratio_floor": gbps["ours"] / gbps["floor"],
                    "target_floor": FLOOR_TARGETS[name],
                }
                if name in ("masks16", "rings16"):
                    entry["ratio_gemm16_ceiling"] = entry["gbps"] / gemm
                if "dask" in gbps:
                    entry["dask_gbps"] = gbps["dask"]
                    entry["dask_times_s"] = times["dask"]
                    entry["ratio_dask"] = gbps["ours"] / gbps["dask"]
                if "libertem" in gbps:
                    entry["libertem_gbps"] = gbps["libertem"]
                    entry["libertem_times_s"] = times["libertem"]
                    entry["ratio_libertem"] = gbps["ours"] / gbps["libertem"]
                    entry["target_libertem"] = LIBERTEM_TARGETS.get(dtype.name)
                result["analyses"][name] = entry
                log(
                    f"  {name}: {entry['gbps']:.2f} GB/s ({entry['ratio_floor']:.2f} of floor)"
                    + (f", dask {entry['dask_gbps']:.2f}" if "dask_gbps" in entry else "")
                    + (
                        f", LiberTEM {entry['libertem_gbps']:.2f}"
                        if "libertem_gbps" in entry
                        else ""
                    )
                )
    finally:
        if lt_ctx is not None:
            lt_ctx.close()
        os.unlink(path)
    return result


def markdown(report: dict[str, Any]) -> str:
    """The results as a markdown table (and the start-up and memory figures)."""
    lines = [
        f"CPU: {report['machine']['cpu']}, {report['machine']['cores_usable']} cores, "
        f"Python {report['machine']['python']}, numpy {report['machine']['versions']['numpy']}, "
        f"numba {report['machine']['versions']['numba']}; best of {report['repeat']}",
        "",
        "| dtype | analysis | GB/s | floor GB/s | / floor (target) | Dask GB/s | / Dask "
        "| LiberTEM GB/s | / LiberTEM (target) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def fmt(value: Any, digits: int = 2) -> str:
        return "-" if value is None else f"{value:.{digits}f}"

    for run in report["runs"]:
        for name, e in run["analyses"].items():
            floor_ok = "ok" if e["ratio_floor"] >= e["target_floor"] else "MISS"
            lt = e.get("ratio_libertem")
            lt_target = e.get("target_libertem")
            lt_ok = (
                "" if lt is None or lt_target is None else (" ok" if lt >= lt_target else " MISS")
            )
            lines.append(
                f"| {run['dtype']} | {name} | {fmt(e['gbps'])} | {fmt(e['floor_gbps'])} "
                f"| {fmt(e['ratio_floor'])} (>= {e['target_floor']}) {floor_ok} "
                f"| {fmt(e.get('dask_gbps'))} | {fmt(e.get('ratio_dask'))} "
                f"| {fmt(e.get('libertem_gbps'))} | {fmt(lt)}"
                + (f" (>= {lt_target}){lt_ok}" if lt is not None else "")
                + " |"
            )
    lines.append("")
    for run in report["runs"]:
        for name in ("masks16", "rings16"):
            e = run["analyses"].get(name)
            if e is not None and "ratio_gemm16_ceiling" in e:
                lines.append(
                    f"{run['dtype']} {name}: {e['ratio_gemm16_ceiling']:.2f} of the 16-mask "
                    f"float32 GEMM ceiling ({run['gemm16_ceiling_gbps']:.2f} GB/s, frames "
                    "already float32, one sgemm per core)."
                )
    if "startup" in report:
        s = report["startup"]
        lines += [
            "",
            f"Start-up to first SumUDF result: warm Numba cache {s['warm_s']:.2f} s (target < 1), "
            f"cold {s['cold_s']:.2f} s (target < 5).",
        ]
    if "demo_memory" in report:
        m = report["demo_memory"]
        lines.append(
            f"Peak resident memory of `libertem-gpu demo --size {m['size']}`: "
            f"{m['peak_rss_mib']:.0f} MiB (target < 1024), {m['seconds']:.0f} s in all."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from libertem_gpu.sizes import parse_size

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GiB", help="bytes per data file (default 2GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure (best of)")
    parser.add_argument(
        "--only",
        default=",".join(ANALYSES),
        help=f"comma-separated analyses among {','.join(ANALYSES)}",
    )
    parser.add_argument(
        "--dtypes", default="uint16,float32", help="data file dtypes (default uint16,float32)"
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask comparison")
    parser.add_argument("--no-libertem", action="store_true", help="skip the LiberTEM comparison")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up timing")
    parser.add_argument("--no-memory", action="store_true", help="skip the demo memory peak")
    parser.add_argument("--memory-size", default="4GiB", help="demo size for the memory peak")
    parser.add_argument("--dir", help="folder for the data files (default: system temp folder)")
    parser.add_argument(
        "--out",
        help="JSON path (default benchmarks/results/<date>-cpu-<hostname>[-<time>].json)",
    )
    args = parser.parse_args(argv)
    analyses = [a for a in args.only.split(",") if a]
    unknown = sorted(set(analyses) - set(ANALYSES))
    if unknown:
        parser.error(f"unknown analyses {unknown}; valid: {', '.join(ANALYSES)}")
    size = parse_size(args.size)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "kind": "cpu",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "size_bytes": size,
        "repeat": args.repeat,
        "executor": "threads",
        "floor_method": (
            "Numba njit(parallel=True) sum over frames (prange), one thread per core, of a fresh "
            "read-only mmap (MAP_SHARED|MAP_POPULATE) of the page-cached file, mapped and "
            "unmapped inside each timed run; integer accumulator for ints, fastmath float32 "
            "for floats"
        ),
        "masks": (
            "masks1/masks16: dense random float32 masks (256 x 256), float32 arithmetic "
            "(mask_dtype=float32, as LiberTEM uses for float32 masks); vbf: one binary disk of "
            "radius 32; rings16: 16 binary concentric rings out to radius 128"
        ),
        "com": _com_geometry(),
        "dask": "da.from_array(np.memmap) with 128 MiB chunks, scheduler='threads'",
        "libertem": "Context.make_with('threads'), ApplyMasksUDF(use_sparse=False)",
        "runs": [],
    }
    log(f"machine: {report['machine']['cpu']}, {n_cores()} cores")
    work = tempfile.mkdtemp(prefix="libertem-gpu-bench-", dir=args.dir)
    try:
        for dtype in args.dtypes.split(","):
            report["runs"].append(
                bench_dtype(
                    np.dtype(dtype),
                    size,
                    work,
                    analyses,
                    args.repeat,
                    with_dask=not args.no_dask,
                    with_libertem=not args.no_libertem,
                    log=log,
                )
            )
        if not args.no_startup:
            report["startup"] = startup(work, args.repeat)
            log(
                f"start-up: warm {report['startup']['warm_s']:.2f} s, "
                f"cold {report['startup']['cold_s']:.2f} s"
            )
        if not args.no_memory:
            report["demo_memory"] = demo_memory(work, args.memory_size)
            log(f"demo peak RSS: {report['demo_memory']['peak_rss_mib']:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = args.out or _default_out()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    table = markdown(report)
    print(table)
    log(f"wrote {out}")
    return 0


def _default_out() -> str:
    """``results/<date>-cpu-<hostname>.json``; a later run on the same day adds the time of day
    instead of overwriting an earlier (possibly committed) result."""
    stem = os.path.join(
        HERE, "results", f"{datetime.date.today().isoformat()}-cpu-{socket.gethostname()}"
    )
    if not os.path.exists(stem + ".json"):
        return stem + ".json"
    return f"{stem}-{datetime.datetime.now().strftime('%H%M%S')}.json"


if __name__ == "__main__":
    sys.exit(main())
