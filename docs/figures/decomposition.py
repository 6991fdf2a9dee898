"""Figure of docs/analyses/decomposition.md: a 48 x 48 scan over three regions (a crystal's
spot pattern, an amorphous ring, vacuum's bright disk alone) blended at their borders, Poisson
counts; the first three components' score maps and frames (three regions about their mean
span two: the third is noise), and the explained variance.
Writes decomposition.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from three_regions import three_region_scan

from libertem_gpu import Context, decompose

frames = three_region_scan(np.random.default_rng(0))

with Context("inline") as ctx:
    found = decompose(ctx, ctx.load("memory", data=frames), n_components=6)

fig, axes = plt.subplots(2, 4, figsize=(11, 5.4))
for i in range(3):
    axes[0, i].imshow(found.scores[..., i], cmap="RdBu_r")
    axes[0, i].set_title(f"component {i + 1}: scores", fontsize=9)
    axes[1, i].imshow(found.components[i], cmap="RdBu_r")
    axes[1, i].set_title(f"component {i + 1}: frame", fontsize=9)
for ax in axes[:, :3].ravel():
    ax.set_axis_off()
axes[0, 3].semilogy(np.arange(1, 7), found.explained_variance_ratio, "o-")
axes[0, 3].set_xlabel("component", fontsize=8)
axes[0, 3].set_title("explained variance ratio", fontsize=9)
axes[1, 3].imshow(frames.mean(axis=(0, 1)), cmap="gray")
axes[1, 3].set_title("mean frame", fontsize=9)
axes[1, 3].set_axis_off()
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
