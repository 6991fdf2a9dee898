"""Turning the demo's results into arrays and images on disk."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from libertem_gpu.outputs import atomic_path


def result_arrays(results: Any) -> dict[str, Any]:
    """Flatten the three UDFs' results into named arrays."""
    sum_res, masks_res, com_res = results
    intensity = np.asarray(masks_res["intensity"].data)
    arrays: dict[str, Any] = {
        "sum": np.asarray(sum_res["intensity"].data),
        "bright_field": intensity[..., 0],
        "annular_dark_field": intensity[..., 1],
    }
    for name in ("field_y", "field_x", "magnitude", "divergence", "curl"):
        if name in com_res:
            arrays[f"com_{name}"] = np.asarray(com_res[name].data)
    return arrays


def save_outputs(arrays: dict[str, Any], out_dir: str) -> tuple[list[str], list[str]]:
    """Write NPZ, HDF5 (if h5py) and PNGs (if pillow); return the files and notes."""
    files = []
    notes = []
    npz = os.path.join(out_dir, "results.npz")
    with atomic_path(npz) as tmp:
        np.savez(tmp, **arrays)
    files.append(npz)
    try:
        import h5py
    except ImportError:
        notes.append("h5py is not installed: skipped results.h5 (pip install h5py)")
    else:
        h5 = os.path.join(out_dir, "results.h5")
        with atomic_path(h5) as tmp, h5py.File(tmp, "w") as f:
            for name, value in arrays.items():
                f.create_dataset(name, data=value)
        files.append(h5)
    try:
        from PIL import Image
    except ImportError:
        notes.append("pillow is not installed: skipped the PNG images (pip install pillow)")
        return files, notes
    images = {name: _to_uint8(value, log=name == "sum") for name, value in arrays.items()}
    if "com_field_y" in arrays and "com_field_x" in arrays:
        images["com_field"] = _field_rgb(arrays["com_field_y"], arrays["com_field_x"])
    for name, image in images.items():
        path = os.path.join(out_dir, f"{name}.png")
        with atomic_path(path) as tmp:
            Image.fromarray(_upscale(image)).save(tmp)
        files.append(path)
    return files, notes


def _to_uint8(image: np.ndarray, log: bool = False) -> np.ndarray:
    """Grey levels from the 0.5 to 99.5 percentile (NaN black); ``log`` for diffraction."""
    image = np.asarray(image, dtype=np.float64)
    if log:
        image = np.log1p(np.clip(image, 0, None))
    finite = np.isfinite(image)
    if not finite.any():
        return np.zeros(image.shape, dtype=np.uint8)
    lo, hi = np.percentile(image[finite], [0.5, 99.5])
    scaled = (np.where(finite, image, lo) - lo) / (hi - lo if hi > lo else 1.0)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def _field_rgb(fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """A vector field as colour: direction as hue, length as brightness."""
    fy = np.nan_to_num(np.asarray(fy, dtype=np.float64))
    fx = np.nan_to_num(np.asarray(fx, dtype=np.float64))
    mag = np.hypot(fy, fx)
    top = np.percentile(mag, 99.5) or 1.0
    value = np.clip(mag / top, 0, 1)
    hue = (np.arctan2(fy, fx) / (2 * np.pi)) % 1.0
    # HSV to RGB with full saturation.
    k = (hue[..., None] * 6 + np.array([5.0, 3.0, 1.0])) % 6
    rgb = value[..., None] * (1 - np.clip(np.minimum(k, 4 - k), 0, 1))
    return (rgb * 255).astype(np.uint8)


def _upscale(image: np.ndarray, minimum: int = 256) -> np.ndarray:
    """Repeat pixels so that small scans are visible (nearest neighbour)."""
    factor = max(1, minimum // max(1, min(image.shape[:2])))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
