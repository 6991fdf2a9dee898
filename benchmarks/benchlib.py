"""What the CPU benchmark scripts share besides the floor (:mod:`floor`): the machine's
description (CPU model and instruction set), alternating timing, and the check of a result
against a NumPy reference that comes before any figure is reported.

Not a library module: the scripts import it from ``benchmarks/`` (``python benchmarks/x.py``
puts that folder on ``sys.path``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: /proc/cpuinfo flags worth recording: the vector and matrix units the kernels may use.
ISA_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


#: Vector units of the CPU names one may compile for (``NUMBA_CPU_NAME``), as far as the
#: flags above go: what the kernels may use when compiled for that CPU instead of the host.
TARGET_ISA = {
    "haswell": ("avx2", "fma"),
    "broadwell": ("avx2", "fma"),
    "skylake": ("avx2", "fma"),
    "znver2": ("avx2", "fma"),
    "znver3": ("avx2", "fma"),
    "skylake-avx512": ("avx2", "fma", "avx512f", "avx512bw", "avx512vl"),
    "icelake-server": ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni"),
    "znver4": ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16"),
}


def target_env(cpu_name: str) -> dict[str, str]:
    """Environment variables that make a new process compute as on ``cpu_name`` (LLVM's name).

    Numba compiles for ``cpu_name``, with its features left to the name (Numba takes the
    host's features whatever the CPU name unless ``NUMBA_CPU_FEATURES`` is set). Where that CPU
    has no AVX-512 (:data:`TARGET_ISA`), the other contenders lose it too: OpenBLAS takes its
    Haswell kernels (``OPENBLAS_CORETYPE``: LiberTEM's and Dask's matrix products, the sgemm
    ceiling, and our own BLAS calls) and NumPy its AVX2 loops (``NPY_DISABLE_CPU_FEATURES``,
    the AVX-512 targets this NumPy dispatches to). Without them an AVX2 run of ours met
    LiberTEM on AVX-512 BLAS: 16 float32 masks read 0.9-1.0x LiberTEM where the same kernel
    read 1.16x an AVX2 sgemm (kernel alone, two threads, 2026-12-05).
    """
    env = {
        "NUMBA_CPU_NAME": cpu_name,
        "NUMBA_CPU_FEATURES": os.environ.get("NUMBA_CPU_FEATURES", ""),
    }
    isa = TARGET_ISA.get(cpu_name)
    if isa is not None and "avx512f" not in isa:
        env["OPENBLAS_CORETYPE"] = "Haswell"
        try:  # NumPy 2; NumPy 1 keeps it in numpy.core
            from numpy._core._multiarray_umath import __cpu_dispatch__
        except ImportError:
            from numpy.core._multiarray_umath import __cpu_dispatch__
        wide = [t for t in __cpu_dispatch__ if "AVX512" in t or t == "X86_V4"]
        if wide:
            env["NPY_DISABLE_CPU_FEATURES"] = " ".join(wide)
    return env


def compile_target() -> dict[str, Any]:
    """What Numba compiles for in this process: ``NUMBA_CPU_NAME`` (``"host"`` unless set) and
    the instruction set the kernels may use there, never more than the host has.

    Numba takes the host's features whatever the CPU name unless ``NUMBA_CPU_FEATURES`` is set
    (an empty value leaves them to the name, as ``run_cpu.py --cpu-name`` sets it): only then
    does the name, through :data:`TARGET_ISA`, or the explicit list narrow them."""
    name = os.environ.get("NUMBA_CPU_NAME") or "host"
    features = os.environ.get("NUMBA_CPU_FEATURES")
    host = cpu_info()["isa"]
    if features is None or (name == "host" and not features):
        isa = host
    elif features:
        named = {f[1:].replace("_", "") for f in features.split(",") if f.startswith("+")}
        isa = [f for f in host if f.replace("_", "") in named]
    else:
        known = TARGET_ISA.get(name)
        isa = [f for f in host if known is None or f in known]
    return {
        "numba_cpu_name": name,
        "numba_cpu_features": features,
        "isa_compiled": isa,
        # what target_env narrowed besides Numba's code (None: the host's)
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "numpy_disabled_features": os.environ.get("NPY_DISABLE_CPU_FEATURES"),
    }


class VerificationError(AssertionError):
    """A benchmarked result differs from the NumPy reference: the figure is not reported."""


def cpu_info() -> dict[str, Any]:
    """CPU model and which of :data:`ISA_FLAGS` it has (from ``/proc/cpuinfo`` where present)."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    isa = [flag for flag in ISA_FLAGS if flag in flags]
    return {"cpu": model, "isa": isa}


def n_cores() -> int:
    """Cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_info(extra_modules: tuple[str, ...] = ()) -> dict[str, Any]:
    """Host, CPU model and instruction set, cores, memory and the versions that matter."""
    mem = None
    if hasattr(os, "sysconf"):
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            pass
    versions: dict[str, str | None] = {}
    for name in ("numpy", "numba", "dask", "libertem", "libertem_gpu", *extra_modules):
        try:
            module = __import__(name)
            versions[name] = getattr(module, "__version__", "?")
        except Exception:  # optional: any import failure means "absent"
            versions[name] = None
    return {
        "hostname": socket.gethostname(),
        **cpu_info(),
        **compile_target(),
        "cores_logical": os.cpu_count(),
        "cores_usable": n_cores(),
        "memory_bytes": mem,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "proactive_reclaim": proactive_reclaim(),
    }


def proactive_reclaim() -> list[str]:
    """The actions of the kernel's running DAMON schemes (``/sys/kernel/mm/damon``), e.g.
    ``["pageout"]``: where one pages out cold memory, page-cached benchmark files are evicted
    between runs and "page-cached" figures partly read from disk (see :func:`resident_fraction`).
    Empty where none runs or the kernel has no DAMON."""
    root = "/sys/kernel/mm/damon/admin/kdamonds"
    actions: list[str] = []
    try:
        for kd in sorted(os.listdir(root)):
            base = os.path.join(root, kd)
            if not os.path.isdir(base):
                continue
            with open(os.path.join(base, "state")) as f:
                if f.read().strip() != "on":
                    continue
            contexts = os.path.join(base, "contexts")
            for ctx in sorted(os.listdir(contexts)):
                schemes = os.path.join(contexts, ctx, "schemes")
                if not os.path.isdir(schemes):
                    continue
                for sc in sorted(os.listdir(schemes)):
                    try:
                        with open(os.path.join(schemes, sc, "action")) as f:
                            actions.append(f.read().strip())
                    except OSError:
                        pass
    except OSError:
        pass
    return actions


def resident_fraction(path: str) -> float | None:
    """Fraction of ``path``'s pages in the page cache now (``mincore`` of a fresh mapping),
    or None where it cannot be told (no ``mincore``, an empty file)."""
    import ctypes
    import mmap

    size = os.path.getsize(path)
    if size == 0 or not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        mincore = libc.mincore
    except (OSError, AttributeError):
        return None
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    mincore.restype = ctypes.c_int
    page = mmap.PAGESIZE
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as m:
        view = np.frombuffer(m, dtype=np.uint8)
        vec = np.zeros(-(-size // page), dtype=np.uint8)
        rc = mincore(view.ctypes.data, size, vec.ctypes.data)
        resident = None if rc != 0 else float(np.count_nonzero(vec & 1)) / len(vec)
        del view
    return resident


def alternate(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[list[float], Any]]:
    """Warm up each of ``fns`` once (untimed), then time them in turn, ``repeat`` rounds, so
    that every contender sees the same drift of a shared machine.

    Returns, per name, all times in seconds and the value of the last call (to verify).
    """
    last = {name: fn() for name, fn in fns.items()}
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(max(1, repeat)):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: (times[name], last[name]) for name in fns}


def parse_only(parser: argparse.ArgumentParser, only: str, valid: Sequence[str]) -> list[str]:
    """The analyses named in a comma-separated ``--only``, in order; an unknown name ends the
    script through ``parser.error`` with the valid ones."""
    names = [name for name in only.split(",") if name]
    unknown = sorted(set(names) - set(valid))
    if unknown:
        parser.error(f"unknown analyses {unknown}; valid: {', '.join(valid)}")
    return names


def check_close(what: str, got: Any, want: np.ndarray, rtol: float) -> None:
    """Raise :class:`VerificationError` unless ``got`` matches ``want`` (same shape, and every
    element within ``rtol`` of the largest magnitude in ``want``, NaN where ``want`` is NaN).
    """
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise VerificationError(f"{what}: shape {got.shape}, reference {want.shape}")
    nan = np.isnan(want)
    if not np.array_equal(np.isnan(got), nan):
        raise VerificationError(f"{what}: NaN where the reference has none, or the reverse")
    if nan.all():
        return
    scale = float(np.max(np.abs(want[~nan]))) or 1.0
    err = float(np.max(np.abs(got[~nan] - want[~nan]), initial=0.0))
    if not err <= rtol * scale:  # also catches NaN in err
        raise VerificationError(
            f"{what}: max abs error {err:.3g} > {rtol:g} x {scale:.3g} (largest reference value)"
        )


def frame_sum(frames: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Float64 sum over the first axis of ``frames`` (any dtype and byte order, e.g. a view of
    a mapped file), ``chunk`` frames at a time: the reference for SumUDF."""
    total = np.zeros(frames.shape[1:])
    for start in range(0, frames.shape[0], chunk):
        total += frames[start : start + chunk].sum(axis=0, dtype=np.float64)
    return total


def result_path(kind: str, target: str | None = None) -> str:
    """``benchmarks/results/<date>-<kind>-<hostname>[-<target>].json`` (``target``: a Numba
    CPU name other than the host); a later run on the same day adds the time of day instead
    of overwriting an earlier (possibly committed) result."""
    suffix = f"-{target}" if target and target != "host" else ""
    stem = os.path.join(
        os.path.dirname(os.path.abspath(__file__)),
        "results",
        f"{datetime.date.today().isoformat()}-{kind}-{socket.gethostname()}{suffix}",
    )
    if not os.path.exists(stem + ".json"):
        return stem + ".json"
    return f"{stem}-{datetime.datetime.now().strftime('%H%M%S')}.json"
