"""Figure of docs/analyses/com.md: runs the page's first example and draws the phase, the
corrected CoM field, its divergence and the iCoM. Writes docs/figures/com.png."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from libertem_gpu.analysis.results import rgb_from_2dvector

HERE = Path(__file__).resolve().parent
PAGE = HERE.parent / "analyses" / "com.md"


def main() -> None:
    block = re.search(r"^```python\n(.*?)^```\s*$", PAGE.read_text(), re.S | re.M)
    assert block is not None
    ns: dict = {"__name__": "__figure__"}
    exec(compile(block[1], str(PAGE), "exec"), ns)
    res = ns["res"]
    panels = [
        ("phase (rad)", ns["phase"], "gray"),
        ("CoM field", rgb_from_2dvector(res["field_x"].data, res["field_y"].data), None),
        ("divergence", res["divergence"].data, "RdBu_r"),
        ("iCoM / 2 px per rad", ns["icom"], "gray"),
    ]
    fig, axes = plt.subplots(1, 4, figsize=(11, 2.6))
    for ax, (title, image, cmap) in zip(axes, panels, strict=True):
        shown = ax.imshow(image, cmap=cmap)
        if cmap is not None:
            fig.colorbar(shown, ax=ax, shrink=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(HERE / "com.png", dpi=80)


if __name__ == "__main__":
    main()
