"""A/B of the CPU speed of two commits of libertem_gpu on this machine: did a change regress?

Speed moves by a tenth or more from minute to minute on a shared machine, so two runs of
``run_cpu.py`` an hour apart cannot show a 5 % regression. Here both commits run in the same
minutes: each in fresh processes (its own checkout in a ``git worktree``, its own Numba cache),
alternated base, head, head, base (ABBA) for ``--rounds`` rounds, over the same page-cached
files, with the same analyses as ``run_cpu.py`` (``cpu_cases.py``). Each process checks every
result against the float64 NumPy reference before its figure counts.

For each analysis the figure is the median over rounds of the paired ratio head / base (each
head process against the base process next to it), and the geometric mean over analyses sums
it up; analyses below ``--regression`` (default 0.95: slower by more than 5 %) are listed.
One process's best of three moves by 10-20 % on a 2-vCPU VM: with two rounds (four pairs) two
unchanged kernels read 0.90 and 0.91, with five rounds 1.02 and 1.03, hence five by default
(about 7 minutes for every analysis on 1 GiB files). The issue-22 check on an AVX-512
machine, for example::

    python benchmarks/ab_cpu.py --base 8200e5b --size 1GiB
    python benchmarks/ab_cpu.py --base 8200e5b --size 1GiB --cpu-name haswell

Results go to ``benchmarks/results/<date>-ab-cpu-<hostname>[-<cpu>].json``. Exit status: 1
when a result was wrong, 2 when an analysis regressed, else 0.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from benchlib import (  # noqa: E402
    VerificationError,
    machine_info,
    parse_only,
    result_path,
    target_env,
)
from cpu_cases import (  # noqa: E402
    ANALYSES,
    layout,
    libertem_gpu_udf,
    read_once,
    reference,
    verify,
    write_file,
)

SIDES = ("base", "head")
#: Process order of one round: each head process has a base process beside it.
ABBA = ("base", "head", "head", "base")


def _git(repo: str, *args: str) -> str:
    done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def child(root: str, spec_path: str) -> None:
    """Time each case with the libertem_gpu of checkout ``root``; print one JSON line."""
    sys.path.insert(0, root)
    import libertem_gpu as lg

    where = os.path.dirname(os.path.dirname(os.path.abspath(lg.__file__)))
    if os.path.realpath(where) != os.path.realpath(root):
        raise RuntimeError(f"imported libertem_gpu from {where}, expected the checkout {root}")
    with open(spec_path) as f:
        spec = json.load(f)
    gbps: dict[str, float] = {}
    errors: dict[str, str] = {}
    with lg.Context("threads") as ctx:
        for entry in spec["files"]:
            dtype = np.dtype(entry["dtype"])
            ds = ctx.load(
                "raw", path=entry["path"], nav_shape=tuple(entry["nav"]), sig_shape=(256, 256),
                dtype=dtype,
            )  # fmt: skip
            expected = np.load(entry["reference"])
            for name in spec["analyses"]:
                case = f"{dtype.name}/{name}"
                try:
                    verify(
                        "libertem_gpu",
                        name,
                        ctx.run_udf(ds, libertem_gpu_udf(name)),
                        expected[name],
                    )
                except VerificationError as e:
                    errors[case] = str(e)
                    continue
                times = []
                for _ in range(spec["repeat"]):
                    t0 = time.perf_counter()
                    ctx.run_udf(ds, libertem_gpu_udf(name))
                    times.append(time.perf_counter() - t0)
                gbps[case] = entry["nbytes"] / min(times) / 1e9
    print(json.dumps({"gbps": gbps, "errors": errors}))


def _spawn(root: str, spec_path: str, cache: str, cpu_name: str | None) -> dict[str, Any]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": root}
    if cpu_name:  # as run_cpu.py --cpu-name
        env.update(target_env(cpu_name))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", root, spec_path]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{root}: the timing process failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def paired_ratios(processes: list[tuple[str, dict[str, float]]]) -> dict[str, list[float]]:
    """Head / base GB/s per case, each head process paired with the base process beside it in
    the ABBA order (positions 0-1 and 2-3 of each round)."""
    ratios: dict[str, list[float]] = {}
    for i in range(0, len(processes) - 1, 2):
        (side_a, a), (_, b) = processes[i], processes[i + 1]
        base, head = (a, b) if side_a == "base" else (b, a)
        for case in base.keys() & head.keys():
            ratios.setdefault(case, []).append(head[case] / base[case])
    return ratios


def summary(ratios: dict[str, list[float]], threshold: float) -> dict[str, Any]:
    """Median paired ratio per case, their geometric mean and the cases below ``threshold``."""
    medians = {case: statistics.median(r) for case, r in sorted(ratios.items())}
    geomean = math.exp(statistics.fmean(math.log(m) for m in medians.values())) if medians else None
    return {
        "median_ratio": medians,
        "geomean": geomean,
        "regressed": sorted(c for c, m in medians.items() if m < threshold),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare against")
    parser.add_argument("--head", default="HEAD", help="the commit under test (default HEAD)")
    parser.add_argument("--size", default="1GiB", help="bytes per data file (default 1GiB)")
    parser.add_argument("--only", default=",".join(ANALYSES), help="comma-separated analyses")
    parser.add_argument("--dtypes", default="uint16,float32")
    parser.add_argument("--rounds", type=int, default=5, help="ABBA rounds (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per process, best counts")
    parser.add_argument("--regression", type=float, default=0.95, help="ratio below: regressed")
    parser.add_argument("--cpu-name", help="compile for this CPU (NUMBA_CPU_NAME), e.g. haswell")
    parser.add_argument("--dir", help="folder for the data files and checkouts (default: temp)")
    parser.add_argument("--out", help="JSON path (default benchmarks/results/...)")
    args = parser.parse_args(argv)

    from libertem_gpu.sizes import parse_size

    analyses = parse_only(parser, args.only, ANALYSES)
    repo = _git(HERE, "rev-parse", "--show-toplevel")
    revisions = dict(zip(SIDES, (args.base, args.head), strict=True))
    commits = {side: _git(repo, "rev-parse", rev) for side, rev in revisions.items()}
    size = parse_size(args.size)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ab-cpu-") as work:
        roots = {side: os.path.join(work, side) for side in SIDES}
        for side in SIDES:
            _git(repo, "worktree", "add", "--detach", roots[side], commits[side])
        try:
            files = []
            for dtype in (np.dtype(d) for d in args.dtypes.split(",")):
                nav = layout(size, dtype)
                path = os.path.join(work, f"ab-{dtype.name}.raw")
                nbytes = write_file(path, nav, dtype, seed=7)
                read_once(path)
                data = np.memmap(path, dtype=np.uint8, mode="r")
                ref_path = os.path.join(work, f"ab-{dtype.name}-reference.npz")
                np.savez(ref_path, **reference(data, nav, dtype, analyses))
                del data
                files.append(
                    {"dtype": dtype.name, "path": path, "nav": nav, "nbytes": nbytes,
                     "reference": ref_path}
                )  # fmt: skip
            spec_path = os.path.join(work, "spec.json")
            with open(spec_path, "w") as f:
                json.dump({"files": files, "analyses": analyses, "repeat": args.repeat}, f)
            processes: list[tuple[str, dict[str, float]]] = []
            errors: dict[str, dict[str, str]] = {}
            for r in range(args.rounds):
                for side in ABBA:
                    cache = os.path.join(work, f"numba-{side}")
                    got = _spawn(roots[side], spec_path, cache, args.cpu_name)
                    processes.append((side, got["gbps"]))
                    for case, message in got["errors"].items():
                        errors.setdefault(side, {})[case] = message
                    print(f"round {r + 1}, {side}: " + ", ".join(
                        f"{c} {v:.1f}" for c, v in sorted(got["gbps"].items())
                    ), flush=True)  # fmt: skip
        finally:
            for side in SIDES:
                _git(repo, "worktree", "remove", "--force", roots[side])
    result = summary(paired_ratios(processes), args.regression)
    report = {
        "kind": "ab-cpu",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "commits": commits,
        "size_bytes": size,
        "rounds": args.rounds,
        "repeat": args.repeat,
        "order": "ABBA: base, head, head, base; fresh processes; best of repeat in each",
        "machine": machine_info(),
        "cpu_name": args.cpu_name or "host",
        "processes": [{"side": s, "gbps": g} for s, g in processes],
        "errors": errors,
        **result,
    }
    out = args.out or result_path("ab-cpu", args.cpu_name)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    for case, ratio in result["median_ratio"].items():
        flag = "  REGRESSED" if case in result["regressed"] else ""
        print(f"{case}: head/base {ratio:.3f}{flag}")
    if result["geomean"] is not None:
        print(f"geometric mean {result['geomean']:.3f}; wrote {out}")
    if errors:
        print(f"WRONG RESULTS: {errors}")
        return 1
    return 2 if result["regressed"] else 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3])
        sys.exit(0)
    sys.exit(main())
