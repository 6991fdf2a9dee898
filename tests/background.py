"""Child processes that tests start early and collect later.

A few tests spend most of their time in a child process (the CUDA simulator run of the kernel
contracts, the PTX compile check): about a minute and a half of work for one core. Started in
the background as soon as collection ends (``tests/kernels/conftest.py``), they run on a
second core while the session goes on; the test that needs a result collects it, or runs the
child then if it was not started. Output goes to files, not pipes, so that a child never stalls
on a full pipe that nobody reads yet.

Under pytest-xdist every worker collects every test, and any worker may run a test that needs
a child. So one worker (``gw0``) starts each child, writing its output and exit status to a
folder that all workers of the run share (named by ``PYTEST_XDIST_TESTRUNUID``); a test on
another worker waits for those files instead of running the child again. The folder (a few
KiB) stays in the system's temporary folder after the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["Done", "collect", "start", "stop_all"]

#: How long a worker waits for the owner worker to start a child before running it itself.
_START_GRACE_S = 120.0

# Runs argv with its output in files, then writes its exit status: the files other workers read.
_RUNNER = (
    "import subprocess, sys\n"
    "out, err, rc = sys.argv[1:4]\n"
    "with open(out, 'w') as o, open(err, 'w') as e:\n"
    "    code = subprocess.run(sys.argv[4:], stdout=o, stderr=e).returncode\n"
    "with open(rc + '.part', 'w') as f:\n"
    "    f.write(str(code))\n"
    "import os\n"
    "os.replace(rc + '.part', rc)\n"
)


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


_running: dict[str, tuple[subprocess.Popen, IO[str], IO[str]]] = {}
_shared: dict[str, subprocess.Popen] = {}
#: Children this worker asked to start: under xdist, the owner worker runs them.
_requested: set[str] = set()


def _shared_dir() -> Path | None:
    """The folder the workers of one pytest-xdist run share, or None outside xdist."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run or not os.environ.get("PYTEST_XDIST_WORKER"):
        return None
    path = Path(tempfile.gettempdir()) / f"libertem-gpu-tests-{run}"
    path.mkdir(exist_ok=True)
    return path


def _owner() -> bool:
    return os.environ.get("PYTEST_XDIST_WORKER", "gw0") == "gw0"


def start(key: str, argv: Sequence[str], env: dict[str, str], cwd: str | None = None) -> None:
    """Start ``argv`` as child ``key`` unless it is running already (under xdist: on the
    owner worker only, with its output in the shared folder)."""
    if key in _running or key in _shared:
        return
    shared = _shared_dir()
    if shared is not None:
        _requested.add(key)
        if _owner():
            files = [str(shared / f"{key}.{ext}") for ext in ("out", "err", "rc")]
            runner = [sys.executable, "-c", _RUNNER, *files, *argv]
            _shared[key] = subprocess.Popen(runner, env=env, cwd=cwd)
            (shared / f"{key}.started").touch()
        return
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=err, text=True)
    _running[key] = (proc, out, err)


def _wait_shared(key: str, shared: Path, timeout: float) -> Done | None:
    """The owner worker's result of child ``key``, or None if the owner never started it."""
    started, rc = shared / f"{key}.started", shared / f"{key}.rc"
    deadline = time.monotonic() + _START_GRACE_S
    while not started.exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    deadline = time.monotonic() + timeout
    while not rc.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"background child {key!r} gave no result within {timeout:.0f} s")
        time.sleep(0.2)
    return Done(
        int(rc.read_text()),
        (shared / f"{key}.out").read_text(),
        (shared / f"{key}.err").read_text(),
    )


def collect(
    key: str, argv: Sequence[str], env: dict[str, str], cwd: str | None = None, timeout=600.0
) -> Done:
    """The result of child ``key``: the one started in the background (by this worker or, under
    xdist, by the owner worker), or ``argv`` run now."""
    shared = _shared_dir()
    if shared is not None and key not in _running:
        if key in _requested:
            _requested.discard(key)
            done = _wait_shared(key, shared, timeout)
            _shared.pop(key, None)
            if done is not None:
                return done
    start_local = _running.get(key) is None
    if start_local:
        out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=err, text=True)
        _running[key] = (proc, out, err)
    proc, out, err = _running.pop(key)
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with out, err:
        out.seek(0)
        err.seek(0)
        return Done(proc.returncode, out.read(), err.read())


def stop_all() -> None:
    """End the children that no test collected (the session stopped early, or deselected).
    Children started for all xdist workers are left to finish: another worker may still
    collect them (they end by themselves, within minutes)."""
    while _running:
        _, (proc, out, err) = _running.popitem()
        proc.kill()
        proc.wait()
        out.close()
        err.close()
    _shared.clear()
