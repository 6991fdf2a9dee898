"""``libertem-gpu worker SCHEDULER_ADDRESS``: join a dask cluster as libertem_gpu worker(s).

A thin front end to the real ``dask worker`` (or ``dask cuda worker``) command that picks the
settings partition tasks want: one thread per worker process, and the resources the executor
asks for (``CPU`` for NumPy tasks, ``CUDA`` for CuPy tasks), so that mixed clusters of CPU and
GPU nodes place each partition on a worker that can run it.

Workers run whatever pickled code reaches their port, so they listen on the loopback interface
unless ``--host`` names another: a worker for a scheduler on another machine must be told which
interface faces it (a private network the cluster trusts).
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence


def build_parser(prog: str = "libertem-gpu worker") -> argparse.ArgumentParser:
    """The ``worker`` command's argument parser."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Start dask worker processes for libertem_gpu that join the scheduler at "
            "SCHEDULER_ADDRESS (started with `dask scheduler`). Runs `dask worker` (or "
            "`dask cuda worker` with --cuda) with one thread per process and the resources "
            "libertem_gpu's tasks ask for."
        ),
    )
    parser.add_argument("scheduler", metavar="SCHEDULER_ADDRESS", help="e.g. tcp://10.0.0.1:8786")
    parser.add_argument(
        "--nworkers",
        type=int,
        default=None,
        help="worker processes (default: one per core; with --cuda: one per GPU)",
    )
    parser.add_argument("--nthreads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument(
        "--resources",
        default=None,
        help='resources each worker advertises (default "CPU=<nthreads>"; with --cuda '
        '"CUDA=1,CPU=1")',
    )
    parser.add_argument(
        "--cuda",
        action="store_true",
        help="one worker per GPU with dask-cuda (needs the 'gpu' extra)",
    )
    parser.add_argument(
        "--host",
        default=None,
        help="address the workers listen on (default 127.0.0.1; a scheduler on another machine "
        "needs the address of the interface that faces it)",
    )
    parser.add_argument("--name", default=None, help="worker name prefix")
    parser.add_argument("--memory-limit", default=None, help="per worker, e.g. '8GB' or 'auto'")
    parser.add_argument(
        "--dashboard", action="store_true", help="serve each worker's dashboard page"
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the dask command instead of running it"
    )
    return parser


def worker_command(args: argparse.Namespace) -> list[str]:
    """The ``dask worker`` command line for parsed ``args``."""
    if args.nthreads <= 0:
        raise SystemExit(f"--nthreads must be positive, got {args.nthreads}")
    if args.nworkers is not None and args.nworkers <= 0:
        raise SystemExit(f"--nworkers must be positive, got {args.nworkers}")
    if args.cuda:
        # dask-cuda starts one worker per visible GPU (see worker_env for --nworkers).
        cmd = [sys.executable, "-m", "dask", "cuda", "worker", args.scheduler]
        resources = args.resources or "CUDA=1,CPU=1"
    else:
        cmd = [sys.executable, "-m", "distributed.cli.dask_worker", args.scheduler]
        resources = args.resources or f"CPU={args.nthreads}"
        cmd += ["--nworkers", str(args.nworkers or _cores())]
    cmd += ["--nthreads", str(args.nthreads), "--resources", resources]
    cmd += ["--host", args.host or _loopback_host(args.scheduler)]
    if args.name:
        cmd += ["--name", args.name]
    if args.memory_limit:
        cmd += ["--memory-limit", str(args.memory_limit)]
    if not args.dashboard:
        cmd += ["--no-dashboard"]
    return cmd


def _loopback_host(scheduler: str) -> str:
    """127.0.0.1 for a scheduler on this machine; for another, an error asking for --host."""
    address = scheduler.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:
        local = address == "localhost" or ipaddress.ip_address(address).is_loopback
    except ValueError:  # a host name: we cannot tell which interface faces it
        local = False
    if not local:
        raise SystemExit(
            f"the scheduler {scheduler} is not on this machine's loopback interface, where "
            "workers listen by default; pass --host with the address of the interface that "
            "faces the scheduler (workers run code sent by anyone who reaches their port: use "
            "a network only the cluster can reach)"
        )
    return "127.0.0.1"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child, between fork and exec
    """Ask Linux to SIGTERM this process when its parent dies (even by SIGKILL)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the SIGTERM handler below still forwards
        pass


def worker_env(args: argparse.Namespace) -> dict[str, str]:
    """The workers' environment: with ``--cuda --nworkers N``, the first N visible GPUs."""
    env = dict(os.environ)
    if args.cuda and args.nworkers is not None:
        visible = env.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(args.nworkers)]
        env["CUDA_VISIBLE_DEVICES"] = ",".join(devices[: args.nworkers])
    return env


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def worker_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``libertem-gpu worker``; returns the workers' exit status.

    Runs until the workers stop (the scheduler closes, or Ctrl-C / SIGTERM).
    """
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.cuda:
        try:
            import dask_cuda  # noqa: F401
        except ImportError as e:
            print(
                f"libertem-gpu worker --cuda needs dask-cuda (install the 'gpu' extra): {e}",
                file=sys.stderr,
            )
            return 2
    cmd = worker_command(args)
    if args.dry_run:
        print(" ".join(cmd))
        return 0
    # The workers die with this process, so that killing it (even with SIGKILL) leaves no orphan.
    proc = subprocess.Popen(cmd, env=worker_env(args), preexec_fn=_die_with_parent)
    # Forward SIGTERM (batch systems, tests) so that the workers leave the cluster cleanly.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: proc.terminate())
    try:
        return proc.wait()
    except KeyboardInterrupt:
        # The workers got the same Ctrl-C (same process group); give them time to leave cleanly.
        try:
            return proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


if __name__ == "__main__":
    sys.exit(worker_main())
