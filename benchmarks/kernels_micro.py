"""Single-threaded throughput of the CPU kernels against a memory-read floor.

Not a test. Run ``OPENBLAS_NUM_THREADS=1 python benchmarks/kernels_micro.py [MiB]``; prints GB/s
of tile data consumed per kernel and the ratio to the floor, a minimal ``njit(nogil)`` loop that
sums the same array (integer accumulator, so it vectorises and is bound by memory bandwidth).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # single-threaded figures, BLAS included

import sys
import time

import numba
import numpy as np

from libertem_gpu.kernels import com, extrema, masks, moments, sum_frames, sum_sig


@numba.njit(nogil=True, cache=True)
def _floor(a):
    s = 0
    for i in range(a.shape[0]):
        for p in range(a.shape[1]):
            s += a[i, p]
    return s


def _best(fn, reps: int = 5) -> float:
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(mib: int = 256, tile_frames: int = 32) -> None:
    rng = np.random.default_rng(0)
    fy, fx = 256, 256
    npix = fy * fx
    n = mib * 2**20 // (npix * 2)
    data = rng.integers(0, 4096, size=(n, npix), dtype=np.uint16)
    tiles = [data[i : i + tile_frames] for i in range(0, n, tile_frames)]
    nbytes = data.nbytes

    def per_tile(f):
        def run():
            for t in tiles:
                f(t)

        return run

    out_p = np.zeros(npix)
    out_n = np.zeros(n)
    shift = data[0].astype(np.float64)
    s1 = np.zeros(npix)
    s2 = np.zeros(npix)
    mx = np.zeros(npix, np.uint16)
    m1 = np.ascontiguousarray(rng.random((npix, 1)))
    # Several masks are packed once, as ApplyMasksUDF does for a run.
    m16_rows = rng.random((npix, 16))
    m16 = masks.pack_dense(m16_rows)
    m16f = masks.pack_dense(m16_rows.astype(np.float32))
    o1 = np.zeros((tile_frames, 1))
    o16 = np.zeros((tile_frames, 16))
    o16f = np.zeros((tile_frames, 16), np.float32)
    w = com.disk_weights((fy, fx), 128, 128, 100)
    ct, cy, cx = np.zeros(tile_frames), np.zeros(tile_frames), np.zeros(tile_frames)
    rows = np.arange(0, npix, 7, dtype=np.int64)
    nnz_mask = len(rows)
    indptr = np.array([0, nnz_mask], dtype=np.int64)
    vals = rng.random(nnz_mask)

    def com_run(t):
        k = len(t)
        com.cpu(t.reshape(k, fy, fx), w, 0, ct[:k], cy[:k], cx[:k])

    cases = {
        "sum_frames": per_tile(lambda t: sum_frames.cpu(t, out_p)),
        "sum_sig": per_tile(lambda t: sum_sig.cpu(t, out_n[: len(t)])),
        "moments": per_tile(lambda t: moments.cpu(t, shift, s1, s2)),
        "max": per_tile(lambda t: extrema.cpu_max(t, mx)),
        "masks k=1": per_tile(lambda t: masks.cpu_dense(t, m1, o1[: len(t)])),
        "masks k=16 f64": per_tile(lambda t: masks.cpu_dense(t, m16, o16[: len(t)])),
        "masks k=16 f32": per_tile(lambda t: masks.cpu_dense(t, m16f, o16f[: len(t)])),
        "masks sparse 1/7": per_tile(
            lambda t: masks.cpu_sparse(t, indptr, rows, vals, o1[: len(t)])
        ),
        "com": per_tile(com_run),
    }
    floor = nbytes / _best(lambda: _floor(data))
    print(f"{n} frames {fy}x{fx} uint16 ({nbytes / 2**20:.0f} MiB), tiles of {tile_frames} frames")
    print(f"{'floor':18s} {floor / 1e9:6.2f} GB/s")
    for name, fn in cases.items():
        gbs = nbytes / _best(fn)
        print(f"{name:18s} {gbs / 1e9:6.2f} GB/s  {gbs / floor:5.2f} x floor")


if __name__ == "__main__":
    main(*(int(x) for x in sys.argv[1:]))
