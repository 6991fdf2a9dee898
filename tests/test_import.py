"""``import libertem_gpu`` is light: no Numba, CUDA, dask, h5py or matplotlib, nothing compiled."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

HEAVY = (
    "numba",
    "llvmlite",
    "cupy",
    "numba_cuda",
    "kvikio",
    "dask",
    "distributed",
    "h5py",
    "matplotlib",
)

_CHILD = """
import json, sys
{statement}
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy)))
"""


def _loaded_after(statement: str, tmp_path) -> tuple[list[str], list[str]]:
    """Heavy modules loaded, and Numba cache files written, by ``statement`` in a new process."""
    cache = tmp_path / "numba-cache"
    cache.mkdir(exist_ok=True)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    code = _CHILD.format(statement=statement, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    compiled = sorted(p.name for p in cache.rglob("*") if p.suffix in (".nbi", ".nbc"))
    return json.loads(proc.stdout), compiled


@pytest.mark.parametrize(
    "statement",
    [
        "import libertem_gpu",
        "from libertem_gpu import Context, UDF, SumUDF, CoMUDF, ApplyMasksUDF, masks",
        "from libertem_gpu import RadialFourierUDF",
        "from libertem_gpu import LogsumUDF, FEMUDF, FEMProfileUDF, CrystallinityUDF",
        "from libertem_gpu.udf import LogsumUDF, FEMUDF, FEMProfileUDF, CrystallinityUDF",
        "from libertem_gpu import RadialProfileUDF",
        "import libertem_gpu.cli",
        "import libertem_gpu.viz, libertem_gpu.viz.driver, libertem_gpu.progress",
    ],
)
def test_import_is_light(statement, tmp_path):
    assert _loaded_after(statement, tmp_path) == ([], [])


def test_the_probe_sees_imports_and_compilation(tmp_path):
    """The probe itself works: running a kernel imports Numba and writes its cache."""
    statement = (
        "import numpy as np; from libertem_gpu.kernels import sum_frames; "
        "sum_frames.cpu(np.ones((2, 3), np.uint16), np.zeros(3))"
    )
    modules, compiled = _loaded_after(statement, tmp_path)
    assert "numba" in modules
    assert compiled
