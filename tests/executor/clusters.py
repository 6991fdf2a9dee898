"""Helpers of the dask executor's tests: dask clusters started with the real command line, and
result comparison."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WAIT_S = 60  # upper bound of every wait for a cluster (a loaded 2-core CI machine)


def cli_env() -> dict[str, str]:
    """Environment of CLI-started processes: the repository importable (for tests.executor.udfs)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("DASK_DISTRIBUTED__WORKER__DAEMON", "False")
    return env


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM the processes this test started one after the other, in order (workers first),
    SIGKILL where one does not end. Each ends before the next is asked: a `dask worker` whose
    scheduler went away with it waited about 8 s before it exited, 0.3 s otherwise."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def start_process(argv: list[str]) -> subprocess.Popen:
    """A cluster process (worker, scheduler) with :func:`cli_env`, its output discarded."""
    return subprocess.Popen(
        argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def start_scheduler(tmp: Path) -> tuple[subprocess.Popen, str]:
    """`dask scheduler` on a free loopback port; returns the process and its address."""
    sched_file = tmp / "scheduler.json"
    proc = subprocess.Popen(
        [
            str(BIN / "dask"),
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(sched_file),
        ],
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {proc.returncode}")
        with contextlib.suppress(OSError, ValueError):
            address = json.loads(sched_file.read_text())["address"]
            return proc, address
        time.sleep(0.1)
    stop([proc])
    raise TimeoutError("dask scheduler did not write its scheduler file")


def assert_same(results, reference):
    assert results.keys() == reference.keys()
    for name, ref in reference.items():
        np.testing.assert_allclose(
            np.asarray(results[name].data, dtype=np.float64),
            np.asarray(ref.data, dtype=np.float64),
            rtol=1e-5,
            atol=1e-6,
            equal_nan=True,
            err_msg=name,
        )
