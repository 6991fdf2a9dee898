"""CPU benchmark runner: libertem_gpu against the memory floor, Dask arrays and LiberTEM 0.16.

Not a test. Run from the repository root::

    python benchmarks/run_cpu.py                       # 2 GiB uint16 + 2 GiB float32, best of 3
    python benchmarks/run_cpu.py --size 256MiB --repeat 2 --only sum,com --no-memory

In one run, on the same page-cached raw files (frames of 256 x 256; written, then read once
before any timing), it measures:

- the floor (:mod:`floor`, shared by every CPU benchmark): the file mapped read-only once,
  outside the timed runs, and summed as wrapping uint32 words and as fastmath float32 on all
  cores, the faster counts;
- the windowed floor (:func:`floor.windowed_floor`): the same sum reading the file through
  16 MiB windows mapped, faulted and unmapped inside the timed run, as the engine (or any reader
  that maps) must; its distance to the floor is what the page tables cost on this machine;
- libertem_gpu's ``threads`` executor for SumUDF, SumSigUDF, StdDevUDF, ApplyMasksUDF with 1 and
  with 16 dense random float32 masks, a drawn bright-field disk (``vbf``) and 16 drawn rings
  (``rings16``), and CoMUDF;
- the Dask array equivalent (``da.from_array(np.memmap(...))``, threaded scheduler, one worker
  per core) and LiberTEM 0.16 (``Context.make_with("threads")``) where installed;
- start-up: a new Python process to the first SumUDF result on a small raw file, with Numba's
  on-disk cache cold (``NUMBA_CACHE_DIR`` pointed at a fresh folder) and warm;
- peak resident memory of ``libertem-gpu demo --size 4GiB`` (``VmHWM`` of the child);
- the machine: CPU model and its vector/matrix instruction sets (avx2, avx512*, amx_*).

Before any figure counts, each contender's result is compared with a float64 NumPy reference
computed from the file in one chunked pass (:func:`reference`): a wrong result is recorded as an
error for that row, not as a figure. The drawn masks may be read as runs of masked pixels, fewer
bytes than the file: those rows record ``reads_subset`` and ``bytes_read_fraction`` and get no
ratio to the floor.

Throughput is bytes of the data set over wall time, best of ``--repeat`` runs after one warm-up
run (which compiles). For each analysis the floor runs again, alternating with libertem_gpu, so
that the ratio to the floor compares runs taken under the same load of a shared machine.
Results go to ``benchmarks/results/<date>-cpu-<hostname>.json`` (the time of day is added where
that file exists) and the README's table (:mod:`readme_table`) is printed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _path in (ROOT, HERE):  # run as a script from a checkout
    if _path not in sys.path:
        sys.path.insert(0, _path)

from benchlib import (  # noqa: E402
    alternate,
    machine_info,
    n_cores,
    resident_fraction,
    result_path,
    target_env,
)
from cpu_cases import (  # noqa: E402
    ANALYSES,
    BUILT_IN,
    FLOOR_TARGETS,
    LIBERTEM_TARGETS,
    RTOL,
    SIG_SHAPE,
    com_geometry,
    dask_run,
    gemm_ceiling,
    layout,
    libertem_gpu_udf,
    libertem_udf,
    read_once,
    reference,
    subset_read,
    verify,
    write_file,
)
from floor import (  # noqa: E402
    FloorResult,
    MappedFile,
    floor,
    merge,
    wait_policy,
    windowed_floor,
)
from process_costs import demo_memory, startup  # noqa: E402
from readme_table import render  # noqa: E402

# --- the run ---


def bench_dtype(
    dtype: np.dtype,
    size: int,
    work: str,
    analyses: list[str],
    repeat: int,
    with_dask: bool,
    with_libertem: bool,
    log: Callable[[str], None],
    keep_mapped: int = 0,
) -> dict[str, Any]:
    nav = layout(size, dtype)
    path = os.path.join(work, f"bench-{dtype.name}.raw")
    t0 = time.perf_counter()
    nbytes = write_file(path, nav, dtype, seed=7)
    read_once(path)
    log(
        f"{dtype.name}: {nbytes / 2**30:.2f} GiB, scan {nav}, frames {SIG_SHAPE}; written and "
        f"read in {time.perf_counter() - t0:.1f} s"
    )
    try:
        with MappedFile(path) as mapped:
            return _bench_mapped(
                mapped, dtype, nav, analyses, repeat, with_dask, with_libertem, log, keep_mapped
            )
    finally:
        os.unlink(path)


def _bench_mapped(
    mapped: MappedFile,
    dtype: np.dtype,
    nav: tuple[int, int],
    analyses: list[str],
    repeat: int,
    with_dask: bool,
    with_libertem: bool,
    log: Callable[[str], None],
    keep_mapped: int = 0,
) -> dict[str, Any]:
    path, nbytes = mapped.path, mapped.nbytes
    cores = n_cores()
    t0 = time.perf_counter()
    want = reference(mapped.data, nav, dtype, analyses)
    log(f"  NumPy reference of {', '.join(analyses)}: {time.perf_counter() - t0:.1f} s")
    first = floor(mapped, repeat)
    log(f"  floor: {first.gbps:.2f} GB/s ({first.kernel} kernel)")
    gemm = gemm_ceiling(cores, dtype)
    log(f"  GEMM ceiling (16 masks, data already float32): {gemm:.2f} GB/s of {dtype.name}")
    result: dict[str, Any] = {
        "dtype": dtype.name,
        "nav_shape": list(nav),
        "sig_shape": list(SIG_SHAPE),
        "nbytes": nbytes,
        **first.as_dict(),
        "gemm16_ceiling_gbps": gemm,
        "analyses": {},
    }

    from libertem_gpu import Context, config
    from libertem_gpu.io.transports.mmap import drop_kept_mappings

    def kept(name: str) -> Any:
        with config.set(keep_mapped_bytes=keep_mapped):
            return ctx.run_udf(dataset=ds, udf=libertem_gpu_udf(name))

    lt_ctx = lt_ds = None
    if with_libertem:
        try:
            from libertem.api import Context as LTContext

            lt_ctx = LTContext.make_with("threads", cpus=cores)
            lt_ds = lt_ctx.load(
                "raw", path=path, nav_shape=nav, sig_shape=SIG_SHAPE, dtype=dtype.name
            )
        except ImportError as e:
            log(f"  LiberTEM not available: {e}")
            lt_ctx = None
    try:
        with Context("threads") as ctx:
            ds = ctx.load("raw", path=path, nav_shape=nav, sig_shape=SIG_SHAPE, dtype=dtype.name)
            for name in analyses:
                # The floor runs again for each analysis, alternating with ours and LiberTEM
                # (threads in this process, like ours), so that the ratios compare runs taken
                # under the same load of a (shared) machine: run one after the other, the two
                # swapped order by up to a tenth on the 2-vCPU VM. Dask runs afterwards: a Dask
                # run between them would leave the next one slower (freed memory to zero,
                # evicted caches) and bias the ratio. Each ratio to the floor takes the floor's
                # runs from the same rounds, as many as the contender's (the warm-up call of
                # each alternation is dropped): the best of more runs of a noisy figure is
                # higher, and pooling the floor's runs of both alternations gave it 12 against
                # 5.
                floors: list[FloorResult] = []
                kept_floors: list[FloorResult] = []
                windowed: list[FloorResult] = []
                contenders: dict[str, Callable[[], Any]] = {
                    "floor": lambda floors=floors: floors.append(floor(mapped, 1)),
                    "windowed": lambda windowed=windowed: windowed.append(
                        windowed_floor(path, nbytes, repeat=1)
                    ),
                    "ours": lambda name=name: ctx.run_udf(dataset=ds, udf=libertem_gpu_udf(name)),
                }
                if lt_ctx is not None:
                    contenders["libertem"] = lambda name=name: lt_ctx.run_udf(
                        dataset=lt_ds, udf=libertem_udf(name)
                    )
                runs = alternate(contenders, repeat)
                if keep_mapped:
                    # The file kept mapped between runs (setting keep_mapped_bytes), alternating
                    # with the floor but not with the default runs, which would drop the
                    # mapping (a budget of 0 lets go of kept files) before each kept run.
                    runs["kept"] = alternate(
                        {
                            "floor": lambda kept_floors=kept_floors: kept_floors.append(
                                floor(mapped, 1)
                            ),
                            "kept": lambda name=name: kept(name),
                        },
                        repeat,
                    )["kept"]
                    drop_kept_mappings()
                if with_dask:
                    runs["dask"] = alternate(
                        {"dask": lambda name=name: dask_run(name, path, nav, dtype, cores)},
                        repeat,
                    )["dask"]
                runs.pop("windowed")
                entry = _entry(name, dtype, runs, merge(floors[1:]), want[name], gemm)
                _paired_ratios(entry, runs, floors[1:], kept_floors[1:])
                w = merge(windowed[1:])
                entry["windowed_floor_gbps"] = w.gbps
                if "ratio_floor" in entry:
                    entry["ratio_windowed_floor"] = entry["gbps"] / w.gbps
                # Where the kernel pages out cold memory, the "page-cached" file may not be.
                entry["file_resident_fraction"] = resident_fraction(path)
                result["analyses"][name] = entry
                log(f"  {name}: " + _summary(entry))
    finally:
        if lt_ctx is not None:
            lt_ctx.close()
    return result


def _entry(
    name: str,
    dtype: np.dtype,
    runs: dict[str, tuple[list[float], Any]],
    floor_result: FloorResult,
    want: np.ndarray,
    gemm: float,
) -> dict[str, Any]:
    """One analysis's figures, each only where its result matched the reference; a result that
    does not is recorded as ``<contender>_error`` instead of a figure."""
    nbytes = floor_result.nbytes
    entry: dict[str, Any] = {**floor_result.as_dict(), "target_floor": FLOOR_TARGETS.get(name)}
    subset = subset_read(name, dtype)
    if subset is not None:
        entry.update(subset)
    gbps: dict[str, float] = {}
    for contender, (times, value) in runs.items():
        if contender == "floor":
            continue
        key = "" if contender == "ours" else f"{contender}_"
        try:
            verify(contender, name, value, want)
        except Exception as e:  # a wrong result (or none): no figure for this contender
            entry[f"{key}error"] = f"{type(e).__name__}: {e}"
            continue
        gbps[contender] = nbytes / min(times) / 1e9
        entry[f"{key}gbps"] = gbps[contender]
        entry[f"{key}times_s"] = times
        entry[f"{key}verified"] = True
    ours = gbps.get("ours")
    if ours is not None:
        if subset is None:
            entry["ratio_floor"] = ours / floor_result.gbps
        if name in ("masks16", "rings16"):
            entry["ratio_gemm16_ceiling"] = ours / gemm
        if "dask" in gbps:
            entry["ratio_dask"] = ours / gbps["dask"]
        if "libertem" in gbps:
            entry["ratio_libertem"] = ours / gbps["libertem"]
            if name in BUILT_IN:
                entry["target_libertem"] = LIBERTEM_TARGETS.get(dtype.name)
    return entry


def _paired_ratios(
    entry: dict[str, Any],
    runs: dict[str, tuple[list[float], Any]],
    floors: list[FloorResult],
    kept_floors: list[FloorResult],
) -> None:
    """Add the kept runs' ratio to their own floor runs (the only place it is computed), and the
    median over rounds of each round's ratio (floor time / our time in the same round): less
    moved by one lucky run."""
    if "ratio_floor" not in entry:
        return
    ours = runs["ours"][0]
    entry["ratio_floor_median"] = float(
        np.median([f.seconds / t for f, t in zip(floors, ours, strict=True)])
    )
    if "kept_gbps" in entry and kept_floors:
        kept_floor = merge(kept_floors)
        entry["kept_floor_gbps"] = kept_floor.gbps
        entry["kept_ratio_floor"] = entry["kept_gbps"] / kept_floor.gbps
        entry["kept_ratio_floor_median"] = float(
            np.median([f.seconds / t for f, t in zip(kept_floors, runs["kept"][0], strict=True)])
        )


def _summary(entry: dict[str, Any]) -> str:
    """One log line for an analysis."""
    parts = []
    if "error" in entry:
        parts.append(f"WRONG RESULT ({entry['error']})")
    else:
        parts.append(f"{entry['gbps']:.2f} GB/s")
        if "ratio_floor" in entry:
            parts.append(
                f"{entry['ratio_floor']:.2f} of floor {entry['floor_gbps']:.2f} "
                f"(median of rounds {entry['ratio_floor_median']:.2f})"
            )
        else:
            parts.append(f"reads ~{entry['bytes_read_fraction']:.0%} of the bytes: no floor ratio")
    resident = entry.get("file_resident_fraction")
    if resident is not None and resident < 0.99:
        parts.append(f"file {resident:.0%} in the page cache after the runs")
    if "kept_ratio_floor" in entry:
        parts.append(
            f"kept mapped {entry['kept_gbps']:.2f} GB/s ({entry['kept_ratio_floor']:.2f} of floor)"
        )
    for contender, label in (("dask", "dask"), ("libertem", "LiberTEM")):
        if f"{contender}_gbps" in entry:
            parts.append(f"{label} {entry[f'{contender}_gbps']:.2f}")
        elif f"{contender}_error" in entry:
            parts.append(f"{label} WRONG RESULT ({entry[f'{contender}_error']})")
    return ", ".join(parts)


def markdown(report: dict[str, Any], path: str) -> str:
    """The results as the README's table (:mod:`readme_table`), then the GEMM ceilings."""
    lines = [render(report, path), ""]
    for run in report["runs"]:
        for name in ("masks16", "rings16"):
            e = run["analyses"].get(name)
            if e is not None and "ratio_gemm16_ceiling" in e:
                lines.append(
                    f"{run['dtype']} {name}: {e['ratio_gemm16_ceiling']:.2f} of the 16-mask "
                    f"float32 GEMM ceiling ({run['gemm16_ceiling_gbps']:.2f} GB/s, frames "
                    "already float32, one sgemm per core)."
                )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from libertem_gpu.sizes import parse_size

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="2GiB", help="bytes per data file (default 2GiB)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per figure (best of)")
    parser.add_argument(
        "--only",
        default=",".join(ANALYSES),
        help=f"comma-separated analyses among {','.join(ANALYSES)}",
    )
    parser.add_argument(
        "--dtypes", default="uint16,float32", help="data file dtypes (default uint16,float32)"
    )
    parser.add_argument("--no-dask", action="store_true", help="skip the Dask comparison")
    parser.add_argument("--no-libertem", action="store_true", help="skip the LiberTEM comparison")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up timing")
    parser.add_argument("--no-memory", action="store_true", help="skip the demo memory peak")
    parser.add_argument("--memory-size", default="4GiB", help="demo size for the memory peak")
    parser.add_argument("--dir", help="folder for the data files (default: system temp folder)")
    parser.add_argument(
        "--keep-mapped",
        default="0",
        help="also time each analysis with the file kept mapped between runs (setting "
        "keep_mapped_bytes, this many bytes, e.g. 4GiB), alternating with the default",
    )
    parser.add_argument(
        "--cpu-name",
        help="compile every Numba kernel (ours and the floor's) for this CPU instead of the host "
        "(NUMBA_CPU_NAME), e.g. 'haswell' for AVX2 without AVX-512 on an AVX-512 machine; "
        "OpenBLAS and NumPy then lose AVX-512 too (benchlib.target_env)",
    )
    parser.add_argument(
        "--out",
        help="JSON path (default benchmarks/results/<date>-cpu-<hostname>[-<cpu>][-<time>].json)",
    )
    args = parser.parse_args(argv)
    if args.cpu_name and os.environ.get("NUMBA_CPU_NAME") != args.cpu_name:
        # Numba, OpenBLAS and NumPy read their targets when first loaded: run again with
        # them set (the on-disk cache keeps kernels for each target apart).
        env = {**os.environ, **target_env(args.cpu_name)}
        cmd = [sys.executable, os.path.abspath(__file__), *(sys.argv[1:] if argv is None else argv)]
        return subprocess.run(cmd, env=env, check=False).returncode
    analyses = [a for a in args.only.split(",") if a]
    unknown = sorted(set(analyses) - set(ANALYSES))
    if unknown:
        parser.error(f"unknown analyses {unknown}; valid: {', '.join(ANALYSES)}")
    size = parse_size(args.size)
    keep_mapped = 0 if args.keep_mapped.strip() == "0" else parse_size(args.keep_mapped)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    report: dict[str, Any] = {
        "kind": "cpu",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": machine_info(),
        "size_bytes": size,
        "repeat": args.repeat,
        "executor": "threads",
        # "kept" figures: the same runs with the file kept mapped between them.
        "keep_mapped_bytes": keep_mapped,
        "floor_method": (
            "benchmarks/floor.py: the page-cached file mapped once read-only "
            "(MAP_SHARED|MAP_POPULATE) outside the timed runs; the faster of a wrapping uint32 "
            "sum and a fastmath float32 sum of its bytes, Numba prange over rows of 64 KiB, one "
            "thread per core, sleeping between runs (OMP_WAIT_POLICY=PASSIVE: see floor.py); "
            "run alternately with each analysis, best of the runs"
        ),
        "verification": (
            "every contender's result is compared with a float64 NumPy reference computed from "
            "the file before its figure is reported; a mismatch is recorded as '<contender>_"
            f"error' with no figure; tolerances relative to the largest value: {RTOL}"
        ),
        "masks": (
            "masks1/masks16: dense random float32 masks (256 x 256), float32 arithmetic "
            "(mask_dtype=float32, as LiberTEM uses for float32 masks); vbf: one binary disk of "
            "radius 32; rings16: 16 binary concentric rings out to radius 128"
        ),
        "com": com_geometry(),
        "dask": "da.from_array(np.memmap) with 128 MiB chunks, scheduler='threads'",
        "libertem": "Context.make_with('threads'), ApplyMasksUDF(use_sparse=False)",
        "runs": [],
    }
    log(f"machine: {report['machine']['cpu']}, {n_cores()} cores")
    work = tempfile.mkdtemp(prefix="libertem-gpu-bench-", dir=args.dir)
    try:
        for dtype in args.dtypes.split(","):
            report["runs"].append(
                bench_dtype(
                    np.dtype(dtype),
                    size,
                    work,
                    analyses,
                    args.repeat,
                    with_dask=not args.no_dask,
                    with_libertem=not args.no_libertem,
                    log=log,
                    keep_mapped=keep_mapped,
                )
            )
        if not args.no_startup:
            report["startup"] = startup(work, args.repeat)
            log(
                f"start-up: warm {report['startup']['warm_s']:.2f} s, "
                f"cold {report['startup']['cold_s']:.2f} s"
            )
        if not args.no_memory:
            report["demo_memory"] = demo_memory(work, args.memory_size)
            log(f"demo peak RSS: {report['demo_memory']['peak_rss_mib']:.0f} MiB")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report["floor_threads"] = wait_policy()
    out = args.out or result_path("cpu", os.environ.get("NUMBA_CPU_NAME"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    root = os.path.dirname(HERE)
    cited = os.path.relpath(os.path.abspath(out), root)
    print(markdown(report, cited if not cited.startswith("..") else out))
    log(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
