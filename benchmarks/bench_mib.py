"""SumUDF over a Merlin 12-bit ``.mib`` file against the shared memory floor and against a raw
file of the same frames, measured in one run.

Not a test. Run ``python benchmarks/bench_mib.py [--gib 2.0] [--repeat 3] [--dir /tmp] [--keep]``:
writes a ``.mib`` of 256x256 ``U16`` (big-endian) frames with 384-byte frame headers and a raw
file of the same frames (native uint16, no headers), then measures, alternately,

- the floor (:mod:`floor`, shared by every CPU benchmark) over each file: mapped once outside
  the timed runs, the faster of a wrapping uint32 and a fastmath float32 sum of its bytes, all
  cores;
- SumUDF on the threads executor, CPU backend, over each file.

Before any figure counts, each SumUDF result is compared with a float64 NumPy sum of the frames
read from the mapped ``.mib`` itself (headers skipped, big-endian words), in chunks: a wrong
result is reported as an error and the script exits non-zero. Figures:

- ``ratio_floor``: the floor's best time over the ``.mib`` / SumUDF's (both read the same file);
- ``ratio_to_raw``: the raw file's SumUDF time / the ``.mib``'s (target >= 0.8);
- GB/s count frame bytes for SumUDF and file bytes for the floor.

Files are in the page cache after writing when they fit in memory. Writes a JSON to
``benchmarks/results/`` with the machine's details (CPU model and instruction set). Timings on a
shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import alternate, check_close, frame_sum, machine_info
from floor import MappedFile, floor, merge

from libertem_gpu import Context, SumUDF

FRAME = (256, 256)
HEADER = 384


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


def reference_sum(mapped: MappedFile, frames: int) -> np.ndarray:
    """Float64 sum of the ``.mib``'s frames, read from its bytes (headers skipped), in chunks."""
    record = np.dtype([("header", f"V{HEADER}"), ("frame", ">u2", FRAME)])
    return frame_sum(np.frombuffer(mapped.data, dtype=record, count=frames)["frame"])


def measure(
    ctx: Context, ds: Any, mapped: MappedFile, want: np.ndarray, repeat: int, what: str
) -> dict[str, Any]:
    """SumUDF over ``ds`` alternately with the floor over its file; the SumUDF result is
    checked against ``want`` before the figures are returned."""
    floors = []

    def sum_udf() -> Any:
        return ctx.run_udf(dataset=ds, udf=SumUDF(), backends="numpy")

    runs = alternate({"floor": lambda: floors.append(floor(mapped, 1)), "sumudf": sum_udf}, repeat)
    times, result = runs["sumudf"]
    check_close(f"SumUDF over the {what} file", result["intensity"].data, want, 1e-9)
    fl = merge(floors)
    return {
        **fl.as_dict(),
        "file_bytes": mapped.nbytes,
        "sumudf_times_s": times,
        "sumudf_gb_s": ds.nbytes / min(times) / 1e9,
        "ratio_floor": fl.seconds / min(times),
        "verified": True,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure (best of)")
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--out", help="JSON path (default results/bench_mib_<host>_<time>.json)")
    args = parser.parse_args(argv)
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
    result: dict[str, Any] = {
        "benchmark": "SumUDF on a Merlin 12-bit .mib (U16 big-endian, 384-byte frame headers)",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "nav_shape": list(nav),
        "sig_shape": list(FRAME),
        "repeat": args.repeat,
        "target_ratio_to_raw": 0.8,
        "floor_method": "benchmarks/floor.py over each file's bytes, alternately with SumUDF",
        "verification": "SumUDF results vs a float64 NumPy sum of the .mib's frames (rtol 1e-9)",
        "machine": machine_info(),
        "note": "page-cached files; shared machine, timings are noisy",
    }
    status = 0
    try:
        with (
            MappedFile(path) as mib_map,
            MappedFile(raw) as raw_map,
            Context("threads") as ctx,
        ):
            want = reference_sum(mib_map, side * side)
            ds = ctx.load("mib", path=str(path))
            assert ds.nav_shape == nav
            raw_ds = ctx.load("raw", path=str(raw), nav_shape=nav, sig_shape=FRAME, dtype="u2")
            for key, d, mapped in (("raw", raw_ds, raw_map), ("mib", ds, mib_map)):
                try:
                    result[key] = measure(ctx, d, mapped, want, args.repeat, key)
                except AssertionError as e:
                    result[key] = {"error": f"{type(e).__name__}: {e}"}
                    status = 1
    finally:
        raw.unlink(missing_ok=True)
        if not args.keep:
            path.unlink(missing_ok=True)
            hdr.unlink(missing_ok=True)
    if status == 0:
        result["ratio_to_raw"] = min(result["raw"]["sumudf_times_s"]) / min(
            result["mib"]["sumudf_times_s"]
        )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    default = (
        Path(__file__).parent
        / "results"
        / f"bench_mib_{result['machine']['hostname']}_{stamp}.json"
    )
    out = Path(args.out) if args.out else default
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))
    print(f"written to {out}" + ("" if status == 0 else "; WRONG RESULTS: no figures"))
    return status


if __name__ == "__main__":
    sys.exit(main())
