"""Figure of docs/analyses/descan.md: a beam that walks across the detector with the scan
position; a bright-field image and a corner frame's radial profile with fixed masks and with
masks that follow the beam (``shifts`` from the fitted descan plane). Writes descan.png beside
this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import ApplyMasksUDF, CoMUDF, Context, RadialProfileUDF, descan_shifts, masks

ny, nx, n = 24, 32, 64
sy, sx = np.mgrid[:ny, :nx]
beam_y = 31.5 + 5.0 * sy / (ny - 1)
beam_x = 31.5 + 7.0 * sx / (nx - 1)
r, c = np.mgrid[:n, :n]
d2 = (r - beam_y[..., None, None]) ** 2 + (c - beam_x[..., None, None]) ** 2
halo = 50 * np.exp(-((np.sqrt(d2) - 20.5) ** 2) / 4)
frames = np.random.default_rng(0).poisson(1000 * np.exp(-d2 / 12) + halo + 1).astype(np.uint16)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    com = ctx.run_udf(ds, CoMUDF.with_params(cy=31.5, cx=31.5, r=12, regression=1))
    shifts = descan_shifts(com["regression"].data, (ny, nx))
    bf = [lambda: masks.disk((n, n), 31.5, 31.5, 5)]
    images, profiles = [], []
    for moved in (None, shifts):
        images.append(ctx.run_udf(ds, ApplyMasksUDF(bf, shifts=moved))["intensity"].data[..., 0])
        udf = RadialProfileUDF(center=(31.5, 31.5), n_bins=30, rad_max=30, shifts=moved)
        profiles.append(ctx.run_udf(ds, udf))

fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.0))
vmax = max(float(im.max()) for im in images)
titles = ("fixed detector", "detector following the beam")
for ax, im, title in zip(axes[:2], images, titles, strict=True):
    ax.imshow(im, cmap="gray", vmin=0, vmax=vmax)
    ax.set_title(f"bright field, {title}", fontsize=9)
    ax.set_axis_off()
radius = profiles[0]["radius"].data
for res, label in zip(profiles, ("fixed rings", "rings following the beam"), strict=True):
    axes[2].semilogy(radius, res["intensity"].data[-1, -1], label=label)
axes[2].set_xlabel("radius (px)", fontsize=9)
axes[2].set_title("radial profile, last frame", fontsize=9)
axes[2].legend(fontsize=8)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=100)
