"""Figure of docs/analyses/phase_contrast.md: one weak phase object (Gaussian atoms, 0.1 rad),
scanned in focus and 40 object pixels out of focus (Poisson counts, 200 electrons per
bright-field pixel); the bright field, the integrated centre of mass and SSB of the focused
scan, and the bright field, the parallax image and SSB with the defocus of the defocused scan.
Writes phase_contrast.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import SSBUDF, CoMUDF, Context, ParallaxUDF, parallax_shift_matrix
from libertem_gpu.demo.phase_object import scan_phase_object

shape, step, frame, radius = (128, 128), 2, 32, 9
y, x = np.mgrid[: shape[0], : shape[1]]
phase = np.zeros(shape)
for cy in np.arange(4, shape[0], 12.8):
    for cx in np.arange(4, shape[1], 12.8):
        dy = (y - cy + shape[0] / 2) % shape[0] - shape[0] / 2
        dx = (x - cx + shape[1] / 2) % shape[1] - shape[1] / 2
        phase += 0.1 * np.exp(-(dy**2 + dx**2) / (2 * 1.5**2))
disk = np.hypot(*np.mgrid[:frame, :frame] - frame / 2) <= radius
panels = []
with Context("inline") as ctx:
    focused, optics = scan_phase_object(phase, step, frame, radius, dose=200, seed=1)
    ds = ctx.load("memory", data=focused)
    com = CoMUDF.with_params(cy=frame / 2, cx=frame / 2, r=radius + 2)
    icom = ctx.run_udf(ds, com)["icom"].data
    ssb = ctx.run_udf(ds, SSBUDF(**optics))["phase"].data
    panels += [
        ("in focus: bright field", (focused * disk).sum(axis=(2, 3))),
        ("in focus: iCoM", icom),
        ("in focus: SSB", ssb),
    ]
    defocused, optics = scan_phase_object(phase, step, frame, radius, defocus=40, dose=200, seed=2)
    ds = ctx.load("memory", data=defocused)
    # The shifts from the optics (estimate_parallax cannot tell shifts of more than half the
    # lattice's period on this periodic specimen).
    matrix = parallax_shift_matrix(
        optics["defocus"], optics["scan_step"], optics["semiconv"], optics["semiconv_pix"]
    )
    mean = defocused.mean(axis=(0, 1))
    udf = ParallaxUDF(matrix, center=optics["center"], radius=radius, mean_frame=mean)
    parallax = ctx.run_udf(ds, udf)["image"].data
    ssb_defocus = ctx.run_udf(ds, SSBUDF(**optics))["phase"].data
    panels += [
        ("defocused: bright field", (defocused * disk).sum(axis=(2, 3))),
        ("defocused: parallax", parallax),
        ("defocused: SSB, defocus given", ssb_defocus),
    ]

fig, axes = plt.subplots(2, 3, figsize=(9.5, 6.6))
for ax, (title, image) in zip(axes.ravel(), panels, strict=True):
    ax.imshow(image, cmap="gray")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
