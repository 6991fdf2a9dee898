"""Figure of docs/analyses/ptychography.md: a strong phase object (Gaussian atoms of 0.8 rad
on a smooth background), scanned 20 object pixels out of focus with Poisson counts of 500 per
bright-field pixel; the truth, SSB with the defocus, and ptychography's phase at the scan
positions and over its whole object; the refined probe and the misfit per iteration.
Writes ptychography.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import SSBUDF, Context, ptychography
from libertem_gpu.demo.phase_object import random_phase, scan_phase_object

shape, step, frame, radius = (96, 96), 2, 32, 8
y, x = np.mgrid[: shape[0], : shape[1]]
phase = random_phase(shape, cutoff=0.03, strength=0.3, seed=5)
for cy in np.arange(6, shape[0], 16.0):
    for cx in np.arange(6, shape[1], 16.0):
        dy = (y - cy + shape[0] / 2) % shape[0] - shape[0] / 2
        dx = (x - cx + shape[1] / 2) % shape[1] - shape[1] / 2
        phase += 0.8 * np.exp(-(dy**2 + dx**2) / (2 * 1.5**2))
frames, optics = scan_phase_object(phase, step, frame, radius, defocus=20, dose=500, seed=3)
truth = phase[::step, ::step] - phase[::step, ::step].mean()

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    ssb = ctx.run_udf(ds, SSBUDF(**optics))["phase"].data
    found = ptychography(ctx, ds, iterations=30, **optics)


def rms(a):
    return np.sqrt(np.nanmean((a - np.nanmean(a) - truth) ** 2))


fig, axes = plt.subplots(2, 3, figsize=(10, 6.6))
limits = dict(vmin=truth.min(), vmax=truth.max(), cmap="gray")
axes[0, 0].imshow(truth, **limits)
axes[0, 0].set_title("truth (radians)", fontsize=9)
axes[0, 1].imshow(ssb - ssb.mean(), **limits)
axes[0, 1].set_title(f"SSB: rms error {rms(ssb):.2f} rad", fontsize=9)
axes[0, 2].imshow(found.phase, **limits)
axes[0, 2].set_title(f"ptychography: rms error {rms(found.phase):.2f} rad", fontsize=9)
axes[1, 0].imshow(np.angle(found.object), cmap="gray")
axes[1, 0].set_title("ptychography: whole object, phase", fontsize=9)
axes[1, 1].imshow(np.abs(found.probe), cmap="magma")
axes[1, 1].set_title("refined probe, amplitude", fontsize=9)
for ax in axes.ravel()[:5]:
    ax.set_axis_off()
axes[1, 2].semilogy(np.arange(1, len(found.errors) + 1), found.errors, "o-", ms=3)
axes[1, 2].set_xlabel("iteration", fontsize=8)
axes[1, 2].set_title("misfit of the amplitudes", fontsize=9)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
print(
    f"SSB rms {rms(ssb):.3f}, ptychography rms {rms(found.phase):.3f}, "
    f"errors {found.errors[0]:.4f} -> {found.errors[-1]:.5f}"
)
