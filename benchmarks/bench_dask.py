"""The dask executor's cost per task and its scaling from 1 to 2 worker processes.

Not a test. Run ``python benchmarks/bench_dask.py [--tasks 400] [--mib 1536] [--dir /tmp]``:

- overhead: a UDF that does nothing, over a small in-memory data set cut into ``--tasks``
  one-frame partitions, on a LocalCluster of 2 single-threaded workers (the run's shared part is
  shipped once per worker, so a task carries only its partition). Reported as wall time per task
  and as worker time per task (wall x workers / tasks), after a warm-up run;
- speedup: CoMUDF (or, where it is missing, a stand-in centre-of-mass UDF) over a float32 raw
  file of about ``--mib`` MiB, on a LocalCluster of 1 and of 2 workers; best of 3 runs each.

Targets: < 5 ms per task, speedup >= 1.7 on 2 cores. Writes a JSON to ``benchmarks/results/``.
Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from libertem_gpu import UDF, Context


class NothingUDF(UDF):
    """Does nothing with the data: what is left is the framework's cost."""

    def get_result_buffers(self):
        return {"n": self.buffer(kind="single", dtype="int64")}

    def process_partition(self, partition):
        self.results.n[:] += 1

    def merge(self, dest, src):
        dest.n[:] += src.n


class StandInCoMUDF(UDF):
    """Centre of mass per frame with NumPy (used only where CoMUDF is not available)."""

    def get_result_buffers(self):
        return {"com": self.buffer(kind="nav", extra_shape=(2,), dtype="float64")}

    def process_tile(self, tile):
        ys, xs = np.indices(tile.shape[1:], dtype=np.float32)
        total = tile.sum(axis=(1, 2), dtype=np.float64)
        self.results.com[:, 0] = np.einsum("nij,ij->n", tile, ys) / total
        self.results.com[:, 1] = np.einsum("nij,ij->n", tile, xs) / total


def _com_udf() -> UDF:
    try:
        from libertem_gpu import CoMUDF

        return CoMUDF()
    except (ImportError, AttributeError):
        return StandInCoMUDF()


def _best(ctx: Context, ds, udf, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ctx.run_udf(dataset=ds, udf=udf)
        times.append(time.perf_counter() - t0)
    return min(times)


def overhead(n_tasks: int) -> dict:
    data = np.random.default_rng(1).random((n_tasks, 16, 16)).astype(np.float32)
    out = {"tasks": n_tasks}
    with Context("dask", n_workers=2) as ctx:
        ctx.executor.client.wait_for_workers(2, timeout=60)
        ds = ctx.load("memory", data=data, num_partitions=n_tasks)
        ctx.run_udf(dataset=ds, udf=NothingUDF())  # warm-up: imports and compilation in workers
        wall = _best(ctx, ds, NothingUDF())
        n = ctx.executor.n_workers
    out.update(
        workers=n,
        wall_s=wall,
        wall_ms_per_task=1e3 * wall / n_tasks,
        worker_ms_per_task=1e3 * wall * n / n_tasks,
    )
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=n_tasks)
        inline = _best(ctx, ds, NothingUDF())
    out["inline_ms_per_task"] = 1e3 * inline / n_tasks
    return out


def speedup(mib: float, directory: str) -> dict:
    sig = (128, 128)
    frames = max(64, int(mib * 2**20 / (4 * sig[0] * sig[1])) // 64 * 64)
    nav = (frames // 64, 64)
    rng = np.random.default_rng(2)
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        path = Path(tmp) / "com.raw"
        with open(path, "wb") as f:
            for _ in range(nav[0]):
                f.write(rng.random((64, *sig), dtype=np.float32).tobytes())
        udf = _com_udf()
        times = {}
        for n in (1, 2):
            with Context("dask", n_workers=n) as ctx:
                ctx.executor.client.wait_for_workers(n, timeout=60)
                ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype="float32")
                ctx.run_udf(dataset=ds, udf=udf)  # warm-up
                times[n] = _best(ctx, ds, udf)
                partitions = len(ds.get_partitions(ctx.executor.n_workers))
        # What the machine gives right now: the same analysis on 1 and 2 threads in-process.
        threads = {}
        for n in (1, 2):
            with Context("threads", n_threads=n) as ctx:
                ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype="float32")
                ctx.run_udf(dataset=ds, udf=udf)
                threads[n] = _best(ctx, ds, udf)
        return {
            "threads_speedup_same_machine_now": threads[1] / threads[2],
            "udf": type(udf).__name__,
            "nav_shape": nav,
            "sig_shape": sig,
            "dtype": "float32",
            "mib": frames * 4 * sig[0] * sig[1] / 2**20,
            "partitions_2_workers": partitions,
            "seconds_1_worker": times[1],
            "seconds_2_workers": times[2],
            "speedup": times[1] / times[2],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=400)
    # Large enough that a run takes a good part of a second: per-run fixed costs (planning,
    # shipping the run to the workers) otherwise hide the scaling.
    parser.add_argument("--mib", type=float, default=1536)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    result = {
        "benchmark": "dask executor",
        "machine": {
            "node": platform.node(),
            "cpus": len(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "note": "shared machine: timings are noisy",
            "load_average": os.getloadavg(),
        },
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "overhead": overhead(args.tasks),
        "speedup": speedup(args.mib, args.dir),
        "targets": {"worker_ms_per_task": "< 5", "speedup": ">= 1.7 on 2 cores"},
    }
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"dask_{platform.node()}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
