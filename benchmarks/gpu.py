"""GPU throughput against its ceilings, in one bounded run (not a test; run by run_gpu.sh).

Measures on the current CUDA device, in this order:

1. the ceilings: device-to-device copy (bytes read plus bytes written per second) and pinned
   host-to-device copy, timed with CUDA events;
2. each analysis (sum, sumsig, std, masks1, masks16, com, radial) on uint16 and float32 data in each
   mode, where a mode is how the frames reach the GPU and names the I/O path it must take:

   ========  ====================================================  ===========
   mode      data                                                  io_path
   ========  ====================================================  ===========
   resident  a CuPy array (``ctx.load("memory", data=cupy_array)``)  resident
   pinned    a raw file in the page cache, ``io_backend="pread"``    pinned
   kvikio    the same file, ``io_backend="kvikio"``                  kvikio
   file      the same file, ``io_backend="direct"`` (``O_DIRECT``)   direct
   ========  ====================================================  ===========

Each row records the I/O paths its run took, as the library reports them per run
(``UDFResults.io_paths``: bytes per path, summed over the partitions, from ``run_udf_iter``); a
row whose paths differ from its mode's is kept but marked ``"ok": false`` with the reason. Each
row's result is checked against a NumPy reference on a sample (random frames for per-frame
results, a slab of two detector rows over all frames for frame-shaped results) before its figure
counts.

The results JSON (``device``, ``ceilings {d2d_copy_GBps, h2d_pinned_GBps}``, ``results`` rows
``{analysis, mode, dtype, GBps, io_path, ...}``, ``machine``, ``settings``) is rewritten after
every measurement, in every ``--out`` folder, so a run cut short keeps its figures; rows not
reached before ``--deadline-s`` are listed under ``skipped``. Without a usable GPU it writes the
skeleton with the reason and exits 2.

Run: ``python benchmarks/gpu.py --out DIR [--out DIR2] [--gib 1] [--repeat 3] [--deadline-s S]``.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import gpu_probe  # benchmarks/, beside this file

import libertem_gpu as lg
from libertem_gpu import config

SIG = (256, 256)
ANALYSES = ("sum", "sumsig", "std", "masks1", "masks16", "com", "radial")
DTYPES = ("uint16", "float32")
#: mode -> (io_backend setting, or None for data on the device; the io_path it must report)
MODES: dict[str, tuple[str | None, str]] = {
    "resident": (None, "resident"),
    "pinned": ("pread", "pinned"),
    "kvikio": ("kvikio", "kvikio"),
    "file": ("direct", "direct"),
}
#: Relative error (‖got - ref‖ / ‖ref‖) a row may show against its NumPy reference.
#: float32 masks may run in float32 on the device (a cuBLAS GEMM for 16); everything else sums in
#: float64. A wrong index or an unwritten output shows as an error near 1, far above either.
TOLERANCE = {"masks1": 1e-4, "masks16": 1e-4}
DEFAULT_TOLERANCE = 1e-6
CY, CX, RADIUS = SIG[0] / 2, SIG[1] / 2, 40.0


# --- the I/O path each partition took ---------------------------------------------------------


class IOPathRecorder:
    """Collect ``CupyBackend.io_path`` after every partition, by wrapping ``iter_tiles``.

    Superseded by the library's own record (``UDFResults.io_paths``, which :func:`measure`
    reads); kept as a cross-check that sees each backend instance in this process.
    """

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self.installed = False

    def install(self) -> None:
        """Wrap ``CupyBackend.iter_tiles`` (once)."""
        from libertem_gpu.backends.cupy_backend import CupyBackend

        if getattr(CupyBackend.iter_tiles, "_records_io_path", False):
            self.installed = True
            return
        original = CupyBackend.iter_tiles
        recorder = self

        def iter_tiles(backend: Any, dataset: Any, plan: Any) -> Iterator[Any]:
            try:
                yield from original(backend, dataset, plan)
            finally:
                with recorder._lock:
                    recorder.paths.append(str(getattr(backend, "io_path", "") or "unknown"))

        iter_tiles._records_io_path = True  # type: ignore[attr-defined]
        CupyBackend.iter_tiles = iter_tiles  # type: ignore[method-assign]
        self.installed = True

    def take(self) -> list[str]:
        """The paths recorded since the last call, and forget them."""
        with self._lock:
            paths, self.paths = self.paths, []
        return paths


# --- data and references -----------------------------------------------------------------------


def make_udf(analysis: str) -> Any:
    """A fresh UDF for ``analysis``."""
    if analysis == "sum":
        return lg.SumUDF()
    if analysis == "sumsig":
        return lg.SumSigUDF()
    if analysis == "std":
        return lg.StdDevUDF()
    if analysis == "masks1":
        disk = disk_mask().astype(np.float32)
        return lg.ApplyMasksUDF(mask_factories=[lambda: disk])
    if analysis == "masks16":
        stack = mask_stack()
        return lg.ApplyMasksUDF(mask_factories=lambda: stack, mask_count=16, mask_dtype=np.float32)
    if analysis == "com":
        return lg.CoMUDF.with_params(cy=CY, cx=CX, r=RADIUS)
    if analysis == "radial":  # one-pixel rings over the whole frame: sparse masks, cuSPARSE
        return lg.RadialProfileUDF()
    raise ValueError(f"unknown analysis {analysis!r}; valid: {', '.join(ANALYSES)}")


def disk_mask() -> np.ndarray:
    """1 inside the CoM disk, 0 outside (float64, frame-shaped)."""
    yy, xx = np.mgrid[: SIG[0], : SIG[1]]
    return (np.hypot(yy - CY, xx - CX) <= RADIUS).astype(np.float64)


def mask_stack() -> np.ndarray:
    """16 random float32 masks (the same every call)."""
    return np.random.default_rng(1).random((16, *SIG)).astype(np.float32)


class Sample:
    """A sample of one data set and the NumPy references on it, computed once per dtype.

    Parameters
    ----------
    mapped : numpy.ndarray
        The data set as ``(n_frames, rows, cols)`` (a memmap of the file).
    rng : numpy.random.Generator
        Picks the sampled frames and detector rows.
    """

    def __init__(self, mapped: np.ndarray, rng: np.random.Generator) -> None:
        n = mapped.shape[0]
        self.frames_idx = np.sort(rng.choice(n, size=min(64, n), replace=False))
        self.frames = np.asarray(mapped[self.frames_idx], dtype=np.float64)
        self.row0 = int(rng.integers(0, SIG[0] - 2))
        self.slab = np.asarray(mapped[:, self.row0 : self.row0 + 2, :], dtype=np.float64)
        self._refs: dict[str, dict[str, np.ndarray]] = {}

    def reference(self, analysis: str) -> dict[str, np.ndarray]:
        """NumPy results on the sample: per-frame values at :attr:`frames_idx`, frame-shaped
        values on detector rows ``row0, row0 + 1``."""
        if analysis not in self._refs:
            f = self.frames.reshape(len(self.frames), -1)
            if analysis == "sum":
                ref = {"intensity": self.slab.sum(axis=0)}
            elif analysis == "std":
                ref = {"mean": self.slab.mean(axis=0), "var": self.slab.var(axis=0)}
            elif analysis == "sumsig":
                ref = {"intensity": f.sum(axis=1)}
            elif analysis == "masks1":
                ref = {"intensity": f @ disk_mask().reshape(-1, 1)}
            elif analysis == "masks16":
                ref = {"intensity": f @ mask_stack().reshape(16, -1).astype(np.float64).T}
            elif analysis == "com":
                w = disk_mask().reshape(-1)
                yy, xx = np.mgrid[: SIG[0], : SIG[1]]
                tot = f @ w
                ref = {
                    "raw_com": np.stack(
                        [(f @ (w * yy.reshape(-1))) / tot, (f @ (w * xx.reshape(-1))) / tot],
                        axis=1,
                    )
                }
            elif analysis == "radial":
                from libertem_gpu.udf.radial_profile import polar_bins

                bins = polar_bins(SIG)
                labels = bins.labels
                inside = labels >= 0
                sums = np.stack([np.bincount(labels[inside], row[inside], bins.count) for row in f])
                ref = {"intensity": sums / bins.pixels.reshape(-1)}
            else:
                raise ValueError(analysis)
            self._refs[analysis] = ref
        return self._refs[analysis]

    def check(self, analysis: str, result: Any) -> float:
        """Largest relative error of ``result`` (``run_udf``'s answer) against the sample's
        reference; raises where a key is missing or a value is NaN."""
        worst = 0.0
        for key, want in self.reference(analysis).items():
            got = np.asarray(result[key].data)
            if analysis in ("sum", "std"):  # frame-shaped: the slab's two rows
                got = got[self.row0 : self.row0 + 2, :]
            else:
                got = got.reshape(-1, *want.shape[1:])[self.frames_idx]
            worst = max(worst, gpu_probe._rel_err(got, want))
        return worst


# --- the run ------------------------------------------------------------------------------------


class Results:
    """The results JSON, rewritten in every output folder after each change."""

    def __init__(self, outs: list[Path], name: str) -> None:
        self.paths = [o / name for o in outs]
        self.data: dict[str, Any] = {
            "device": None,
            "ceilings": {"d2d_copy_GBps": None, "h2d_pinned_GBps": None},
            "results": [],
            "skipped": [],
            "errors": [],
            "machine": gpu_probe.machine_facts(),
            "settings": {},
        }

    def save(self) -> None:
        """Write every copy now."""
        for p in self.paths:
            gpu_probe.write_json(p, self.data)

    def error(self, msg: str) -> None:
        """Record an error that is not one row's, and save."""
        print("ERROR:", msg, flush=True)
        self.data["errors"].append(msg)
        self.save()


def ceilings(cp: Any, nbytes: int, repeat: int) -> Iterator[tuple[str, float]]:
    """Device-to-device copy GB/s (read plus write) and pinned host-to-device GB/s, each the
    median of ``repeat`` copies timed with CUDA events after one warm-up."""

    def median_s(fn: Callable[[], None], stream: Any) -> float:
        times = []
        for i in range(repeat + 1):
            start, stop = cp.cuda.Event(), cp.cuda.Event()
            start.record(stream)
            fn()
            stop.record(stream)
            stop.synchronize()
            if i:
                times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
        return sorted(times)[len(times) // 2]

    def d2d_seconds() -> float:
        src = cp.random.random(nbytes // 8)  # never zeros
        dst = cp.empty_like(src)
        stream = cp.cuda.Stream(non_blocking=True)
        with stream:
            t = median_s(lambda: cp.copyto(dst, src), stream)
        if not bool((dst[:1024] == src[:1024]).all()):
            raise AssertionError("device copy wrong")
        return t

    yield "d2d_copy_GBps", 2 * nbytes / d2d_seconds() / 1e9
    yield "h2d_pinned_GBps", gpu_probe.pinned_h2d_GBps(cp, nbytes, repeat)


def write_data(cp: Any, path: Path, dtype: str, n_frames: int) -> Any:
    """Random frames (never zeros) made on the device, written to ``path`` in chunks; returns
    the device array ``(n_frames, *SIG)`` (the resident mode's data, equal to the file)."""
    shape = (n_frames, *SIG)
    if dtype == "uint16":
        data = cp.random.randint(0, 4096, size=shape, dtype=cp.uint16)
    else:
        data = (cp.random.random(shape, dtype=cp.float32) * 4096).astype(cp.float32)
    with open(path, "wb") as f:
        for start in range(0, n_frames, 512):
            cp.asnumpy(data[start : start + 512]).tofile(f)
    with open(path, "rb") as f:  # into the page cache
        while f.read(64 * 2**20):
            pass
    # Make the data visible to every stream before a backend reads it (issue 15, fault 4).
    cp.cuda.Device().synchronize()
    return data


def measure(
    ctx: Any,
    ds: Any,
    analysis: str,
    mode: str,
    recorder: IOPathRecorder | None,
    sample: Sample,
    repeat: int,
    nbytes: int,
    backend: str = "cupy",
) -> dict[str, Any]:
    """One row: a warm-up run, ``repeat`` timed runs, the I/O paths taken and the check
    (``backend`` other than cupy only to test this without a GPU).

    The paths are the run's own record (``UDFResults.io_paths`` of the warm-up, run through
    ``run_udf_iter``; the timed runs use ``run_udf``, which does not build results after every
    partition). An installed ``recorder`` adds the paths it saw in every run as a cross-check.
    """
    io_setting, expected = MODES[mode]
    settings = {} if io_setting is None else {"io_backend": io_setting}
    row: dict[str, Any] = {"analysis": analysis, "mode": mode, "GBps": None, "io_path": None}
    with config.set(**settings), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if recorder is not None:
            recorder.take()
        t0 = time.perf_counter()
        io_bytes: dict[str, int] = {}
        for partial in ctx.run_udf_iter(dataset=ds, udf=make_udf(analysis), backends=backend):
            io_bytes = dict(partial.io_paths)
        row["warmup_s"] = round(time.perf_counter() - t0, 3)
        times = []
        result = None
        for _ in range(repeat):
            t0 = time.perf_counter()
            result = ctx.run_udf(dataset=ds, udf=make_udf(analysis), backends=backend)
            times.append(time.perf_counter() - t0)
    paths = sorted(p for p, n in io_bytes.items() if n)
    row["io_path"] = ",".join(paths) or None
    row["io_bytes"] = io_bytes
    best = min(times)
    row["GBps"] = round(nbytes / best / 1e9, 3)
    row["seconds"] = [round(t, 4) for t in times]
    problems = []
    if paths != [expected]:
        problems.append(f"io_path {row['io_path']!r}, expected {expected!r}")
    seen = sorted(set(recorder.take())) if recorder is not None and recorder.installed else []
    if seen and seen != paths:
        problems.append(f"iter_tiles saw paths {seen}, the run reports {paths}")
    err = sample.check(analysis, result)
    row["rel_error"] = float(f"{err:.2e}")
    tol = TOLERANCE.get(analysis, DEFAULT_TOLERANCE)
    if err > tol:
        problems.append(f"relative error {err:.2e} against NumPy > {tol}")
    if caught:
        row["warnings"] = sorted({str(w.message)[:300] for w in caught})
    row["ok"] = not problems
    if problems:
        row["problem"] = "; ".join(problems)
    return row


def main(argv: list[str] | None = None) -> int:
    """Command line; 0 where every row ran and passed, 1 where some did not, 2 without a GPU."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, action="append", help="output folder (repeatable)")
    parser.add_argument("--gib", type=float, default=1.0, help="bytes per data set, in GiB")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (best counts)")
    parser.add_argument("--deadline-s", type=float, default=240.0, help="stop starting rows after")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--analyses", default=",".join(ANALYSES))
    parser.add_argument("--dtypes", default=",".join(DTYPES))
    parser.add_argument("--executor", default="threads")
    args = parser.parse_args(argv)
    t_start = time.monotonic()
    outs = args.out or [Path(__file__).with_name("results")]
    modes = [m for m in args.modes.split(",") if m]
    analyses = [a for a in args.analyses.split(",") if a]
    dtypes = [d for d in args.dtypes.split(",") if d]
    for m in modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r}; valid: {', '.join(MODES)}")

    from libertem_gpu.backends import device

    info = device.probe()
    name = info.devices[0].name if info.available else "no-gpu"
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    date = time.strftime("%Y-%m-%d", time.gmtime())
    res = Results(outs, f"{date}-{slug}-gpu-check.json")
    res.data["settings"] = {
        "sig_shape": SIG,
        "gib_per_dataset": args.gib,
        "repeat": args.repeat,
        "executor": args.executor,
        "deadline_s": args.deadline_s,
        "modes": {m: {"io_backend": MODES[m][0], "io_path": MODES[m][1]} for m in modes},
        "tolerance": {a: TOLERANCE.get(a, DEFAULT_TOLERANCE) for a in analyses},
    }
    if not info.available:
        res.error(f"no usable GPU: {info.reason}")
        gpu_probe.reason(f"no usable GPU: {info.reason}")
        return 2
    import cupy as cp

    res.data["device"] = name
    res.data["settings"]["tile_bytes_gpu"] = config.get("tile_bytes_gpu")
    res.save()
    print(f"device: {name}", flush=True)
    try:
        for key, value in ceilings(cp, 2**30, args.repeat):
            res.data["ceilings"][key] = round(value, 2)
            print(f"ceiling {key}: {value:.1f} GB/s", flush=True)
            res.save()
    except Exception as e:
        res.error(f"ceilings: {e!r}")

    if "kvikio" in modes:
        try:
            from libertem_gpu.io.transports.kvikio import configure_kvikio

            res.data["settings"]["kvikio"] = configure_kvikio()
        except Exception as e:  # measured anyway: the rows then show the path actually taken
            res.data["settings"]["kvikio"] = f"configure_kvikio failed: {e!r}"
        res.save()

    rng = np.random.default_rng(0)
    todo = [(m, d, a) for m in modes for d in dtypes for a in analyses]
    with tempfile.TemporaryDirectory() as tmp, lg.Context(args.executor) as ctx:
        datasets: dict[str, tuple[Any, Any, Sample, int]] = {}
        for mode, dtype, analysis in todo:
            if time.monotonic() - t_start > args.deadline_s:
                res.data["skipped"].append(f"{analysis}/{mode}/{dtype}: out of time")
                res.save()
                continue
            row: dict[str, Any] = {"analysis": analysis, "mode": mode, "dtype": dtype}
            try:
                if dtype not in datasets:
                    itemsize = np.dtype(dtype).itemsize
                    n_frames = int(args.gib * 2**30) // (SIG[0] * SIG[1] * itemsize)
                    nav = (n_frames // 64, 64) if n_frames >= 128 else (1, n_frames)
                    n_frames = nav[0] * nav[1]
                    path = Path(tmp) / f"{dtype}.raw"
                    data = write_data(cp, path, dtype, n_frames)
                    mapped = np.memmap(path, dtype=dtype, mode="r", shape=(n_frames, *SIG))
                    sample = Sample(mapped, rng)
                    raw = ctx.load("raw", path=str(path), nav_shape=nav, sig_shape=SIG, dtype=dtype)
                    resident = ctx.load("memory", data=data.reshape(*nav, *SIG))
                    datasets[dtype] = (raw, resident, sample, n_frames * SIG[0] * SIG[1] * itemsize)
                    res.data["settings"][f"nav_shape_{dtype}"] = nav
                raw, resident, sample, nbytes = datasets[dtype]
                ds = resident if mode == "resident" else raw
                row.update(measure(ctx, ds, analysis, mode, None, sample, args.repeat, nbytes))
                row["dtype"] = dtype
                ceil = res.data["ceilings"]
                ref = ceil["d2d_copy_GBps"] if mode == "resident" else ceil["h2d_pinned_GBps"]
                if ref and row["GBps"]:
                    row["ratio_to_ceiling"] = round(row["GBps"] / ref, 3)
            except Exception as e:
                row.update({"GBps": None, "ok": False, "problem": f"failed: {e!r}"[:500]})
            print(
                {
                    k: row.get(k)
                    for k in ("analysis", "mode", "dtype", "GBps", "io_path", "ok", "problem")
                },
                flush=True,
            )
            res.data["results"].append(row)
            res.save()
    bad = [r for r in res.data["results"] if not r.get("ok")]
    print(f"{len(res.data['results'])} rows, {len(bad)} not ok, {len(res.data['skipped'])} skipped")
    for p in res.paths:
        print(f"wrote {p}")
    if bad or res.data["skipped"] or res.data["errors"]:
        first = bad[0].get("problem") if bad else (res.data["skipped"] or res.data["errors"])[0]
        gpu_probe.reason(
            f"{len(bad)} rows not ok, {len(res.data['skipped'])} skipped; first: {first}"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
