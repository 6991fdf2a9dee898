"""Benchmark case for :mod:`run_analyses`: single side band ptychography (``SSBUDF``) on
256 x 256 uint16 frames of a simulated scan.

The file is a scan of a weak phase object (random, smooth, 0.05 rad; periodic) with a focused
probe whose bright-field disk is 30 pixels in radius (2828 pixels), every 2 object pixels,
Poisson counts of 20 electrons per bright-field pixel (:mod:`libertem_gpu.demo.phase_object`:
wavelength 1, lengths in object pixels). Every frequency up to 0.48 cycles per scan step has
trotters: on a 64 x 64 scan about 1400 of the real transform's half plane, so each frame's
disk meets a 2828 x 1400 complex weight matrix. LiberTEM 0.16 has no SSB of its own; where
ptychography40 is installed beside it, its ``SSB_UDF`` runs on the same file and the two
phases must correlate (its spectrum is of the object ``exp(i phase)``, ours of the phase, and
its trotters are weighed by their area). The reference transforms a few frames as a scan of
one row at once, with the trotters of the library's geometry.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from benchlib import VerificationError
from run_analyses import AnalysisCase

SIG = (256, 256)
STEP, RADIUS, DOSE = 2, 30.0, 20.0
OPTICS = dict(
    wavelength=1.0,
    scan_step=float(STEP),
    semiconv=RADIUS / SIG[0],
    semiconv_pix=RADIUS,
    center=(SIG[0] // 2, SIG[1] // 2),
)


def write_scan(path: str, nav: tuple[int, int], sig: tuple[int, int], seed: int) -> int:
    """The simulated scan (module docstring), written eight scan rows at a time."""
    from libertem_gpu.demo.phase_object import random_phase, scan_phase_object

    phase = random_phase((nav[0] * STEP, nav[1] * STEP), cutoff=0.2, strength=0.05, seed=seed)
    with open(path, "wb") as f:
        for row in range(0, nav[0], 8):
            frames, _ = scan_phase_object(
                phase, STEP, sig[0], RADIUS, dose=DOSE, seed=seed + row, rows=slice(row, row + 8)
            )
            f.write(frames.astype(np.uint16).tobytes())
    return os.path.getsize(path)


def ssb_ours(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from libertem_gpu import SSBUDF

    res = ctx.run_udf(dataset=ds, udf=SSBUDF(**OPTICS))
    return {"phase": np.asarray(res["phase"].data)}


def ssb_libertem(ctx: Any, ds: Any) -> dict[str, np.ndarray]:
    from ptychography40.reconstruction.ssb import SSB_UDF

    udf = SSB_UDF(
        lamb=OPTICS["wavelength"],
        dpix=OPTICS["scan_step"],
        semiconv=OPTICS["semiconv"],
        semiconv_pix=OPTICS["semiconv_pix"],
        cy=OPTICS["center"][0],
        cx=OPTICS["center"][1],
    )
    spectrum = np.asarray(ctx.run_udf(dataset=ds, udf=udf)["fourier"].data)
    return {"phase": np.angle(np.fft.ifft2(spectrum))}


def correlated(ours: dict[str, np.ndarray], theirs: dict[str, np.ndarray]) -> None:
    """The phases agree up to their different normalisations: correlation of at least 0.95."""
    a = np.asarray(ours["phase"], dtype=np.float64).ravel()
    b = np.asarray(theirs["phase"], dtype=np.float64).ravel()
    r = float(np.corrcoef(a - a.mean(), b - b.mean())[0, 1])
    if not r >= 0.95:
        raise VerificationError(f"SSB phases correlate at {r:.4f} only")


def ssb_reference(frames: np.ndarray) -> dict[str, np.ndarray]:
    """The frames as a scan of one row: the scan's Fourier transform of each disk pixel at once,
    weighed by the trotters and normalised by the disk's mean intensity."""
    from libertem_gpu.udf.ssb_geometry import (
        aperture_pixels,
        check_optics,
        scan_frequencies,
        trotters,
    )

    nav = (1, len(frames))
    optics = check_optics(
        OPTICS["wavelength"],
        OPTICS["scan_step"],
        OPTICS["semiconv"],
        OPTICS["semiconv_pix"],
        0.0,
        False,
        0.0,
        0.0,
        "reference",
    )
    pixels, k = aperture_pixels(SIG, OPTICS["center"], optics.semiconv_pix)
    index, _, offsets = scan_frequencies(nav, optics)
    weights, norms = trotters(k, offsets, optics)
    keep = norms >= 0.5
    values = frames.reshape(len(frames), -1)[:, pixels]
    spectrum = np.fft.rfft(values, axis=0)  # (frequencies, pixels) of the one-row scan
    half = np.zeros(nav[1] // 2 + 1, dtype=complex)
    measured = (weights[:, keep] * spectrum[index[keep]].T).sum(axis=0)
    half[index[keep]] = measured / (1j * values.mean() * norms[keep])
    return {"phase": np.fft.irfft(half, n=nav[1])[None, :]}


def _libertem_or_none() -> Any:
    try:
        import ptychography40  # noqa: F401
    except ImportError:
        return None
    return ssb_libertem


CASES = [
    AnalysisCase(
        "ssb", ssb_ours, _libertem_or_none(), correlated, ssb_reference, SIG, write=write_scan
    )
]
