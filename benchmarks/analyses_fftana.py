"""Benchmark cases for :mod:`run_analyses`: log-sum, FEM (and its variance profile),
azimuthal integration and crystallinity, ours against LiberTEM 0.16 with the same parameters
(where LiberTEM has the analysis), on 256 x 256 uint16 frames.

Parameters are what a session would use on such frames: FEM's ring over the amorphous halo
(radii 30 to 50 px around the centre), crystallinity's band of spatial frequencies 6 to 20
with the central beam (radius 16 px) blanked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from run_analyses import AnalysisCase, close

SIG = (256, 256)
CENTRE = (128, 128)
FEM = dict(center=CENTRE, rad_in=30, rad_out=50)
CRYSTALLINITY = dict(rad_in=6, rad_out=20, real_center=CENTRE, real_rad=16)
PROFILE = dict(center=CENTRE, n_bins=32, rad_max=120)
# Azimuthal integration: rings one pixel wide over the whole frame (182 rings), and a polar
# transform of 64 rings by 36 sectors of 10 degrees.
RADIAL = dict(center=CENTRE)
POLAR = dict(center=CENTRE, n_bins=64, rad_max=128, n_sectors=36)


def _plain(results: Any, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    return {k: np.asarray(results[k].data) for k in keys}


def _disk(cy: float, cx: float, r: float) -> np.ndarray:
    y, x = np.ogrid[: SIG[0], : SIG[1]]
    return (y - cy) ** 2.0 + (x - cx) ** 2.0 <= r * r


# --- log-sum --------------------------------------------------------------------------------


def logsum_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import LogsumUDF

    return _plain(ctx.run_udf(dataset=ds, udf=LogsumUDF()), ("logsum",))


def logsum_libertem(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem.udf.logsum import LogsumUDF

    return _plain(ctx.run_udf(dataset=ds, udf=LogsumUDF()), ("logsum",))


def logsum_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    mins = frames.min(axis=(1, 2), keepdims=True)
    return {"logsum": np.log(frames - mins + 1).sum(axis=0)}


# --- FEM ------------------------------------------------------------------------------------


def fem_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import FEMUDF

    return _plain(ctx.run_udf(dataset=ds, udf=FEMUDF(**FEM)), ("intensity",))


def fem_libertem(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem.udf.FEM import FEMUDF

    return _plain(ctx.run_udf(dataset=ds, udf=FEMUDF(**FEM)), ("intensity",))


def fem_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    c, ri, ro = FEM["center"], FEM["rad_in"], FEM["rad_out"]
    ring = _disk(*c, ro) & ~_disk(*c, ri)
    return {"intensity": frames[:, ring].std(axis=1)}


# --- FEM variance profile (ours only: LiberTEM has none) ------------------------------------


def profile_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import FEMProfileUDF

    res = ctx.run_udf(dataset=ds, udf=FEMProfileUDF(**PROFILE))
    return _plain(res, ("annular_mean", "normalized_variance"))


def profile_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    y, x = np.mgrid[: SIG[0], : SIG[1]]
    d = np.hypot(y - CENTRE[0], x - CENTRE[1])
    width = PROFILE["rad_max"] / PROFILE["n_bins"]
    means = []
    for b in range(PROFILE["n_bins"]):
        ring = (d > b * width) & (d <= (b + 1) * width) | ((d == 0) if b == 0 else False)
        means.append(frames[:, ring].mean(axis=1))
    i = np.stack(means, axis=1)
    return {"annular_mean": i, "normalized_variance": i.var(axis=0) / i.mean(axis=0) ** 2}


# --- azimuthal integration (ours only: LiberTEM has none) ----------------------------------


def radial_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import RadialProfileUDF

    return _plain(ctx.run_udf(dataset=ds, udf=RadialProfileUDF(**RADIAL)), ("intensity",))


def polar_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import RadialProfileUDF

    return _plain(ctx.run_udf(dataset=ds, udf=RadialProfileUDF(**POLAR)), ("intensity",))


def _bin_means(frames: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """Each frame's mean per label (labels < 0 left out), NaN for an empty label."""
    keep = labels >= 0
    pixels = np.bincount(labels[keep], minlength=count)
    sums = np.stack([np.bincount(labels[keep], f.reshape(-1)[keep], count) for f in frames])
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / pixels


def radial_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    y, x = np.mgrid[: SIG[0], : SIG[1]]
    d = np.hypot(y - CENTRE[0], x - CENTRE[1]).reshape(-1)
    rings = int(np.ceil(d.max()))
    labels = np.maximum(np.ceil(d).astype(np.int64) - 1, 0)  # (b, b + 1], 0 in the first
    return {"intensity": _bin_means(frames, labels, rings)}


def polar_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    y, x = np.mgrid[: SIG[0], : SIG[1]]
    dy, dx = (y - CENTRE[0]).reshape(-1), (x - CENTRE[1]).reshape(-1)
    d = np.hypot(dy, dx)
    n, s, w = POLAR["n_bins"], POLAR["n_sectors"], POLAR["rad_max"] / POLAR["n_bins"]
    ring = np.maximum(np.ceil(d / w).astype(np.int64) - 1, 0)
    sector = np.floor(np.mod(np.arctan2(dy, dx), 2 * np.pi) / (2 * np.pi / s)).astype(np.int64)
    labels = np.where(d <= POLAR["rad_max"], ring * s + np.minimum(sector, s - 1), -1)
    return {"intensity": _bin_means(frames, labels, n * s).reshape(len(frames), n, s)}


# --- crystallinity --------------------------------------------------------------------------


def crystallinity_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import CrystallinityUDF

    res = ctx.run_udf(dataset=ds, udf=CrystallinityUDF(**CRYSTALLINITY))
    return _plain(res, ("intensity",))


def crystallinity_libertem(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem.udf.crystallinity import CrystallinityUDF

    res = ctx.run_udf(dataset=ds, udf=CrystallinityUDF(**CRYSTALLINITY))
    return _plain(res, ("intensity",))


def crystallinity_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    ny, nx = SIG
    p = CRYSTALLINITY
    band = _disk(ny / 2, nx / 2, p["rad_out"]) & ~_disk(ny / 2, nx / 2, p["rad_in"])
    half = np.fft.fftshift(band)[:, : nx // 2 + 1]
    blank = ~_disk(*p["real_center"], p["real_rad"])
    spectra = np.abs(np.fft.rfft2(frames * blank))
    return {"intensity": (spectra * half).sum(axis=(1, 2))}


CASES = [
    # LiberTEM sums float32 logs in float32 buffers: ~1e-6 relative over a few thousand frames
    AnalysisCase("logsum", logsum_ours, logsum_libertem, close(1e-5), logsum_reference, SIG),
    AnalysisCase("fem", fem_ours, fem_libertem, close(1e-5), fem_reference, SIG),
    AnalysisCase(
        "crystallinity",
        crystallinity_ours,
        crystallinity_libertem,
        close(1e-5),
        crystallinity_reference,
        SIG,
    ),
    AnalysisCase("fem_profile", profile_ours, None, close(), profile_reference, SIG),
    AnalysisCase("radial_profile", radial_ours, None, close(), radial_reference, SIG),
    AnalysisCase("polar", polar_ours, None, close(), polar_reference, SIG),
]
