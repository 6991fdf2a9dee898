"""Regions of similar frames from a raw file: ``cluster_frames`` against the same pipeline in
Dask arrays.

Not a test. Run ``python benchmarks/bench_clustering.py [--mib 512] [--repeat 3] [--dir /tmp]``.
The file holds uint16 Poisson counts over a square scan of three regions (a disk, a band and
the rest), each of one phase (spot pattern, ring, bright disk alone) on 256 x 256 frames.

Ours: ``cluster_frames(ctx, ds, 3, n_components=8)`` on the ``threads`` executor: the
decomposition's six passes, k-means of the scores, one pass for the groups' mean and
standard deviation frames. Dask's, the way pyxem and HyperSpy users would do it on data that
does not fit in memory: ``dask.array.linalg.svd_compressed`` of the centred frames (chunks of
256 frames, ``k=16, n_power_iter=2``), k-means of the first 8 scores (scikit-learn's
``KMeans(n_init=10)`` where installed, else ours), and the groups' mean frames as one product
of the one-hot labels with the frames; Dask's threaded scheduler. Both are timed alternately
after a warm-up, best of ``--repeat``, with the memory floor (:mod:`floor`) of the same file
in the same rounds.

Checked before any figure is written: each group found holds one region only (all but
``MAX_STRAY`` of its positions), and our mean frames equal NumPy's means of the file's frames
by the labels found (to 1e-9). Also recorded: our k-means alone against scikit-learn's on the
same scores (seconds and inertia).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_decomposition import SIG, phase_patterns, square_scan_args
from benchlib import VerificationError, alternate, machine_info, result_path
from floor import MappedFile, floor

GROUPS, COMPONENTS, WIDTH, ROUNDS = 3, 8, 16, 2
PASSES = 2 + 2 * ROUNDS + 1
MAX_STRAY = 0.01  # share of a group's positions allowed from another region (Poisson noise)


def regions(side: int) -> np.ndarray:
    """The planted region of each position: 0 a disk, 1 a band, 2 the rest."""
    y, x = np.mgrid[:side, :side] / side
    truth = np.full((side, side), 2)
    truth[np.abs(x - 0.7 * y - 0.45) < 0.12] = 1
    truth[np.hypot(y - 0.35, x - 0.3) < 0.22] = 0
    return truth


def write_file(path: str, side: int, seed: int = 7) -> np.ndarray:
    """Three phases in three regions, Poisson counts, written a row at a time."""
    rng = np.random.default_rng(seed)
    patterns = 10 * phase_patterns()
    truth = regions(side)
    with open(path, "wb") as f:
        for row in range(side):
            f.write(rng.poisson(patterns[truth[row]]).astype(np.uint16).tobytes())
    return truth


def purity(labels: np.ndarray, truth: np.ndarray) -> float:
    """The largest share of any found group's positions that come from another region."""
    worst = 0.0
    for j in np.unique(labels[labels >= 0]):
        members = truth[labels == j]
        worst = max(worst, 1 - np.bincount(members).max() / len(members))
    return worst


def ours(ctx: Any, ds: Any) -> Any:
    from libertem_gpu import cluster_frames

    return cluster_frames(ctx, ds, GROUPS, n_components=COMPONENTS)


def _kmeans(scores: np.ndarray) -> tuple[np.ndarray, float, str]:
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        from libertem_gpu.udf.clustering import kmeans

        labels, _, inertia = kmeans(scores, GROUPS)
        return labels, inertia, "libertem_gpu"
    found = KMeans(GROUPS, n_init=10, random_state=0).fit(scores)
    return found.labels_, float(found.inertia_), "sklearn"


def dask_pipeline(path: str, n: int) -> tuple[np.ndarray, np.ndarray, str]:
    import dask
    import dask.array as da

    frames = np.memmap(path, dtype=np.uint16, mode="r", shape=(n, SIG[0] * SIG[1]))
    x = da.from_array(frames, chunks=(256, -1)).astype(np.float64)
    centred = x - x.mean(axis=0)
    with dask.config.set(scheduler="threads"):
        u, s, _ = da.linalg.svd_compressed(centred, k=WIDTH, n_power_iter=ROUNDS, seed=0)
        scores = np.asarray((u[:, :COMPONENTS] * s[:COMPONENTS]).compute())
        labels, _, which = _kmeans(scores)
        onehot = np.eye(GROUPS)[labels] / np.bincount(labels, minlength=GROUPS)
        means = np.asarray(da.dot(da.from_array(onehot.T, chunks=(-1, 256)), x).compute())
    return labels, means, which


