"""Writes EMPAD acquisitions as the EMPAD software does: an ``.xml`` naming the ``.raw`` file,
and 130x128 frames of 4-byte pixels whose last two rows are metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_empad(
    directory,
    data: np.ndarray,
    *,
    series: bool = False,
    dtype_tag: str | None = None,
    xml_nav: tuple[int, ...] | None = None,
    write_raw: bool = True,
    prefix: str = "",
) -> str:
    """Write ``data`` (``nav + (128, 128)``, float32 or uint32); return the ``.xml`` path."""
    directory = Path(directory)
    nav = xml_nav or data.shape[:-2]
    name = f"scan_x{nav[-1]}_y{nav[0] if len(nav) > 1 else 1}.raw"
    frames = data.reshape(-1, 128, 128)
    if write_raw:
        with open(directory / name, "wb") as f:
            for i, frame in enumerate(frames):
                full = np.empty((130, 128), dtype=frames.dtype)
                full[:128] = frame
                full[128:] = i  # metadata rows
                f.write(full.astype(full.dtype.newbyteorder("<")).tobytes())
    if series:
        body = f"<type>series</type><count>{nav[0]}</count>"
    else:
        body = (
            "<type>scan</type>"
            '<scan_parameters mode="search"><scan_resolution_x>2</scan_resolution_x>'
            "<scan_resolution_y>2</scan_resolution_y></scan_parameters>"
            f'<scan_parameters mode="acquire"><scan_resolution_x>{nav[-1]}</scan_resolution_x>'
            f"<scan_resolution_y>{nav[0]}</scan_resolution_y></scan_parameters>"
        )
    if dtype_tag:
        body += f"<data_type>{dtype_tag}</data_type>"
    xml = f'<?xml version="1.0"?><root><raw_file filename="{prefix}{name}"/>{body}</root>'
    path = directory / "acquisition.xml"
    path.write_text(xml)
    return str(path)
