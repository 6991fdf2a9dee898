"""Sizes in bytes as people write them (``64MiB``, ``1.5GB``), for the command line and the
demo."""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str | int) -> int:
    """Parse a byte size such as ``"1GiB"``, ``"64MiB"``, ``"500MB"`` or ``"4096"``.

    Raises
    ------
    ValueError
        If ``text`` is not a positive size with a known unit.
    """
    if isinstance(text, int):
        value, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(
                f"cannot parse size {text!r}: expected a number with an optional unit "
                f"(B, kB, MB, GB, KiB, MiB, GiB), e.g. '1GiB' or '64MiB'"
            )
        value, unit = float(match.group(1)), match.group(2).lower()
    size = int(value * _UNITS[unit])
    if size <= 0:
        raise ValueError(f"size must be positive, got {text!r}")
    return size


def format_size(nbytes: float) -> str:
    """``nbytes`` in binary units, e.g. ``"1.0 GiB"``."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.1f} {unit}"
    return f"{int(nbytes)} B"
