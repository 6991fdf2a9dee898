"""Peak resident memory (and throughput) of SumUDF + CoMUDF over an N GiB raw file, per thread
count of the ``threads`` executor: each run in a fresh child process, whose ``VmHWM`` (peak
resident set, file-backed mapped pages included) it reports.

Usage::

    python benchmarks/peak_rss.py --gib 4 --threads 1,2,8,16
    python benchmarks/peak_rss.py --gib 1 --threads 2 --repeat 5 --sum-only   # GB/s A/B
    python benchmarks/peak_rss.py ... --repo /path/to/other/checkout           # "before"

The file (uint16 frames of 256 x 256, not zeros) is written to ``--dir`` and deleted at the
end unless ``--keep``. Results go to ``benchmarks/results/<date>-peak-rss*.json``. The file is
read once before the runs, so that figures are from the page cache: what is measured is the
library's memory and speed, not the disk's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

FRAME = (256, 256)
FRAME_BYTES = FRAME[0] * FRAME[1] * 2

# Run in the child: load, run, report peak RSS and time. Not a module: it must import the
# library of the checkout under test (--repo), in a process of its own.
CHILD = r"""
import json, sys, time
import numpy as np
import libertem_gpu as lg
path, nav_y, nav_x, threads, sum_only, reps = sys.argv[1:7]
ctx = lg.Context("threads", n_threads=int(threads))
ds = ctx.load("raw", path=path, nav_shape=(int(nav_y), int(nav_x)), sig_shape=(256, 256),
              dtype="uint16")
udfs = [lg.SumUDF()] if sum_only == "1" else [lg.SumUDF(), lg.CoMUDF()]
roi = np.zeros(ds.shape.nav_size, dtype=bool)
roi[:8] = True
ctx.run_udf(dataset=ds, udf=udfs, roi=roi)  # compiles the kernels: not part of the timing
times = []
for _ in range(int(reps)):
    t0 = time.perf_counter()
    ctx.run_udf(dataset=ds, udf=udfs)
    times.append(time.perf_counter() - t0)
seconds = min(times)  # the least disturbed run: other processes share the machine
ctx.close()
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
kib = int(status["VmHWM"].split()[0])
print(json.dumps({"vmhwm_mib": kib / 1024, "seconds": seconds, "times": times,
                  "lib": lg.__file__}))
"""


def write_file(path: Path, gib: float) -> tuple[int, int]:
    """Write ``gib`` GiB of uint16 frames (a varying ramp, never zeros); return the scan."""
    frames = int(gib * 2**30) // FRAME_BYTES
    nav_x = 128
    nav_y = max(1, frames // nav_x)
    block = (np.arange(64 * FRAME[0] * FRAME[1], dtype=np.uint32) % 4093 + 1).astype(np.uint16)
    with open(path, "wb") as f:
        for start in range(0, nav_y * nav_x, 64):
            n = min(64, nav_y * nav_x - start)
            f.write(((block[: n * FRAME[0] * FRAME[1]] + start) % 65521).tobytes())
    return nav_y, nav_x


def warm(path: Path) -> None:
    """Read the file once so that the runs read from the page cache."""
    with open(path, "rb") as f:
        while f.read(64 * 2**20):
            pass


def run_child(
    path: Path,
    nav: tuple[int, int],
    threads: int,
    sum_only: bool,
    repo: str | None,
    reps: int = 1,
) -> dict:
    """Run the analyses in a fresh process ``reps`` times; its peak RSS and fastest run."""
    repo = repo or str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = repo + os.pathsep + env.get("PYTHONPATH", "")
    args = [sys.executable, "-c", CHILD, str(path), str(nav[0]), str(nav[1]), str(threads)]
    out = subprocess.run(
        [*args, "1" if sum_only else "0", str(reps)],
        env=env,
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the run with {threads} threads failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gib", type=float, default=4.0, help="size of the raw file")
    parser.add_argument("--threads", default="1,2,8,16", help="thread counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="child processes per thread count")
    parser.add_argument("--reps", type=int, default=1, help="timed runs per child (the fastest)")
    parser.add_argument("--sum-only", action="store_true", help="SumUDF alone (throughput A/B)")
    parser.add_argument("--dir", default="/tmp", help="where the raw file is written")
    parser.add_argument("--keep", action="store_true", help="keep the raw file")
    parser.add_argument("--repo", default=None, help="checkout whose library to run")
    parser.add_argument(
        "--compare",
        default=None,
        help="another checkout: alternate its runs with this one's (an A/B on the same file)",
    )
    parser.add_argument("--label", default="", help="suffix of the result file name")
    args = parser.parse_args(argv)

    path = Path(args.dir) / f"peak-rss-{args.gib:g}gib.raw"
    nav = write_file(path, args.gib)
    nbytes = nav[0] * nav[1] * FRAME_BYTES
    try:
        warm(path)
        rows = []
        repos = [args.repo] + ([args.compare] if args.compare else [])
        for threads in (int(t) for t in args.threads.split(",")):
            for _ in range(args.repeat):
                for repo in repos:  # alternating, so that both see the same disturbances
                    r = run_child(path, nav, threads, args.sum_only, repo, args.reps)
                    r.update(
                        threads=threads,
                        gb_per_s=nbytes / r["seconds"] / 1e9,
                        checkout=repo or "this",
                    )
                    print(
                        f"{r['checkout'][-16:]:>16} threads={threads:2d}  peak RSS "
                        f"{r['vmhwm_mib']:7.1f} MiB  {r['seconds']:6.2f} s  "
                        f"{r['gb_per_s']:5.2f} GB/s",
                        flush=True,
                    )
                    rows.append(r)
    finally:
        if not args.keep:
            path.unlink(missing_ok=True)
    result = {
        "what": "SumUDF" if args.sum_only else "SumUDF + CoMUDF",
        "executor": "threads",
        "file_bytes": nbytes,
        "nav_shape": nav,
        "sig_shape": FRAME,
        "dtype": "uint16",
        "cpus": os.cpu_count(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "repo": args.repo or str(Path(__file__).resolve().parents[1]),
        "runs": rows,
    }
    out = Path(__file__).parent / "results"
    stamp = time.strftime("%Y-%m-%d")
    name = f"{stamp}-peak-rss{'-' + args.label if args.label else ''}.json"
    (out / name).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
