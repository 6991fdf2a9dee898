"""Figure of docs/analyses/fft.md: lattice fringes of random phase in half of a scan, amorphous
noise in the other half. In the transform of the summed frames (LiberTEM's SumfftAnalysis) the
fringes mostly cancel; the sum of the frames' power spectra (SumFFTUDF) keeps them; a ring
around their frequency (ApplyFFTMaskUDF with a centred ring as ``fourier_mask``) maps where
they are."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from libertem_gpu import ApplyFFTMaskUDF, Context, SumFFTUDF, SumUDF


def scan(rng: np.random.Generator) -> np.ndarray:
    """(16, 16) scan of 64 x 64 frames: fringes (period 8 px, random phase and direction
    among two) where x < 8 in the scan, Poisson noise everywhere."""
    y, x = np.mgrid[:64, :64]
    data = np.empty((16, 16, 64, 64), dtype=np.float32)
    for i in range(16):
        for j in range(16):
            frame = np.full((64, 64), 50.0)
            if j < 8:
                ky, kx = ((8, 0), (0, 8))[(i + j) % 2]
                frame += 30 * np.cos(2 * np.pi * (ky * y + kx * x) / 64 + rng.uniform(0, 6.3))
            data[i, j] = rng.poisson(frame)
    return data


def main() -> None:
    data = scan(np.random.default_rng(4))
    ctx = Context("inline")
    ds = ctx.load("memory", data=data)
    k = np.hypot(*np.mgrid[-32:32, -32:32])  # centred: zero frequency at (32, 32)
    ring_mask = (k > 6) & (k <= 10)
    total, power, ring = ctx.run_udf(
        dataset=ds, udf=[SumUDF(), SumFFTUDF(), ApplyFFTMaskUDF(fourier_mask=ring_mask)]
    )
    fft_of_sum = np.abs(np.fft.fftshift(np.fft.fft2(total["intensity"].data))) ** 2
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    for ax, image, title in (
        (axes[0], fft_of_sum, "|FFT(sum of frames)|²"),
        (axes[1], power["intensity"].data, "SumFFTUDF: sum of |FFT(frame)|²"),
    ):
        ax.imshow(image + 1, norm=LogNorm(), cmap="magma")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    im = axes[2].imshow(ring["intensity"].data, cmap="viridis")
    axes[2].set_title("ApplyFFTMaskUDF, ring 6 < |k| <= 10", fontsize=9)
    axes[2].set_axis_off()
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    fig.tight_layout()
    fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)


if __name__ == "__main__":
    main()
