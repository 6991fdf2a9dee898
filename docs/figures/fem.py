"""Figure of docs/analyses/fem.md: FEMUDF's map and FEMProfileUDF's V(k) on a synthetic scan
whose left half has strong speckle (medium-range order) in a ring, the right half weak.
Writes fem.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import FEMUDF, Context, FEMProfileUDF

rng = np.random.default_rng(1)
n, nav = 64, (12, 16)
y, x = np.mgrid[:n, :n]
r = np.hypot(y - 32.0, x - 32.0)
halo = 200 * np.exp(-(((r - 18) / 4) ** 2)) + 20
frames = np.empty((*nav, n, n), np.uint16)
for idx in np.ndindex(nav):
    strength = 0.6 if idx[1] < nav[1] // 2 else 0.1  # speckle contrast in the halo
    speckle = 1 + strength * rng.standard_normal((n, n))
    frames[idx] = rng.poisson(halo * speckle.clip(0, None))

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    fem = ctx.run_udf(ds, FEMUDF(center=(32, 32), rad_in=14, rad_out=22))["intensity"].data
    left = np.zeros(nav, bool)
    left[:, : nav[1] // 2] = True
    profile = {}
    for name, roi in (("strong speckle", left), ("weak speckle", ~left)):
        udf = FEMProfileUDF(center=(32, 32), n_bins=16, rad_max=30)
        res = ctx.run_udf(ds, udf, roi=roi)
        profile[name] = (res["radius"].data, res["normalized_variance"].data)

fig, axes = plt.subplots(1, 2, figsize=(7.0, 3.0))
im = axes[0].imshow(fem, cmap="viridis")
axes[0].set_title("FEMUDF: std in the ring 14 < r <= 22", fontsize=9)
fig.colorbar(im, ax=axes[0], shrink=0.8)
for name, (radius, v) in profile.items():
    axes[1].plot(radius, v, marker="o", ms=3, label=name)
axes[1].set_xlabel("radius (px)")
axes[1].set_ylabel("V(k) = <I^2>/<I>^2 - 1")
axes[1].set_title("FEMProfileUDF over each half", fontsize=9)
axes[1].legend(fontsize=8)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
