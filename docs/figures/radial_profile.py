"""Figure of docs/analyses/radial_profile.md: a synthetic diffraction pattern (central beam,
an amorphous halo, six Bragg spots whose orientation turns across the scan), its radial
profile and its polar transform. Writes radial_profile.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, RadialProfileUDF

rng = np.random.default_rng(0)
n = 96
y, x = np.mgrid[:n, :n]
cy = cx = (n - 1) / 2
r = np.hypot(y - cy, x - cx)
beam = 4000 * np.exp(-((r / 3) ** 2))
halo = 40 * np.exp(-(((r - 30) / 5) ** 2))
frames = np.empty((4, 8, n, n), np.uint16)
for i, idx in enumerate(np.ndindex(4, 8)):
    turn = i * np.pi / 96  # the spots turn by 60 degrees over the scan
    spots = sum(
        300 * np.exp(-((y - cy - 20 * np.sin(a)) ** 2 + (x - cx - 20 * np.cos(a)) ** 2) / 4)
        for a in turn + np.arange(6) * np.pi / 3
    )
    frames[idx] = rng.poisson(beam + halo + spots + 2)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    profile = ctx.run_udf(ds, RadialProfileUDF(n_bins=45, rad_max=45))
    polar = ctx.run_udf(ds, RadialProfileUDF(n_bins=45, rad_max=45, n_sectors=90))

fig, axes = plt.subplots(1, 3, figsize=(9.6, 3.2))
axes[0].imshow(np.log1p(frames[0, 0]), cmap="magma")
axes[0].set_title("frame (0, 0), log scale", fontsize=9)
axes[0].set_axis_off()
radius = profile["radius"].data
for idx in ((0, 0), (3, 7)):
    axes[1].semilogy(radius, profile["intensity"].data[idx], label=f"frame {idx}")
axes[1].set_xlabel("radius (pixels)", fontsize=9)
axes[1].set_title("RadialProfileUDF: mean per ring", fontsize=9)
axes[1].legend(fontsize=8)
extent = (0, 360, radius[-1] + 0.5, 0)
image = np.log1p(np.nan_to_num(polar["intensity"].data[0, 0]))  # empty bins (NaN) as 0
axes[2].imshow(image, cmap="magma", aspect="auto", extent=extent)
axes[2].set_xlabel("angle (degrees)", fontsize=9)
axes[2].set_ylabel("radius (pixels)", fontsize=9)
axes[2].set_title("n_sectors=90: polar transform of frame (0, 0)", fontsize=9)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
