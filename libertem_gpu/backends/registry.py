"""Looking up and choosing backends."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable

from libertem_gpu import config
from libertem_gpu.backends.base import Backend
from libertem_gpu.errors import BackendError, BackendUnavailableError

log = logging.getLogger(__name__)

#: Environment variable that forces a backend for every run (e.g. ``numpy``): the override of
#: the ``backend`` setting.
BACKEND_ENV = str(config.SETTINGS["backend"].env)

_BACKENDS: dict[str, str | type[Backend]] = {
    "numpy": "libertem_gpu.backends.numpy_backend:NumpyBackend",
    "cupy": "libertem_gpu.backends.cupy_backend:CupyBackend",
}
#: Order in which "auto" tries backends: GPU first.
AUTO_ORDER = ("cupy", "numpy")


def register_backend(name: str, target: str | type[Backend]) -> None:
    """Add a backend class, or a ``"module:Class"`` string imported when first used."""
    _BACKENDS[name] = target


def get_backend(name: str) -> type[Backend]:
    """The backend class called ``name``.

    Raises
    ------
    BackendError
        If no backend has that name (the message lists the valid ones).
    """
    target = _BACKENDS.get(name)
    if target is None:
        raise BackendError(
            f"unknown backend {name!r}; valid backends: {', '.join(sorted(_BACKENDS))}, or 'auto'"
        )
    if isinstance(target, str):
        module_name, _, class_name = target.partition(":")
        try:
            target = getattr(importlib.import_module(module_name), class_name)
        except ImportError as e:
            raise BackendUnavailableError(f"backend {name!r} cannot be imported: {e}") from e
        _BACKENDS[name] = target
    return target


def _is_available(name: str) -> tuple[bool, str]:
    try:
        cls = get_backend(name)
    except BackendUnavailableError as e:
        return False, str(e)
    try:
        if cls.is_available():
            return True, ""
        return False, cls.unavailable_reason()
    except Exception as e:  # a broken CUDA install must not crash planning
        return False, f"backend {name!r} failed its availability check: {e!r}"


def available_backends() -> list[str]:
    """Names of the backends that can run on this machine."""
    return [name for name in _BACKENDS if _is_available(name)[0]]


def backend_names() -> tuple[str, ...]:
    """Names of every registered backend, whether or not it can run here."""
    return tuple(_BACKENDS)


def backends_for_resources(resources: Iterable[str]) -> list[str]:
    """Names of the backends whose tasks a worker advertising ``resources`` can run (see
    :attr:`Backend.worker_resource`); backends that cannot be imported here are left out."""
    offered = set(resources)
    names = []
    for name in _BACKENDS:
        try:
            if get_backend(name).worker_resource in offered:
                names.append(name)
        except BackendUnavailableError:
            continue
    return names


def resolve_backend(requested: str | None, supported: Iterable[Iterable[str]]) -> str:
    """Pick the backend for a run.

    Parameters
    ----------
    requested : str or None
        ``"auto"``, a backend name, or None for the ``backend`` setting. The environment
        variable ``LIBERTEM_GPU_BACKEND`` overrides it.
    supported : iterable of iterables of str
        For each UDF of the run, the backends it supports.

    Returns
    -------
    str
        The backend name. ``"auto"`` prefers a GPU and falls back to the CPU with one log line.

    Raises
    ------
    BackendUnavailableError
        If a named backend cannot run here.
    BackendError
        If no backend suits every UDF.
    """
    forced = config.env_override("backend")
    if forced and forced != "auto":
        if requested not in (None, "auto", forced):
            log.info("%s=%s overrides the requested backend %r", BACKEND_ENV, forced, requested)
        requested = forced
    requested = requested or config.get("backend")
    sets = [set(s) for s in supported]
    common = set.intersection(*sets) if sets else set(_BACKENDS)
    if requested != "auto":
        get_backend(requested)  # unknown names fail here, listing the valid ones
        if requested not in common:
            raise BackendError(
                f"backend {requested!r} was requested, but not every UDF of the run supports it "
                f"(backends all UDFs support: {sorted(common) or 'none'})"
            )
        ok, reason = _is_available(requested)
        if not ok:
            raise BackendUnavailableError(
                f"backend {requested!r} was requested but cannot run here: {reason}. "
                "Use backend='auto' to fall back to the CPU."
            )
        return requested
    skipped: list[str] = []
    for name in AUTO_ORDER:
        if name not in common:
            continue
        ok, reason = _is_available(name)
        if ok:
            if skipped:
                log.info("using backend %r (%s)", name, "; ".join(skipped))
            return name
        skipped.append(reason)
    raise BackendError(
        "no backend can run this set of UDFs: "
        + (
            "; ".join(skipped)
            if skipped
            else f"they share no backend ({[sorted(s) for s in sets]})"
        )
    )
