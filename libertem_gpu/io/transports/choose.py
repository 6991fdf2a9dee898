"""Which transport reads a data set, from the ``io_backend`` setting and what is available."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from libertem_gpu.errors import BackendError
from libertem_gpu.io.layout import FrameLayout
from libertem_gpu.io.transports.base import Transport, log_once
from libertem_gpu.io.transports.direct import DirectTransport
from libertem_gpu.io.transports.kvikio import KvikioTransport, KvikioUnusable, kvikio_status
from libertem_gpu.io.transports.pread import PreadTransport

__all__ = ["IO_BACKENDS", "TransportChoice", "choose_transport"]

#: Values of the ``io_backend`` setting.
IO_BACKENDS = ("auto", "pread", "direct", "kvikio")


@dataclass
class TransportChoice:
    """The transports of one partition task on the GPU path.

    Attributes
    ----------
    device : KvikioTransport or None
        Fills device buffers straight from the files, or None (then all goes through ``host``).
    host : Transport
        Fills host (pinned) buffers: the staging path, and the fallback after ``device`` fails.
    host_path : str
        Name of the staging path for logs and tests: ``"direct"`` or ``"pinned"``.
    """

    device: KvikioTransport | None
    host: Transport
    host_path: str

    def close(self) -> None:
        """Close the files both transports opened."""
        if self.device is not None:
            self.device.close()
        self.host.close()


def choose_transport(io_backend: str, layout: FrameLayout | None, source: str) -> TransportChoice:
    """Pick the transports for reading a data set into device memory.

    Parameters
    ----------
    io_backend : str
        The setting: ``"kvikio"`` (kvikio, else pinned ``pread`` with a warning), ``"auto"``
        (kvikio where GPUDirect Storage is active, else pinned ``pread``), ``"pread"``, or
        ``"direct"`` (pinned ``O_DIRECT`` reads).
    layout : FrameLayout or None
        Where the frames lie, if they are stored as handed out (no decoding): only then can
        kvikio copy them to the device as they are.
    source : str
        What is read, for messages.

    Raises
    ------
    BackendError
        If ``io_backend`` is not one of :data:`IO_BACKENDS`.
    """
    if io_backend not in IO_BACKENDS:
        raise BackendError(f"unknown io_backend {io_backend!r}; valid: {', '.join(IO_BACKENDS)}")
    direct = io_backend == "direct"
    host: Transport = DirectTransport() if direct else PreadTransport()
    choice = TransportChoice(None, host, "direct" if direct else "pinned")
    if io_backend == "auto":
        ok, reason, compat = kvikio_status()
        if not ok or compat is not False:
            # Without GPUDirect Storage, kvikio's compat mode is a POSIX read plus a copy, like
            # the pinned pipeline, which also overlaps: prefer that.
            why = reason or (
                "kvikio runs in compat mode (no GPUDirect Storage)"
                if compat
                else "kvikio does not say whether GPUDirect Storage is active"
            )
            log_once("auto-pinned", "io_backend=auto: pinned pipeline (%s)", why)
            return choice
    if io_backend in ("auto", "kvikio"):
        try:
            if layout is None:
                raise KvikioUnusable("its frames are decoded, not stored as they are processed")
            if not layout.packed:
                raise KvikioUnusable("frames have per-frame headers (not one contiguous run)")
            choice.device = KvikioTransport()
        except KvikioUnusable as e:
            if io_backend == "kvikio":
                warnings.warn(
                    f"io_backend='kvikio' cannot read {source}: {e}; falling back to the "
                    "pinned pread pipeline",
                    RuntimeWarning,
                    stacklevel=3,
                )
            return choice
        log_once("kvikio", "io_backend=%s: reading with kvikio", io_backend)
    return choice
