"""A stand-in ``cupy`` built on NumPy, for driving the CuPy backend's code on the CPU.

Device arrays are NumPy arrays that say which (fake) device they live on; work is done at once,
but streams keep a log of the events recorded on them and waited for, so that tests can check
the order a real GPU would need. ``fake_cupy(n_devices)`` makes one.
"""

from __future__ import annotations

import threading
import types

import numpy as np

__all__ = ["FakeDeviceArray", "dev", "fake_cupy"]

_current = threading.local()


def _current_device() -> int:
    return getattr(_current, "device", 0)


class FakeDeviceArray(np.ndarray):
    """A "device" array: NumPy memory that says it is on a CUDA device (the current device
    where it was made; views keep their base's)."""

    def __array_finalize__(self, obj):
        self._device_id = getattr(obj, "_device_id", _current_device())

    @property
    def __cuda_array_interface__(self):  # only its presence matters to the code under test
        return self.__array_interface__

    @property
    def device(self):
        return _Device(self._device_id)

    def set(self, src, stream=None):
        np.copyto(np.asarray(self), src)

    def get(self, out=None):
        if out is None:
            return np.array(self)
        np.copyto(out, self)
        return out


def dev(a) -> FakeDeviceArray:
    """``a`` as a fake device array on the current device."""
    return np.asarray(a).view(FakeDeviceArray)


class _Device:
    """``cupy.cuda.Device``: ``use()`` and ``with`` make it current in this thread."""

    def __init__(self, i=None):
        self.id = _current_device() if i is None else int(i)

    def use(self):
        _current.device = self.id

    def __enter__(self):
        self._prev = _current_device()
        self.use()
        return self

    def __exit__(self, *exc):
        _current.device = self._prev

    def __eq__(self, other):
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self):
        return self.id


class _Event:
    def __init__(self, stream=None):
        self.stream = stream
        self.device = _current_device()

    def synchronize(self):
        pass


class _Stream:
    """A stream that has already done its work; ``log`` lists ``("record" | "wait", event)``."""

    _count = 0

    def __init__(self, non_blocking=False, null=False):
        _Stream._count += 1
        self.ptr = 0 if null else _Stream._count
        self.device = _current_device()
        self.log: list[tuple[str, _Event]] = []

    def use(self):
        _current.stream = self
        return self

    def synchronize(self):
        pass

    def wait_event(self, e):
        self.log.append(("wait", e))

    def record(self, event=None):
        e = _Event(self)
        self.log.append(("record", e))
        return e

    @property
    def waited_for(self) -> list:
        """The streams whose events this stream waited for, in order."""
        return [e.stream for kind, e in self.log if kind == "wait"]


def fake_cupy(n_devices: int = 1) -> types.ModuleType:
    """A fresh stand-in for the ``cupy`` module with ``n_devices`` devices."""
    cp = types.ModuleType("cupy")
    cp.ndarray = FakeDeviceArray
    cp.uint8 = np.uint8
    cp.float64 = np.float64
    cp.empty = lambda shape, dtype=None: dev(np.empty(shape, dtype))
    cp.zeros = lambda shape, dtype=None: dev(np.zeros(shape, dtype))

    def asarray(a, dtype=None):
        # As CuPy: the array itself where it is on the current device, else a copy there.
        if isinstance(a, FakeDeviceArray) and a._device_id == _current_device():
            return a if dtype is None else a.astype(dtype)
        return dev(np.array(a, dtype))

    cp.asarray = asarray
    cp.ascontiguousarray = lambda a: dev(np.ascontiguousarray(a))
    cp.asnumpy = lambda a, stream=None: np.array(a)
    pool = types.SimpleNamespace(free_bytes=lambda: 0, free_all_blocks=lambda: None)
    cp.get_default_memory_pool = lambda: pool

    class Stream(_Stream):
        null = _Stream(null=True)

    default = Stream.null

    def get_current_stream():
        return getattr(_current, "stream", None) or default

    cp.cuda = types.SimpleNamespace(
        Stream=Stream,
        Event=_Event,
        get_current_stream=get_current_stream,
        Device=_Device,
        alloc_pinned_memory=lambda n: bytearray(n),
        memory=types.SimpleNamespace(OutOfMemoryError=MemoryError),
        runtime=types.SimpleNamespace(
            memGetInfo=lambda: (1 << 34, 1 << 35), getDeviceCount=lambda: n_devices
        ),
    )
    _current.device = 0
    _current.stream = None
    return cp
