"""Benchmark of the analyses beyond the basic reductions, against LiberTEM 0.16 on the same file.

Not a test. Run from the repository root with a Python that has LiberTEM 0.16 installed and this
checkout on the path (LiberTEM figures are skipped, and said so, where it is missing)::

    PYTHONPATH=$PWD /tmp/lt/bin/python benchmarks/run_analyses.py
    PYTHONPATH=$PWD /tmp/lt/bin/python benchmarks/run_analyses.py --size 128MiB --only logsum,fem
    PYTHONPATH=$PWD python benchmarks/run_analyses.py --backend cupy --only template_match  # GPU

Each ``benchmarks/analyses_*.py`` module defines ``CASES``, a list of :class:`AnalysisCase`. For
each case, on one page-cached uint16 raw file (random counts, frames of ``case.sig_shape``):
our ``threads`` executor and LiberTEM's (``Context.make_with("threads", cpus=cores)``) run it
alternately, one untimed warm-up each, then ``--repeat`` timed rounds; both results must agree
(``case.compare``) before any figure counts, and where the case gives a NumPy reference on the
first frames, ours must equal it too. The floor of :mod:`floor` (a minimal parallel Numba sum
over the mapped file) runs in the same rounds. Results go to
``benchmarks/results/<date>-analyses-<hostname>.json`` with the machine (CPU model, instruction
sets, cores) and, per case, the best times, GB/s, frames/s, the ratio to LiberTEM and to the
floor.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from glob import glob
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (ROOT, HERE):  # run as a script from a checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

from benchlib import VerificationError, alternate, machine_info, n_cores  # noqa: E402
from floor import MappedFile, floor  # noqa: E402

Results = dict[str, np.ndarray]


@dataclass
class AnalysisCase:
    """One analysis to time: ours and LiberTEM's on the same data set.

    Attributes
    ----------
    name : str
        Row name in the results (``"logsum"``, ``"fem"``, ...).
    ours : callable
        ``ours(ctx, ds) -> dict of numpy arrays``: run it with our ``Context`` on our data set.
    libertem : callable or None
        ``libertem(lt_ctx, lt_ds) -> dict of numpy arrays``, the same analysis with LiberTEM's
        parameters; None where LiberTEM 0.16 has no such analysis.
    compare : callable
        ``compare(ours_result, libertem_result)``: raise ``VerificationError`` (or
        ``AssertionError``) where they disagree.
    reference : callable or None
        ``reference(frames) -> dict``: a NumPy reference on a few frames (``frames`` has shape
        ``(n, *sig_shape)``, float64), checked against ``ours`` on a small in-memory data set.
    sig_shape : tuple of int
        Frame shape of the file this case runs on.
    """

    name: str
    ours: Callable[[Any, Any], Results]
    libertem: Callable[[Any, Any], Results] | None
    compare: Callable[[Results, Results], None]
    reference: Callable[[np.ndarray], Results] | None = None
    sig_shape: tuple[int, int] = (256, 256)
    #: ``write(path, nav, sig, seed) -> bytes written``: the case's own uint16 file (a
    #: simulated specimen, where random counts would not show the analysis working); default
    #: :func:`write_file`.
    write: Callable[[str, tuple[int, int], tuple[int, int], int], int] | None = None


def close(rtol: float = 1e-4, keys: tuple[str, ...] | None = None) -> Callable:
    """A ``compare`` that checks the shared keys (or ``keys``) within ``rtol`` of the largest
    magnitude of LiberTEM's value, NaN where LiberTEM has NaN."""

    def compare(ours: Results, theirs: Results) -> None:
        names = keys if keys is not None else tuple(k for k in ours if k in theirs)
        if not names:
            raise VerificationError("no result in common to compare")
        for key in names:
            a, b = np.asarray(ours[key]), np.asarray(theirs[key])
            if a.shape != b.shape:
                raise VerificationError(f"{key}: shape {a.shape}, LiberTEM {b.shape}")
            scale = float(np.nanmax(np.abs(b))) if np.isfinite(b).any() else 1.0
            err = float(np.nanmax(np.abs(a - b))) if a.size else 0.0
            if not np.array_equal(np.isnan(a), np.isnan(b)) or not err <= rtol * (scale or 1):
                raise VerificationError(f"{key}: max abs difference {err:.3g} (scale {scale:.3g})")

    return compare


