"""Figure of docs/analyses/holography.md: a hologram simulated from a known object wave, its
spectrum with the sideband, and the phase HoloReconstructUDF gets back."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from libertem_gpu import Context, HoloReconstructUDF
from libertem_gpu.udf.holography import estimate_sideband_position, estimate_sideband_size


def hologram(shape=(128, 128), carrier=(30, 22)):
    """``|reference + object|^2``: a tilted unit reference wave and a smooth phase object."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    r2 = (y - 64) ** 2 + (x - 64) ** 2
    phase = 3.0 * np.exp(-r2 / (2 * 18.0**2))
    amplitude = 0.8 - 0.2 * np.exp(-r2 / (2 * 10.0**2))
    tilt = 2 * np.pi * (carrier[0] * y / shape[0] + carrier[1] * x / shape[1])
    return np.abs(np.exp(1j * tilt) + amplitude * np.exp(1j * phase)) ** 2, phase


def main() -> None:
    holo, _ = hologram()
    position = estimate_sideband_position(holo, sb="lower")  # +carrier: the wave, not its conjugate
    size = estimate_sideband_size(position, holo.shape, sb_size_ratio=1 / 3)
    ctx = Context("inline")
    ds = ctx.load("memory", data=holo.reshape(1, 1, 128, 128).astype(np.float32))
    udf = HoloReconstructUDF(out_shape=(128, 128), sb_position=position, sb_size=size)
    wave = ctx.run_udf(dataset=ds, udf=udf)["wave"].data[0, 0]
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    axes[0].imshow(holo[32:96, 32:96], cmap="gray")
    axes[0].set_title("hologram (centre)", fontsize=9)
    axes[1].imshow(np.fft.fftshift(np.abs(np.fft.fft2(holo))) + 1, norm=LogNorm(), cmap="magma")
    axes[1].set_title(f"|FFT|, sideband at {position} (unshifted)", fontsize=9)
    im = axes[2].imshow(np.angle(wave) - np.angle(wave[0, 0]), cmap="viridis")
    axes[2].set_title("reconstructed phase (rad)", fontsize=9)
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)


if __name__ == "__main__":
    main()
