"""Benchmark case for :mod:`run_analyses`: template matching (``TemplateMatchUDF``) on 256 x 256
uint16 frames of simulated spot patterns.

The bank holds 256 templates, each the reflections of a random 2-D lattice (spacings 14-24
pixels, 60-120 degrees between the axes) out to a radius of 100 pixels, intensities falling
with the radius. Each frame shows one template of the bank, turned by a random angle, as
Gaussian spots (sigma 1.5 pixels) on a central beam, as Poisson counts. The matching runs from
a radius of 8 pixels (outside the central beam) to 102, 180 sectors. LiberTEM 0.16 has no
template matching; the NumPy reference samples the first frames by scipy.ndimage's bilinear
interpolation and correlates them at every rotation from the definition.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from run_analyses import AnalysisCase

SIG = (256, 256)
N_TEMPLATES, REACH, RAD_MIN = 256, 100.0, 8.0


def bank(seed: int = 5) -> list[np.ndarray]:
    """The templates: lattice reflections ``(dy, dx, intensity)`` within ``REACH``."""
    rng = np.random.default_rng(seed)
    out = []
    ij = np.array([(i, j) for i in range(-8, 9) for j in range(-8, 9) if (i, j) != (0, 0)])
    for _ in range(N_TEMPLATES):
        a, b = rng.uniform(14, 24, 2)
        gamma = rng.uniform(math.pi / 3, 2 * math.pi / 3)
        turn = rng.uniform(0, math.pi)
        basis = np.array([[a * math.cos(turn), a * math.sin(turn)]])
        basis = np.vstack([basis, [b * math.cos(turn + gamma), b * math.sin(turn + gamma)]])
        xy = ij @ basis
        r = np.hypot(xy[:, 0], xy[:, 1])
        keep = r <= REACH
        value = np.exp(-r[keep] / 60) * rng.uniform(0.5, 1.0, keep.sum())
        out.append(np.column_stack([xy[keep, 1], xy[keep, 0], value]))
    return out


BANK = bank()


def render(spots: np.ndarray, angle: float, rng: np.random.Generator) -> np.ndarray:
    """One frame: the spots turned by ``angle`` on a central beam, as counts."""
    c, s = math.cos(angle), math.sin(angle)
    cy, cx = (SIG[0] - 1) / 2, (SIG[1] - 1) / 2
    yy, xx = np.mgrid[: SIG[0], : SIG[1]]
    lam = 3.0 + 2000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 18)
    for dy, dx, value in spots:
        py, px = cy + s * dx + c * dy, cx + c * dx - s * dy
        y0, x0 = round(py), round(px)
        ys, xs = slice(max(y0 - 5, 0), y0 + 6), slice(max(x0 - 5, 0), x0 + 6)
        lam[ys, xs] += (
            150 * value * np.exp(-((yy[ys, xs] - py) ** 2 + (xx[ys, xs] - px) ** 2) / (2 * 1.5**2))
        )
    return rng.poisson(lam)


def write_scan(path: str, nav: tuple[int, int], sig: tuple[int, int], seed: int) -> int:
    """The scan (module docstring), a scan row at a time."""
    assert tuple(sig) == SIG
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        for _ in range(nav[0]):
            which = rng.integers(0, N_TEMPLATES, nav[1])
            angles = rng.uniform(0, 2 * math.pi, nav[1])
            row = np.stack([render(BANK[k], a, rng) for k, a in zip(which, angles, strict=True)])
            f.write(row.astype(np.uint16).tobytes())
    return os.path.getsize(path)


def match_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import TemplateMatchUDF

    udf = TemplateMatchUDF(BANK, rad_min=RAD_MIN, rad_max=REACH + 2)
    res = ctx.run_udf(dataset=ds, udf=udf)
    return {k: np.asarray(res[k].data) for k in ("template", "score")}


def match_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Bilinear samples (scipy.ndimage) on the grid, every rotation from the definition."""
    from scipy.ndimage import map_coordinates

    from libertem_gpu.kernels.template_match import reference
    from libertem_gpu.udf.template_match import polar_grid, polar_templates

    grid = polar_grid(RAD_MIN, REACH + 2, None, 180, 0.0)
    r, a = np.meshgrid(grid.radius, grid.angle, indexing="ij")
    cy, cx = (SIG[0] - 1) / 2, (SIG[1] - 1) / 2
    coords = [cy + r * np.sin(a), cx + r * np.cos(a)]
    polar = np.stack([map_coordinates(f, coords, order=1) for f in frames])
    score, _ = reference(polar, polar_templates(BANK, grid))
    return {"template": np.argmax(score, axis=1), "score": score.max(axis=1)}


def _unused(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    raise AssertionError("no LiberTEM counterpart to compare with")


CASES = [
    AnalysisCase(
        "template_match", match_ours, None, _unused, match_reference, SIG, write=write_scan
    )
]
