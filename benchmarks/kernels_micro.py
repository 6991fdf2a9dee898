"""Single-threaded throughput of the CPU kernels against the single-threaded memory floor.

Not a test. Run ``OPENBLAS_NUM_THREADS=1 python benchmarks/kernels_micro.py [MiB]``; prints GB/s
of tile data consumed per kernel and the ratio to the floor.

The floor is :func:`floor.floor` (the one every CPU benchmark uses) with ``threads=1``: the same
array's bytes summed as wrapping uint32 words and as fastmath float32, the faster counts. The
data are in memory here (no file), so there is nothing to map. Each pass of a kernel follows a
pass of the floor, as ``run_cpu.py`` alternates them, and each kernel is compared with the floor
passes of its own rounds (best of each): passes of one kernel back to back read 10-15 % faster
on a large last-level cache, which keeps part of the previous pass.

Before a kernel's figure is printed, its output on the first and on the last (partial) tile is
compared with NumPy in float64; a kernel whose result differs prints ``WRONG`` instead of a
figure and the script exits 1.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # single-threaded figures, BLAS included

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import VerificationError, check_close
from floor import floor

from libertem_gpu.kernels import com, extrema, masks, moments, sum_frames, sum_sig

FY, FX = 256, 256
NPIX = FY * FX


def _alternated(fn: Callable[[], Any], data: np.ndarray, reps: int = 5) -> tuple[float, float]:
    """Best seconds of ``fn`` and of the floor over ``data``, each pass of ``fn`` right after
    one of the floor."""
    fn()  # compile / warm up
    best = floor_best = float("inf")
    for _ in range(reps):
        floor_best = min(floor_best, floor(data, repeat=1, threads=1).seconds)
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best, floor_best


class Inputs:
    """The masks and weights the kernels use, and their plain float64 forms for NumPy."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.m1 = np.ascontiguousarray(rng.random((NPIX, 1)))
        # Several masks are packed once, as ApplyMasksUDF does for a run.
        self.m16_rows = rng.random((NPIX, 16))
        self.m16 = masks.pack_dense(self.m16_rows)
        self.m16f_rows = self.m16_rows.astype(np.float32)
        self.m16f = masks.pack_dense(self.m16f_rows)
        self.w = com.disk_weights((FY, FX), 128, 128, 100)
        self.rows = np.arange(0, NPIX, 7, dtype=np.int64)
        self.indptr = np.array([0, len(self.rows)], dtype=np.int64)
        self.vals = rng.random(len(self.rows))


def kernel_outputs(name: str, t: np.ndarray, x: Inputs, shift: np.ndarray) -> tuple:
    """Run kernel ``name`` once on tile ``t`` into fresh outputs; returns them."""
    k = len(t)
    if name == "sum_frames":
        out = np.zeros(NPIX)
        sum_frames.cpu(t, out)
        return (out,)
    if name == "sum_sig":
        out = np.zeros(k)
        sum_sig.cpu(t, out)
        return (out,)
    if name == "moments":
        s1, s2 = np.zeros(NPIX), np.zeros(NPIX)
        moments.cpu(t, shift, s1, s2)
        return s1, s2
    if name == "max":
        mx = np.zeros(NPIX, t.dtype)
        extrema.cpu_max(t, mx)
        return (mx,)
    if name == "com":
        ct, cy, cx = np.zeros(k), np.zeros(k), np.zeros(k)
        com.cpu(t.reshape(k, FY, FX), x.w, 0, ct, cy, cx)
        return ct, cy, cx
    if name == "masks sparse 1/7":
        out = np.zeros((k, 1))
        masks.cpu_sparse(t, x.indptr, x.rows, x.vals, out)
        return (out,)
    packed, dtype = {
        "masks k=1": (x.m1, np.float64),
        "masks k=16 f64": (x.m16, np.float64),
        "masks k=16 f32": (x.m16f, np.float32),
    }[name]
    out = np.zeros((k, 1 if name == "masks k=1" else 16), dtype)
    masks.cpu_dense(t, packed, out)
    return (out,)


