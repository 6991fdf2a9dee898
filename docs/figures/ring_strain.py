"""Figure of docs/analyses/ring_strain.md: a simulated amorphous film with a strain field (a
stretched band across the scan and a compressed spot), its diffraction rings as counts, and
the strain RingStrainUDF measures against the truth. Writes ring_strain.png beside this
script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, RingStrainUDF

rng = np.random.default_rng(1)
scan, n, r0 = (32, 32), 96, 32.0
sy, sx = np.mgrid[: scan[0], : scan[1]] / 31.0
band = np.exp(-(((sx - sy) / 0.15) ** 2))
spot = np.exp(-(((sy - 0.75) ** 2 + (sx - 0.25) ** 2) / 0.01))
truth = np.stack([0.008 * band - 0.006 * spot, -0.003 * band - 0.006 * spot, 0.004 * band], -1)
y, x = np.mgrid[:n, :n]
c0 = (n - 1) / 2
frames = np.empty((*scan, n, n), np.uint16)
for i in np.ndindex(scan):
    exx, eyy, exy = truth[i]
    qx, qy = x - c0, y - c0
    px, py = (1 + exx) * qx + exy * qy, exy * qx + (1 + eyy) * qy
    lam = 40 * np.exp(-((np.hypot(px, py) - r0) ** 2) / 8) + 6
    lam += 3000 * np.exp(-(qx**2 + qy**2) / 20)
    frames[i] = rng.poisson(lam)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    res = ctx.run_udf(dataset=ds, udf=RingStrainUDF(rad_min=22, rad_max=42))
got = res["strain"].data
print("max error", np.abs(got - truth).max(), "rms", np.sqrt(((got - truth) ** 2).mean()))

fig, axes = plt.subplots(2, 4, figsize=(12.8, 6.2))
axes[0, 0].imshow(np.log1p(frames[16, 16]), cmap="gray")
axes[0, 0].set_title("frame (16, 16), log scale", fontsize=9)
axes[1, 0].imshow(res["residual"].data, cmap="viridis")
axes[1, 0].set_title("fit residual, pixels", fontsize=9)
for k, name in enumerate(("e_xx", "e_yy", "e_xy")):
    for row, (data, what) in enumerate(((truth, "true"), (got, "measured"))):
        im = axes[row, k + 1].imshow(100 * data[..., k], cmap="RdBu_r", vmin=-1, vmax=1)
        axes[row, k + 1].set_title(f"{name}, {what} (%)", fontsize=9)
fig.colorbar(im, ax=axes[:, 1:].ravel().tolist(), fraction=0.02)
for ax in axes.ravel():
    ax.set_axis_off()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
