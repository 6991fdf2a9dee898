"""Choosing a backend for a run."""

from __future__ import annotations

import logging

import pytest

from libertem_gpu.backends import registry
from libertem_gpu.backends.numpy_backend import NumpyBackend
from libertem_gpu.errors import BackendError, BackendUnavailableError


class _Missing(NumpyBackend):
    name = "missing"

    @classmethod
    def is_available(cls):
        return False

    @classmethod
    def unavailable_reason(cls):
        return "no such device here"


class _Broken(NumpyBackend):
    name = "broken"

    @classmethod
    def is_available(cls):
        raise RuntimeError("driver exploded")


@pytest.fixture
def fake_backends(monkeypatch):
    table = dict(registry._BACKENDS)
    table.update({"missing": _Missing, "broken": _Broken})
    monkeypatch.setattr(registry, "_BACKENDS", table)
    monkeypatch.setattr(registry, "AUTO_ORDER", ("broken", "missing", "numpy"))
    monkeypatch.delenv(registry.BACKEND_ENV, raising=False)


def test_numpy_is_always_there():
    assert "numpy" in registry.available_backends()
    assert registry.get_backend("numpy") is NumpyBackend


def test_unknown_backend_lists_valid_ones():
    with pytest.raises(BackendError, match="valid backends: cupy, numpy"):
        registry.get_backend("opencl")


def test_auto_falls_back_and_logs_once(fake_backends, caplog):
    with caplog.at_level(logging.INFO, logger=registry.__name__):
        assert registry.resolve_backend("auto", [("numpy", "missing", "broken")]) == "numpy"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "driver exploded" in lines[0] and "no such device here" in lines[0]


def test_explicit_unavailable_backend_is_an_error(fake_backends):
    with pytest.raises(BackendUnavailableError, match="'missing' was requested.*no such device"):
        registry.resolve_backend("missing", [("numpy", "missing")])
    with pytest.raises(BackendUnavailableError, match="driver exploded"):
        registry.resolve_backend("broken", [("broken",)])


def test_backend_every_udf_must_support(fake_backends):
    with pytest.raises(BackendError, match="not every UDF"):
        registry.resolve_backend("numpy", [("numpy",), ("missing",)])
    with pytest.raises(BackendError, match="no backend can run"):
        registry.resolve_backend("auto", [("numpy",), ("missing",)])


def test_environment_forces_a_backend(fake_backends, monkeypatch):
    monkeypatch.setenv(registry.BACKEND_ENV, "numpy")
    assert registry.resolve_backend("missing", [("numpy", "missing")]) == "numpy"
    assert registry.resolve_backend(None, [("numpy", "missing")]) == "numpy"
