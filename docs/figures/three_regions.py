"""The simulated scan that docs/figures/decomposition.py and clustering.py share (not a figure
of its own): a 48 x 48 scan over a round crystal (spots), an amorphous band (a ring) and
vacuum (the bright-field disk alone), blended at their borders, Poisson counts at 20 per unit
of intensity, on 32 x 32 frames."""

import numpy as np


def three_region_scan(rng: np.random.Generator) -> np.ndarray:
    """The scan's frames, ``(48, 48, 32, 32)`` float32 counts."""
    y, x = np.mgrid[:48, :48]
    regions = np.stack(
        [
            1 / (1 + np.exp((np.hypot(y - 16, x - 14) - 11) / 1.5)),  # a round crystal
            1 / (1 + np.exp(-(x - 0.6 * y - 26) / 2.0)),  # an amorphous band
        ]
    )
    regions = np.concatenate([regions, np.clip(1 - regions.sum(axis=0, keepdims=True), 0, 1)])
    ky, kx = np.mgrid[:32, :32] - 15.5
    r = np.hypot(ky, kx)
    disk = (r <= 4).astype(float)
    spots = disk + sum(
        np.exp(-((ky - 8 * i) ** 2 + (kx - 8 * j) ** 2) / 2)
        for i in (-1, 0, 1)
        for j in (-1, 0, 1)
        if (i, j) != (0, 0)
    )
    ring = disk + 0.5 * np.exp(-((r - 11) ** 2) / 4)
    patterns = np.stack([spots, ring, disk])
    counts = rng.poisson(20 * np.einsum("cij,cab->ijab", regions, patterns))
    return counts.astype(np.float32)
