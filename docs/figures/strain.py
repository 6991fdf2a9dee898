"""Figure of docs/analyses/disks.md: strain and rotation maps recovered by find_lattice_strain
from a simulated scan (96 x 96 frames of 4 px disks, 1,000 electrons per disk, Poisson noise)
with a smoothly varying imposed strain field. Writes strain.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, find_lattice_strain
from libertem_gpu.disks.simulate_strain import strained_basis, strained_lattice_frames

rng = np.random.default_rng(2)
nav = (16, 16)
a, b = np.array([0.9, 15.4]), np.array([15.1, -1.3])
y, x = np.mgrid[0 : nav[0], 0 : nav[1]] / (nav[0] - 1)
imposed = {
    "exx": 0.01 * np.sin(2.5 * y + 0.5),
    "eyy": -0.008 * np.cos(3 * x),
    "exy": 0.005 * (y - x),
    "rotation": 0.01 * (x * y - 0.25),
}
a_s, b_s = strained_basis(a, b, **imposed)
data = strained_lattice_frames(nav, (96, 96), (47.6, 48.3), a_s, b_s, radius=4, dose=1000, rng=rng)

with Context("inline") as ctx:
    res = find_lattice_strain(ctx, ctx.load("memory", data=data), radius=4, reference=(a, b))

fig, axes = plt.subplots(2, 4, figsize=(10.0, 5.0), layout="constrained")
for col, (name, want) in enumerate(imposed.items()):
    got = getattr(res, name)
    rms = np.sqrt(np.nanmean((got - want) ** 2))
    lim = np.abs(want).max()
    rows = ((want, f"imposed {name}"), (got, f"found (rms error {rms:.1e})"))
    for row, (field, title) in enumerate(rows):
        im = axes[row, col].imshow(field, cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[row, col].set_title(title, fontsize=8)
        axes[row, col].set_xticks([])
        axes[row, col].set_yticks([])
    fig.colorbar(im, ax=axes[:, col], shrink=0.6, format="%.0e")
disks = len(res.hk)
fig.suptitle(f"find_lattice_strain: 1,000 electrons per disk, {disks} disks per frame", fontsize=9)
fig.savefig(Path(__file__).with_suffix(".png"), dpi=70)
