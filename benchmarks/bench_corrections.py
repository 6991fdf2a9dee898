"""Benchmark: what detector corrections cost a centre-of-mass run on the CPU path.

Not a test. Run from the repository root (LiberTEM figures where LiberTEM 0.16 imports)::

    PYTHONPATH=$PWD /tmp/lt/bin/python benchmarks/bench_corrections.py --size 512MiB

On one page-cached uint16 raw file of 256 x 256 frames (Poisson counts around a bright disk),
``CoMUDF`` runs on the ``threads`` executor without and with a ``CorrectionSet`` (a dark frame,
a gain map and about 0.1 % of the pixels excluded, single ones and small clusters), and the same
with LiberTEM 0.16 where importable, alternating, one untimed warm-up each, then ``--repeat``
timed rounds; ours also with the dark frame and excluded pixels but no gain map (which needs
a float multiply per pixel; without it a disk's weights stay integer runs). Before any figure
counts, our results are checked against a NumPy
reference computed over the whole file (frames corrected with plain array code, then the
weighted moments), and LiberTEM's against ours. The acceptance figure is ``cost``: the corrected
run's extra time as a fraction of the uncorrected run's, from the best times (target: under
0.2), with ``cost_paired_median`` beside it (the median over rounds of the corrected run's
time over the uncorrected run's in the same round, steadier on a shared machine). Results go to
``benchmarks/results/<date>-corrections-<hostname>.json`` with the machine's description.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (ROOT, HERE):  # run as a script from a checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

from benchlib import alternate, check_close, machine_info, n_cores  # noqa: E402
from floor import MappedFile  # noqa: E402
from run_analyses import write_file  # noqa: E402

SIG = (256, 256)
COM = {"cy": 128.0, "cx": 128.0, "r": 100.0}


def make_corrections(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Dark, gain and excluded pixels: ~0.1 % of the frame, in singles, pairs and 2x2 blocks,
    some at edges and corners."""
    dark = rng.random(SIG) * 5
    gain = 1 + 0.1 * rng.standard_normal(SIG)
    ex = np.zeros(SIG, bool)
    ex[rng.integers(0, SIG[0], 40), rng.integers(0, SIG[1], 40)] = True
    for r, c in rng.integers(2, SIG[0] - 3, size=(6, 2)):
        ex[r, c : c + 2] = True  # pairs
    for r, c in rng.integers(2, SIG[0] - 3, size=(3, 2)):
        ex[r : r + 2, c : c + 2] = True  # 2x2 blocks
    ex[0, 0] = ex[-1, -1] = ex[0, 100] = True
    return {"dark": dark, "gain": gain, "excluded": ex}


def reference_corrected(frames: np.ndarray, corr: dict[str, np.ndarray]) -> np.ndarray:
    """Frames corrected with plain array code: float32 arithmetic, excluded pixels the float64
    mean of their valid 8-neighbours."""
    dark = corr["dark"].astype(np.float32)
    gain = corr["gain"].astype(np.float32)
    ex = corr["excluded"]
    out = (frames.astype(np.float32) - dark) * gain
    rows, cols = SIG
    for r, c in zip(*np.nonzero(ex), strict=True):
        acc = np.zeros(len(frames))
        n = 0
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                rr, cc = r + dr, c + dc
                if (dr or dc) and 0 <= rr < rows and 0 <= cc < cols and not ex[rr, cc]:
                    acc += out[:, rr, cc]
                    n += 1
        if n:
            out[:, r, c] = (acc / n).astype(np.float32)
    return out


