"""Principal components of a raw file: ``decompose`` against Dask's randomised SVD.

Not a test. Run ``python benchmarks/bench_decomposition.py [--mib 512] [--repeat 3] [--dir
/tmp]``. The file holds uint16 Poisson counts of three phases (spot patterns, a ring and a
bright disk on 256 x 256 frames) blended over a square scan; the third phase's singular value
is about twice the noise's, which takes two power iterations to find within 1e-4. Ours:
``decompose(ctx, ds, n_components=8, oversampling=8, power_iterations=2)`` on the ``threads``
executor (6 passes). Dask's: ``dask.array.linalg.svd_compressed`` of the centred frames (a
memory map cut into chunks of 256 frames, the mean subtracted lazily), ``k=16,
n_power_iter=2``, on Dask's
threaded scheduler: the same algorithm, the way pyxem and HyperSpy run decompositions of data
that does not fit in memory. Both are timed alternately, after a warm-up, best of ``--repeat``,
with the memory floor (:mod:`floor`) of the same file in the same rounds. The reference: the
exact singular values, from the eigenvalues of the centred frames' Gram matrix (positions x
positions, summed over blocks of pixels); ours must find the three phases' within 1e-3 of the
largest, else no figure is written (Dask's error is recorded beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import VerificationError, alternate, machine_info, result_path
from floor import MappedFile, floor

SIG = (256, 256)
WIDTH, COMPONENTS, ROUNDS = 16, 8, 2
PASSES = 2 + 2 * ROUNDS


def phase_patterns() -> np.ndarray:
    """Three phases' frames, ``(3, *SIG)``: a crystal's spots, an amorphous ring and the
    bright-field disk alone (vacuum), each with the disk."""
    ky, kx = np.mgrid[: SIG[0], : SIG[1]] - 127.5
    r = np.hypot(ky, kx)
    disk = (r <= 20).astype(float)
    spots = disk + sum(
        np.exp(-((ky - 40 * i) ** 2 + (kx - 40 * j) ** 2) / 8)
        for i in (-1, 0, 1)
        for j in (-1, 0, 1)
        if (i, j) != (0, 0)
    )
    ring = disk + 0.5 * np.exp(-((r - 60) ** 2) / 20)
    return np.stack([spots, ring, disk])


def write_file(path: str, side: int, seed: int = 5) -> None:
    """Three phases over a ``side`` x ``side`` scan, Poisson counts, written a row at a time."""
    rng = np.random.default_rng(seed)
    patterns = 20 * phase_patterns()
    y, x = np.mgrid[:side, :side] / side
    maps = np.stack([np.sin(3 * y) ** 2, np.cos(2 * x + y) ** 2, 0.5 + 0.5 * x * y])
    with open(path, "wb") as f:
        for row in range(side):
            lam = np.einsum("cj,cab->jab", maps[:, row], patterns)
            f.write(rng.poisson(lam).astype(np.uint16).tobytes())


def exact_singular_values(path: str, n: int, block: int = 4096) -> np.ndarray:
    """The centred frames' singular values, descending, from their Gram matrix."""
    frames = np.memmap(path, dtype=np.uint16, mode="r", shape=(n, SIG[0] * SIG[1]))
    gram = np.zeros((n, n))
    for p0 in range(0, frames.shape[1], block):
        part = np.asarray(frames[:, p0 : p0 + block], dtype=np.float64)
        part -= part.mean(axis=0)
        gram += part @ part.T
    eigenvalues = np.linalg.eigvalsh(gram)[::-1]
    return np.sqrt(np.clip(eigenvalues, 0, None))


def ours(ctx: Any, ds: Any) -> np.ndarray:
    from libertem_gpu import decompose

    found = decompose(
        ctx, ds, n_components=COMPONENTS, oversampling=WIDTH - COMPONENTS, power_iterations=ROUNDS
    )
    return found.singular_values


def dask_svd(path: str, n: int) -> np.ndarray:
    import dask
    import dask.array as da

    frames = np.memmap(path, dtype=np.uint16, mode="r", shape=(n, SIG[0] * SIG[1]))
    x = da.from_array(frames, chunks=(256, -1)).astype(np.float64)
    centred = x - x.mean(axis=0)
    _, s, _ = da.linalg.svd_compressed(centred, k=WIDTH, n_power_iter=ROUNDS, seed=0)
    with dask.config.set(scheduler="threads"):
        return np.asarray(s.compute())[:COMPONENTS]


def square_scan_args(description: str, least: int = 1) -> tuple[argparse.Namespace, int]:
    """The command line of a benchmark over a square scan of uint16 frames (``--mib``,
    ``--repeat``, ``--dir``) and the scan's side that fills ``--mib``, at least ``least``."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    return args, max(least, int(np.sqrt(args.mib * 2**20 / (2 * SIG[0] * SIG[1]))))


def main() -> int:
    from libertem_gpu import Context

    args, side = square_scan_args(__doc__)
    n = side * side
    path = os.path.join(args.dir, "decomposition.raw")
    write_file(path, side)
    nbytes = os.path.getsize(path)
    floors: list[Any] = []
    with Context("threads") as ctx, MappedFile(path) as mapped:
        ds = ctx.load("raw", path=path, nav_shape=(side, side), sig_shape=SIG, dtype="uint16")
        timed = alternate(
            {
                "ours": lambda: ours(ctx, ds),
                "dask": lambda: dask_svd(path, n),
                "floor": lambda: floors.append(floor(mapped, repeat=1)),
            },
            args.repeat,
        )
    s_ours, s_dask = timed["ours"][1], timed["dask"][1]
    exact = exact_singular_values(path, n)[:COMPONENTS]
    err_ours = float(np.max(np.abs(s_ours[:3] - exact[:3])) / exact[0])
    err_dask = float(np.max(np.abs(s_dask[:3] - exact[:3])) / exact[0])
    if not err_ours <= 1e-3:
        raise VerificationError(f"the three phases' singular values are off by {err_ours:.2g}")
    best = {name: min(t) for name, (t, _) in timed.items() if name != "floor"}
    floor_s = min(f.seconds for f in floors)
    result = {
        "benchmark": "decomposition",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(("dask",)),
        "file": {"nav_shape": [side, side], "sig_shape": list(SIG), "nbytes": nbytes},
        "passes_ours": PASSES,
        "ours_s": best["ours"],
        "dask_s": best["dask"],
        "x_dask": best["dask"] / best["ours"],
        "floor_s": floor_s,
        "ours_of_floor_per_pass": PASSES * floor_s / best["ours"],
        "singular_values_exact": exact.tolist(),
        "singular_values_ours": s_ours.tolist(),
        "singular_values_dask": s_dask.tolist(),
        "error_ours": err_ours,
        "error_dask": err_dask,
        "times_s": {name: timed[name][0] for name in best},
    }
    out = result_path("decomposition")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"decompose {best['ours']:.2f} s ({PASSES} passes; "
        f"{nbytes / best['ours'] * PASSES / 1e9:.2f} GB/s "
        f"read), dask svd_compressed {best['dask']:.2f} s: {best['dask'] / best['ours']:.2f}x; "
        f"floor {floor_s * 1e3:.1f} ms; wrote {out}"
    )
    os.remove(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
