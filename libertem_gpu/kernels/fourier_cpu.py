"""The Numba loops of the Fourier operations on the CPU (``power_spectrum``, ``fft_mask_sum``):
the power of spectra, the centring and halving of frames for the partial DFT, and the weighted
amplitude sums. Imported where a CPU strategy runs, so that the references (in
:mod:`libertem_gpu.kernels.fourier` and :mod:`libertem_gpu.kernels.fourier_mask`) import no
Numba."""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["add_power", "centre", "fold", "weigh"]


@numba.njit(nogil=True, cache=True)
def add_power(spectrum, out):  # type: ignore[no-untyped-def]
    """``out += sum_i |spectrum[i]|**2`` in one pass, float64 sums (no temporaries)."""
    for i in range(spectrum.shape[0]):
        for r in range(spectrum.shape[1]):
            for c in range(spectrum.shape[2]):
                z = spectrum[i, r, c]
                out[r, c] += np.float64(z.real) ** 2 + np.float64(z.imag) ** 2


@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def fold(a, i0, ny, nx, real, even, odd, means):  # type: ignore[no-untyped-def]
    """Centre frames ``i0 ..`` of ``a`` (times ``real`` where given) like :func:`centre`, and
    split each row ``v`` into ``even[x] = v[x] + v[nx - x]`` and ``odd[x] = v[x] - v[nx - x]``
    for ``0 < x < nx - x`` (``even = v``, ``odd = 0`` at ``x = 0`` and ``x = nx / 2``): the
    cosine and sine sums over a row need only these half rows, half the multiply-adds."""
    npix = ny * nx
    weighted = real.shape[0] == npix
    pairs = (nx - 1) // 2
    v = np.empty(nx, dtype=even.dtype)
    for j in range(even.shape[0]):
        r = a[i0 + j]
        s = 0.0
        if weighted:
            for p in range(npix):
                s += np.float64(r[p]) * real[p]
        else:
            for p in range(npix):
                s += np.float64(r[p])
        m = s / npix
        means[j] = m
        for y in range(ny):
            row = r[y * nx : (y + 1) * nx]
            # the centred row, then its halves (reading v both ways vectorises; 1.4x faster
            # than through a mirrored copy)
            if weighted:
                w = real[y * nx : (y + 1) * nx]
                for x in range(nx):
                    v[x] = np.float64(row[x]) * w[x] - m
            else:
                for x in range(nx):
                    v[x] = np.float64(row[x]) - m
            e = even[j, y]
            o = odd[j, y]
            e[0] = v[0]
            o[0] = 0.0
            for x in range(1, pairs + 1):
                u = v[x]
                w2 = v[nx - x]
                e[x] = u + w2
                o[x] = u - w2
            if nx % 2 == 0:
                e[nx // 2] = v[nx // 2]
                o[nx // 2] = 0.0


# Reassociation lets the mean's sum vectorise (4x); any rounding of the mean is harmless, as
# the same value is added back at zero frequency.
@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def centre(a, i0, npix, real, buf, means):  # type: ignore[no-untyped-def]
    """``buf[j] = a[i0 + j] * real - mean(a[i0 + j] * real)`` (the mean in float64): frames
    near zero mean keep float32 transforms accurate."""
    weighted = real.shape[0] == npix
    for j in range(buf.shape[0]):
        r = a[i0 + j]
        o = buf[j]
        s = 0.0
        if weighted:
            for p in range(npix):
                s += np.float64(r[p]) * real[p]
        else:
            for p in range(npix):
                s += np.float64(r[p])
        m = s / npix
        means[j] = m
        if weighted:
            for p in range(npix):
                o[p] = np.float64(r[p]) * real[p] - m
        else:
            for p in range(npix):
                o[p] = np.float64(r[p]) - m


# Reassociation lets each run's sum vectorise (2-3x faster than a gather, pixel by pixel).
@numba.njit(nogil=True, cache=True, fastmath={"reassoc", "contract"})
def weigh(spectrum, starts, lengths, weights, shift, out):  # type: ignore[no-untyped-def]
    """``out[i] += sum_j weights[j] * |spectrum[i, index[j]]|`` in float64, the indices given
    as runs of consecutive ones (``starts``, ``lengths``; weights in the same order), one pass
    without temporaries. Where ``shift`` is not empty, the first index is zero frequency, to
    which ``shift[i]`` (the frame's centred-out sum) is added back."""
    for i in range(spectrum.shape[0]):
        row = spectrum[i]
        s = 0.0
        j = 0
        for k in range(starts.shape[0]):
            st = starts[k]
            for q in range(lengths[k]):
                z = row[st + q]
                re = np.float64(z.real)
                im = np.float64(z.imag)
                s += weights[j + q] * math.sqrt(re * re + im * im)
            j += lengths[k]
        if shift.shape[0] > 0:
            z = row[starts[0]]
            re, im = np.float64(z.real), np.float64(z.imag)
            s += weights[0] * (math.hypot(re + shift[i], im) - math.hypot(re, im))
        out[i] += s
