"""Figure of docs/analyses/crystallinity.md: a crystalline pattern (a lattice of spots), an
amorphous one (a broad ring), and the crystallinity map of a scan whose left half is
crystalline. Writes crystallinity.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, CrystallinityUDF

rng = np.random.default_rng(2)
n, nav = 64, (8, 12)
y, x = np.mgrid[:n, :n].astype(float)
r = np.hypot(y - n / 2, x - n / 2)
spots = sum(
    np.exp(-((y - cy - 4) ** 2 + (x - cx - 4) ** 2) / 2.0)
    for cy in range(0, n, 8)
    for cx in range(0, n, 8)
) * np.exp(-((r / 25) ** 2))
ring = np.exp(-(((r - 14) / 6) ** 2))
spots *= ring.sum() / spots.sum()
beam = 500 * np.exp(-((r / 2.5) ** 2))
frames = np.empty((*nav, n, n), np.uint16)
for idx in np.ndindex(nav):
    pattern = spots if idx[1] < nav[1] // 2 else ring
    frames[idx] = rng.poisson(300 * pattern + beam + 1)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    udf = CrystallinityUDF(rad_in=6, rad_out=10, real_center=(32, 32), real_rad=6)
    value = ctx.run_udf(ds, udf)["intensity"].data

fig, axes = plt.subplots(1, 3, figsize=(8.4, 2.8))
axes[0].imshow(np.log1p(frames[0, 0]), cmap="gray")
axes[0].set_title("crystalline frame (log)", fontsize=9)
axes[1].imshow(np.log1p(frames[0, -1]), cmap="gray")
axes[1].set_title("amorphous frame (log)", fontsize=9)
for ax in axes[:2]:
    ax.set_axis_off()
im = axes[2].imshow(value, cmap="viridis")
axes[2].set_title("CrystallinityUDF, band 6 < |k| <= 10", fontsize=9)
fig.colorbar(im, ax=axes[2], shrink=0.8)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
