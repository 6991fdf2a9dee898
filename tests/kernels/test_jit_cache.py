"""Numba-CUDA kernels are cached on disk, so that each process (every step of the GPU check)
does not compile every kernel again. Checked in a child process (``numba.cuda`` must not be
imported into the test run, where the simulator tests set it up their own way); making the
dispatcher needs no GPU."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

if importlib.util.find_spec("numba_cuda") is None:
    pytest.skip(
        "numba-cuda is not installed (pip install numba-cuda[cu13])", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parents[2]


def test_kernels_use_numbas_file_cache():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    code = (
        "from libertem_gpu.kernels import gpu_common, masks_gpu\n"
        "for f in (masks_gpu._cuda_rowdot, masks_gpu._cuda_sparse_rowdot):\n"
        "    print(type(gpu_common.jitted(f)._cache).__name__)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["CUDACache", "CUDACache"]
