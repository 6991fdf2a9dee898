"""The CPU kernels load from Numba's file cache in a new process. Numba keys a cached kernel by
its closure variables too: a kernel whose key changes from one process to the next (a
dispatcher among the closure's variables hashes differently in every process) would compile
again in every process a user starts. The test's process runs the kernels (compiling them into
the suite's cache, or loading them from it), then a child process sharing that cache runs them
again and must load every one. (A first child with a fresh cache would compile them all once
more: about 9 s of a cold run.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# The kernels built by factories (one closure per byte order, lane type or reduction), on
# small uint16 tiles in both byte orders; StdDevUDF's, each variant called directly (which one
# the engine picks depends on the CPU; the pairs need AVX2).
_RUN_KERNELS = """
import numpy as np
from libertem_gpu.kernels import extrema, moments_cpu, spans, sum_frames, sum_sig
from libertem_gpu.kernels.cpu_target import target_has

tile = np.random.default_rng(0).integers(0, 4096, (5, 12 * 16), dtype=np.uint16)
disk = np.zeros((12, 16), bool)
disk[3:9, 4:12] = True
runs = spans.encode(disk)
for swap in (False, True):
    sum_sig.cpu(tile, np.zeros(5), swap=swap)
    sum_frames.cpu(tile, np.zeros(tile.shape[1]), swap=swap)
    extrema.cpu_max(tile, np.zeros(tile.shape[1], np.uint16), swap=swap)
    spans.com_cpu(tile.reshape(5, 12, 16), runs, 0, *(np.zeros(5) for _ in range(3)), swap=swap)
sums = (tile.shape[1], tile[0].astype(np.float64), np.zeros(tile.shape[1]), np.zeros(tile.shape[1]))
moments_cpu._moments(tile, *sums)
moments_cpu._moments_lanes(tile, *sums, 0.0)
if target_has("avx2"):
    moments_cpu._moments_pairs(tile, *sums, 0.0)
"""

# Then the cache statistics of every dispatcher in the kernel modules.
_CHILD = (
    _RUN_KERNELS
    + """
import json
from tests.kernels.test_cpu_cache import kernel_dispatchers

hits, misses = 0, {}
for name, d in kernel_dispatchers().items():
    hits += sum(d.stats.cache_hits.values())
    missed = sum(d.stats.cache_misses.values())
    if missed:
        misses[f"{name} ({d.py_func.__qualname__})"] = missed
print("STATS " + json.dumps({"hits": hits, "misses": misses}))
"""
)


def kernel_dispatchers() -> dict[str, Any]:
    """Every Numba CPU dispatcher among the kernel modules' attributes and the values of dicts
    of them (e.g. one kernel per byte order), by ``module.attribute[key]``."""
    import importlib
    import pkgutil

    from numba.core.registry import CPUDispatcher

    import libertem_gpu.kernels as kernels

    found: dict[str, Any] = {}
    for info in pkgutil.iter_modules(kernels.__path__):
        module = importlib.import_module(f"libertem_gpu.kernels.{info.name}")
        for attr, value in vars(module).items():
            values = value.items() if isinstance(value, dict) else [(None, value)]
            for key, item in values:
                if isinstance(item, CPUDispatcher):
                    found[f"{info.name}.{attr}" + ("" if key is None else f"[{key!r}]")] = item
    return found


def _child_stats() -> dict:
    env = dict(os.environ)  # the same NUMBA_CACHE_DIR, or none in both
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("STATS "))
    return json.loads(line[len("STATS ") :])


def test_cpu_kernels_load_from_the_file_cache_in_a_new_process():
    exec(_RUN_KERNELS, {})  # in the cache now, whether compiled here or loaded
    child = _child_stats()
    assert child["misses"] == {}, f"compiled again in a new process: {child['misses']}"
    # every kernel came from the cache (a kernel without a file cache counts neither); those
    # called only from inside others are not loaded at all when their callers are
    assert child["hits"] > 0


def test_no_kernel_closure_holds_a_function():
    # The cause of the misses above, checked without compiling: a dispatcher (or a Python
    # function) among a closure's variables pickles differently in each process. Plain values
    # (flags, sizes, dtypes) are what the factories may capture.
    import types

    from numba.core.dispatcher import Dispatcher

    kernels = {k: d for k, d in kernel_dispatchers().items() if d.py_func.__closure__}
    # the factories' kernels were found (38 on 2026-12-04)
    assert len(kernels) >= 30 and "moments_cpu._moments_pairs" in kernels, sorted(kernels)
    holding = {
        name: [type(cell.cell_contents).__name__ for cell in kernel.py_func.__closure__]
        for name, kernel in kernels.items()
        if any(
            isinstance(cell.cell_contents, (Dispatcher, types.FunctionType))
            for cell in kernel.py_func.__closure__
        )
    }
    assert holding == {}, f"closures holding functions: {holding}"
