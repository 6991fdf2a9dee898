"""Results as image files: PNG (8-bit, scaled, for viewing) and TIFF (float32, the values, for
analysis), one pair per 2-D image (needs pillow).

A result with dimensions beyond the image's (e.g. the two components of a CoM field, the bins of
a radial Fourier analysis) gives one image per index (``NAME_0``, ``NAME_1``, ... up to
:data:`MAX_IMAGES_PER_RESULT`); complex values give ``NAME_abs`` and ``NAME_phase``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from libertem_gpu.errors import LiberTEMGPUError
from libertem_gpu.outputs import atomic_path

__all__ = ["MAX_IMAGES_PER_RESULT", "save_images"]

#: A result with more images than this along its extra dimensions is skipped (with a note).
MAX_IMAGES_PER_RESULT = 16


def _planes(name: str, data: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The 2-D images of ``data``: its first two dims, for each index of the rest."""
    if data.ndim < 2:
        return []
    extra = data.shape[2:]
    if not extra:
        return [(name, data)]
    planes = []
    for index in itertools.product(*(range(n) for n in extra)):
        label = "_".join(str(i) for i in index)
        where: tuple[Any, ...] = (slice(None), slice(None), *index)
        planes.append((f"{name}_{label}", data[where]))
    return planes


def to_uint8(image: np.ndarray, log: bool = False) -> np.ndarray:
    """Grey levels from the 0.5 to 99.5 percentile (NaN black); ``log`` for diffraction."""
    from libertem_gpu.demo.images import _to_uint8

    return _to_uint8(image, log=log)


def save_images(
    folder: str | os.PathLike[str],
    arrays: Mapping[str, Any],
    *,
    log: Mapping[str, bool] | None = None,
) -> tuple[list[str], list[str]]:
    """Write each 2-D image of ``arrays`` as ``NAME.png`` and ``NAME.tif`` in ``folder``.

    Parameters
    ----------
    folder : path
        Created if missing.
    arrays : mapping of str to array
    log : mapping of str to bool, optional
        Names whose PNG shows ``log1p`` of the values (diffraction patterns).

    Returns
    -------
    files, notes : list of str
        Files written; results skipped and why.
    """
    try:
        from PIL import Image
    except ImportError:
        raise LiberTEMGPUError(
            "--images needs pillow, which is not installed: pip install pillow"
        ) from None
    from libertem_gpu.demo.images import _upscale

    out = os.fspath(folder)
    os.makedirs(out, exist_ok=True)
    files: list[str] = []
    notes: list[str] = []
    for name, value in arrays.items():
        data = np.asarray(value)
        if data.ndim < 2:
            continue
        if np.prod(data.shape[2:], dtype=np.int64) > MAX_IMAGES_PER_RESULT:
            notes.append(f"{name}: {data.shape} holds too many images; not written as images")
            continue
        for label, plane in _planes(name, data):
            parts = (
                [(f"{label}_abs", np.abs(plane)), (f"{label}_phase", np.angle(plane))]
                if np.iscomplexobj(plane)
                else [(label, plane)]
            )
            for part, values in parts:
                tif = os.path.join(out, f"{part}.tif")
                with atomic_path(tif) as tmp:
                    # float32 arrays become mode "F" images: TIFF keeps the values.
                    Image.fromarray(np.ascontiguousarray(values, dtype=np.float32)).save(
                        tmp, format="TIFF"
                    )
                png = os.path.join(out, f"{part}.png")
                grey = to_uint8(values, log=bool((log or {}).get(name)))
                with atomic_path(png) as tmp:
                    Image.fromarray(_upscale(grey)).save(tmp, format="PNG")
                files += [png, tif]
    return files, notes
