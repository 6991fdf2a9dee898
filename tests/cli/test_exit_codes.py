"""Exit statuses of ``libertem-gpu`` as a shell sees them, in a child process: 0 success, 1
failure (one line, no traceback), 2 usage, 130 interrupted by Ctrl-C (SIGINT) mid-run, with
nothing left at the output path."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[2]

# Slows each merged partition down, so that SIGINT arrives mid-run whatever the machine's speed;
# and says when the run has started (after the first partition).
SLOW = """
import sys, time
import libertem_gpu.api as api

_iter = api.Context.run_udf_iter

def slow(self, *args, **kwargs):
    for i, partial in enumerate(_iter(self, *args, **kwargs)):
        if i == 0:
            print("STARTED", file=sys.stderr, flush=True)
        time.sleep(0.2)
        yield partial

api.Context.run_udf_iter = slow
"""


def _run(args, tmp_path, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path / "site")])}
    cmd = [sys.executable, "-m", "libertem_gpu", *args]
    return subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def npy(tmp_path):
    rng = np.random.default_rng(7)
    np.save(tmp_path / "d.npy", rng.integers(0, 100, (8, 8, 6, 6), dtype=np.uint16))
    (tmp_path / "site").mkdir()
    return tmp_path / "d.npy"


@pytest.mark.parametrize(
    ("args", "status", "stderr"),
    [
        (["run", "d.npy", "--analysis", "sum", "--out", "r.h5"], 0, ""),
        (["run", "nope.raw", "--analysis", "sum", "--out", "r.h5"], 1, "does not exist"),
        (["run", "d.npy", "--out", "r.h5"], 2, "name at least one analysis"),
        (["run", "d.npy", "--analysis", "fft", "--out", "r.h5"], 2, "invalid choice"),
    ],
)
def test_exit_status(npy, tmp_path, args, status, stderr):
    proc = _run([*args, "--executor", "inline"], tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err
    assert stderr in err
    assert "Traceback" not in err
    if status == 0:
        assert (tmp_path / "r.h5").is_file() and "GB/s" in out
    else:
        assert not (tmp_path / "r.h5").exists()
    if status == 1:
        assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_ctrl_c_mid_run_exits_130_and_leaves_nothing(npy, tmp_path, executor):
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW)
    args = ["run", "d.npy", "--analysis", "std", "--out", "r.zarr", "--option", "num_partitions=8"]
    proc = _run([*args, "--executor", executor, "--no-progress"], tmp_path)
    deadline = time.monotonic() + 120
    assert proc.stderr is not None
    line = proc.stderr.readline()
    while line and "STARTED" not in line and time.monotonic() < deadline:
        line = proc.stderr.readline()
    assert "STARTED" in line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npy", "site"]
