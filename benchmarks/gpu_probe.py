"""The Python steps of the GPU check (``benchmarks/run_gpu.sh``), each one bounded and safe to run
on a machine without a GPU, where it fails with its reason instead of raising.

Subcommands (``python benchmarks/gpu_probe.py NAME ...``):

- ``versions``: the versions and locations of numpy, CuPy, numba, numba-cuda (one JSON line);
  run before and after the wheel install to prove the install replaced none of them;
- ``same-versions BEFORE AFTER``: compare two such lines; exit 1 naming what changed;
- ``numba-compat``: compile one tiny kernel with ``numba.cuda.compile_ptx`` (no GPU needed);
  exit 3 where it fails on numpy's missing ``row_stack`` (fault 3 of issue 15), 1 otherwise;
- ``probe --out FILE``: versions, machine facts, the device, each GPU kernel against its NumPy
  reference on small random data, pinned host-to-device bandwidth and kvikio's status, written
  to FILE after every check so that a step cut short keeps what it found;
- ``junit FILE``: summarise a pytest JUnit file; exit 1 unless at least one test passed and
  none failed (``pytest -m gpu`` that only skips has verified nothing).

Every failing subcommand prints a last line ``REASON: ...`` that run_gpu.sh records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Distributions whose versions the check records (import names differ for some).
DISTRIBUTIONS = (
    "numpy",
    "cupy-cuda13x",
    "cupy-cuda12x",
    "numba",
    "numba-cuda",
    "llvmlite",
    "kvikio-cu13",
    "libkvikio-cu13",
    "nvidia-cufile",
    "dask",
    "distributed",
    "dask-cuda",
    "h5py",
    "pytest",
    "pytest-benchmark",
    "cuda-bindings",
    "cuda-core",
)
#: The packages the carried wheels must never replace.
PROTECTED = ("numpy", "cupy", "numba", "numba_cuda")
#: Environment variables that change what the check measures.
ENV_KEYS = (
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "CUDA_VISIBLE_DEVICES",
    "KVIKIO_COMPAT_MODE",
    "KVIKIO_NTHREADS",
    "CUPY_TF32",
    "LIBERTEM_GPU_BACKEND",
)
#: CPU instruction-set flags worth a line in the results (the CPU kernels depend on them).
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def reason(msg: str) -> None:
    """Print the one-line failure reason that run_gpu.sh picks up."""
    print("REASON: " + " ".join(str(msg).split())[:400], flush=True)


def versions() -> dict[str, str | None]:
    """Installed versions of :data:`DISTRIBUTIONS` (None where not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def protected_modules() -> dict[str, str | None]:
    """Version and file of each :data:`PROTECTED` package, found without importing it."""
    out: dict[str, str | None] = {}
    for mod in PROTECTED:
        spec = importlib.util.find_spec(mod)
        dist = {"numba_cuda": "numba-cuda", "cupy": None}.get(mod, mod)
        version = None
        try:
            if dist is None:  # CuPy's distribution name carries the CUDA version
                dists = md.packages_distributions().get("cupy", [])
                dist = dists[0] if dists else "cupy"
            version = md.version(dist)
        except md.PackageNotFoundError:
            pass
        out[mod] = None if spec is None else f"{version} {spec.origin}"
    return out


def machine_facts() -> dict[str, Any]:
    """CPU model, instruction-set flags, memory, OS, versions, date: what a figure depends on."""
    facts: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "versions": versions(),
        "env": {k: os.environ.get(k) for k in ENV_KEYS if os.environ.get(k) is not None},
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(
            (ln.split(":", 1)[1].strip() for ln in text.splitlines() if "model name" in ln), None
        )
        flags_line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
        flags = set(flags_line.split(":", 1)[-1].split())
        facts["cpu_model"] = model
        facts["cpu_flags"] = [f for f in CPU_FLAGS if f in flags]
    except OSError as e:
        facts["cpu_model"] = f"unknown ({e})"
    try:
        mem = Path("/proc/meminfo").read_text().splitlines()[0].split()
        facts["mem_total_GiB"] = round(int(mem[1]) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    try:
        facts["git_commit"] = (
            subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        facts["git_commit"] = None
    return facts


def numba_compat() -> int:
    """Compile one tiny kernel for sm_90; 0 where it compiles, 3 where numpy lacks
    ``row_stack`` (numba-cuda 0.30 with numpy >= 2.5), 1 for any other failure."""
    import numpy as np

    print(f"numpy {np.__version__}, has row_stack: {hasattr(np, 'row_stack')}", flush=True)
    print(f"numba-cuda {versions().get('numba-cuda')}", flush=True)
    try:
        from numba import cuda

        def kernel(a: Any) -> None:
            i = cuda.grid(1)
            if i < a.size:
                a[i] += 1

        ptx, _ = cuda.compile_ptx(kernel, "void(float32[::1])", cc=(9, 0))
    except Exception as e:
        traceback.print_exc()
        if "row_stack" in repr(e):
            reason(f"numba-cuda cannot compile with numpy {np.__version__}: {e!r}")
            return 3
        reason(f"compile_ptx failed: {e!r}")
        return 1
    print(f"compile_ptx for sm_90: ok ({len(ptx)} characters of PTX)")
    return 0


# --- probe -------------------------------------------------------------------------------------


def _rel_err(got: Any, want: Any) -> float:
    """‖got - want‖ / ‖want‖ in float64 (NaN never passes)."""
    import numpy as np

    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise AssertionError(f"shape {got.shape}, expected {want.shape}")
    den = float(np.linalg.norm(want)) or 1.0
    err = float(np.linalg.norm(got - want)) / den
    if not np.isfinite(err):
        raise AssertionError("NaN or inf in the result")
    return err


def kernel_checks(cp: Any, rng: Any) -> dict[str, Callable[[], float]]:
    """One check per GPU kernel and dtype: run it on CuPy copies of small random data with odd
    shapes (several blocks and frame chunks), return the relative error against the kernel's
    NumPy reference (the caller compares it with a tolerance)."""
    import numpy as np

    from libertem_gpu.kernels import com, extrema, masks, moments, sum_frames, sum_sig

    n, rows, cols = 37, 19, 23
    npix = rows * cols
    checks: dict[str, Callable[[], float]] = {}
    for dt_name in ("uint16", "float32"):
        if dt_name == "uint16":
            host3 = rng.integers(0, 4096, size=(n, rows, cols)).astype(np.uint16)
        else:
            host3 = (rng.random((n, rows, cols)) * 4096).astype(np.float32)
        host = host3.reshape(n, npix)

        def sum_frames_check(host: Any = host) -> float:
            out = cp.zeros(npix, dtype=cp.float64)
            sum_frames.gpu(cp.asarray(host), out)
            return _rel_err(cp.asnumpy(out), sum_frames.reference(host))

        def sum_sig_check(host: Any = host) -> float:
            out = cp.zeros(n, dtype=cp.float64)
            sum_sig.gpu(cp.asarray(host), out)
            return _rel_err(cp.asnumpy(out), sum_sig.reference(host))

        def moments_check(host: Any = host) -> float:
            shift = cp.asarray(host[0], dtype=cp.float64)
            s1 = cp.zeros(npix, dtype=cp.float64)
            s2 = cp.zeros(npix, dtype=cp.float64)
            moments.gpu(cp.asarray(host), shift, s1, s2)
            _, mean, m2 = moments.finalize(n, cp.asnumpy(shift), cp.asnumpy(s1), cp.asnumpy(s2))
            ref_mean, ref_var = moments.reference(host)
            return max(_rel_err(mean, ref_mean), _rel_err(m2 / n, ref_var))

        def max_check(host: Any = host) -> float:
            out = cp.full(npix, -np.inf if host.dtype.kind == "f" else 0, dtype=host.dtype)
            extrema.gpu_max(cp.asarray(host), out)
            return _rel_err(cp.asnumpy(out), extrema.reference_max(host))

        def masks_dense_check(host: Any = host, k: int = 1) -> float:
            m = rng.standard_normal((k, npix))
            out = cp.zeros((n, k), dtype=cp.float64)
            masks.gpu_dense(cp.asarray(host), cp.asarray(np.ascontiguousarray(m.T)), out)
            return _rel_err(cp.asnumpy(out), masks.reference(host, m))

        def masks_sparse_check(host: Any = host, k: int = 3) -> float:
            dense = rng.standard_normal((k, npix)) * (rng.random((k, npix)) > 0.5)
            indptr = np.concatenate([[0], np.cumsum((dense != 0).sum(axis=1))]).astype(np.int64)
            indices = np.concatenate([np.flatnonzero(r) for r in dense]).astype(np.int32)
            data = dense[dense != 0]
            out = cp.zeros((n, k), dtype=cp.float64)
            masks.gpu_sparse(cp.asarray(host), indptr, indices, data, out)
            return _rel_err(cp.asnumpy(out), masks.reference_sparse(host, indptr, indices, data))

        def com_check(host3: Any = host3) -> float:
            w = com.disk_weights((rows, cols), rows / 2, cols / 2, 7.0)
            tot = cp.zeros(n, dtype=cp.float64)
            y = cp.zeros(n, dtype=cp.float64)
            x = cp.zeros(n, dtype=cp.float64)
            com.gpu(cp.asarray(host3), cp.asarray(w), 0, tot, y, x)
            ref = com.reference(host3, w)
            got = (cp.asnumpy(tot), cp.asnumpy(y), cp.asnumpy(x))
            return max(_rel_err(a, b) for a, b in zip(got, ref, strict=True))

        checks[f"sum_frames[{dt_name}]"] = sum_frames_check
        checks[f"sum_sig[{dt_name}]"] = sum_sig_check
        checks[f"moments[{dt_name}]"] = moments_check
        checks[f"max[{dt_name}]"] = max_check
        checks[f"masks_dense_k1[{dt_name}]"] = masks_dense_check
        checks[f"masks_dense_k16[{dt_name}]"] = lambda host=host: masks_dense_check(host, 16)
        checks[f"masks_sparse_k3[{dt_name}]"] = masks_sparse_check
        checks[f"masks_sparse_k12[{dt_name}]"] = lambda host=host: masks_sparse_check(host, 12)
        checks[f"com[{dt_name}]"] = com_check
    return checks


def pinned_h2d_GBps(cp: Any, nbytes: int = 256 * 2**20, repeat: int = 5) -> float:
    """Median pinned host-to-device bandwidth (GB/s), timed with CUDA events (``nbytes`` a
    multiple of 1 MiB)."""
    import numpy as np

    mem = cp.cuda.alloc_pinned_memory(nbytes)
    host = np.frombuffer(mem, dtype=np.uint8, count=nbytes)
    block = np.random.default_rng(0).integers(1, 255, size=2**20, dtype=np.uint8)
    host.reshape(-1, 2**20)[:] = block  # never zeros; a random MiB repeated (fast to fill)
    dev = cp.empty(nbytes, dtype=cp.uint8)
    stream = cp.cuda.Stream(non_blocking=True)
    times = []
    for i in range(repeat + 1):
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record(stream)
        dev.set(host, stream=stream)
        stop.record(stream)
        stop.synchronize()
        if i:  # the first copy warms up
            times.append(cp.cuda.get_elapsed_time(start, stop) / 1e3)
    if not bool((dev[:4096].get() == host[:4096]).all()):
        raise AssertionError("the copied bytes differ from the source")
    return nbytes / sorted(times)[len(times) // 2] / 1e9


def kvikio_report(tmpdir: Path) -> dict[str, Any]:
    """What kvikio says here: import, version, compat mode (documented queries first), the
    library's own :func:`kvikio_status`, and one real 1 MiB read into device memory."""
    rep: dict[str, Any] = {}
    try:
        kvikio = importlib.import_module("kvikio")
        rep["import"] = "ok"
        rep["version"] = getattr(kvikio, "__version__", None)
    except Exception as e:  # RuntimeError where libcufile is missing, not only ImportError
        rep["import"] = f"failed: {e!r}"
        kvikio = None
    if kvikio is not None:
        try:
            # kvikio.defaults is a submodule that `import kvikio` does not import (26.10).
            rep["kvikio.defaults after import kvikio"] = hasattr(kvikio, "defaults")
            defaults = importlib.import_module("kvikio.defaults")
            for key in ("compat_mode", "num_threads", "task_size"):
                try:
                    rep[f"defaults.get({key!r})"] = repr(defaults.get(key))
                except Exception as e:
                    rep[f"defaults.get({key!r})"] = f"failed: {e!r}"
            try:
                rep["defaults.is_compat_mode_preferred()"] = defaults.is_compat_mode_preferred()
            except Exception as e:
                rep["defaults.is_compat_mode_preferred()"] = f"failed: {e!r}"
        except Exception as e:
            rep["defaults"] = f"failed: {e!r}"
        try:
            import cupy as cp
            import numpy as np

            path = tmpdir / "kvikio-probe.bin"
            data = np.random.default_rng(5).integers(0, 255, size=2**20, dtype=np.uint8)
            data.tofile(path)
            buf = cp.empty(2**20, dtype=cp.uint8)
            with kvikio.CuFile(str(path), "r") as f:
                got = f.read(buf)
            ok = int(got) == 2**20 and bool((buf.get() == data).all())
            rep["read_1MiB"] = "ok" if ok else f"wrong: {got} bytes or different contents"
        except Exception as e:
            rep["read_1MiB"] = f"failed: {e!r}"
    try:
        from libertem_gpu.io.transports.kvikio import kvikio_status

        ok, why, compat = kvikio_status()
        rep["libertem_gpu.kvikio_status"] = {"ok": ok, "reason": why, "compat": compat}
    except Exception as e:
        rep["libertem_gpu.kvikio_status"] = f"failed: {e!r}"
    return rep


def probe(out: Path) -> int:
    """Run every probe check, writing ``out`` after each; 0 where all passed."""
    import tempfile

    report: dict[str, Any] = {"machine": machine_facts(), "modules": protected_modules()}
    failures: list[str] = []
    write_json(out, report)

    def record(key: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        try:
            value = fn()
            report[key] = value
            return value
        except Exception as e:
            report[key] = f"failed: {e!r}"
            failures.append(f"{key}: {e!r}")
            traceback.print_exc()
            return None
        finally:
            print(f"{key}: {report[key]!r:.300} ({time.perf_counter() - t0:.1f} s)", flush=True)
            write_json(out, report)

    def device() -> dict[str, Any]:
        from libertem_gpu.backends import device as dev

        info = dev.probe()
        if not info.available:
            raise RuntimeError(f"no usable GPU: {info.reason}")
        return {
            "name": info.devices[0].name,
            "compute_capability": info.devices[0].compute_capability,
            "total_GiB": round(info.devices[0].total_bytes / 2**30, 1),
            "count": len(info.devices),
            "cupy": info.cupy_version,
        }

    dev_info = record("device", device)
    if dev_info is not None:
        import cupy as cp
        import numpy as np

        record(
            "cuda",
            lambda: {
                "runtime": cp.cuda.runtime.runtimeGetVersion(),
                "driver": cp.cuda.runtime.driverGetVersion(),
            },
        )
        kernels: dict[str, Any] = {}
        report["kernels"] = kernels
        for name, check in kernel_checks(cp, np.random.default_rng(11)).items():
            t0 = time.perf_counter()
            try:
                err = check()
                tol = 1e-5 if "k16" in name else 1e-9
                kernels[name] = f"ok (rel. error {err:.1e})" if err <= tol else f"WRONG: {err:.2e}"
                if err > tol:
                    failures.append(f"kernel {name}: relative error {err:.2e} > {tol}")
            except Exception as e:
                kernels[name] = f"failed: {e!r}"
                failures.append(f"kernel {name}: {e!r}")
            print(f"kernel {name}: {kernels[name]} ({time.perf_counter() - t0:.1f} s)", flush=True)
            write_json(out, report)
        record("h2d_pinned_GBps", lambda: round(pinned_h2d_GBps(cp), 2))
    with tempfile.TemporaryDirectory() as tmp:
        record("kvikio", lambda: kvikio_report(Path(tmp)))
    kv = report.get("kvikio")
    if isinstance(kv, dict) and kv.get("read_1MiB") != "ok":
        failures.append(f"kvikio: import {kv.get('import')}, read {kv.get('read_1MiB')}")
    report["failures"] = failures
    write_json(out, report)
    if failures:
        reason(f"{len(failures)} probe check(s) failed; first: {failures[0]}")
        return 1
    return 0


# --- junit -------------------------------------------------------------------------------------


def junit_summary(path: Path) -> int:
    """Summarise a pytest JUnit XML file; 0 only where tests passed and none failed."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        reason(f"no JUnit results ({e})")
        return 1
    cases = list(root.iter("testcase"))
    failed = [c for c in cases if c.find("failure") is not None or c.find("error") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    passed = len(cases) - len(failed) - len(skipped)
    print(f"{passed} passed, {len(failed)} failed, {len(skipped)} skipped")
    for c in failed[:20]:
        node = c.find("failure") if c.find("failure") is not None else c.find("error")
        msg = node.get("message", "") if node is not None else ""
        print(f"FAILED {c.get('classname')}::{c.get('name')}: {msg[:200]}")
    if failed:
        reason(f"{len(failed)} of {len(cases)} GPU tests failed")
        return 1
    if passed == 0:
        why = ""
        if skipped:
            node = skipped[0].find("skipped")
            if node is not None:
                why = node.get("message", "")
                if why in ("", "collection skipped"):  # the reason is in the element's text
                    why = (node.text or why).split("Skipped: ")[-1].rstrip("')\"")
        reason(f"no GPU test ran ({len(skipped)} skipped: {why or 'none collected'})")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("versions")
    same = sub.add_parser("same-versions")
    same.add_argument("before")
    same.add_argument("after")
    sub.add_parser("numba-compat")
    p = sub.add_parser("probe")
    p.add_argument("--out", type=Path, required=True)
    j = sub.add_parser("junit")
    j.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    if args.cmd == "versions":
        print(json.dumps(protected_modules()))
        return 0
    if args.cmd == "same-versions":
        before, after = json.loads(args.before), json.loads(args.after)
        changed = {
            k: (before.get(k), after.get(k)) for k in PROTECTED if before.get(k) != after.get(k)
        }
        if changed:
            reason(f"the wheel install replaced protected packages: {changed}")
            return 1
        print("numpy, CuPy, numba and numba-cuda unchanged:", json.dumps(after))
        return 0
    if args.cmd == "numba-compat":
        return numba_compat()
    if args.cmd == "probe":
        return probe(args.out)
    return junit_summary(args.file)


if __name__ == "__main__":
    sys.exit(main())
