"""Contract cases that do not apply to an operation (no GPU implementation, no byte-swapping
read, an undeclared dtype) are left out at collection, so that what the suite reports as
skipped is only what needs hardware this machine lacks (a GPU, AMX). The CUDA-simulator run of
the selected contracts starts in the background as soon as collection ends (a minute of work
for a second core)."""

from __future__ import annotations

import pytest

from tests import background
from tests.kernels.kit import KernelContract, start_simulator


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, KernelContract):
            callspec = getattr(item, "callspec", None)
            dtype = callspec.params.get("dtype") if callspec is not None else None
            name = item.name.split("[", 1)[0]
            if cls().not_applicable(name, dtype) is not None:
                drop.append(item)
                continue
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the selected tests' slow child processes in the background (tests/background.py)."""
    contracts = {
        item.cls
        for item in session.items
        if item.name == "test_gpu_in_simulator"
        and isinstance(getattr(item, "cls", None), type)
        and issubclass(item.cls, KernelContract)
    }
    if contracts:
        start_simulator(sorted(contracts, key=lambda c: c.__qualname__))
    if any(item.name == "test_compiles_for_sm90_and_sm80" for item in session.items):
        from tests.kernels.test_cuda_sim import start_ptx

        start_ptx()
    if any(item.name == "test_sparse_masks_prepared_once_per_partition" for item in session.items):
        from tests.kernels.test_masks_gpu_prepared import start_child

        start_child()


def pytest_sessionfinish(session: pytest.Session) -> None:
    background.stop_all()


@pytest.fixture
def host_cpu(monkeypatch: pytest.MonkeyPatch):
    """Pretend the host CPU has the name LLVM gives (``host_cpu("znver4")``); the cached
    answer of ``cpu_target.host_is_amd`` is cleared before and after."""
    import llvmlite.binding as llvm

    from libertem_gpu.kernels import cpu_target

    cpu_target.host_is_amd.cache_clear()
    yield lambda name: monkeypatch.setattr(llvm, "get_host_cpu_name", lambda: name)
    cpu_target.host_is_amd.cache_clear()
