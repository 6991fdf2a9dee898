"""The dask executor's cost per task and its scaling from 1 to 2 worker processes.

Not a test. Run ``python benchmarks/bench_dask.py [--tasks 400] [--mib 1536] [--dir /tmp]``:

- overhead: a UDF that does nothing, over a small in-memory data set cut into ``--tasks``
  one-frame partitions, on a LocalCluster of 2 single-threaded workers (the run's shared part is
  shipped once per worker, so a task carries only its partition). Reported as wall time per task
  and as worker time per task (wall x workers / tasks), after a warm-up run;
- speedup: CoMUDF (or, where it is missing, a stand-in centre-of-mass UDF) over a float32 raw
  file of about ``--mib`` MiB, on a LocalCluster of 1 and of 2 workers; best of 3 runs each.

Every figure is checked first: the do-nothing UDF must have visited every partition once
(its merged count equals the number of tasks), and the centre of mass of a sample of 256 frames
must match NumPy's (float64); a wrong result makes the script fail (exit 1) with no figure. The
shared memory floor (:mod:`floor`: the file mapped once, the faster of a wrapping uint32 and a
fastmath float32 sum of its bytes, all cores) runs alternately with each CoM configuration, and
each gets ``ratio_floor`` (file bytes per second over the floor's).

Targets: < 5 ms per task, speedup >= 1.7 on 2 cores. Writes a JSON to ``benchmarks/results/``.
Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import VerificationError, alternate, check_close, machine_info
from floor import MappedFile, floor, merge

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


def _best(ctx: Context, ds, udf, repeat: int = 3) -> tuple[float, Any]:
    """Best wall time of ``repeat`` runs after a warm-up run (imports and compilation in the
    workers), and the last result."""
    times, result = alternate({"run": lambda: ctx.run_udf(dataset=ds, udf=udf)}, repeat)["run"]
    return min(times), result


def _check_count(result: Any, n_tasks: int, where: str) -> None:
    """The do-nothing UDF counts the partitions it ran on: each must have run exactly once."""
    n = int(np.asarray(result["n"].data).reshape(-1)[0])
    if n != n_tasks:
        raise VerificationError(f"{where}: {n} partitions processed and merged, not {n_tasks}")


def _com_of(result: Any, sig: tuple[int, int]) -> np.ndarray:
    """Absolute centre of mass ``(n, 2)`` from CoMUDF's ``field`` (default centre, no rotation
    or regression: ``field = com - (rows // 2, cols // 2)``) or the stand-in's ``com``."""
    if "field" in result:
        field = np.asarray(result["field"].data, dtype=np.float64).reshape(-1, 2)
        return field + np.array([sig[0] // 2, sig[1] // 2])
    return np.asarray(result["com"].data, dtype=np.float64).reshape(-1, 2)


def _com_reference(mapped: MappedFile, sig: tuple[int, int], sample: np.ndarray) -> np.ndarray:
    """NumPy centre of mass (float64, whole frame) of the sampled frames of the float32 file."""
    frames = mapped.data.view(np.float32).reshape(-1, *sig)[sample].astype(np.float64)
    total = frames.sum(axis=(1, 2))
    y = (frames.sum(axis=2) * np.arange(sig[0])).sum(axis=1) / total
    x = (frames.sum(axis=1) * np.arange(sig[1])).sum(axis=1) / total
    return np.stack([y, x], axis=1)


def overhead(n_tasks: int) -> dict:
    data = np.random.default_rng(1).random((n_tasks, 16, 16)).astype(np.float32)
    out = {"tasks": n_tasks}
    with Context("dask", n_workers=2) as ctx:
        ctx.executor.client.wait_for_workers(2, timeout=60)
        ds = ctx.load("memory", data=data, num_partitions=n_tasks)
        wall, result = _best(ctx, ds, NothingUDF())
        _check_count(result, n_tasks, "dask")
        n = ctx.executor.n_workers
    out.update(
        workers=n,
        wall_s=wall,
        wall_ms_per_task=1e3 * wall / n_tasks,
        worker_ms_per_task=1e3 * wall * n / n_tasks,
    )
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=n_tasks)
        inline, result = _best(ctx, ds, NothingUDF())
        _check_count(result, n_tasks, "inline")
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
        file_bytes = path.stat().st_size
        sample = np.unique(np.linspace(0, frames - 1, min(frames, 256)).astype(np.int64))
        times: dict[int, float] = {}
        threads: dict[int, float] = {}
        figures: dict[str, Any] = {}
        with MappedFile(path) as mapped:
            want = _com_reference(mapped, sig, sample)

            def measure(ctx: Context, key: str) -> float:
                """CoM alternately with the floor; checked on the sample before it counts."""
                ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=sig, dtype="float32")
                floors = []
                runs = alternate(
                    {
                        "floor": lambda: floors.append(floor(mapped, 1)),
                        "com": lambda: ctx.run_udf(dataset=ds, udf=udf),
                    },
                    3,
                )
                ts, result = runs["com"]
                check_close(f"CoM, {key}", _com_of(result, sig)[sample], want, 1e-6)
                fl = merge(floors)
                figures[key] = {
                    "gb_s": file_bytes / min(ts) / 1e9,
                    **fl.as_dict(),
                    "ratio_floor": fl.seconds / min(ts),
                    "verified": True,
                }
                return min(ts)

            for n in (1, 2):
                with Context("dask", n_workers=n) as ctx:
                    ctx.executor.client.wait_for_workers(n, timeout=60)
                    times[n] = measure(ctx, f"dask_{n}_workers")
                    if n == 2:
                        ds = ctx.load(
                            "raw", path=path, nav_shape=nav, sig_shape=sig, dtype="float32"
                        )
                        partitions = len(ds.get_partitions(ctx.executor.n_workers))
            # What the machine gives right now: the same analysis on 1 and 2 threads in-process.
            for n in (1, 2):
                with Context("threads", n_threads=n) as ctx:
                    threads[n] = measure(ctx, f"threads_{n}")
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
            "verified_frames": len(sample),
            "configurations": figures,
        }


def _or_error(fn: Any, *args: Any) -> dict:
    """``fn(*args)``, or ``{"error": ...}`` where a result did not match its reference."""
    try:
        return fn(*args)
    except VerificationError as e:
        return {"error": f"{type(e).__name__}: {e}"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=400)
    # Large enough that a run takes a good part of a second: per-run fixed costs (planning,
    # shipping the run to the workers) otherwise hide the scaling.
    parser.add_argument("--mib", type=float, default=1536)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    result = {
        "benchmark": "dask executor",
        "machine": {**machine_info(), "note": "shared machine: timings are noisy"},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "verification": (
            "do-nothing UDF: merged partition count == tasks; CoM of 256 sampled frames vs "
            "float64 NumPy (rtol 1e-6); figures only after both pass"
        ),
        "overhead": _or_error(overhead, args.tasks),
        "speedup": _or_error(speedup, args.mib, args.dir),
        "targets": {"worker_ms_per_task": "< 5", "speedup": ">= 1.7 on 2 cores"},
    }
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"dask_{platform.node()}_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    wrong = [k for k in ("overhead", "speedup") if "error" in result[k]]
    print(f"written to {out}" + (f"; WRONG RESULTS in {wrong}: no figures" if wrong else ""))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
