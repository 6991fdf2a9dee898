"""Large frames (4096 x 4096 uint16 by default) against the shared memory floor.

Not a test. Run ``python benchmarks/bench_large_frames.py [--frames 64] [--side 4096]
[--repeat 3] [--only sum,std,masks1,masks16] [--dir /tmp] [--keep]``: writes a raw file of
random 12-bit frames, then measures, alternately with the floor (:mod:`floor`: the file mapped
once, the faster of a wrapping uint32 and a fastmath float32 sum of its bytes, all cores),
SumUDF, StdDevUDF and ApplyMasksUDF with one and with 16 dense float32 masks on the threads
executor, CPU backend.

Frames larger than a tile are split into row slabs (see docs/settings.md), so this measures the
path that 256 x 256 frames never take. Before a figure counts, its result is compared with
float64 NumPy computed from the mapped file in chunks of rows; a wrong result is recorded as an
error and the script exits 1. Writes a JSON to ``benchmarks/results/`` with the machine's
details (CPU model and instruction set). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import (
    VerificationError,
    alternate,
    check_close,
    machine_info,
    parse_only,
    result_path,
)
from floor import MappedFile, floor, merge, wait_policy

import libertem_gpu as lg
from libertem_gpu import Context

ANALYSES = ("sum", "std", "masks1", "masks16")
_ROWS = 256  # rows of every frame per chunk of the NumPy references


def write_raw(path: Path, frames: int, side: int) -> None:
    rng = np.random.default_rng(7)
    with open(path, "wb") as f:
        for _ in range(frames):
            rng.integers(0, 4096, side * side, dtype=np.uint16).tofile(f)


def references(frames: np.ndarray, stack: np.ndarray) -> dict[str, np.ndarray]:
    """Float64 sum, variance and 16 mask sums of ``frames`` ``(n, side, side)``, row chunk by
    row chunk (a whole float64 copy would be four times the file)."""
    n, side, _ = frames.shape
    total = np.zeros((side, side))
    var = np.zeros((side, side))
    masked = np.zeros((n, len(stack)))
    for r0 in range(0, side, _ROWS):
        part = frames[:, r0 : r0 + _ROWS].astype(np.float64)
        total[r0 : r0 + _ROWS] = part.sum(axis=0)
        var[r0 : r0 + _ROWS] = part.var(axis=0)
        masked += part.reshape(n, -1) @ stack[:, r0 : r0 + _ROWS].reshape(len(stack), -1).T
    return {"sum": total, "std": var, "masks16": masked, "masks1": masked[:, :1]}


def make_udf(name: str, stack: np.ndarray) -> Any:
    if name == "sum":
        return lg.SumUDF()
    if name == "std":
        return lg.StdDevUDF()
    count = 1 if name == "masks1" else len(stack)
    factories = [functools.partial(np.asarray, m) for m in stack[:count]]
    return lg.ApplyMasksUDF(mask_factories=factories, mask_dtype=np.float32)


def result_of(name: str, value: Any) -> np.ndarray:
    if name == "sum":
        return np.asarray(value["intensity"].data)
    if name == "std":
        return np.asarray(value["var"].data)
    data = np.asarray(value["intensity"].data)
    return data.reshape(-1, data.shape[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--side", type=int, default=4096)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure (best of)")
    parser.add_argument("--only", default=",".join(ANALYSES))
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--keep", action="store_true", help="keep the data file")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)
    names = parse_only(parser, args.only, ANALYSES)
    side, n = args.side, args.frames
    nav = (n // 8, 8) if n % 8 == 0 else (1, n)
    path = Path(args.dir) / f"large_frames_{n}x{side}.raw"
    if not path.exists() or path.stat().st_size != n * side * side * 2:
        write_raw(path, n, side)
    stack = np.random.default_rng(8).random((16, side, side), dtype=np.float32)
    result: dict[str, Any] = {
        "kind": "large-frames-cpu",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "nav_shape": list(nav),
        "sig_shape": [side, side],
        "dtype": "uint16",
        "repeat": args.repeat,
        "floor_method": "benchmarks/floor.py over the file, alternately with each analysis",
        "verification": "float64 NumPy from the mapped file (sum, var rtol 1e-9; masks 1e-5)",
        "machine": machine_info(),
        # The settings that decide this case's memory traffic besides the kernels.
        "settings": {k: lg.config.get(k) for k in ("host_pool_bytes", "keep_mapped_bytes")},
        "runs": {},
        "errors": {},
    }
    try:
        with MappedFile(path) as mapped, Context("threads") as ctx:
            frames = np.frombuffer(mapped.data, np.uint16).reshape(n, side, side)
            want = references(frames, stack)
            del frames  # a view of the mapping, which cannot close while one exists
            ds = ctx.load(
                "raw", path=str(path), nav_shape=nav, sig_shape=(side, side), dtype="uint16"
            )
            for name in names:
                floors = []
                runs = alternate(
                    {
                        "floor": lambda floors=floors: floors.append(floor(mapped, 1)),
                        "ours": lambda name=name: ctx.run_udf(ds, make_udf(name, stack)),
                    },
                    args.repeat,
                )
                times, value = runs["ours"]
                fl = merge(floors)
                try:
                    rtol = 1e-5 if name.startswith("masks") else 1e-9
                    check_close(name, result_of(name, value), want[name], rtol)
                except VerificationError as err:
                    result["errors"][name] = str(err)
                    print(f"  {name}: WRONG: {err}")
                    continue
                gbps = mapped.nbytes / min(times) / 1e9
                result["runs"][name] = {
                    "gb_s": gbps,
                    "times_s": times,
                    "floor_gb_s": fl.gbps,
                    "of_floor": gbps / fl.gbps,
                    "verified": True,
                }
                print(f"  {name}: {gbps:.2f} GB/s, {gbps / fl.gbps:.2f} of floor {fl.gbps:.1f}")
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
    result["floor_threads"] = wait_policy()
    out = args.out or result_path("large-frames-cpu")
    Path(out).write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
