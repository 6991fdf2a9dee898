"""Lookup of operations and their implementations by ``(operation, backend)``.

The built-in operations are declared in :mod:`libertem_gpu.kernels.catalog`; targets are
``"module:function"`` strings imported on first use, so that asking for the NumPy kernels never
imports CuPy (and importing this module compiles nothing). Third parties add or replace
implementations with :func:`register_kernel`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from libertem_gpu.errors import BackendError
from libertem_gpu.kernels.catalog import OPERATIONS, PLAIN
from libertem_gpu.kernels.operation import Impl

__all__ = [
    "PLAIN",
    "UnknownKernelError",
    "backends_for",
    "get_impl",
    "get_kernel",
    "reads_stored_order",
    "register_kernel",
    "registered_kernels",
    "signature",
]

#: The pseudo-backend under which an operation's plain NumPy reference is registered.
REFERENCE = "reference"
#: Kernel sets that are no backend of their own (:data:`PLAIN` runs on ``numpy``).
_NOT_BACKENDS = frozenset({REFERENCE, PLAIN})


class UnknownKernelError(BackendError, LookupError):
    """No kernel is registered for the requested ``(op, backend)`` pair."""


_TABLE: dict[tuple[str, str], Impl] = {}
_SIGNATURES: dict[str, type] = {}
for _operation in OPERATIONS:
    _SIGNATURES[_operation.name] = _operation.signature
    _TABLE[(_operation.name, REFERENCE)] = Impl(_operation.reference)
    for _backend, _impl in _operation.impls.items():
        _TABLE[(_operation.name, _backend)] = _impl
_resolved: dict[tuple[str, str], Callable[..., Any]] = {}
_lock = threading.Lock()


def register_kernel(
    op: str,
    backend: str,
    target: str | Callable[..., Any] | Impl,
) -> None:
    """Register (or replace) the kernel for ``(op, backend)``.

    Parameters
    ----------
    op : str
        Operation name, e.g. ``"sum_frames"``.
    backend : str
        Backend name, e.g. ``"cupy"``, or ``"reference"``.
    target : str, callable or Impl
        A callable, or ``"package.module:function"`` imported lazily on first lookup, or an
        :class:`~libertem_gpu.kernels.operation.Impl` that also states what it reads.
    """
    impl = target if isinstance(target, Impl) else Impl(target)
    if isinstance(impl.target, str):
        if impl.target.count(":") != 1:
            raise ValueError(f"kernel target must be 'module:function', got {impl.target!r}")
    elif not callable(impl.target):
        raise TypeError(f"kernel target must be a callable or 'module:function', got {target!r}")
    key = (op, backend)
    with _lock:
        _TABLE[key] = impl
        _resolved.pop(key, None)


def registered_kernels() -> list[tuple[str, str]]:
    """All registered ``(op, backend)`` keys, sorted."""
    with _lock:
        return sorted(_TABLE)


def _lookup(op: str, backend: str) -> Impl:
    with _lock:
        impl = _TABLE.get((op, backend))
        keys = sorted(_TABLE) if impl is None else []
    if impl is None:
        valid = ", ".join(f"{o}/{b}" for o, b in keys)
        raise UnknownKernelError(f"no kernel for op={op!r}, backend={backend!r}; valid: {valid}")
    return impl


def get_impl(op: str, backend: str) -> Impl:
    """The declaration of ``op`` on ``backend`` (target and capabilities); imports nothing.

    Raises
    ------
    UnknownKernelError
        If nothing is registered for the pair; the message lists the valid keys.
    """
    return _lookup(op, backend)


def get_kernel(op: str, backend: str) -> Callable[..., Any]:
    """Return the kernel for ``(op, backend)``, importing its module on first use.

    Parameters
    ----------
    op : str
        One of ``"sum_frames"``, ``"sum_sig"``, ``"moments"``, ``"max"``, ``"min"``,
        ``"masks_dense"``, ``"masks_sparse"``, ``"masks_spans"``, ``"com"``, ``"com_spans"``,
        ``"logsum"``, ``"pixel_moments"``, or an operation with a prepare step:
        ``"apply_masks"``, ``"centre_of_mass"``, ``"power_spectrum"``, ``"fft_mask_sum"``,
        ``"holo_reconstruct"``, ``"ssb_accumulate"``, ``"weighted_frame_sum"``,
        ``"polar_correlate"``, ``"ptycho_step"``.
    backend : str
        ``"numpy"`` (Numba CPU kernels), ``"cupy"`` (CuPy / Numba-CUDA), ``"plain"`` (the
        references with the implementations' signature, for small CPU runs), ``"reference"``
        (plain NumPy, each with its own signature), or a registered one.

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
    impl = _lookup(op, backend)
    target = impl.target
    if isinstance(target, str):
        mod_name, func_name = target.split(":")
        fn = getattr(importlib.import_module(mod_name), func_name)
    else:
        fn = target
    with _lock:
        if _TABLE.get(key) is impl:
            _resolved[key] = fn
    return fn


def signature(op: str) -> type | None:
    """The :class:`typing.Protocol` that the implementations of ``op`` follow (None for an
    operation registered without one)."""
    return _SIGNATURES.get(op)


def backends_for(*ops: str) -> tuple[str, ...]:
    """Backends that implement every one of ``ops`` (the reference and the plain kernel set
    aside), in the order the first operation lists them."""
    with _lock:
        keys = list(_TABLE)
    if not ops:
        return ()
    found = [b for o, b in keys if o == ops[0] and b not in _NOT_BACKENDS]
    return tuple(b for b in found if all((o, b) in _TABLE for o in ops[1:]))


def reads_stored_order(op: str, backend: str, dtype: Any) -> bool:
    """Whether the implementation of ``op`` on ``backend`` reads tiles of ``dtype`` in stored
    (reversed) byte order, swapping as it reads; False for unknown pairs."""
    with _lock:
        impl = _TABLE.get((op, backend))
    return impl is not None and impl.reads_swapped(np.dtype(dtype))
