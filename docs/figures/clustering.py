"""Figure of docs/analyses/clustering.md: the scan of docs/figures/decomposition.py (a round
crystal, an amorphous band and vacuum, blended at their borders, Poisson counts) in three
groups: the label map, each frame's distance to its group's centre (high at the borders,
where frames are mixtures), and the groups' mean frames.
Writes clustering.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from three_regions import three_region_scan

from libertem_gpu import Context, cluster_frames

frames = three_region_scan(np.random.default_rng(0))

with Context("inline") as ctx:
    found = cluster_frames(ctx, ctx.load("memory", data=frames), n_clusters=3, n_components=4)

fig, axes = plt.subplots(2, 3, figsize=(9, 6))
axes[0, 0].imshow(found.labels, cmap="viridis", vmin=0, vmax=2)
axes[0, 0].set_title("groups (labels)", fontsize=9)
axes[0, 1].imshow(found.distances, cmap="magma")
axes[0, 1].set_title("distance to the group's centre", fontsize=9)
axes[0, 2].bar(np.arange(3), found.counts, color=plt.cm.viridis([0.0, 0.5, 1.0]))
axes[0, 2].set_title("frames per group", fontsize=9)
axes[0, 2].set_xticks(range(3))
for j in range(3):
    axes[1, j].imshow(found.mean_frames[j], cmap="gray")
    axes[1, j].set_title(f"group {j}: mean frame", fontsize=9)
for ax in [*axes[0, :2], *axes[1]]:
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
