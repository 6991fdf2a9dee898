"""Correlation of polar images with a bank of polar templates over every in-plane rotation:
the operation ``polar_correlate`` behind :class:`~libertem_gpu.TemplateMatchUDF`.

For frame ``n``'s polar image ``P[n]`` (``(R, S)``: rings by angular sectors) and template
``T[k]`` of the same grid, the correlation at a rotation of ``s`` sectors is

    C[n, k, s] = sum over (r, t) of T[k, r, t] * P[n, r, (t + s) mod S]

and the operation keeps, per frame and template, the best rotation and its value: ``score[n,
k] = max_s C[n, k, s] / (|T[k]| |P[n]|)`` (the cosine similarity of the frame's polar image and
the template turned by ``s`` sectors), and ``shift[n, k]``, the argmax refined to a fraction of
a sector by a parabola through it and its two neighbours.

The reference loops over rotations from the definition. The implementations (NumPy with its
BLAS on the CPU, CuPy with cuBLAS and cuFFT on the GPU) transform along the angle: per
frequency, one complex matrix product of the frames' spectra with the templates' conjugate
spectra, summed over rings, then inverse transforms give ``C`` for every rotation at once, a
block of frames at a time so that ``C`` stays a few tens of MiB. Rings on which no template
has a spot are skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["PreparedCorrelation", "prepare", "prepare_gpu", "prepare_reference", "reference"]

#: Bytes of one block's correlations ``(frames, templates, sectors)``.
_BLOCK_BYTES = 32 * 2**20


def _best(xp: Any, corr: Any, norms: Any) -> tuple[Any, Any]:
    """Scores and refined shifts from correlations ``(n, K, S)`` and ``|T| |P|`` ``(n, K)``."""
    s = corr.shape[-1]
    at = xp.argmax(corr, axis=-1)
    peak = xp.take_along_axis(corr, at[..., None], axis=-1)[..., 0]
    before = xp.take_along_axis(corr, ((at - 1) % s)[..., None], axis=-1)[..., 0]
    after = xp.take_along_axis(corr, ((at + 1) % s)[..., None], axis=-1)[..., 0]
    curve = before - 2 * peak + after
    safe = xp.where(curve < 0, curve, -1.0)
    offset = xp.where(curve < 0, 0.5 * (before - after) / safe, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = xp.where(norms > 0, peak / xp.where(norms > 0, norms, 1.0), 0.0)
    return score, at + xp.clip(offset, -0.5, 0.5)


def reference(polar: np.ndarray, templates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(score (n, K), shift (n, K))`` in float64, every rotation from the definition."""
    p = np.asarray(polar, dtype=np.float64)
    t = np.asarray(templates, dtype=np.float64)
    n, k, s = len(p), len(t), p.shape[-1]
    corr = np.empty((n, k, s))
    for shift in range(s):
        # P[n, r, (t + s) mod S] for every t: the image rolled back by s sectors.
        rolled = np.roll(p, -shift, axis=-1)
        corr[:, :, shift] = np.einsum("krt,nrt->nk", t, rolled)
    norms = np.sqrt((p**2).sum(axis=(1, 2)))[:, None] * np.sqrt((t**2).sum(axis=(1, 2)))[None]
    return _best(np, corr, norms)


class PreparedCorrelation:
    """``polar_correlate`` for one template bank on one array module: call it with ``(polar
    (n, R, S), score (n, K), shift (n, K))`` to write each frame's scores and shifts."""

    def __init__(self, xp: Any, templates: np.ndarray, double: bool = False) -> None:
        self.xp = xp
        t = np.asarray(templates, dtype=np.float64)
        if t.ndim != 3:
            raise ValueError(f"templates must be (K, R, S), got shape {t.shape}")
        self.count, self.rings, self.sectors = t.shape
        self.real = np.float64 if double else np.float32
        self.complex = np.complex128 if double else np.complex64
        # Rings where no template has a spot add nothing to any correlation: transform and
        # multiply only the others (a one-phase bank's spots lie on a few rings, those of its
        # powder pattern). The image's norm still takes every ring.
        used = np.flatnonzero(t.any(axis=(0, 2)))
        self.used = None if len(used) == self.rings else xp.asarray(used)
        t = t[:, used] if self.used is not None else t
        spectra = np.conj(np.fft.rfft(t, axis=-1))  # (K, R, F)
        # (F, R, K): one matrix per frequency, rings by templates.
        self.spectra = xp.asarray(np.ascontiguousarray(spectra.transpose(2, 1, 0)), self.complex)
        self.norms = xp.asarray(np.sqrt((t**2).sum(axis=(1, 2))), np.float64)

    @property
    def nbytes(self) -> int:
        """Bytes of the templates' spectra on the backend."""
        return int(self.spectra.nbytes + self.norms.nbytes)

    def __call__(self, polar: Any, score: Any, shift: Any) -> None:
        xp = self.xp
        n = int(polar.shape[0])
        per_frame = self.count * self.sectors * np.dtype(self.real).itemsize
        step = max(1, _BLOCK_BYTES // max(per_frame, 1))
        fft = _fft(xp)
        for a in range(0, n, step):
            b = min(n, a + step)
            p = xp.asarray(polar[a:b], dtype=self.real)
            image_norms = xp.sqrt(xp.sum(p.astype(np.float64) ** 2, axis=(1, 2)))
            if self.used is not None:
                p = p[:, self.used]
            # (n, R, F) -> (F, n, R) @ (F, R, K) -> (F, n, K), summed over rings by the product
            spectrum = fft.rfft(p, axis=-1).astype(self.complex, copy=False)
            cross = xp.matmul(spectrum.transpose(2, 0, 1), self.spectra)
            corr = fft.irfft(cross.transpose(1, 2, 0), n=self.sectors, axis=-1)
            got, moved = _best(xp, corr, image_norms[:, None] * self.norms[None])
            score[a:b] = got
            shift[a:b] = moved


def _fft(xp: Any) -> Any:
    """The module's FFTs: scipy.fft's (multi-threaded) for NumPy, cupy.fft for CuPy."""
    if xp is np:
        import scipy.fft

        return scipy.fft
    return xp.fft


def prepare(templates: np.ndarray, double: bool = False) -> PreparedCorrelation:
    """The CPU implementation (NumPy's BLAS, scipy.fft)."""
    return PreparedCorrelation(np, templates, double)


def prepare_gpu(templates: np.ndarray, double: bool = False) -> PreparedCorrelation:
    """The GPU implementation (cuBLAS, cuFFT); the templates on the host."""
    from libertem_gpu.kernels import gpu_common as g

    return PreparedCorrelation(g.cupy(), templates, double)


def prepare_reference(templates: np.ndarray, double: bool = False) -> Any:
    """The reference with the prepared signature (``double`` is moot: it always is)."""

    def step(polar: Any, score: Any, shift: Any) -> None:
        got, moved = reference(polar, templates)
        score[...] = got
        shift[...] = moved

    return step
