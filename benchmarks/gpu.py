"""GPU throughput against its ceilings, in one run (not a test).

Measures on the current CUDA device:

- ceilings: pinned host-to-device copy GB/s (CuPy) and device-to-device copy GB/s (bytes read
  plus bytes written per second);
- per analysis, data set bytes per second for (a) ``resident``: a CuPy memory data set, (b)
  ``pinned``: a raw uint16 file in the page cache through the pinned pipeline, (c) ``kvikio``
  (where kvikio imports), and the same analyses on the CPU (``cpu-threads``).

Writes ``benchmarks/results/<date>-<device>.json`` (or ``--out DIR``) with the schema of issue 4
plus the settings used. Run: ``python benchmarks/gpu.py [--gib 4] [--repeat 3] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import libertem_gpu as lg
from libertem_gpu import config

SIG = (256, 256)


def _udfs() -> dict[str, Any]:
    rows, cols = SIG
    yy, xx = np.mgrid[:rows, :cols]
    disk = (((yy - rows / 2) ** 2 + (xx - cols / 2) ** 2) <= 40**2).astype(np.float32)
    rng = np.random.default_rng(1)
    stack = rng.random((16, rows, cols)).astype(np.float32)
    return {
        "sum": lambda: lg.SumUDF(),
        "sumsig": lambda: lg.SumSigUDF(),
        "std": lambda: lg.StdDevUDF(),
        "max": lambda: lg.MaxUDF(),
        "masks1": lambda: lg.ApplyMasksUDF(mask_factories=[lambda: disk]),
        "masks16": lambda: lg.ApplyMasksUDF(
            mask_factories=lambda: stack, mask_count=16, mask_dtype=np.float32
        ),
        "com": lambda: lg.CoMUDF.with_params(r=40.0),
    }


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ceilings(cp: Any, nbytes: int, repeat: int) -> dict[str, float]:
    """Pinned H2D GB/s and D2D copy GB/s (read plus write) on the current device."""
    mem = cp.cuda.alloc_pinned_memory(nbytes)
    host = np.frombuffer(mem, dtype=np.uint8, count=nbytes)
    host[:] = 1
    dev = cp.empty(nbytes, dtype=cp.uint8)
    dev2 = cp.empty(nbytes, dtype=cp.uint8)
    stream = cp.cuda.Stream(non_blocking=True)

    def h2d():
        dev.set(host, stream=stream)
        stream.synchronize()

    def d2d():
        dev2[...] = dev
        cp.cuda.get_current_stream().synchronize()

    h2d()
    d2d()
    t_h2d = _best(h2d, repeat)
    t_d2d = _best(d2d, repeat)
    return {"h2d_pinned_GBps": nbytes / t_h2d / 1e9, "d2d_copy_GBps": 2 * nbytes / t_d2d / 1e9}


def _run(ctx: Any, ds: Any, udf_factory: Any, backend: str, repeat: int) -> float:
    ctx.run_udf(dataset=ds, udf=udf_factory(), backends=backend)  # warm-up: compile, pools
    return _best(lambda: ctx.run_udf(dataset=ds, udf=udf_factory(), backends=backend), repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--gib", type=float, default=4.0, help="data set size in GiB")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).with_name("results")))
    parser.add_argument("--kvikio-threads", type=int, default=8)
    parser.add_argument("--kvikio-task-mib", type=int, default=4)
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()

    import cupy as cp

    from libertem_gpu.backends import device

    info = device.probe()
    if not info.available:
        sys.exit(f"no usable GPU: {info.reason}")
    name = info.devices[0].name
    frame_bytes = SIG[0] * SIG[1] * 2
    n_frames = int(args.gib * 2**30) // frame_bytes
    side = int(np.sqrt(n_frames))
    nav = (side, n_frames // side)
    n_frames = nav[0] * nav[1]
    nbytes = n_frames * frame_bytes
    print(f"device: {name}; data set {nav} x {SIG} uint16 = {nbytes / 2**30:.2f} GiB", flush=True)

    result: dict[str, Any] = {
        "device": name,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "ceilings": ceilings(cp, min(nbytes, 2**30), args.repeat),
        "results": [],
        "settings": {
            "nav_shape": nav,
            "sig_shape": SIG,
            "dataset_bytes": nbytes,
            "tile_bytes_gpu": config.get("tile_bytes_gpu"),
            "repeat": args.repeat,
            "host": platform.node(),
            "cpu_count": os.cpu_count(),
            "cupy": cp.__version__,
        },
    }
    print("ceilings:", result["ceilings"], flush=True)

    rng = np.random.default_rng(0)
    chunk = 256
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = Path(tmp) / "bench.raw"
        with open(path, "wb") as f:  # written in chunks: the data set may exceed host memory
            for start in range(0, n_frames, chunk):
                n = min(chunk, n_frames - start)
                rng.integers(0, 4096, size=(n, *SIG), dtype=np.uint16).tofile(f)
        with open(path, "rb") as f:  # into the page cache
            while f.read(64 * 2**20):
                pass
        mapped = np.memmap(path, dtype=np.uint16, mode="r", shape=(n_frames, *SIG))
        data_gpu = cp.empty((n_frames, *SIG), dtype=cp.uint16)
        for start in range(0, n_frames, chunk):  # uploaded in chunks, never whole on the host
            data_gpu[start : start + chunk] = cp.asarray(mapped[start : start + chunk])
        data_gpu = data_gpu.reshape(*nav, *SIG)
        del mapped

        modes: list[tuple[str, str, dict[str, Any]]] = [
            ("resident", "cupy", {}),
            ("pinned", "cupy", {"io_backend": "pread"}),
        ]
        try:
            from libertem_gpu.io.transports.kvikio import configure_kvikio

            result["settings"]["kvikio"] = configure_kvikio(
                args.kvikio_threads, args.kvikio_task_mib * 2**20
            )
            modes.append(("kvikio", "cupy", {"io_backend": "kvikio"}))
        except Exception as e:
            result["settings"]["kvikio"] = f"unavailable: {e!r}"
        if not args.skip_cpu:
            modes.append(("cpu-threads", "numpy", {}))

        with lg.Context("threads") as ctx:
            raw = ctx.load("raw", path=str(path), nav_shape=nav, sig_shape=SIG, dtype="uint16")
            resident = ctx.load("memory", data=data_gpu)
            for mode, backend, settings in modes:
                ds = resident if mode == "resident" else raw
                with config.set(**settings):
                    for analysis, factory in _udfs().items():
                        try:
                            t = _run(ctx, ds, factory, backend, args.repeat)
                            entry = {
                                "analysis": analysis,
                                "mode": mode,
                                "dtype": "uint16",
                                "GBps": nbytes / t / 1e9,
                                "seconds": t,
                            }
                        except Exception as e:
                            entry = {
                                "analysis": analysis,
                                "mode": mode,
                                "dtype": "uint16",
                                "GBps": None,
                                "error": repr(e)[:500],
                            }
                        print(entry, flush=True)
                        result["results"].append(entry)
        del data_gpu

    ceil = result["ceilings"]
    for e in result["results"]:
        if e.get("GBps"):
            if e["mode"] == "resident":
                e["ratio_to_d2d"] = e["GBps"] / ceil["d2d_copy_GBps"]
            elif e["mode"] in ("pinned", "kvikio"):
                e["ratio_to_h2d"] = e["GBps"] / ceil["h2d_pinned_GBps"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    target = out / f"{dt.date.today().isoformat()}-{slug}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
