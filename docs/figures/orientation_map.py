"""Figure of docs/analyses/orientation_map.md: a simulated aluminium polycrystal of ten grains,
each in its own orientation; a bank over the cubic sector (beam_directions, 2 degrees);
TemplateMatchUDF and match_orientations; the true and the found IPF-Z maps and the colour
key. Writes orientation_map.png beside this script and prints the angular errors."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from scipy.spatial.transform import Rotation

from libertem_gpu import (
    Context,
    TemplateMatchUDF,
    beam_directions,
    direction_orientations,
    ipf_colors,
    ipf_key,
    kinematic_templates,
    match_orientations,
)
from libertem_gpu.udf.crystal_symmetry import reduce_directions

rng = np.random.default_rng(7)
n, scan = 128, (24, 32)
aluminium = (4.05, 4.05, 4.05, 90, 90, 90)
fcc = [(0, 0, 0, 13), (0.5, 0.5, 0, 13), (0.5, 0, 0.5, 13), (0, 0.5, 0.5, 13)]
# Relrods of 0.05 /Å, as in precession data: a random orientation then shows several reflections.
kw = dict(pixel_size=0.015, reach=60, atoms=fcc, max_excitation=0.05)

# The bank: every 2 degrees over the cubic triangle (those with a reflection).
bank_rot = direction_orientations(beam_directions("cubic", 2.0))
bank = kinematic_templates(aluminium, bank_rot, **kw)
keep = [i for i, t in enumerate(bank) if len(t)]
bank_rot, bank = bank_rot[keep], [bank[i] for i in keep]

# Ten grains, each a random orientation showing at least six reflections.
grains = []
while len(grains) < 10:
    r = Rotation.random(random_state=rng.integers(2**31)).as_matrix()
    if len(kinematic_templates(aluminium, r, **kw)[0]) >= 6:
        grains.append(r)
grains = np.array(grains)
seeds = rng.uniform(0, 1, (10, 2)) * scan
yy, xx = np.mgrid[: scan[0], : scan[1]]
grain = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2, -1)
patterns = [kinematic_templates(aluminium, g, **kw)[0] for g in grains]  # each its own scale
y, x = np.mgrid[:n, :n]
c0 = (n - 1) / 2


def render(spots):
    lam = 2.0 + 800 * np.exp(-((y - c0) ** 2 + (x - c0) ** 2) / 12)
    for dy, dx, v in spots:
        lam += 150 * v / spots[:, 2].max() * np.exp(-((y - c0 - dy) ** 2 + (x - c0 - dx) ** 2) / 3)
    return rng.poisson(lam)


frames = np.stack([render(patterns[g]) for g in grain.ravel()]).astype(np.uint16)
with Context("inline") as ctx:
    ds = ctx.load("memory", data=frames.reshape(*scan, n, n))
    res = ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank, mirror=True, rad_min=8, power=0.5))
found = match_orientations(
    bank_rot,
    res["template"].data[..., 0],
    res["rotation"].data[..., 0],
    res["mirrored"].data[..., 0],
)
truth = grains[grain]
beam = np.array([0.0, 0.0, 1.0])
want = reduce_directions(np.swapaxes(truth, -1, -2) @ beam, "cubic")
got = reduce_directions(np.swapaxes(found, -1, -2) @ beam, "cubic")
error = np.degrees(np.arccos(np.clip((want * got).sum(-1), -1, 1)))
print(
    f"{len(bank)} templates; beam direction error per position: median {np.median(error):.2f}, "
    f"95th percentile {np.percentile(error, 95):.2f}, max {error.max():.2f} degrees"
)

fig, ax = plt.subplots(1, 4, figsize=(13, 3.4), gridspec_kw=dict(width_ratios=[1, 1.33, 1.33, 1]))
ax[0].imshow(np.log1p(frames[0]), cmap="gray")
ax[0].set_title("one frame (log)")
ax[1].imshow(ipf_colors(truth, "cubic"))
ax[1].set_title("true IPF-Z")
ax[2].imshow(ipf_colors(found, "cubic"))
ax[2].set_title("found IPF-Z")
ax[3].imshow(ipf_key("cubic", 256))
for label, (px, py) in (("001", (10, 245)), ("101", (205, 245)), ("111", (170, 35))):
    ax[3].annotate(label, (px, py), fontsize=9)
ax[3].set_title("key (cubic)")
for a in ax:
    a.set_xticks([])
    a.set_yticks([])
fig.tight_layout()
fig.savefig(Path(__file__).with_name("orientation_map.png"), dpi=90)
