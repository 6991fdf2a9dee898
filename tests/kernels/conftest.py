"""Contract cases that do not apply to an operation (no GPU implementation, no byte-swapping
read, an undeclared dtype) are left out at collection, so that what the suite reports as
skipped is only what needs hardware this machine lacks (a GPU, AMX)."""

from __future__ import annotations

import pytest

from tests.kernels.kit import KernelContract


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
