"""Figure of docs/analyses/template_match.md: a simulated scan of eight grains, each one of
twelve lattices of a template bank turned by its own angle; one frame with the spots of the
template matched to it; the maps of the matched template, the rotation and the score. Writes
template_match.png beside this script."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, TemplateMatchUDF

rng = np.random.default_rng(3)
n, scan = 96, (24, 24)


def lattice(rng):
    a, b = rng.uniform(11, 17, 2)
    g = rng.uniform(np.pi / 3, 2 * np.pi / 3)
    ij = np.array([(i, j) for i in range(-5, 6) for j in range(-5, 6) if (i, j) != (0, 0)])
    xy = ij @ np.array([[a, 0], [b * np.cos(g), b * np.sin(g)]])
    r = np.hypot(xy[:, 0], xy[:, 1])
    keep = r < 42
    return np.column_stack([xy[keep, 1], xy[keep, 0], np.exp(-r[keep] / 40)])


bank = [lattice(rng) for _ in range(12)]
# Eight grains: the scan positions nearest to each of eight random seeds.
seeds = rng.uniform(0, 24, (8, 2))
yy, xx = np.mgrid[: scan[0], : scan[1]]
grain = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2, -1)
phase = rng.integers(0, 12, 8)
turn = rng.uniform(0, np.pi, 8)  # the lattices are centrosymmetric: turns mod pi
y, x = np.mgrid[:n, :n]
c0 = (n - 1) / 2


def render(spots, angle):
    c, s = np.cos(angle), np.sin(angle)
    lam = 2.0 + 1500 * np.exp(-((y - c0) ** 2 + (x - c0) ** 2) / 12)
    for dy, dx, v in spots:
        py, px = c0 + s * dx + c * dy, c0 + c * dx - s * dy
        lam += 120 * v * np.exp(-((y - py) ** 2 + (x - px) ** 2) / 3)
    return rng.poisson(lam)


frames = np.stack([render(bank[phase[g]], turn[g]) for g in grain.ravel()])
frames = frames.reshape(*scan, n, n).astype(np.uint16)
with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames)
    res = ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank, rad_min=6))
found = res["template"].data[..., 0]
rotation = np.mod(res["rotation"].data[..., 0], np.pi)
print("templates right:", (found == phase[grain]).mean())
error = np.angle(np.exp(2j * (rotation - turn[grain]))) / 2
print("rotation error, degrees: max", np.degrees(np.abs(error)).max())

fig, axes = plt.subplots(1, 4, figsize=(12.8, 3.3))
pos = (5, 17)
axes[0].imshow(np.log1p(frames[pos]), cmap="gray")
spots = bank[found[pos]]
c, s = np.cos(rotation[pos]), np.sin(rotation[pos])
axes[0].scatter(
    c0 + c * spots[:, 1] - s * spots[:, 0],
    c0 + s * spots[:, 1] + c * spots[:, 0],
    s=40,
    facecolors="none",
    edgecolors="c",
    linewidths=0.8,
)
axes[0].set_title(f"frame {pos}, template {found[pos]} matched", fontsize=9)
axes[0].set_axis_off()
axes[1].imshow(found, cmap="tab20", vmin=0, vmax=19)
axes[1].set_title("matched template (phase)", fontsize=9)
axes[2].imshow(np.degrees(rotation), cmap="twilight", vmin=0, vmax=180)
axes[2].set_title("in-plane rotation, degrees (mod 180)", fontsize=9)
im = axes[3].imshow(res["score"].data[..., 0], cmap="viridis")
axes[3].set_title("score (cosine similarity)", fontsize=9)
fig.colorbar(im, ax=axes[3], fraction=0.046)
for ax in axes[1:]:
    ax.set_xlabel("scan x", fontsize=8)
fig.tight_layout()
fig.savefig(Path(__file__).with_suffix(".png"), dpi=80)