def reference_com(mapped: MappedFile, n: int, corr: dict[str, np.ndarray] | None) -> np.ndarray:
    """``raw_com`` over the whole file, 256 frames at a time."""
    frames = mapped.data[: n * SIG[0] * SIG[1] * 2].view(np.uint16).reshape(n, *SIG)
    y, x = np.mgrid[: SIG[0], : SIG[1]].astype(np.float64)
    w = ((y - COM["cy"]) ** 2 + (x - COM["cx"]) ** 2 <= COM["r"] ** 2).astype(np.float64)
    out = np.empty((n, 2))
    for s in range(0, n, 256):
        chunk = frames[s : s + 256]
        f = chunk.astype(np.float64) if corr is None else reference_corrected(chunk, corr)
        f = f.astype(np.float64) * w
        total = f.sum(axis=(1, 2))
        out[s : s + 256, 0] = (f * y).sum(axis=(1, 2)) / total
        out[s : s + 256, 1] = (f * x).sum(axis=(1, 2)) / total
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="512MiB", help="bytes of the file")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", default=None, help="results JSON path")
    parser.add_argument("--no-libertem", action="store_true")
    args = parser.parse_args(argv)
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    size = next(
        (int(float(args.size[: -len(u)]) * m) for u, m in units.items() if args.size.endswith(u)),
        None,
    ) or int(args.size)

    from libertem_gpu import CoMUDF, Context, CorrectionSet

    frame_bytes = 2 * SIG[0] * SIG[1]
    side = max(1, int(np.sqrt(size / frame_bytes)))
    nav = (side, max(1, size // (frame_bytes * side)))
    n = nav[0] * nav[1]
    corr = make_corrections(np.random.default_rng(5))
    ours_corr = CorrectionSet(
        dark=corr["dark"], gain=corr["gain"], excluded_pixels=corr["excluded"]
    )
    report: dict[str, Any] = {
        "benchmark": "corrections",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "cores": n_cores(),
        "repeat": args.repeat,
        "dtype": "uint16",
        "nav_shape": list(nav),
        "sig_shape": list(SIG),
        "excluded_pixels": int(corr["excluded"].sum()),
        "excluded_fraction": float(corr["excluded"].mean()),
        "com_params": COM,
    }
    print(f"{report['machine']['cpu']}, {n_cores()} cores; {n} frames of {SIG}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lg-corrections-") as work:
        path = os.path.join(work, "data.raw")
        report["nbytes"] = write_file(path, nav, SIG, seed=3)
        with MappedFile(path) as mapped, Context("threads") as ctx:
            ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=SIG, dtype="uint16")

            def ours(corrections: Any) -> Callable[[], np.ndarray]:
                def run() -> np.ndarray:
                    res = ctx.run_udf(ds, CoMUDF.with_params(**COM), corrections=corrections)
                    return np.asarray(res["raw_com"].raw_data)

                return run

            no_gain = CorrectionSet(dark=corr["dark"], excluded_pixels=corr["excluded"])
            fns: dict[str, Callable[[], Any]] = {
                "ours": ours(None),
                "ours_corrected": ours(ours_corr),
                "ours_dark_excluded": ours(no_gain),
            }
            lt_ctx = None
            if not args.no_libertem:
                try:
                    from libertem.api import Context as LTContext
                    from libertem.corrections import CorrectionSet as LTCorrectionSet
                    from libertem.udf.com import CoMUDF as LTCoMUDF
                except ImportError as e:
                    print(f"LiberTEM not available ({e})")
                else:
                    lt_ctx = LTContext.make_with("threads", cpus=n_cores())
                    lt_ds = lt_ctx.load(
                        "raw", path=path, nav_shape=nav, sig_shape=SIG, dtype="uint16"
                    )
                    lt_corr = LTCorrectionSet(
                        dark=corr["dark"], gain=corr["gain"], excluded_pixels=corr["excluded"]
                    )

                    def lt_run(corrections: Any) -> Callable[[], np.ndarray]:
                        def run() -> np.ndarray:
                            udf = LTCoMUDF.with_params(**COM)
                            res = lt_ctx.run_udf(lt_ds, udf, corrections=corrections)
                            return np.asarray(res["raw_com"].raw_data)

                        return run

                    fns["libertem"] = lt_run(None)
                    fns["libertem_corrected"] = lt_run(lt_corr)
            runs = alternate(fns, args.repeat)
            if lt_ctx is not None:
                lt_ctx.close()
            # Figures count only once the results are right.
            check_close("uncorrected", runs["ours"][1], reference_com(mapped, n, None), 1e-6)
            want = reference_com(mapped, n, corr)
            check_close("corrected", runs["ours_corrected"][1], want, 1e-5)
            want_dark = reference_com(mapped, n, {**corr, "gain": np.ones(SIG)})
            check_close("dark+excluded", runs["ours_dark_excluded"][1], want_dark, 1e-5)
            if "libertem" in runs:
                check_close("LiberTEM corrected", runs["libertem_corrected"][1], want, 1e-5)
    best = {name: min(times) for name, (times, _) in runs.items()}
    report["times_s"] = {name: times for name, (times, _) in runs.items()}
    report["best_s"] = best
    report["ours_frames_per_s"] = n / best["ours"]
    report["ours_corrected_frames_per_s"] = n / best["ours_corrected"]
    report["cost"] = best["ours_corrected"] / best["ours"] - 1
    report["cost_dark_excluded"] = best["ours_dark_excluded"] / best["ours"] - 1
    # The rounds alternate, so a round's two runs saw the same load of a shared machine: the
    # median of the per-round ratios is steadier there than the ratio of the two best times.
    paired = np.array(report["times_s"]["ours_corrected"]) / np.array(report["times_s"]["ours"])
    report["cost_paired_median"] = float(np.median(paired)) - 1
    line = (
        f"CoM {n / best['ours']:.0f} frames/s, corrected {n / best['ours_corrected']:.0f} "
        f"frames/s: corrections cost {100 * report['cost']:.1f} % of the run "
        f"(median of paired rounds {100 * report['cost_paired_median']:.1f} %; "
        f"{100 * report['cost_dark_excluded']:.1f} % without the gain map)"
    )
    if "libertem" in best:
        report["libertem_cost"] = best["libertem_corrected"] / best["libertem"] - 1
        report["x_libertem_corrected"] = best["libertem_corrected"] / best["ours_corrected"]
        line += (
            f"; LiberTEM: corrections cost {100 * report['libertem_cost']:.1f} %, ours corrected "
            f"{report['x_libertem_corrected']:.2f}x LiberTEM corrected"
        )
    print(line)
    out = args.out or os.path.join(
        HERE,
        "results",
        f"{datetime.date.today().isoformat()}-corrections-{report['machine']['hostname']}.json",
    )
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