def load_cases(only: set[str] | None) -> list[AnalysisCase]:
    """Every case of every ``benchmarks/analyses_*.py``, or those named in ``only``."""
    cases: list[AnalysisCase] = []
    for path in sorted(glob(os.path.join(HERE, "analyses_*.py"))):
        module = importlib.import_module(os.path.splitext(os.path.basename(path))[0])
        cases.extend(module.CASES)
    if only:
        unknown = only - {c.name for c in cases}
        if unknown:
            raise SystemExit(f"unknown case(s) {sorted(unknown)}; have {[c.name for c in cases]}")
        cases = [c for c in cases if c.name in only]
    return cases


def write_file(path: str, nav: tuple[int, int], sig: tuple[int, int], seed: int) -> int:
    """A uint16 raw file of Poisson counts around a smooth pattern (written in chunks)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: sig[0], : sig[1]]
    r = np.hypot(yy - sig[0] / 2, xx - sig[1] / 2)
    lam = 20 + 200 * np.exp(-((r / (0.1 * sig[0])) ** 2)) + 30 * (np.cos(r / 3) > 0.6)
    with open(path, "wb") as f:
        n = nav[0] * nav[1]
        for start in range(0, n, 256):
            count = min(256, n - start)
            f.write(rng.poisson(lam, size=(count, *sig)).astype(np.uint16).tobytes())
    return os.path.getsize(path)


def check_reference(case: AnalysisCase, frames: np.ndarray) -> None:
    """Ours on an in-memory copy of ``frames`` against the case's NumPy reference."""
    from libertem_gpu import Context

    assert case.reference is not None
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames.reshape(1, *frames.shape), num_partitions=2)
        got = case.ours(ctx, ds)
    want = case.reference(frames.astype(np.float64))
    close(rtol=1e-4, keys=tuple(want))(
        {k: np.asarray(v).reshape(-1) for k, v in got.items()},
        {k: np.asarray(v).reshape(-1) for k, v in want.items()},
    )


def device_of(backend: str) -> tuple[str, str | None]:
    """``("gpu", device name)`` where ``backend`` runs on CuPy (named, or ``auto`` with a usable
    GPU), else ``("cpu", None)``."""
    if backend == "numpy":
        return "cpu", None
    from libertem_gpu.backends import device

    info = device.probe()
    if not info.available:
        if backend == "cupy":
            raise SystemExit(f"--backend cupy: no usable GPU ({info.reason})")
        return "cpu", None
    import cupy

    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return "gpu", name.decode() if isinstance(name, bytes) else str(name)


