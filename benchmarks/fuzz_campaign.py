"""A fuzzing campaign over every reader: hundreds of mutated files per format (truncations, bit
flips in headers, size fields and offsets set to extremes, inserted and deleted bytes), each
loaded and read in a worker process with a time limit and a watch on its peak memory.

Per format it counts: ``error`` (a library error naming the file: the goal), ``unnamed`` (a
library error naming no file), ``other`` (an exception that is not the library's), ``hang``
(over the time limit), ``crash`` (the worker died), ``memory`` (peak RSS of the attempt above
1 GiB), ``garbage`` (loaded silently, but frames the mutation did not touch differ) and
``loaded`` (loaded and read what it claims, or warned). The target is zero in every column but
``error`` and ``loaded``. The mutations and the judgement are those of ``tests/io/fuzz_kit.py``.

Usage::

    python benchmarks/fuzz_campaign.py --per-format 200 [--formats mib,blo] [--workers 2]

Writes ``benchmarks/results/<date>-fuzz-campaign.json`` and prints a table. Not collected by
pytest (the file name does not start with ``test``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COLUMNS = ("error", "unnamed", "other", "hang", "crash", "memory", "garbage", "loaded")
MEMORY_LIMIT_MIB = 1024
#: Address-space limit of a worker: a runaway allocation fails there, not on the machine.
ADDRESS_LIMIT = 16 * 2**30


def _peak_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _reset_peak() -> None:
    try:  # Linux: "5" resets the peak resident set size (VmHWM) of the process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def worker(conn: Connection, base: str, seed: int) -> None:
    """Serve attempts ``(fmt, index)`` until told to stop: mutate, load, read, judge."""
    import warnings

    import numpy as np

    from libertem_gpu import Context
    from tests.io.fuzz_kit import judge, make_attempt, prepare

    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))
    warnings.simplefilter("ignore")  # the judge records its own
    ctx = Context("inline")
    samples: dict[str, Any] = {}
    while True:
        job = conn.recv()
        if job is None:
            return
        fmt, index = job
        if fmt not in samples:
            # Each worker writes its own copy: workers must not write a sample another reads.
            samples[fmt] = prepare(Path(base) / fmt / f"good-{os.getpid()}", fmt, seed)
        sample, original = samples[fmt]
        rng = np.random.default_rng([seed, index, sum(map(ord, fmt))])
        work = Path(base) / fmt / f"work-{os.getpid()}"
        _reset_peak()
        work, target, what, lo, hi = make_attempt(sample, work, rng)
        outcome, detail = judge(ctx, sample, original, work, target, lo, hi)
        conn.send((outcome, detail, what, _peak_mib()))


class Worker:
    """A worker process and its end of the pipe; restarted after a hang or a crash."""

    def __init__(self, base: str, seed: int) -> None:
        self.base, self.seed = base, seed
        self.start()

    def start(self) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=worker, args=(child, self.base, self.seed))
        self.process.start()
        child.close()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(10)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.process.join(10)
        if self.process.is_alive():
            self.kill()


def run(
    formats: list[str], per_format: int, workers: int, timeout: float, seed: int, base: str
) -> dict[str, Any]:
    """Run the campaign; counts and examples of each outcome per format."""
    pool = [Worker(base, seed) for _ in range(workers)]
    jobs = [(fmt, i) for fmt in formats for i in range(per_format)]
    table = {fmt: dict.fromkeys(COLUMNS, 0) for fmt in formats}
    examples: dict[str, dict[str, list[str]]] = {fmt: {} for fmt in formats}
    busy: dict[int, tuple[tuple[str, int], float]] = {}
    # The first attempt of a format also writes its sample and compiles kernels: more time.
    started: set[tuple[int, str]] = set()

    def record(fmt: str, outcome: str, text: str) -> None:
        table[fmt][outcome] += 1
        shown = examples[fmt].setdefault(outcome, [])
        if len(shown) < 5 and outcome != "loaded":
            shown.append(text)

    t0 = time.monotonic()
    while jobs or busy:
        for k, w in enumerate(pool):
            if k not in busy and jobs:
                job = jobs.pop(0)
                w.conn.send(job)
                busy[k] = (job, time.monotonic())
        for k in list(busy):
            w = pool[k]
            (fmt, index), since = busy[k]
            limit = timeout * (4 if (k, fmt) not in started else 1)
            if w.conn.poll(0.02):
                try:
                    outcome, detail, what, peak = w.conn.recv()
                except EOFError:
                    code = w.process.exitcode
                    record(fmt, "crash", f"attempt {index}: worker exited ({code})")
                    w.kill()
                    w.start()
                else:
                    if peak > MEMORY_LIMIT_MIB or "MemoryError" in detail:
                        outcome = "memory"
                        detail = f"peak {peak:.0f} MiB; {detail}"
                    record(fmt, outcome, f"attempt {index}, {what}: {detail}")
                started.add((k, fmt))
                del busy[k]
            elif not w.process.is_alive():
                record(fmt, "crash", f"attempt {index}: worker died ({w.process.exitcode})")
                w.start()
                del busy[k]
            elif time.monotonic() - since > limit:
                record(fmt, "hang", f"attempt {index}: over {limit:.0f} s")
                w.kill()
                w.start()
                del busy[k]
    for w in pool:
        w.stop()
    return {"table": table, "examples": examples, "seconds": time.monotonic() - t0}


def main(argv: list[str] | None = None) -> int:
    from tests.io.fuzz_kit import SAMPLES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-format", type=int, default=200, help="mutations per format")
    parser.add_argument("--formats", default=",".join(SAMPLES), help="comma-separated")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per attempt")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--label", default="", help="suffix of the result file name")
    args = parser.parse_args(argv)
    formats = [f for f in args.formats.split(",") if f]
    with tempfile.TemporaryDirectory(prefix="fuzz-campaign-") as base:
        result = run(formats, args.per_format, args.workers, args.timeout, args.seed, base)
    width = max(map(len, formats))
    print(f"{'format':{width}}  " + "  ".join(f"{c:>7}" for c in COLUMNS))
    for fmt, row in result["table"].items():
        print(f"{fmt:{width}}  " + "  ".join(f"{row[c]:7d}" for c in COLUMNS))
    print(f"{result['seconds']:.0f} s")
    result.update(
        per_format=args.per_format,
        seed=args.seed,
        timeout_s=args.timeout,
        memory_limit_mib=MEMORY_LIMIT_MIB,
        date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    )
    stamp = time.strftime("%Y-%m-%d")
    name = f"{stamp}-fuzz-campaign{'-' + args.label if args.label else ''}.json"
    out = ROOT / "benchmarks" / "results" / name
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    bad = sum(row[c] for row in result["table"].values() for c in COLUMNS[1:-1])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
