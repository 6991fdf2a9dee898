"""Figure of docs/analyses/disks.md: one simulated frame of a disk lattice (Poisson noise), its
full-frame correlation with a disk template, and the peaks FullFrameCorrelationUDF and
SparseCorrelationUDF find, over the frame. Writes disks.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, FullFrameCorrelationUDF, SparseCorrelationUDF
from libertem_gpu.disks import disk_template
from libertem_gpu.disks.peaks import correlate
from libertem_gpu.disks.simulate import disk_frames, lattice_positions

rng = np.random.default_rng(5)
sig = (128, 128)
lattice = lattice_positions(sig, (64.3, 63.6), (22.0, 3.0), (-2.5, 21.0), margin=10)
true = lattice + rng.uniform(-1, 1, (4, 1, 2)) + rng.normal(0, 0.3, (4, len(lattice), 2))
intensity = rng.uniform(0.3, 1.0, (4, len(lattice)))
frames = disk_frames(true, sig, 5.0, dose=3000, background=1.0, intensities=intensity, rng=rng)
template = disk_template(5.0)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames.astype(np.uint16).reshape(2, 2, *sig))
    full = ctx.run_udf(ds, FullFrameCorrelationUDF(template, n_peaks=len(lattice)))
    sparse = ctx.run_udf(ds, SparseCorrelationUDF(lattice, template, search=3))

found_full = full["peaks"].data[0, 0]
found_sparse = sparse["peaks"].data[0, 0]
fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.2))
axes[0].imshow(frames[0], cmap="gray")
axes[0].set_title("frame (Poisson noise)", fontsize=9)
axes[1].imshow(correlate(frames[:1], template)[0], cmap="magma")
axes[1].set_title("correlation with disk_template(5)", fontsize=9)
axes[2].imshow(frames[0], cmap="gray")
axes[2].plot(lattice[:, 1], lattice[:, 0], "+", color="tab:cyan", ms=7, label="expected")
axes[2].plot(found_sparse[:, 1], found_sparse[:, 0], "x", color="tab:orange", ms=6, label="sparse")
axes[2].plot(
    found_full[:, 1], found_full[:, 0], "o", mfc="none", color="tab:green", ms=8, label="full frame"
)
axes[2].legend(fontsize=7, loc="lower right", framealpha=0.8)
axes[2].set_title("peaks found", fontsize=9)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
fig.savefig(Path(__file__).with_name("disks.png"), dpi=68)
