"""Figure of docs/analyses/radial_fourier.md: a scan whose left half holds 6-fold and whose right
half holds 4-fold ring patterns (random orientation and Poisson noise); the magnitudes of the
orders 4 and 6 of RadialFourierUDF separate the two. Writes radial_fourier.png beside this
script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, RadialFourierUDF

rng = np.random.default_rng(1)
n, rows, cols = 48, 12, 16
y, x = np.mgrid[:n, :n]
r, phi = np.hypot(y - n / 2, x - n / 2), np.arctan2(y - n / 2, x - n / 2)
ring = np.exp(-(((r - 14) / 2.5) ** 2))
frames = np.empty((rows, cols, n, n), np.uint16)
for i, j in np.ndindex(rows, cols):
    fold = 6 if j < cols // 2 else 4
    pattern = 40 * ring * (1 + np.cos(fold * (phi - rng.uniform(0, np.pi))))
    frames[i, j] = rng.poisson(pattern + 5)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    udf = RadialFourierUDF(cx=n / 2, cy=n / 2, ri=10, ro=18, max_order=8)
    coeffs = ctx.run_udf(ds, udf)["complex"].data[:, :, 0]  # (rows, cols, orders)

fig, axes = plt.subplots(1, 3, figsize=(8.4, 2.6))
axes[0].imshow(frames[0, 0], cmap="gray")
axes[0].set_title("frame (6-fold)", fontsize=9)
for ax, order in zip(axes[1:], (6, 4), strict=True):
    im = ax.imshow(np.abs(coeffs[..., order]) / np.abs(coeffs[..., 0]), cmap="viridis")
    ax.set_title(f"|order {order}| / |order 0|", fontsize=9)
    fig.colorbar(im, ax=ax, shrink=0.8)
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