def bench_case(
    case: AnalysisCase,
    size: int,
    work: str,
    repeat: int,
    log: Callable[[str], None],
    device_class: str = "cpu",
) -> dict[str, Any]:
    """Time one case on its own file; figures only where the results agree."""
    from libertem_gpu import Context

    frame_bytes = 2 * case.sig_shape[0] * case.sig_shape[1]
    side = max(1, int(np.sqrt(size / frame_bytes)))
    nav = (side, max(1, size // (frame_bytes * side)))
    path = os.path.join(work, f"{case.name}.raw")
    nbytes = (case.write or write_file)(path, nav, case.sig_shape, 11)
    n_frames = nav[0] * nav[1]
    entry: dict[str, Any] = {
        "analysis": case.name,
        "dtype": "uint16",
        "nav_shape": list(nav),
        "sig_shape": list(case.sig_shape),
        "nbytes": nbytes,
        "device_class": device_class,
    }
    try:
        with MappedFile(path) as mapped:
            frames = mapped.data[: 3 * frame_bytes].copy().view(np.uint16)
            if case.reference is not None:
                check_reference(case, frames.reshape(3, *case.sig_shape))
                entry["reference_checked"] = True
            lt_ctx = lt_ds = None
            if case.libertem is not None:
                try:
                    from libertem.api import Context as LTContext

                    lt_ctx = LTContext.make_with("threads", cpus=n_cores())
                    lt_ds = lt_ctx.load(
                        "raw", path=path, nav_shape=nav, sig_shape=case.sig_shape, dtype="uint16"
                    )
                except ImportError as e:
                    log(f"  {case.name}: LiberTEM not available ({e})")
            floors: list[float] = []
            with Context("threads") as ctx:
                ds = ctx.load(
                    "raw", path=path, nav_shape=nav, sig_shape=case.sig_shape, dtype="uint16"
                )
                fns: dict[str, Callable[[], Any]] = {
                    "floor": lambda: floors.append(floor(mapped, 1).gbps),
                    "ours": lambda: case.ours(ctx, ds),
                }
                if lt_ctx is not None:
                    try:  # LiberTEM's own failures (e.g. races in its threads) lose its row only
                        case.libertem(lt_ctx, lt_ds)  # type: ignore[misc]
                    except Exception as e:
                        entry["libertem_error"] = f"LiberTEM failed: {type(e).__name__}: {e}"
                        log(f"  {case.name}: {entry['libertem_error']}")
                    else:
                        fns["libertem"] = lambda: case.libertem(lt_ctx, lt_ds)  # type: ignore[misc]
                runs = alternate(fns, repeat)
            if lt_ctx is not None:
                lt_ctx.close()
    finally:
        os.unlink(path)
    best = {name: min(times) for name, (times, _) in runs.items()}
    entry["floor_gbps"] = max(floors)
    entry["ours_s"] = best["ours"]
    entry["ours_gbps"] = nbytes / best["ours"] / 1e9
    entry["frames_per_s"] = n_frames / best["ours"]
    entry["of_floor"] = entry["ours_gbps"] / entry["floor_gbps"]
    if "libertem" in runs:
        try:
            case.compare(runs["ours"][1], runs["libertem"][1])
        except AssertionError as e:
            entry["libertem_error"] = f"results differ: {e}"
        else:
            entry["libertem_s"] = best["libertem"]
            entry["libertem_frames_per_s"] = n_frames / best["libertem"]
            entry["x_libertem"] = best["libertem"] / best["ours"]
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="512MiB", help="bytes of each case's file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated case names")
    parser.add_argument("--out", default=None, help="results JSON path")
    parser.add_argument(
        "--backend",
        choices=("auto", "numpy", "cupy"),
        default="auto",
        help="where our side runs (default auto: the GPU where there is one)",
    )
    args = parser.parse_args(argv)
    units = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}
    size = next(
        (int(float(args.size[: -len(u)]) * m) for u, m in units.items() if args.size.endswith(u)),
        None,
    )
    if size is None:
        size = int(args.size)
    cases = load_cases({s for s in args.only.split(",") if s} or None)
    device_class, device_name = device_of(args.backend)
    report: dict[str, Any] = {
        "benchmark": "analyses",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(extra_modules=("scipy",)),
        "cores": n_cores(),
        "backend": args.backend,
        "device_class": device_class,
        "device": device_name,
        "repeat": args.repeat,
        "cases": [],
    }

    def log(msg: str) -> None:
        print(msg, flush=True)

    out = args.out or os.path.join(
        HERE,
        "results",
        f"{datetime.date.today().isoformat()}-analyses-{report['machine']['hostname']}.json",
    )

    def save() -> None:  # after every case: a run cut short keeps what it measured
        with open(out, "w") as f:
            json.dump(report, f, indent=1)

    log(f"{report['machine']['cpu']} ({', '.join(report['machine']['isa'])}), {n_cores()} cores")
    with tempfile.TemporaryDirectory(prefix="lg-analyses-") as work:
        for case in cases:
            t0 = time.perf_counter()
            from libertem_gpu import config

            backend = {"cpu": "numpy", "gpu": "cupy"}[device_class]
            with config.set(backend=backend):
                entry = bench_case(case, size, work, args.repeat, log, device_class)
            report["cases"].append(entry)
            save()
            ratio = entry.get("x_libertem")
            missing = entry.get("libertem_error", "no LiberTEM")
            versus = f"{ratio:.2f}x LiberTEM" if ratio else missing
            log(
                f"{case.name}: {entry['frames_per_s']:.0f} frames/s, "
                f"{entry['ours_gbps']:.2f} GB/s ({entry['of_floor']:.2f} of floor), "
                + f"{versus} [{time.perf_counter() - t0:.0f} s]"
            )
    save()
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
