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

from libertem_gpu import Context, decompose

rng = np.random.default_rng(0)
y, x = np.mgrid[:48, :48]
regions = np.stack(
    [
        1 / (1 + np.exp((np.hypot(y - 16, x - 14) - 11) / 1.5)),  # a round crystal
        1 / (1 + np.exp(-(x - 0.6 * y - 26) / 2.0)),  # an amorphous band
    ]
)
regions = np.concatenate([regions, np.clip(1 - regions.sum(axis=0, keepdims=True), 0, 1)])
ky, kx = np.mgrid[:32, :32] - 15.5
r = np.hypot(ky, kx)
disk = (r <= 4).astype(float)
spots = disk + sum(
    np.exp(-((ky - 8 * i) ** 2 + (kx - 8 * j) ** 2) / 2)
    for i in (-1, 0, 1)
    for j in (-1, 0, 1)
    if (i, j) != (0, 0)
)
ring = disk + 0.5 * np.exp(-((r - 11) ** 2) / 4)
patterns = np.stack([spots, ring, disk])
frames = rng.poisson(20 * np.einsum("cij,cab->ijab", regions, patterns)).astype(np.float32)

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
