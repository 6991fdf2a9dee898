"""Sparse masks on the GPU are prepared once per partition: no host synchronisation and no new
cuSPARSE matrix per tile (issue 15, fault 6).

Runs the GPU ``prepare`` of ``apply_masks`` and its per-tile calls in a child process under the
CUDA simulator, with NumPy and SciPy standing in for CuPy and cupyx (as ``kit_sim`` does) and
counting what would cost a GPU run: ``min``/``max`` of a device array (each a host sync when
read by ``int``) and ``csr_matrix`` constructions.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from tests import background

if importlib.util.find_spec("numba_cuda") is None:
    pytest.skip(
        "numba-cuda is not installed (pip install numba-cuda[cu13])", allow_module_level=True
    )

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys, types
import numpy as np
import scipy.sparse

counts = {"sync": 0, "csr": 0}


class Dev(np.ndarray):
    # A "device" array whose min/max would be read back by the host.
    def min(self, *a, **k):
        counts["sync"] += 1
        return np.asarray(self).min(*a, **k)

    def max(self, *a, **k):
        counts["sync"] += 1
        return np.asarray(self).max(*a, **k)


class CSR(scipy.sparse.csr_matrix):
    def __init__(self, *a, **k):
        counts["csr"] += 1
        super().__init__(*a, **k)


cupy = types.ModuleType("cupy")
cupy.__getattr__ = lambda name: getattr(np, name)
cupy.asarray = lambda a, dtype=None: np.asarray(a, dtype).view(Dev)
sparse = types.ModuleType("cupyx.scipy.sparse")
sparse.csr_matrix = CSR
cupyx = types.ModuleType("cupyx")
cupyx_scipy = types.ModuleType("cupyx.scipy")
cupyx_scipy.sparse = sparse
cupyx.scipy = cupyx_scipy
sys.modules.update({"cupy": cupy, "cupyx": cupyx, "cupyx.scipy": cupyx_scipy,
                    "cupyx.scipy.sparse": sparse})

from libertem_gpu.kernels import masks

rng = np.random.default_rng(5)
sig = (6, 7)
npix = 42
report = {}
for k in (3, 12):  # the Numba-CUDA kernel, and cuSPARSE SpMM
    m = scipy.sparse.random(k, npix, density=0.3, format="csr", random_state=k)
    m.sort_indices()
    stack = masks.MaskStack(k, False, np.dtype(np.float64), None,
                            (m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data))
    counts.update(sync=0, csr=0)
    applied = masks.prepare("cupy", stack, sig, np.uint16)
    dense = m.toarray()
    ok = True
    for tile in range(4):
        frames = rng.integers(0, 4096, size=(5, npix)).astype(np.uint16)
        for p0, p1 in ((0, npix), (0, 21), (21, npix)):
            out = np.zeros((5, k))
            applied(np.ascontiguousarray(frames[:, p0:p1]), out, p0, p1)
            ok = ok and np.allclose(out, frames[:, p0:p1] @ dense[:, p0:p1].T)
    report[k] = {"ok": bool(ok), **counts}
print("RESULTS " + json.dumps(report))
"""


def _child() -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    return [sys.executable, "-c", textwrap.dedent(CHILD)], env


def start_child() -> None:
    """Start the simulator child in the background at collection (tests/background.py)."""
    background.start("masks-gpu-prepared", *_child())


def test_sparse_masks_prepared_once_per_partition():
    proc = background.collect("masks-gpu-prepared", *_child(), timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    report = json.loads(lines[-1][len("RESULTS ") :])
    for k, got in report.items():
        assert got["ok"], (k, got)
        # 12 tile calls over 3 layouts (whole frames and two pixel slabs): nothing per tile
        assert got["sync"] == 0, (k, got)
    assert report["3"]["csr"] == 0
    assert report["12"]["csr"] == 3
