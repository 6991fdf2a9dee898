"""Child processes that tests start early and collect later.

A few tests spend most of their time in a child process (the CUDA simulator run of the kernel
contracts, the PTX compile check): about a minute and a half of work for one core. Started in
the background as soon as collection ends (``tests/kernels/conftest.py``), they run on a
second core while the session goes on; the test that needs a result collects it, or runs the
child then if it was not started. Output goes to temporary files, not pipes, so that a child
never stalls on a full pipe that nobody reads yet.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

__all__ = ["Done", "collect", "start", "stop_all"]


@dataclass(frozen=True)
class Done:
    returncode: int
    stdout: str
    stderr: str


_running: dict[str, tuple[subprocess.Popen, IO[str], IO[str]]] = {}


def start(key: str, argv: Sequence[str], env: dict[str, str], cwd: str | None = None) -> None:
    """Start ``argv`` as child ``key`` unless it is running already."""
    if key in _running:
        return
    out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(list(argv), env=env, cwd=cwd, stdout=out, stderr=err, text=True)
    _running[key] = (proc, out, err)


def collect(
    key: str, argv: Sequence[str], env: dict[str, str], cwd: str | None = None, timeout=600.0
) -> Done:
    """The result of child ``key``: the one started in the background, or ``argv`` run now."""
    start(key, argv, env, cwd)
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
    """End the children that no test collected (the session stopped early, or deselected)."""
    while _running:
        _, (proc, out, err) = _running.popitem()
        proc.kill()
        proc.wait()
        out.close()
        err.close()