def reference(name: str, t: np.ndarray, x: Inputs, shift: np.ndarray) -> tuple:
    """What :func:`kernel_outputs` must give, in float64 NumPy."""
    f = t.astype(np.float64)
    if name == "sum_frames":
        return (f.sum(axis=0),)
    if name == "sum_sig":
        return (f.sum(axis=1),)
    if name == "moments":
        d = f - shift
        return d.sum(axis=0), (d * d).sum(axis=0)
    if name == "max":
        return (np.maximum(f.max(axis=0), 0),)
    if name == "com":
        wf = f.reshape(-1, FY, FX) * x.w
        return (
            wf.sum(axis=(1, 2)),
            (wf.sum(axis=2) * np.arange(FY)).sum(axis=1),
            (wf.sum(axis=1) * np.arange(FX)).sum(axis=1),
        )
    if name == "masks sparse 1/7":
        return (f[:, x.rows] @ x.vals[:, None],)
    rows = {"masks k=1": x.m1, "masks k=16 f64": x.m16_rows, "masks k=16 f32": x.m16f_rows}[name]
    return (f @ rows.astype(np.float64),)


def verify(name: str, tiles: list[np.ndarray], x: Inputs, shift: np.ndarray) -> None:
    """Raise :class:`VerificationError` unless kernel ``name`` matches NumPy on the first and
    the last tile (float32 masks: float32 arithmetic, so a looser tolerance)."""
    rtol = 1e-4 if name == "masks k=16 f32" else 1e-9
    for t in (tiles[0], tiles[-1]):
        got = kernel_outputs(name, t, x, shift)
        want = reference(name, t, x, shift)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            check_close(f"{name} output {i}", g, w, rtol)


def main(mib: int = 256, tile_frames: int = 32) -> int:
    rng = np.random.default_rng(0)
    n = mib * 2**20 // (NPIX * 2)
    data = rng.integers(0, 4096, size=(n, NPIX), dtype=np.uint16)
    # the last tile is partial where n is not a multiple of tile_frames
    tiles = [data[i : i + tile_frames] for i in range(0, n, tile_frames)]
    nbytes = data.nbytes
    x = Inputs(rng)
    shift = data[0].astype(np.float64)

    def per_tile(name: str) -> Callable[[], None]:
        # the timed runs reuse their outputs (as the engine does), accumulating garbage
        out_p, s1, s2 = np.zeros(NPIX), np.zeros(NPIX), np.zeros(NPIX)
        out_n = np.zeros(tile_frames)
        mx = np.zeros(NPIX, np.uint16)
        o1, o16 = np.zeros((tile_frames, 1)), np.zeros((tile_frames, 16))
        o16f = np.zeros((tile_frames, 16), np.float32)
        ct, cy, cx = np.zeros(tile_frames), np.zeros(tile_frames), np.zeros(tile_frames)
        calls: dict[str, Callable[[np.ndarray], None]] = {
            "sum_frames": lambda t: sum_frames.cpu(t, out_p),
            "sum_sig": lambda t: sum_sig.cpu(t, out_n[: len(t)]),
            "moments": lambda t: moments.cpu(t, shift, s1, s2),
            "max": lambda t: extrema.cpu_max(t, mx),
            "masks k=1": lambda t: masks.cpu_dense(t, x.m1, o1[: len(t)]),
            "masks k=16 f64": lambda t: masks.cpu_dense(t, x.m16, o16[: len(t)]),
            "masks k=16 f32": lambda t: masks.cpu_dense(t, x.m16f, o16f[: len(t)]),
            "masks sparse 1/7": lambda t: masks.cpu_sparse(
                t, x.indptr, x.rows, x.vals, o1[: len(t)]
            ),
            "com": lambda t: com.cpu(
                t.reshape(len(t), FY, FX), x.w, 0, ct[: len(t)], cy[: len(t)], cx[: len(t)]
            ),
        }
        call = calls[name]

        def run() -> None:
            for t in tiles:
                call(t)

        return run

    names = (
        "sum_frames",
        "sum_sig",
        "moments",
        "max",
        "masks k=1",
        "masks k=16 f64",
        "masks k=16 f32",
        "masks sparse 1/7",
        "com",
    )
    fl = floor(data, repeat=5, threads=1)
    print(f"{n} frames {FY}x{FX} uint16 ({nbytes / 2**20:.0f} MiB), tiles of {tile_frames} frames")
    print(f"{'floor (1 thread)':18s} {fl.gbps:6.2f} GB/s  ({fl.kernel} kernel)")
    status = 0
    for name in names:
        try:
            verify(name, tiles, x, shift)
        except VerificationError as e:
            print(f"{name:18s} WRONG: {e}")
            status = 1
            continue
        seconds, floor_seconds = _alternated(per_tile(name), data)
        gbs = nbytes / seconds / 1e9
        print(f"{name:18s} {gbs:6.2f} GB/s  {floor_seconds / seconds:5.2f} x floor")
    return status


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:])))
