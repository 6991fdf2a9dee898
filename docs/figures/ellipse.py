"""Figure of docs/analyses/ellipse.md: an amorphous ring stretched 6 % along 30 degrees, the
points fit_ellipse measured on the summed frame with the fitted ellipse, and the radial
profile and polar transform without and with the correction. Writes ellipse.png beside this
script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, RadialProfileUDF, fit_ellipse
from libertem_gpu.udf.ellipse import elliptic_polar

rng = np.random.default_rng(0)
n = 128
y, x = np.mgrid[:n, :n]
truth = (1.06, np.radians(30))
r, _ = elliptic_polar(y - 61.2, x - 65.7, truth)
pattern = 3000 * np.exp(-((r / 3) ** 2)) + 60 * np.exp(-(((r - 42) / 2.5) ** 2)) + 5
frames = rng.poisson(pattern * rng.uniform(0.7, 1.3, (6, 6, 1, 1))).astype(np.uint16)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    fit = fit_ellipse(frames.sum(axis=(0, 1)), rad_min=30, rad_max=55)
    kw = dict(n_bins=60, rad_max=60, n_sectors=72)
    plain = ctx.run_udf(ds, RadialProfileUDF(center=fit.center, **kw))["intensity"].data
    fixed = ctx.run_udf(ds, RadialProfileUDF(ellipse=fit, **kw))["intensity"].data

fig, axes = plt.subplots(1, 4, figsize=(12.8, 3.2))
axes[0].imshow(np.log1p(frames[0, 0]), cmap="magma")
axes[0].plot(fit.points[:, 1], fit.points[:, 0], "c.", ms=3)
t = np.linspace(0, 2 * np.pi, 200)
a, b = fit.semi_axes
u, v = a * np.cos(t), b * np.sin(t)
c, s = np.cos(fit.angle), np.sin(fit.angle)
axes[0].plot(fit.center[1] + u * c - v * s, fit.center[0] + u * s + v * c, "w-", lw=0.6)
axes[0].set_title(f"fit: ratio {fit.ratio:.4f}, {np.degrees(fit.angle):.1f} deg", fontsize=9)
axes[0].set_axis_off()
for ax, data, name in ((axes[1], plain, "plain distance"), (axes[2], fixed, "ellipse undone")):
    ring = np.nanmean(data[..., 25:60, :], axis=(0, 1))  # inner bins may be empty (NaN)
    ax.imshow(ring, cmap="magma", aspect="auto", extent=(0, 360, 60, 25))
    ax.set_xlabel("angle (degrees)", fontsize=9)
    ax.set_ylabel("radius (pixels)", fontsize=9)
    ax.set_title(f"polar transform, {name}", fontsize=9)
radius = np.arange(60) + 0.5
for data, name in ((plain, "plain distance"), (fixed, "ellipse undone")):
    axes[3].plot(radius[25:], np.nanmean(data[..., 25:, :], axis=(0, 1, 3)), label=name)
axes[3].set_xlim(25, 60)
axes[3].set_xlabel("radius (pixels)", fontsize=9)
axes[3].set_title("mean radial profile", fontsize=9)
axes[3].legend(fontsize=8)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
