"""State that the partitions of one run share in a worker process.

A UDF's ``preprocess`` runs once per partition. Some UDFs prepare the same thing each time
from their parameters alone: laid-out mask stacks, the runs of a centre-of-mass disk. With
many partitions that preparation adds up (16 dense masks: about a tenth of a 256 MiB
partition's time; the CoM disk's runs: about 1 ms a partition). :func:`shared_for_run` keeps
what one partition built for the next partitions of the same run, keyed by
:attr:`libertem_gpu.udf.base.UDFMeta.run_key`, which is unique per run: a later run always
builds afresh, so a cached value never outlives the parameters it was made from.

The values of the run that stored one last are kept whatever their size (16 masks of
4096 x 4096 frames are 1 GiB: built in every partition, they took a fifth of a run). Those of
earlier runs share ``MAX_ENTRIES`` and ``MAX_BYTES``, least recently used dropped first; a
client whose executor runs the tasks in its own process drops a run's values when the run
ends (:func:`forget_run`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["array_bytes", "backend_device", "forget_run", "shared_for_run"]

T = TypeVar("T")

_ENTRIES: OrderedDict[tuple[Any, ...], tuple[Any, Callable[[Any], int] | None]] = OrderedDict()
_LOCK = threading.Lock()
_BUILDING: dict[tuple[Any, ...], threading.Lock] = {}
MAX_ENTRIES = 8
MAX_BYTES = 64 * 2**20


def shared_for_run(
    key: tuple[Any, ...], build: Callable[[], T], nbytes: Callable[[T], int] | None = None
) -> T:
    """The value cached under ``key``, or ``build()``'s, kept for the run's next partition.

    Parameters
    ----------
    key : tuple
        Starts with the run key (``meta.run_key``); add what else the value depends on that
        may differ between the partitions of one run in one process (the frame shape, the
        device of a GPU backend: see :func:`backend_device`).
    build : callable
        Makes the value, once: partitions that ask for the same key meanwhile wait for it.
    nbytes : callable, optional
        The value's size in bytes (default: none to speak of), asked each time the cap is
        checked, for values that grow as they are used. The values of other runs go, least
        recently used first, once there are more than ``MAX_ENTRIES`` entries or theirs hold
        more than ``MAX_BYTES``; those of ``key``'s run stay, whatever their size, until
        another run stores one or :func:`forget_run`.

    Returns
    -------
    object
        Shared between threads: the caller must treat it as read-only.
    """
    with _LOCK:
        found = _ENTRIES.get(key)
        if found is not None:
            _ENTRIES.move_to_end(key)
            return found[0]  # type: ignore[no-any-return]
        building = _BUILDING.setdefault(key, threading.Lock())
    # One builder per key: partitions starting together wait for it instead of building too.
    with building:
        with _LOCK:
            found = _ENTRIES.get(key)
        if found is not None:
            return found[0]  # type: ignore[no-any-return]
        try:
            value = build()
            with _LOCK:
                _ENTRIES[key] = (value, nbytes)
                _trim(key[0])
        finally:
            with _LOCK:
                _BUILDING.pop(key, None)
    return value


def _size(value: Any, nbytes: Callable[[Any], int] | None) -> int:
    return 0 if nbytes is None else int(nbytes(value))


def _trim(run: Any) -> None:
    """Drop the least recently used values of runs other than ``run`` until the entries are
    at most ``MAX_ENTRIES`` and theirs hold at most ``MAX_BYTES`` (``_LOCK`` held)."""
    others = [key for key in _ENTRIES if key[0] != run]  # least recently used first
    total = sum(_size(*_ENTRIES[key]) for key in others)
    for key in others:
        if len(_ENTRIES) <= MAX_ENTRIES and total <= MAX_BYTES:
            return
        total -= _size(*_ENTRIES.pop(key))
    while len(_ENTRIES) > MAX_ENTRIES:  # one run with that many values: its oldest
        _ENTRIES.popitem(last=False)


def forget_run(run_id: Any) -> None:
    """Drop the values of run ``run_id`` (the first element of its keys): the run is over,
    no partition of it will ask again."""
    with _LOCK:
        for key in [key for key in _ENTRIES if key[0] == run_id]:
            del _ENTRIES[key]


def array_bytes(value: Any, depth: int = 4) -> int:
    """Bytes of the arrays ``value`` holds: itself, or in its tuples, lists, dicts and
    attributes, ``depth`` levels down (a size for :func:`shared_for_run`)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if depth == 0 or value is None or isinstance(value, (str, bytes, int, float)):
        return 0
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, (tuple, list)):
        items = value
    else:
        names = list(getattr(value, "__dict__", {}))
        for cls in type(value).__mro__:
            names += [n for n in getattr(cls, "__slots__", ()) if n not in names]
        items = [getattr(value, n, None) for n in names]
    return sum(array_bytes(item, depth - 1) for item in items)


def backend_device(meta: Any) -> int | None:
    """The CUDA device a GPU backend's arrays are made on in this thread (None on the CPU):
    with one thread per GPU, each device needs its own copy of what lives on it."""
    if meta.device_class != "cuda":
        return None
    return int(meta.xp.cuda.runtime.getDevice())


def clear() -> None:
    """Forget every entry (tests)."""
    with _LOCK:
        _ENTRIES.clear()
        _BUILDING.clear()