def numpy_means(path: str, n: int, labels: np.ndarray, block: int = 256) -> np.ndarray:
    frames = np.memmap(path, dtype=np.uint16, mode="r", shape=(n, SIG[0] * SIG[1]))
    sums = np.zeros((GROUPS, frames.shape[1]))
    for f0 in range(0, n, block):
        part = np.asarray(frames[f0 : f0 + block], dtype=np.float64)
        np.add.at(sums, labels[f0 : f0 + block], part)
    return sums / np.bincount(labels, minlength=GROUPS)[:, None]


def kmeans_alone(scores: np.ndarray, repeat: int) -> dict[str, Any]:
    """Our k-means and scikit-learn's (where installed) on the same scores."""
    from libertem_gpu.udf.clustering import kmeans

    got: dict[str, Any] = {}
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        _, _, inertia = kmeans(scores, GROUPS)
        times.append(time.perf_counter() - t0)
    got["ours_s"], got["ours_inertia"] = min(times), inertia
    try:
        from sklearn.cluster import KMeans
    except ImportError:
        return got
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        found = KMeans(GROUPS, n_init=10, random_state=0).fit(scores)
        times.append(time.perf_counter() - t0)
    got["sklearn_s"], got["sklearn_inertia"] = min(times), float(found.inertia_)
    return got


def main() -> int:
    from libertem_gpu import Context

    args, side = square_scan_args(__doc__, least=4)
    n = side * side
    path = os.path.join(args.dir, "clustering.raw")
    truth = write_file(path, side)
    nbytes = os.path.getsize(path)
    floors: list[Any] = []
    try:
        with Context("threads") as ctx, MappedFile(path) as mapped:
            ds = ctx.load("raw", path=path, nav_shape=(side, side), sig_shape=SIG, dtype="uint16")
            timed = alternate(
                {
                    "ours": lambda: ours(ctx, ds),
                    "dask": lambda: dask_pipeline(path, n),
                    "floor": lambda: floors.append(floor(mapped, repeat=1)),
                },
                args.repeat,
            )
        found = timed["ours"][1]
        labels_dask = timed["dask"][1][0]
        stray_ours = purity(found.labels, truth)
        stray_dask = purity(labels_dask.reshape(side, side), truth)
        if not stray_ours <= MAX_STRAY:
            raise VerificationError(f"a group found holds {stray_ours:.1%} of another region")
        want = numpy_means(path, n, found.labels.reshape(-1))
        mean_error = float(np.abs(found.mean_frames.reshape(GROUPS, -1) - want).max() / want.max())
        if not mean_error <= 1e-9:
            raise VerificationError(f"mean frames off by {mean_error:.2g} of the largest pixel")
        alone = kmeans_alone(found.decomposition.scores.reshape(n, -1), args.repeat)
    finally:
        os.remove(path)
    best = {name: min(t) for name, (t, _) in timed.items() if name != "floor"}
    floor_s = min(f.seconds for f in floors)
    result = {
        "benchmark": "clustering",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(("dask", "sklearn")),
        "file": {"nav_shape": [side, side], "sig_shape": list(SIG), "nbytes": nbytes},
        "passes_ours": PASSES,
        "ours_s": best["ours"],
        "dask_s": best["dask"],
        "x_dask": best["dask"] / best["ours"],
        "dask_kmeans": timed["dask"][1][2],
        "floor_s": floor_s,
        "ours_of_floor_per_pass": PASSES * floor_s / best["ours"],
        "stray_share_ours": stray_ours,
        "stray_share_dask": stray_dask,
        "mean_frames_error_ours": mean_error,
        "counts_ours": found.counts.tolist(),
        "kmeans_alone": alone,
        "times_s": {name: timed[name][0] for name in best},
    }
    out = result_path("clustering")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"cluster_frames {best['ours']:.2f} s ({PASSES} passes, "
        f"{nbytes * PASSES / best['ours'] / 1e9:.2f} GB/s read; "
        f"{PASSES * floor_s / best['ours']:.2f} of the floor), Dask {best['dask']:.2f} s: "
        f"{best['dask'] / best['ours']:.2f}x; stray {stray_ours:.2%} (Dask {stray_dask:.2%}); "
        f"k-means alone {alone}; wrote {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
