"""Fixtures shared by the whole suite: executors, contexts and random data."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

_ROOT = Path(__file__).resolve().parents[1]


def _numba_cache_by_source() -> None:
    """Keep the suite's Numba file cache in a folder named by a hash of the kernels' sources.

    Numba invalidates a cached kernel when its own source file changes, not when a helper it
    calls (or a constant it freezes) in another file does (a documented limitation of its
    cache), so after an edit of ``kernels/frame_rows.py`` the suite would test the old machine
    code of every kernel that inlines it. A set ``NUMBA_CACHE_DIR`` is left alone. Folders of
    earlier sources are removed, but the newest few, which other checkouts may be using."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    digest = hashlib.sha256()
    for folder in ("kernels", "disks"):  # disks: constants the disk-finding kernels freeze
        for path in sorted((_ROOT / "libertem_gpu" / folder).rglob("*.py")):
            digest.update(path.relative_to(_ROOT).as_posix().encode() + path.read_bytes())
    parent = _ROOT / ".numba-cache"
    here = parent / digest.hexdigest()[:16]
    here.mkdir(parents=True, exist_ok=True)
    here.touch()  # newest first below
    others = sorted(
        (d for d in parent.iterdir() if d.is_dir() and d != here),
        key=lambda d: d.stat().st_mtime,
        reverse=True,
    )
    for old in others[3:]:
        shutil.rmtree(old, ignore_errors=True)
    os.environ["NUMBA_CACHE_DIR"] = str(here)  # this process, xdist workers and children
    if "numba" in sys.modules:  # imported already (a plugin): its setting is read at import
        sys.modules["numba"].config.CACHE_DIR = str(here)


_numba_cache_by_source()

from libertem_gpu import Context, config  # noqa: E402

try:
    from hypothesis import settings
except ImportError:  # hypothesis is a test extra; fuzz tests import it themselves
    pass
else:
    # No per-example deadline: a shared CI machine is slow at random moments. In CI the
    # examples are derandomized, so a red run can be reproduced and is not down to luck.
    settings.register_profile("default", deadline=None)
    settings.register_profile("ci", deadline=None, derandomize=True, database=None)
    settings.load_profile("ci" if os.environ.get("CI") else "default")

EXECUTORS = ["inline", "threads", "dask"]

#: Test modules left out of the quick subset (``pytest -m "not slow"``, docs/testing.md): each
#: test in them starts processes (dask clusters, the command line, the CUDA simulator) or
#: compiles for many types; together they are most of the suite's time.
SLOW_MODULES = {
    "tests/executor/test_dask.py",  # clusters started per module and per test
    "tests/executor/test_dask_processes.py",  # workers, schedulers and clients killed
    "tests/cli/test_exit_codes.py",  # the command line in subprocesses, Ctrl-C
    "tests/cli/test_run.py",  # every analysis through the command line, every output format
    "tests/io/test_fuzz.py",  # hypothesis: many mutated files per format
    "tests/kernels/test_cpu_cache.py",  # two child processes, the first compiling kernels
    "tests/kernels/test_cuda_sim.py",  # PTX compile of every CUDA kernel
    "tests/kernels/test_masks_gpu_prepared.py",  # CUDA simulator child
    "tests/test_docs_examples.py",  # every docs page, a LocalCluster and subprocesses among them
    "tests/test_gpu_check.py",  # builds and runs the GPU check's wheelhouse script
    "tests/io/test_kvikio_wheel.py",  # imports kvikio in child processes
}


def _is_slow(item: pytest.Item) -> bool:
    """Left out of the quick subset: a slow module, a fuzz test, a case on the dask
    LocalCluster (a ``"dask"`` executor parameter), the CUDA simulator run of a kernel
    contract."""
    path = item.path.relative_to(item.config.rootpath).as_posix()
    name = item.name.split("[", 1)[0]
    if path in SLOW_MODULES or name == "test_gpu_in_simulator" or "fuzz" in name:
        return True
    if "dask_ctx" in getattr(item, "fixturenames", ()):
        return True
    callspec = getattr(item, "callspec", None)
    params = callspec.params.values() if callspec is not None else ()
    return any(isinstance(value, str) and value == "dask" for value in params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _numba_kernels_for_small_data():
    """Runs use the Numba kernels whatever their size (``small_run_bytes=0``): the suite's
    data is tiny, and would otherwise all take the plain-NumPy kernels of small runs. Tests of
    the small-run path set the setting themselves (tests/udf/test_small_runs.py)."""
    with config.set(small_run_bytes=0):
        yield


@pytest.fixture(scope="session")
def dask_ctx():
    """A Context on one LocalCluster of 2 worker processes, shared by the whole session (a
    cluster takes seconds to start)."""
    pytest.importorskip("distributed")
    context = Context("dask", n_workers=2)
    context.executor.client.wait_for_workers(2, timeout=120)
    yield context
    context.close()


@pytest.fixture(params=EXECUTORS)
def ctx(request: pytest.FixtureRequest):
    """A Context for each executor: inline, threads, and dask worker processes (so that every
    analysis and every data set also runs after pickling, in another process)."""
    if request.param == "dask":
        yield request.getfixturevalue("dask_ctx")
        return
    context = Context(request.param)
    yield context
    context.close()


@pytest.fixture
def inline_ctx():
    """An inline Context (one thread, deterministic)."""
    context = Context("inline")
    yield context
    context.close()


@pytest.fixture
def amx_calls(monkeypatch: pytest.MonkeyPatch) -> list:
    """The frames (dtype, shape) of every call of the AMX mask kernel during the test."""
    from libertem_gpu.kernels import amx

    calls: list = []
    dense = amx.dense

    def counting(a, *args):  # type: ignore[no-untyped-def]
        calls.append((a.dtype, a.shape))
        dense(a, *args)

    monkeypatch.setattr(amx, "dense", counting)
    return calls


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A seeded random generator: tests use random data, never zeros or constants. Each test
    gets its own seed (from its name: reproducible, and different data across the suite)."""
    return np.random.default_rng([20261125, zlib.crc32(request.node.nodeid.encode())])


def random_data(rng: np.random.Generator, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Random values over ``dtype``'s whole range for types up to 32 bits (so that the high bits
    are summed too), and up to 2**50 in magnitude for 64-bit integers (float64 references stay
    within rounding of the kernels' sums)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        hi = min(int(info.max), 2**50)
        lo = max(int(info.min), -(2**50))
        native = dtype.newbyteorder("=")
        return rng.integers(lo, hi, size=shape, endpoint=True, dtype=native).astype(dtype)
    return (rng.standard_normal(shape) * 100 + 20).astype(dtype)
