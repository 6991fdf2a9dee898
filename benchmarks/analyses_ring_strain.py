"""Benchmark case for :mod:`run_analyses`: strain from a diffraction ring (``RingStrainUDF``) on
256 x 256 uint16 frames of a simulated amorphous film.

Each frame shows a central beam and a ring of radius 80 pixels (Gaussian, sigma 2.5), drawn for
a random real-space strain of up to 1 % per component, as Poisson counts (about 60 at the
ring's peak over a background of 8). The strain is measured in 36 sectors over the band 60-100
pixels. LiberTEM 0.16 has no strain mapping of rings; the reference bins the first frames with
NumPy (``np.bincount`` over the same bins), and runs the same radius and fit steps on them.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from run_analyses import AnalysisCase

SIG = (256, 256)
CENTER = ((SIG[0] - 1) / 2, (SIG[1] - 1) / 2)
PARAMS = dict(rad_min=60.0, rad_max=100.0, center=CENTER, reference_radius=80.0)


def write_scan(path: str, nav: tuple[int, int], sig: tuple[int, int], seed: int) -> int:
    """The film (module docstring), 64 frames at a time."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: sig[0], : sig[1]]
    qx, qy = x - CENTER[1], y - CENTER[0]
    beam = 3000 * np.exp(-(qx**2 + qy**2) / 30) + 8
    n = nav[0] * nav[1]
    with open(path, "wb") as f:
        for start in range(0, n, 64):
            count = min(64, n - start)
            strain = rng.uniform(-0.01, 0.01, (count, 3))
            out = np.empty((count, *sig), np.uint16)
            for i, (exx, eyy, exy) in enumerate(strain):
                r = np.hypot((1 + exx) * qx + exy * qy, exy * qx + (1 + eyy) * qy)
                out[i] = rng.poisson(beam + 60 * np.exp(-((r - 80) ** 2) / 12.5))
            f.write(out.tobytes())
    return os.path.getsize(path)


def strain_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import RingStrainUDF

    res = ctx.run_udf(dataset=ds, udf=RingStrainUDF(**PARAMS))
    return {"coefficients": np.asarray(res["coefficients"].data)}


def strain_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    """Polar means by ``np.bincount`` over the UDF's bins, then its radius and fit steps."""
    from libertem_gpu.udf.radial_profile import polar_bins
    from libertem_gpu.udf.ring_strain import fit_harmonics, ring_radii

    bins = polar_bins(SIG, CENTER, 40, 100.0, 60.0, 36)
    inside = bins.labels >= 0
    label = bins.labels[inside]
    count = np.maximum(bins.pixels.reshape(-1), 1)
    y, x = np.mgrid[: SIG[0], : SIG[1]]
    d = np.hypot(y - CENTER[0], x - CENTER[1]).reshape(-1)[inside]
    a = np.arctan2(y - CENTER[0], x - CENTER[1]).reshape(-1)[inside]
    radius = (np.bincount(label, d, minlength=bins.count) / count).reshape(40, 36).T
    sector = label % 36
    angle = np.arctan2(
        np.bincount(sector, np.sin(a), minlength=36), np.bincount(sector, np.cos(a), minlength=36)
    )
    flat = frames.reshape(len(frames), -1)[:, inside]
    means = np.stack([np.bincount(label, f, minlength=bins.count) / count for f in flat])
    profiles = means.reshape(len(frames), 40, 36).transpose(0, 2, 1)
    coef, _ = fit_harmonics(ring_radii(profiles, radius), angle)
    return {"coefficients": coef}


def _unused(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    raise AssertionError("no LiberTEM counterpart to compare with")


CASES = [
    AnalysisCase("ring_strain", strain_ours, None, _unused, strain_reference, SIG, write=write_scan)
]
