"""New-process costs for the CPU comparison (:mod:`run_cpu`): seconds to the first result with a
cold and a warm Numba cache, and the demo's peak resident memory.

Not a test; imported by ``benchmarks/run_cpu.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

_STARTUP_CHILD = """
import time, sys
from libertem_gpu import Context, SumUDF
ctx = Context("threads")
ds = ctx.load("raw", path=sys.argv[1], nav_shape=(16, 16), sig_shape=(64, 64), dtype="uint16")
res = ctx.run_udf(dataset=ds, udf=SumUDF())
res["intensity"].data.sum()
print(time.time(), flush=True)
ctx.close()
"""


def startup(work: str, repeat: int) -> dict[str, Any]:
    """Seconds from spawning a Python process to its first SumUDF result (cold and warm
    Numba cache)."""
    path = os.path.join(work, "startup.raw")
    rng = np.random.default_rng(3)
    rng.integers(0, 4096, size=(256, 64, 64), dtype=np.uint16).tofile(path)

    def once(cache_dir: str) -> float:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
        t0 = time.time()
        out = subprocess.run(
            [sys.executable, "-c", _STARTUP_CHILD, path],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        return float(out.stdout.strip().splitlines()[-1]) - t0

    colds = []
    warms = []
    for _ in range(max(1, repeat)):
        cache = tempfile.mkdtemp(prefix="numba-cache-", dir=work)
        colds.append(once(cache))
        warms.append(once(cache))
        shutil.rmtree(cache, ignore_errors=True)
    return {
        "cold_s": min(colds),
        "warm_s": min(warms),
        "cold_all_s": colds,
        "warm_all_s": warms,
        "file": "16 x 16 scan of 64 x 64 uint16 frames",
    }


_MEMORY_CHILD = """
import sys
from libertem_gpu.cli import main
rc = main(sys.argv[1:])
with open("/proc/self/status") as f:
    peak = [line.split()[1] for line in f if line.startswith("VmHWM:")][0]
print("VmHWM_KiB", peak, flush=True)
sys.exit(rc)
"""


def demo_memory(work: str, size: str) -> dict[str, Any]:
    """Peak resident memory of ``libertem-gpu demo --size SIZE`` in a new process.

    Read as ``VmHWM`` from ``/proc/self/status`` by the process itself when the demo is done:
    ``ru_maxrss`` of a child would also count the forked image of this (large) parent process,
    which Linux keeps in the child's high-water mark across ``exec``.
    """
    out_dir = os.path.join(work, "demo-out")
    argv = ["demo", "--size", size, "--out", out_dir, "--tmp-dir", work]
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, *argv],
        capture_output=True,
        text=True,
        timeout=3600,
    )
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"libertem-gpu {' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}")
    lines = proc.stdout.strip().splitlines()
    peak = int(lines[-1].split()[1]) * 1024
    return {
        "size": size,
        "peak_rss_bytes": peak,
        "peak_rss_mib": peak / 2**20,
        "seconds": seconds,
        "method": "VmHWM of the demo process (libertem_gpu.cli.main in a fresh interpreter)",
        "output": lines[:-1],
    }
