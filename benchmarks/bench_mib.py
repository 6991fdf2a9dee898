"""SumUDF over a Merlin 12-bit ``.mib`` file against the raw-file floor, measured in one run.

Not a test. Run ``python benchmarks/bench_mib.py [--gib 2.0] [--dir /tmp] [--keep]``: writes a
``.mib`` of 256x256 ``U16`` (big-endian) frames with 384-byte frame headers, then measures

- the floor: the same file read in 64 MiB chunks by one thread per core (``os.preadv`` into
  reusable buffers) and summed as native 16-bit words by a minimal Numba kernel;
- SumUDF on the threads executor, CPU backend;
- the raw-file figure: SumUDF on a raw file of the same frames (native uint16, no headers), the
  acceptance reference (target: the MIB figure >= 0.8 of it). GB/s count frame bytes for both.

Both read the same bytes in the same cache state (each is run twice, the best counts: the file
is in the page cache after writing when it fits in memory). Writes a JSON to
``benchmarks/results/`` with the machine's details. Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np

from libertem_gpu import Context, SumUDF

FRAME = (256, 256)
HEADER = 384


@numba.njit(nogil=True, cache=True)
def _sum_u16(buf):
    """Sum a buffer as 16-bit words in the machine's order, headers included: a bandwidth
    floor (no byte swap, so it vectorises), not a correct sum."""
    s = 0
    for i in range(buf.shape[0]):
        s += buf[i]
    return s


def write_file(path: Path, frames: int) -> None:
    rng = np.random.default_rng(1)
    block = rng.integers(0, 4096, size=(64, *FRAME), dtype=np.uint16).astype(">u2")
    with open(path, "wb") as f:
        for i in range(frames):
            head = f"MQ1,{i + 1:06d},{HEADER:05d},01,0256,0256,U16,   1x1,01,".encode()
            head += b"2024-01-02 03:04:05.000000,0.001000,0,0,0,MQ1A,x,1000000ns,12,"
            f.write(head + b"\x00" * (HEADER - len(head)))
            f.write(block[i % 64].tobytes())


def write_raw(path: Path, frames: int) -> None:
    rng = np.random.default_rng(1)
    block = rng.integers(0, 4096, size=(64, *FRAME), dtype=np.uint16)
    with open(path, "wb") as f:
        for i in range(frames):
            f.write(block[i % 64].tobytes())


def best_sum(ctx: Context, ds, repeat: int = 3) -> float:
    """Best wall time of SumUDF over ``ds`` (after a warm-up run)."""
    ctx.run_udf(dataset=ds, udf=SumUDF(), backends="numpy")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ctx.run_udf(dataset=ds, udf=SumUDF(), backends="numpy")
        times.append(time.perf_counter() - t0)
    return min(times)


def floor(path: Path, threads: int, chunk: int = 64 << 20) -> float:
    size = path.stat().st_size
    offsets = list(range(0, size, chunk))
    fd = os.open(path, os.O_RDONLY)
    buffers = [np.empty(chunk, dtype=np.uint8) for _ in range(threads)]

    def work(k: int) -> int:
        buf = buffers[k % threads]
        total = 0
        for off in offsets[k::threads]:
            got = os.preadv(fd, [buf], off)
            total += _sum_u16(buf[: got - got % 2].view(np.uint16))
        return total

    _sum_u16(buffers[0][:16].view(np.uint16))  # compile
    try:
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
        return time.perf_counter() - t0
    finally:
        os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    stride = HEADER + 2 * FRAME[0] * FRAME[1]
    side = int(np.ceil(np.sqrt(args.gib * 2**30 / stride)))
    nav = (side, side)
    path = Path(args.dir) / "bench_12bit.mib"
    hdr = path.with_suffix(".hdr")
    if not path.exists() or path.stat().st_size != side * side * stride:
        write_file(path, side * side)
    hdr.write_text(
        "HDR,\t\nCounter Depth (number):\t12\n"
        f"Frames in Acquisition (Number):\t{side * side}\nFrames per Trigger (Number):\t{side}\n"
        "End\t"
    )
    raw = path.with_suffix(".raw")
    write_raw(raw, side * side)
    size = path.stat().st_size
    threads = os.cpu_count() or 1
    try:
        floor_s = min(floor(path, threads) for _ in range(2))
        with Context("threads") as ctx:
            ds = ctx.load("mib", path=str(path))
            assert ds.nav_shape == nav
            raw_ds = ctx.load("raw", path=str(raw), nav_shape=nav, sig_shape=FRAME, dtype="u2")
            frame_bytes = ds.nbytes
            raw_s = best_sum(ctx, raw_ds)
            sum_s = best_sum(ctx, ds)
    finally:
        raw.unlink(missing_ok=True)
        if not args.keep:
            path.unlink(missing_ok=True)
            hdr.unlink(missing_ok=True)
    result = {
        "benchmark": "SumUDF on a Merlin 12-bit .mib (U16 big-endian, 384-byte frame headers)",
        "file_bytes": size,
        "nav_shape": list(nav),
        "sig_shape": list(FRAME),
        "threads": threads,
        "floor_gb_s": size / floor_s / 1e9,
        "sumudf_gb_s": frame_bytes / sum_s / 1e9,
        "raw_sumudf_gb_s": frame_bytes / raw_s / 1e9,
        "ratio_to_raw": raw_s / sum_s,
        "ratio_to_floor": (frame_bytes / sum_s) / (size / floor_s),
        "target_ratio_to_raw": 0.8,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
        },
        "note": "page-cached file; shared machine, timings are noisy",
    }
    out = Path(__file__).parent / "results" / f"bench_mib_{platform.node() or 'host'}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
