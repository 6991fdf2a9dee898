"""Lookup of kernels by ``(operation, backend)``.

Targets are ``"module:function"`` strings imported on first use, so that asking for the NumPy
kernels never imports CuPy (and importing this module compiles nothing). GPU code adds its
entries with :func:`register_kernel`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

from libertem_gpu.errors import BackendError

__all__ = ["UnknownKernelError", "get_kernel", "register_kernel", "registered_kernels"]


class UnknownKernelError(BackendError, LookupError):
    """No kernel is registered for the requested ``(op, backend)`` pair."""


_P = "libertem_gpu.kernels."

_TABLE: dict[tuple[str, str], str | Callable[..., Any]] = {
    ("sum_frames", "numpy"): _P + "sum_frames:cpu",
    ("sum_frames", "reference"): _P + "sum_frames:reference",
    ("sum_sig", "numpy"): _P + "sum_sig:cpu",
    ("sum_sig", "reference"): _P + "sum_sig:reference",
    ("moments", "numpy"): _P + "moments:cpu",
    ("moments", "reference"): _P + "moments:reference",
    ("max", "numpy"): _P + "extrema:cpu_max",
    ("max", "reference"): _P + "extrema:reference_max",
    ("min", "numpy"): _P + "extrema:cpu_min",
    ("min", "reference"): _P + "extrema:reference_min",
    ("masks_dense", "numpy"): _P + "masks:cpu_dense",
    ("masks_dense", "reference"): _P + "masks:reference",
    ("masks_sparse", "numpy"): _P + "masks:cpu_sparse",
    ("masks_sparse", "reference"): _P + "masks:reference_sparse",
    ("com", "numpy"): _P + "com:cpu",
    ("com", "reference"): _P + "com:reference",
    # Masks given as runs of equal value (disks, rings, rectangles): CPU only.
    ("masks_spans", "numpy"): _P + "spans:masks_cpu",
    ("masks_spans", "reference"): _P + "spans:reference",
    ("com_spans", "numpy"): _P + "spans:com_cpu",
}
_resolved: dict[tuple[str, str], Callable[..., Any]] = {}
_lock = threading.Lock()


def register_kernel(op: str, backend: str, target: str | Callable[..., Any]) -> None:
    """Register (or replace) the kernel for ``(op, backend)``.

    Parameters
    ----------
    op : str
        Operation name, e.g. ``"sum_frames"``.
    backend : str
        Backend name, e.g. ``"cupy"``.
    target : str or callable
        A callable, or ``"package.module:function"`` imported lazily on first lookup.
    """
    if isinstance(target, str):
        if target.count(":") != 1:
            raise ValueError(f"kernel target must be 'module:function', got {target!r}")
    elif not callable(target):
        raise TypeError(f"kernel target must be a callable or 'module:function', got {target!r}")
    key = (op, backend)
    with _lock:
        _TABLE[key] = target
        _resolved.pop(key, None)


def registered_kernels() -> list[tuple[str, str]]:
    """All registered ``(op, backend)`` keys, sorted."""
    with _lock:
        return sorted(_TABLE)


def get_kernel(op: str, backend: str) -> Callable[..., Any]:
    """Return the kernel for ``(op, backend)``, importing its module on first use.

    Parameters
    ----------
    op : str
        One of ``"sum_frames"``, ``"sum_sig"``, ``"moments"``, ``"max"``, ``"min"``,
        ``"masks_dense"``, ``"masks_sparse"``, ``"com"``.
    backend : str
        ``"numpy"`` (Numba CPU kernels), ``"reference"`` (plain NumPy), or a registered one.

    Raises
    ------
    UnknownKernelError
        (a :class:`~libertem_gpu.errors.BackendError` and a :class:`LookupError`) if nothing is
        registered for the pair; the message lists the valid keys.
    """
    key = (op, backend)
    fn = _resolved.get(key)
    if fn is not None:
        return fn
    with _lock:
        target = _TABLE.get(key)
        keys = sorted(_TABLE)
    if target is None:
        valid = ", ".join(f"{o}/{b}" for o, b in keys)
        raise UnknownKernelError(f"no kernel for op={op!r}, backend={backend!r}; valid: {valid}")
    if isinstance(target, str):
        mod_name, func_name = target.split(":")
        fn = getattr(importlib.import_module(mod_name), func_name)
    else:
        fn = target
    with _lock:
        if _TABLE.get(key) is target:
            _resolved[key] = fn
    return fn
