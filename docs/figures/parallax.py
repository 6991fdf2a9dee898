"""Figure of docs/analyses/parallax.md: a simulated defocused scan (40 x 48 positions, a
bright-field disk of radius 8 whose pixels see a field of Gaussian blobs moved by a rotated
matrix), its plain bright-field image, the parallax image upsampled twice, and the blocks'
measured shifts against the fitted matrix. Writes parallax.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, estimate_parallax

rng = np.random.default_rng(0)
ny, nx, n = 40, 48, 24
matrix = np.array([[0.45, 0.18], [-0.18, 0.45]])
blobs, amp = rng.uniform(-5, 53, (260, 2)), rng.standard_normal(260)


def specimen(y, x):
    out = np.zeros(np.broadcast(y, x).shape)
    for (by, bx), a in zip(blobs, amp, strict=True):
        out += a * np.exp(-((y - by) ** 2 + (x - bx) ** 2) / 2)
    return out


py, px = np.mgrid[:ny, :nx].astype(float)
qy, qx = np.mgrid[:n, :n] - np.array([11.6, 12.3])[:, None, None]
seen = specimen(
    py[..., None, None] - (matrix[0, 0] * qy + matrix[0, 1] * qx),
    px[..., None, None] - (matrix[1, 0] * qy + matrix[1, 1] * qx),
)
frames = (np.hypot(qy, qx) <= 8) * 1000 * (1 + 0.05 * seen)
frames = (frames + rng.poisson(2, frames.shape)).astype(np.float32)

with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    fit = estimate_parallax(ctx, ds)
    image = ctx.run_udf(ds, fit.udf(upsampling=2))["image"].data

fig, axes = plt.subplots(1, 3, figsize=(10.5, 3.3))
axes[0].imshow(fit.bright_field, cmap="gray")
axes[0].set_title("plain bright field", fontsize=9)
axes[1].imshow(image, cmap="gray")
axes[1].set_title("parallax image, upsampled 2x", fontsize=9)
for ax in axes[:2]:
    ax.set_axis_off()
q = fit.positions
model = q @ fit.shift_matrix.T
axes[2].quiver(q[:, 1], q[:, 0], fit.shifts[:, 1], fit.shifts[:, 0], color="C0", label="measured")
axes[2].quiver(q[:, 1], q[:, 0], model[:, 1], model[:, 0], color="C1", alpha=0.5, label="fit")
axes[2].invert_yaxis()
axes[2].set_aspect("equal")
axes[2].set_xlabel("detector column from centre (px)", fontsize=8)
axes[2].set_ylabel("detector row from centre (px)", fontsize=8)
axes[2].set_title("shift of each block's image (scan px)", fontsize=9)
axes[2].legend(fontsize=7)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=100)
