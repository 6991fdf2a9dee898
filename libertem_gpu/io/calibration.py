"""Physical calibration of a data set (``DataSet.calibration``): scan step, detector pixel size,
camera length, where the file's format records them.

What each format gives (see its ``_calibration``; anything not recorded is ``None``):

- block files (``.blo``): scan step in nm, diffraction pixel size in cm, camera length in mm;
- TIA series (``.ser``): scan step and units of each scan dimension;
- Digital Micrograph (``.dm3``/``.dm4``): each dimension's scale, origin and units
  (``ImageData/Calibrations``; dimensions without units are uncalibrated) and the STEM camera
  length in mm (``ImageTags/Microscope Info``);
- MRC (``.mrc``): frame pixel size in nm from the header's cell (``cella`` / ``mx``, Å; 0 or
  exactly 1 Å counts as unknown); with DE's ``_info.txt``, ``Specimen Pixel Size`` in nm as the
  scan step of a raster scan (else as the frames' pixel size) and the camera length in mm;
- Merlin (``.mib``): the Medipix3 pixel pitch, 55 µm, on the frame axes (no scan step recorded);
- TVIPS (``.tvips``): the series header's pixel size on the frame axes, in nm where the first
  image header's mode says image (1), in 1/nm where it says diffraction (2); unknown without a
  mode (version 1 headers).

Raw, NumPy, HDF5, Zarr, EMPAD, K2IS, FRMS6, SEQ and Arina files carry none that we read: their
calibration is empty.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["AxisCalibration", "Calibration"]


@dataclasses.dataclass(frozen=True)
class AxisCalibration:
    """One axis: coordinate of index ``i`` is ``offset + i * scale``, in ``units``.

    Attributes
    ----------
    scale : float
        Step between neighbouring positions (pixels).
    offset : float
        Coordinate of index 0.
    units : str
        Unit of ``scale`` and ``offset`` (e.g. ``"nm"``, ``"cm"``, ``"1/nm"``); ``""`` unknown.
    """

    scale: float
    offset: float = 0.0
    units: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"scale": self.scale, "offset": self.offset, "units": self.units}


@dataclasses.dataclass(frozen=True)
class Calibration:
    """What a file says about the physical size of its scan and detector.

    Attributes
    ----------
    nav : tuple of AxisCalibration or None
        One entry per scan dimension (``None``: not recorded), in ``nav_shape`` order.
    sig : tuple of AxisCalibration or None
        One entry per frame dimension, in ``sig_shape`` order.
    camera_length : float or None
        Camera length, in ``camera_length_units``.
    camera_length_units : str
    source : str
        Where it came from (e.g. ``"blo header"``); ``""`` when nothing was recorded.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context
    >>> ds = Context("inline").load("memory", data=np.zeros((2, 3, 4, 5)))
    >>> ds.calibration.is_empty
    True
    """

    nav: tuple[AxisCalibration | None, ...] = ()
    sig: tuple[AxisCalibration | None, ...] = ()
    camera_length: float | None = None
    camera_length_units: str = ""
    source: str = ""

    @property
    def is_empty(self) -> bool:
        """True if the file recorded nothing."""
        return all(a is None for a in (*self.nav, *self.sig)) and self.camera_length is None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (axes as dicts or ``None``)."""
        return {
            "nav": [None if a is None else a.to_dict() for a in self.nav],
            "sig": [None if a is None else a.to_dict() for a in self.sig],
            "camera_length": self.camera_length,
            "camera_length_units": self.camera_length_units,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Calibration:
        """The inverse of :meth:`to_dict` (``None`` or ``{}``: empty)."""
        if not d:
            return cls()

        def axes(items: Any) -> tuple[AxisCalibration | None, ...]:
            return tuple(None if a is None else AxisCalibration(**a) for a in items or ())

        return cls(
            nav=axes(d.get("nav")),
            sig=axes(d.get("sig")),
            camera_length=d.get("camera_length"),
            camera_length_units=d.get("camera_length_units", ""),
            source=d.get("source", ""),
        )


def axis(scale: Any, units: str, offset: Any = 0.0) -> AxisCalibration | None:
    """An :class:`AxisCalibration`, or None where ``scale`` is missing, zero or not finite
    (files write 0 for "not set")."""
    try:
        s, o = float(scale), float(offset)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(s) or s == 0 or not math.isfinite(o):
        return None
    return AxisCalibration(scale=s, offset=o, units=units)


def fit(items: tuple[AxisCalibration | None, ...], ndim: int) -> tuple[AxisCalibration | None, ...]:
    """``items`` if there is one per dimension, else all None (a scan the user reshaped
    (``nav_shape=``) no longer matches the file's axes)."""
    if len(items) == ndim:
        return items
    return (None,) * ndim
