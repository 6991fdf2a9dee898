"""The synthetic sample: disk templates, halo, Poisson counts, and frames generated in chunks."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import numpy as np

# Quantisation of the expected counts and the random bits used for the Poisson table.
_LAM_LEVELS = 256
_RANDOM_BITS = 14
_PHASES = 4  # sub-pixel positions of the disk per axis (quarter pixels)


@dataclasses.dataclass(frozen=True)
class _Sample:
    """Per scan position: disk shift (pixels), disk and halo mean counts per pixel."""

    shift_y: np.ndarray
    shift_x: np.ndarray
    disk: np.ndarray
    halo: np.ndarray


def _sample(nav_shape: tuple[int, int], max_shift: float, seed: int) -> _Sample:
    """A lattice of Gaussian atomic columns, slightly jittered, under the scan."""
    ny, nx = nav_shape
    rng = np.random.default_rng(seed)
    spacing = max(6.0, min(ny, nx) / 6)  # about six columns across the shorter scan axis
    sigma = spacing / 5
    yy, xx = np.mgrid[0:ny, 0:nx].astype(np.float64)
    potential = np.zeros((ny, nx))
    grad_y = np.zeros((ny, nx))
    grad_x = np.zeros((ny, nx))
    for ay in np.arange(spacing / 2, ny + spacing, spacing):
        for ax in np.arange(spacing / 2, nx + spacing, spacing):
            jy, jx = rng.normal(0, spacing / 20, 2)
            weight = rng.uniform(0.6, 1.0)  # two kinds of columns, roughly
            dy, dx = yy - (ay + jy), xx - (ax + jx)
            g = weight * np.exp(-(dy * dy + dx * dx) / (2 * sigma * sigma))
            potential += g
            grad_y -= g * dy / (sigma * sigma)
            grad_x -= g * dx / (sigma * sigma)
    potential /= max(potential.max(), 1e-12)
    scale = max(np.abs(grad_y).max(), np.abs(grad_x).max(), 1e-12)
    # The beam is deflected towards the columns: along the gradient of the potential.
    return _Sample(
        shift_y=grad_y / scale * max_shift,
        shift_x=grad_x / scale * max_shift,
        disk=40.0 * (1.0 - 0.45 * potential),
        halo=0.3 + 2.5 * potential,
    )


def _disk_phases(
    sig_shape: tuple[int, int], cy: float, cx: float, radius: float, pad: int
) -> np.ndarray:
    """Soft-edged disk images on a canvas padded by ``pad``, one per quarter-pixel phase.

    ``canvas[py, px, pad - dy : pad - dy + h, pad - dx : pad - dx + w]`` is the disk moved by
    ``dy + py / phases`` rows and ``dx + px / phases`` columns.
    """
    h, w = sig_shape
    yy = np.arange(h + 2 * pad, dtype=np.float64)[:, None] - pad
    xx = np.arange(w + 2 * pad, dtype=np.float64)[None, :] - pad
    out = np.empty((_PHASES, _PHASES, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    for py in range(_PHASES):
        for px in range(_PHASES):
            # Slicing the canvas at ``pad - dy`` moves its content by +dy pixels; the phase
            # adds the fraction.
            r = np.hypot(yy - (cy + py / _PHASES), xx - (cx + px / _PHASES))
            out[py, px] = np.clip(radius + 0.5 - r, 0.0, 1.0)
    return out


def _halo(sig_shape: tuple[int, int], cy: float, cx: float, inner: float, outer: float):
    """Scattered intensity: a broad ring that falls off outwards, zero inside ``inner``."""
    h, w = sig_shape
    r = np.hypot(np.arange(h)[:, None] - cy, np.arange(w)[None, :] - cx)
    ring = np.clip((r - inner) / 2.0, 0.0, 1.0) * np.exp(-np.clip(r - inner, 0, None) / outer)
    return ring.astype(np.float32)


def _poisson_table(lam_max: float) -> tuple[np.ndarray, float]:
    """Inverse cumulative Poisson distributions: ``table[level << BITS | u]`` is a count drawn
    with mean ``level * step`` when ``u`` is uniform over ``[0, 2**BITS)``."""
    step = lam_max / (_LAM_LEVELS - 1)
    lams = np.arange(_LAM_LEVELS) * step
    kmax = int(lam_max + 12 * math.sqrt(lam_max) + 20)
    k = np.arange(kmax + 1)
    # log pmf for numerical safety at large means; level 0 gives all zeros.
    log_fact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, kmax + 1)))))
    with np.errstate(divide="ignore", invalid="ignore"):
        log_pmf = k[None, :] * np.log(lams)[:, None] - lams[:, None] - log_fact[None, :]
    log_pmf[0] = -np.inf
    log_pmf[0, 0] = 0.0
    cdf = np.cumsum(np.exp(log_pmf), axis=1)
    quantiles = (np.arange(2**_RANDOM_BITS) + 0.5) / 2**_RANDOM_BITS
    table = np.empty((_LAM_LEVELS, 2**_RANDOM_BITS), dtype=np.uint16)
    for level in range(_LAM_LEVELS):
        table[level] = np.minimum(np.searchsorted(cdf[level], quantiles), kmax)
    return table.reshape(-1), step


def generate_frames(
    nav_shape: tuple[int, int],
    sig_shape: tuple[int, int] = (256, 256),
    *,
    seed: int = 0,
    chunk_frames: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the demo data set's frames in scan order, in chunks of ``(n, *sig_shape)`` uint16.

    Parameters
    ----------
    nav_shape : tuple of int
        Scan shape (2-D).
    sig_shape : tuple of int
        Frame shape (2-D, at least 16 x 16).
    seed : int
        Seed of the random generator: the same seed gives the same data.
    chunk_frames : int, optional
        Frames per chunk; default about 16 MiB of output.
    """
    h, w = (int(s) for s in sig_shape)
    if h < 16 or w < 16:
        raise ValueError(f"demo frames must be at least 16 x 16 pixels, got {sig_shape}")
    geometry = disk_geometry(sig_shape)
    max_shift = geometry["radius"] / 4
    sample = _sample(nav_shape, max_shift, seed)
    pad = math.ceil(max_shift) + 2
    disks = _disk_phases(sig_shape, geometry["cy"], geometry["cx"], geometry["radius"], pad)
    halo = _halo(sig_shape, geometry["cy"], geometry["cx"], geometry["halo_inner"], 8.0)
    background = np.float32(0.2)
    lam_max = float(sample.disk.max() + sample.halo.max() * halo.max() + background)
    table, step = _poisson_table(lam_max)
    inv_step = np.float32(1.0 / step)
    rng = np.random.default_rng(seed + 1)

    # Split each shift into an integer part (slice offset) and a quarter-pixel phase.
    def split(shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        quarters = np.rint(shift.reshape(-1) * _PHASES).astype(np.int64)
        whole = np.floor_divide(quarters, _PHASES)
        return whole, quarters - whole * _PHASES

    int_y, ph_y = split(sample.shift_y)
    int_x, ph_x = split(sample.shift_x)
    disk_level = sample.disk.reshape(-1).astype(np.float32)
    halo_level = sample.halo.reshape(-1).astype(np.float32)

    n_total = math.prod(nav_shape)
    chunk = chunk_frames or max(1, (16 * 2**20) // (2 * h * w))
    lam = np.empty((chunk, h, w), dtype=np.float32)
    index = np.empty((chunk, h, w), dtype=np.uint32)
    # Raw 64-bit draws of the bit generator, viewed as 16-bit words: the cheapest uniform bits.
    words_per_draw = 4
    for start in range(0, n_total, chunk):
        stop = min(start + chunk, n_total)
        n = stop - start
        lam_c, index_c = lam[:n], index[:n]
        for j, f in enumerate(range(start, stop)):
            y0, x0 = pad - int_y[f], pad - int_x[f]
            disk = disks[ph_y[f], ph_x[f], y0 : y0 + h, x0 : x0 + w]
            np.multiply(disk, disk_level[f], out=lam_c[j])
        lam_c += halo_level[start:stop, None, None] * halo[None]
        lam_c += background
        lam_c *= inv_step
        lam_c += np.float32(0.5)  # round to the nearest level
        np.copyto(index_c, lam_c, casting="unsafe")
        np.left_shift(index_c, _RANDOM_BITS, out=index_c)
        draws = -(-index_c.size // words_per_draw)
        words = rng.bit_generator.random_raw(draws).view(np.uint16)[: index_c.size]
        words >>= 16 - _RANDOM_BITS
        index_c |= words.reshape(index_c.shape)
        yield table[index_c]


def disk_geometry(sig_shape: tuple[int, int]) -> dict[str, float]:
    """Where the disk and the halo sit on a frame of ``sig_shape``."""
    h, w = sig_shape
    radius = min(h, w) / 8
    return {
        "cy": (h - 1) / 2,
        "cx": (w - 1) / 2,
        "radius": radius,
        "halo_inner": radius * 1.6,
        "halo_outer": min(h, w) / 2 - 1,
    }
