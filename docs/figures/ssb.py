"""Figure of docs/analyses/ssb.md: a simulated scan of a weak phase object (Gaussian atoms on a
lattice, 0.1 rad at most) with a focused probe, Poisson noise of 200 electrons per
bright-field pixel; the true phase, the plain bright-field image (no contrast in focus) and
the SSB phase. Writes ssb.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import SSBUDF, Context
from libertem_gpu.demo.phase_object import scan_phase_object

shape, step = (128, 128), 2
y, x = np.mgrid[: shape[0], : shape[1]]
phase = np.zeros(shape)
for cy in np.arange(4, shape[0], 12.8):
    for cx in np.arange(4, shape[1], 12.8):
        dy = (y - cy + shape[0] / 2) % shape[0] - shape[0] / 2  # periodic
        dx = (x - cx + shape[1] / 2) % shape[1] - shape[1] / 2
        phase += 0.1 * np.exp(-(dy**2 + dx**2) / (2 * 1.5**2))
frames, optics = scan_phase_object(phase, step, frame=32, radius=9, dose=200, seed=1)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    ssb = ctx.run_udf(ds, SSBUDF(**optics))["phase"].data
disk = np.hypot(*np.mgrid[:32, :32] - 16.0) <= 9
bright_field = (frames * disk).sum(axis=(2, 3))

fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.6))
for ax, image, title in zip(
    axes,
    [phase[::step, ::step], bright_field, ssb],
    ["true phase (rad)", "bright field (counts)", "SSB phase (rad)"],
    strict=True,
):
    shown = ax.imshow(image, cmap="gray")
    fig.colorbar(shown, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=90)
