"""Figure of docs/analyses/logsum.md: log of the sum against the sum of logs, on synthetic
diffraction patterns (a central beam in every frame, a faint ring in most, a very bright spot
in a few). Writes logsum.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, LogsumUDF, SumUDF

rng = np.random.default_rng(0)
n = 64
y, x = np.mgrid[:n, :n]
r = np.hypot(y - n / 2, x - n / 2)
beam = 2000 * np.exp(-((r / 3) ** 2))
ring = 3 * np.exp(-(((r - 20) / 2) ** 2))
spot = 5e5 * np.exp(-((y - 12.0) ** 2 + (x - 45.0) ** 2) / 2)
frames = np.empty((8, 8, n, n), np.uint16)
for i, idx in enumerate(np.ndindex(8, 8)):
    frames[idx] = rng.poisson(beam + ring + (spot if i < 2 else 0) + 0.5).clip(0, 65535)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    total = ctx.run_udf(ds, SumUDF())["intensity"].data
    logsum = ctx.run_udf(ds, LogsumUDF())["logsum"].data

fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.2))
for ax, img, title in (
    (axes[0], np.log1p(total), "log(sum of frames)"),
    (axes[1], logsum, "LogsumUDF: sum of log(frame - min + 1)"),
):
    ax.imshow(img, cmap="magma")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
