"""Benchmark cases for :mod:`run_analyses`: masks and sums that follow the beam (``shifts``) and
parallax imaging, on 256 x 256 uint16 frames.

The beam walks 3 pixels down and 5 right across the scan, rounded to whole pixels (about two
dozen distinct shifts on a 64 x 64 scan): a bright-field disk moved with it (ours against
LiberTEM 0.16's ``ApplyMasksUDF(shifts=...)``), the radial profile around the moving centre,
the descan-corrected sum, and a parallax image (2828 pixels within radius 30, upsampled
twice).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from run_analyses import AnalysisCase, close

SIG = (256, 256)
CENTRE = (127.5, 127.5)
BF_RADIUS = 30
PARALLAX = dict(shift_matrix=[[0.05, 0.01], [-0.01, 0.05]], center=CENTRE, radius=30.0)


def walk(nav: tuple[int, ...]) -> np.ndarray:
    """int64 ``(*nav, 2)``: 0 to 3 pixels down along the scan's rows, 0 to 5 right along its
    columns."""
    ny, nx = nav
    y, x = np.mgrid[:ny, :nx]
    return np.stack(
        [np.rint(3 * y / max(ny - 1, 1)), np.rint(5 * x / max(nx - 1, 1))], axis=-1
    ).astype(np.int64)


def _disk() -> np.ndarray:
    y, x = np.mgrid[: SIG[0], : SIG[1]]
    return (np.hypot(y - CENTRE[0], x - CENTRE[1]) <= BF_RADIUS).astype(np.float64)


def _moved(image: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``image`` moved by ``shift`` (pixels moved off it dropped)."""
    out = np.zeros_like(image)
    (dy, dx), (ny, nx) = shift, image.shape
    out[max(dy, 0) : ny + min(dy, 0), max(dx, 0) : nx + min(dx, 0)] = image[
        max(-dy, 0) : ny - max(dy, 0), max(-dx, 0) : nx - max(dx, 0)
    ]
    return out


def _nav(ds: Any) -> tuple[int, int]:
    return tuple(int(n) for n in ds.shape.nav)  # type: ignore[return-value]


# --- a bright-field disk that follows the beam -----------------------------------------------


def masks_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import ApplyMasksUDF

    disk = _disk()
    udf = ApplyMasksUDF([lambda: disk], shifts=walk(_nav(ds)))
    return {"intensity": np.asarray(ctx.run_udf(dataset=ds, udf=udf)["intensity"].data)}


def masks_libertem(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem.udf.masks import ApplyMasksUDF

    disk = _disk()
    shifts = walk(tuple(ds.shape.nav)).reshape(-1)
    aux = ApplyMasksUDF.aux_data(shifts, kind="nav", extra_shape=(2,), dtype=np.int64)
    udf = ApplyMasksUDF(mask_factories=[lambda: disk], shifts=aux)
    return {"intensity": np.asarray(ctx.run_udf(dataset=ds, udf=udf)["intensity"].data)}


def masks_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    shifts = walk((1, len(frames))).reshape(-1, 2)
    disk = _disk()
    values = [np.sum(f * _moved(disk, s)) for f, s in zip(frames, shifts, strict=True)]
    return {"intensity": np.array(values)}


# --- the radial profile around the moving centre -------------------------------------------


def radial_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import RadialProfileUDF

    udf = RadialProfileUDF(center=CENTRE, n_bins=64, rad_max=128, shifts=walk(_nav(ds)))
    return {"intensity": np.asarray(ctx.run_udf(dataset=ds, udf=udf)["intensity"].data)}


def radial_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    shifts = walk((1, len(frames))).reshape(-1, 2)
    y, x = np.mgrid[: SIG[0], : SIG[1]]
    out = np.empty((len(frames), 64))
    for i, (frame, (dy, dx)) in enumerate(zip(frames, shifts, strict=True)):
        d = np.hypot(y - CENTRE[0] - dy, x - CENTRE[1] - dx)
        for b in range(64):
            ring = (d > 2 * b) & (d <= 2 * b + 2) | ((d == 0) if b == 0 else False)
            out[i, b] = frame[ring].mean() if ring.any() else np.nan
    return {"intensity": out}


# --- the descan-corrected sum --------------------------------------------------------------


def aligned_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import AlignedSumUDF

    res = ctx.run_udf(dataset=ds, udf=AlignedSumUDF(shifts=walk(_nav(ds))))
    return {"intensity": np.asarray(res["intensity"].data)}


def aligned_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    shifts = walk((1, len(frames))).reshape(-1, 2)
    return {"intensity": sum(_moved(f, -s) for f, s in zip(frames, shifts, strict=True))}


# --- parallax imaging ----------------------------------------------------------------------


def parallax_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import ParallaxUDF

    res = ctx.run_udf(dataset=ds, udf=ParallaxUDF(**PARALLAX, upsampling=2))
    return {"weight": np.asarray(res["weight"].data), "image": np.asarray(res["image"].data)}


def parallax_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Every pixel within the radius of each frame (scan position ``(0, j)``) placed at
    ``(p - A q) * 2`` by bilinear weights, written out pixel by pixel."""
    a = np.asarray(PARALLAX["shift_matrix"])
    shape = (2, 2 * len(frames))
    total, weight = np.zeros(shape), np.zeros(shape)
    ys, xs = np.nonzero(_disk())
    for j, frame in enumerate(frames):
        for y, x in zip(ys, xs, strict=True):
            t = (np.array([0.0, j]) - a @ np.array([y - CENTRE[0], x - CENTRE[1]])) * 2
            y0, x0 = int(np.floor(t[0])), int(np.floor(t[1]))
            for yy, wy in ((y0, 1 - (t[0] - y0)), (y0 + 1, t[0] - y0)):
                for xx, wx in ((x0, 1 - (t[1] - x0)), (x0 + 1, t[1] - x0)):
                    if 0 <= yy < shape[0] and 0 <= xx < shape[1]:
                        total[yy, xx] += wy * wx * frame[y, x]
                        weight[yy, xx] += wy * wx
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"weight": weight, "image": np.where(weight > 0, total / weight, np.nan)}


CASES = [
    AnalysisCase("masks_descan", masks_ours, masks_libertem, close(1e-6), masks_reference, SIG),
    AnalysisCase("radial_descan", radial_ours, None, close(), radial_reference, SIG),
    AnalysisCase("aligned_sum", aligned_ours, None, close(), aligned_reference, SIG),
    AnalysisCase("parallax", parallax_ours, None, close(), parallax_reference, SIG),
]
