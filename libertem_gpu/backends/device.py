"""Finding CUDA devices through CuPy, when a run is planned (never at package import).

Every probe is guarded: CuPy may be missing, installed without a driver, or broken (the import
works and the first CUDA call fails). All of these end in :class:`DeviceInfo` with
``available=False`` and a reason, never in an exception.
"""

from __future__ import annotations

import importlib
import logging
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from libertem_gpu.errors import BackendUnavailableError

log = logging.getLogger(__name__)

__all__ = ["DeviceInfo", "GPUDevice", "clear_cache", "import_cupy", "probe", "require_cupy"]


@dataclass(frozen=True)
class GPUDevice:
    """One CUDA device as CuPy reports it.

    Attributes
    ----------
    index : int
        CUDA device ordinal.
    name : str
        Name as CUDA reports it (e.g. ``"NVIDIA H100 80GB HBM3"``).
    compute_capability : tuple of int
        ``(major, minor)``.
    total_bytes, free_bytes : int
        Device memory, total and free when probed.
    """

    index: int
    name: str
    compute_capability: tuple[int, int]
    total_bytes: int
    free_bytes: int


@dataclass(frozen=True)
class DeviceInfo:
    """The result of probing for CUDA devices.

    Attributes
    ----------
    available : bool
        Whether CuPy can run kernels on at least one device.
    reason : str
        Why not, where ``available`` is False (empty otherwise).
    devices : tuple of GPUDevice
        The devices found.
    cupy_version : str or None
        CuPy's version, where it imports.
    """

    available: bool
    reason: str = ""
    devices: tuple[GPUDevice, ...] = field(default_factory=tuple)
    cupy_version: str | None = None


_lock = threading.Lock()
_cached: DeviceInfo | None = None


def import_cupy() -> ModuleType:
    """Import CuPy; raises :class:`ImportError` (or whatever a broken install raises)."""
    return importlib.import_module("cupy")


def _probe_uncached() -> DeviceInfo:
    try:
        cupy = import_cupy()
    except ImportError as e:
        return DeviceInfo(False, f"CuPy is not installed ({e}); install libertem_gpu[gpu]")
    except Exception as e:  # a broken install can raise anything at import
        return DeviceInfo(False, f"CuPy failed to import: {e!r}")
    version = str(getattr(cupy, "__version__", "?"))
    try:
        if not cupy.cuda.is_available():
            return DeviceInfo(
                False, "CuPy found no usable CUDA device (no GPU, or no driver)", (), version
            )
        count = int(cupy.cuda.runtime.getDeviceCount())
        devices = []
        for index in range(count):
            props = cupy.cuda.runtime.getDeviceProperties(index)
            with cupy.cuda.Device(index):
                free, total = cupy.cuda.runtime.memGetInfo()
            name = props["name"]
            devices.append(
                GPUDevice(
                    index=index,
                    name=name.decode() if isinstance(name, bytes) else str(name),
                    compute_capability=(int(props["major"]), int(props["minor"])),
                    total_bytes=int(total),
                    free_bytes=int(free),
                )
            )
        # The first real CUDA work: a broken toolkit (missing NVRTC, mismatched driver) fails
        # here rather than in the middle of a run.
        probe_sum = cupy.arange(4, dtype=cupy.float64).sum()
        if float(probe_sum) != 6.0:
            return DeviceInfo(False, "CuPy computed a wrong test sum", tuple(devices), version)
    except Exception as e:
        return DeviceInfo(False, f"CuPy is installed but CUDA failed: {e!r}", (), version)
    return DeviceInfo(True, "", tuple(devices), version)


def probe(refresh: bool = False) -> DeviceInfo:
    """Probe for CUDA devices (cached after the first call).

    Parameters
    ----------
    refresh : bool
        Probe again instead of returning the cached answer.

    Returns
    -------
    DeviceInfo
        Never raises.
    """
    global _cached
    with _lock:
        if _cached is None or refresh:
            _cached = _probe_uncached()
            if not _cached.available:
                log.debug("no CUDA device: %s", _cached.reason)
        return _cached


def clear_cache() -> None:
    """Forget the cached probe (tests; a process that gained a device)."""
    global _cached
    with _lock:
        _cached = None


def require_cupy() -> Any:
    """CuPy, where a device is usable; otherwise :class:`BackendUnavailableError` with the
    reason."""
    info = probe()
    if not info.available:
        raise BackendUnavailableError(f"the cupy backend cannot run here: {info.reason}")
    return import_cupy()


def check_devices(devices: Any) -> tuple[int, ...] | None:
    """Validate a ``Context(devices=...)`` argument against the probed devices.

    Parameters
    ----------
    devices : None, int or sequence of int
        CUDA device ordinals to use; None for all.

    Returns
    -------
    tuple of int or None

    Raises
    ------
    BackendUnavailableError
        If a named device does not exist (or there is none).
    """
    if devices is None:
        return None
    wanted = (int(devices),) if isinstance(devices, int) else tuple(int(d) for d in devices)
    info = probe()
    found = {d.index for d in info.devices}
    missing = [d for d in wanted if d not in found]
    if missing or not wanted:
        raise BackendUnavailableError(
            f"devices={list(wanted)} were requested, but the CUDA devices here are "
            f"{sorted(found) or 'none'}" + ("" if info.available else f" ({info.reason})")
        )
    return wanted
