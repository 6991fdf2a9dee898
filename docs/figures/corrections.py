"""Figure of docs/analyses/corrections.md: a frame with a hot pixel, a dead pixel and a dead
2x2 cluster, the pixels detect_bad_pixels finds, and the frame corrected by a run.

Run from the repository root: ``python docs/figures/corrections.py`` writes corrections.png.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from libertem_gpu import Context, PickUDF, StdDevUDF, SumUDF
from libertem_gpu.corrections import CorrectionSet, detect_bad_pixels


def main() -> None:
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :32]
    beam = 30 + 500 / (1 + np.exp(2 * (np.hypot(yy - 16, xx - 16) - 8)))
    frames = rng.poisson(beam, size=(8, 8, 32, 32)).astype(np.uint16)
    frames[..., 5, 25] += 900  # hot
    frames[..., 20, 12] = 0  # dead
    frames[..., 10:12, 18:20] = 0  # a dead 2x2 cluster, known from the detector's map
    dark = np.full((32, 32), 10.0)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames)
        total, std = ctx.run_udf(ds, [SumUDF(), StdDevUDF()])
        found = detect_bad_pixels(total["intensity"].data, std["std"].data, threshold=6)
        excluded = detect_bad_pixels(
            total["intensity"].data, std["std"].data, threshold=6, as_mask=True
        )
        excluded[10:12, 18:20] = True  # clusters hide each other from the detection
        corr = CorrectionSet(dark=dark, excluded_pixels=excluded)
        roi = np.zeros((8, 8), bool)
        roi[3, 4] = True
        fixed = ctx.run_udf(ds, PickUDF(), roi=roi, corrections=corr)["intensity"].raw_data[0]
    raw = frames[3, 4].astype(float)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2))
    vmax = float(np.percentile(raw, 99.5))
    axes[0].imshow(raw, vmin=0, vmax=vmax, cmap="gray")
    axes[0].set_title("stored frame")
    axes[1].imshow(raw, vmin=0, vmax=vmax, cmap="gray")
    axes[1].scatter(found[1], found[0], s=60, facecolors="none", edgecolors="red")
    axes[1].add_patch(plt.Rectangle((17.5, 9.5), 2, 2, fill=False, edgecolor="orange"))
    axes[1].set_title(f"{found.shape[1]} found, a 2x2 gap known")
    axes[2].imshow(fixed, vmin=0, vmax=vmax, cmap="gray")
    axes[2].set_title("corrected: dark, patched")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corrections.png")
    fig.savefig(out, dpi=80)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
