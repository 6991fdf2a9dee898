"""Numba-CUDA kernels without a GPU: every kernel compiles to PTX for sm_90 (H100) and sm_80
(A100), in a child process (``cuda_sim_cases.py``) so that ``numba.cuda`` stays out of the other
tests. Results under the CUDA simulator are checked through each kernel's wrapper by the kernel
contract kit (``kit.py``, ``test_gpu_in_simulator`` of every operation's test module).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from tests import background

# Looked up, not imported: the checks import numba.cuda in their own processes.
if importlib.util.find_spec("numba_cuda") is None:
    pytest.skip(
        "numba-cuda is not installed (pip install numba-cuda[cu13])", allow_module_level=True
    )

CASES = Path(__file__).with_name("cuda_sim_cases.py")
ROOT = Path(__file__).resolve().parents[2]


def _child(mode: str) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    return [sys.executable, str(CASES), mode], env


def start_ptx() -> None:
    """Start the PTX compile check in the background at collection (tests/background.py)."""
    background.start("ptx", *_child("ptx"))


def _run(mode: str) -> dict[str, str]:
    proc = background.collect(mode, *_child(mode), timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULTS ")]
    if proc.returncode != 0 or not lines:
        if mode == "ptx" and "NVVM" in proc.stderr:
            pytest.skip(f"NVVM not found for compile_ptx: {proc.stderr[-500:]}")
        raise AssertionError(f"{mode} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULTS ") :])


@pytest.fixture(scope="module")
def ptx_results():
    return _run("ptx")


def test_compiles_for_sm90_and_sm80(ptx_results):
    failed = {k: v for k, v in ptx_results.items() if v != "ok"}
    assert not failed, "\n".join(f"{k}:\n{v}" for k, v in failed.items())
    assert any(k.endswith("sm_90") for k in ptx_results)
    assert any(k.endswith("sm_80") for k in ptx_results)
    assert len({k.split(":")[0] for k in ptx_results}) == 8  # all eight CUDA kernels
