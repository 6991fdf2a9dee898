"""Iterative ptychography: seconds per iteration against the FFTs an iteration cannot do
without.

Not a test. Run ``python benchmarks/bench_ptychography.py [--side 64] [--frame 64]
[--iterations 10] [--device cpu|gpu]``. A simulated scan of a strong phase object
(``--side`` x ``--side`` positions two object pixels apart, ``--frame`` pixel frames, the
disk a quarter of the frame wide, 10 object pixels out of focus) is reconstructed with the
probe refined from the second iteration on. The floor, timed in the same run: one forward
and one inverse FFT of every position's window per iteration, in the same batches, on the
same device (SciPy's FFTs with every core, or cuFFT), which any such algorithm needs.
SSB of the same scan (one pass) is timed beside it. Checked before any figure is written:
the phase at the scan positions correlates with the truth at 0.99 or more.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import VerificationError, machine_info, result_path

BATCH = 32


def fft_floor(xp: Any, n_pos: int, frame: int, iterations: int) -> float:
    """Seconds of one forward and one inverse FFT per position per iteration, in batches."""
    rng = np.random.default_rng(0)
    batch = xp.asarray(rng.random((BATCH, frame, frame)) + 1j * rng.random((BATCH, frame, frame)))
    if xp is np:
        import scipy.fft

        def pair(a: Any) -> Any:
            return scipy.fft.ifft2(scipy.fft.fft2(a, workers=-1), workers=-1)
    else:

        def pair(a: Any) -> Any:
            return xp.fft.ifft2(xp.fft.fft2(a))

    pair(batch)
    best = float("inf")
    for _ in range(3):
        if xp is not np:
            xp.cuda.Device().synchronize()
        t0 = time.perf_counter()
        for _ in range(0, n_pos, BATCH):
            pair(batch)
        if xp is not np:
            xp.cuda.Device().synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> int:
    from libertem_gpu import SSBUDF, Context, ptychography
    from libertem_gpu.demo.phase_object import random_phase, scan_phase_object

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--frame", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--out", help="the JSON file (default: benchmarks/results/<date>-...)")
    args = parser.parse_args()
    if args.device == "gpu":  # before the simulation: a dry run ends at once
        from libertem_gpu.backends import device

        info = device.probe()
        if not info.available:
            print(f"REASON: no usable GPU: {info.reason}", flush=True)
            return 2
    step = 2
    shape = (args.side * step, args.side * step)
    phase = random_phase(shape, cutoff=0.2, strength=0.5, seed=7)
    t0 = time.perf_counter()
    frames, optics = scan_phase_object(phase, step, args.frame, args.frame / 8, defocus=10.0)
    simulated = time.perf_counter() - t0
    truth = phase[::step, ::step]
    if args.device == "gpu":
        import cupy as xp
    else:
        xp = np
    backend = "cupy" if args.device == "gpu" else "numpy"
    stamps: list[float] = []
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames)
        ptychography(ctx, ds, iterations=1, backend=backend, batch_size=BATCH, **optics)
        t0 = time.perf_counter()
        found = ptychography(
            ctx, ds, iterations=args.iterations, backend=backend, batch_size=BATCH,
            callback=lambda i, e: stamps.append(time.perf_counter()), **optics,
        )  # fmt: skip
        total = time.perf_counter() - t0
        t1 = time.perf_counter()
        ssb = ctx.run_udf(ds, SSBUDF(**optics))["phase"].data
        ssb_s = time.perf_counter() - t1
    r = float(np.corrcoef(found.phase.ravel(), truth.ravel())[0, 1])
    if not r >= 0.99:
        raise VerificationError(f"the phase correlates with the truth at {r:.3f} only")
    per_iteration = float(np.median(np.diff(stamps))) if len(stamps) > 1 else total
    n_pos = args.side * args.side
    floor_s = fft_floor(xp, n_pos, args.frame, args.iterations)
    result = {
        "benchmark": "ptychography",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(("scipy", "cupy")),
        "device": args.device,
        "scan": [args.side, args.side],
        "frame": args.frame,
        "batch_size": BATCH,
        "iterations": args.iterations,
        "total_s": total,
        "per_iteration_s": per_iteration,
        "fft_floor_per_iteration_s": floor_s,
        "floor_ratio": floor_s / per_iteration,
        "ssb_s": ssb_s,
        "simulation_s": simulated,
        "corr_truth": r,
        "corr_truth_ssb": float(np.corrcoef(ssb.ravel(), truth.ravel())[0, 1]),
        "errors": found.errors.tolist(),
    }
    out = args.out or result_path("ptychography", args.device if args.device == "gpu" else None)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"ptychography {args.side}x{args.side} x {args.frame}^2 on {args.device}: "
        f"{per_iteration:.3f} s per iteration ({total:.2f} s for {args.iterations}, pass "
        f"included), FFT floor {floor_s:.3f} s ({floor_s / per_iteration:.2f} of it); SSB "
        f"{ssb_s:.2f} s; corr {r:.4f}; wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
