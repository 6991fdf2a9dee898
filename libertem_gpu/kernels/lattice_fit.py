"""The per-frame loop of :func:`libertem_gpu.disks.lattice.fit_lattice` compiled with Numba.

The NumPy implementation in :mod:`libertem_gpu.disks.lattice` (``_fit_numpy``) is the
reference: this one follows it step by step, one frame at a time (re-centre on the median
offset; index, select, sigma-clip, keep one peak per index, solve the 3x3 normal equations;
until the frame's matched set no longer changes) and agrees with it to rounding. It is not a
tile operation (its input is a partition's peak lists, not frames), so it has no entry in the
operation catalog; the fit runs on the host on every backend.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["fit_frames"]

_jit = numba.njit(nogil=True, cache=True, fastmath=False)


@_jit
def _index(p, o, a, b, fixed, use_fixed, f, out):  # type: ignore[no-untyped-def]
    """Indices of frame ``f``'s peaks into ``out`` (N, 2); NaN where the basis is singular."""
    n = p.shape[1]
    if use_fixed:
        for i in range(n):
            out[i, 0] = fixed[f, i, 0]
            out[i, 1] = fixed[f, i, 1]
        return
    det = a[0] * b[1] - b[0] * a[1]
    good = math.isfinite(det) and det != 0.0
    for i in range(n):
        if not good:
            out[i, 0] = np.nan
            out[i, 1] = np.nan
            continue
        dy = p[f, i, 0] - o[0]
        dx = p[f, i, 1] - o[1]
        # inverse of [[a_y, b_y], [a_x, b_x]]
        out[i, 0] = np.round((b[1] * dy - b[0] * dx) / det)
        out[i, 1] = np.round((-a[1] * dy + a[0] * dx) / det)


@_jit
def _solve(p, hk, w, use, f, min_peaks, o, a, b, cov):  # type: ignore[no-untyped-def]
    """Weighted least squares of frame ``f`` over ``use``: writes ``o``, ``a``, ``b``,
    ``cov`` (6, 6); returns ``(rms, n_matched)``."""
    n_pk = p.shape[1]
    s = np.zeros(6)  # sw, swh, swk, shh, shk, skk
    r = np.zeros((3, 2))
    count = 0
    for i in range(n_pk):
        if not use[i]:
            continue
        count += 1
        wi, h, k = w[f, i], hk[i, 0], hk[i, 1]
        s[0] += wi
        s[1] += wi * h
        s[2] += wi * k
        s[3] += wi * h * h
        s[4] += wi * h * k
        s[5] += wi * k * k
        for c in range(2):
            q = p[f, i, c]
            r[0, c] += wi * q
            r[1, c] += wi * h * q
            r[2, c] += wi * k * q
    m00, m01, m02, m11, m12, m22 = s[0], s[1], s[2], s[3], s[4], s[5]
    c00 = m11 * m22 - m12 * m12
    c01 = m02 * m12 - m01 * m22
    c02 = m01 * m12 - m02 * m11
    det = m00 * c00 + m01 * c01 + m02 * c02
    scale = (m00 + m11 + m22) / 3
    if not (count >= min_peaks and det > 1e-9 * scale**3):
        for c in range(2):
            o[c] = np.nan
            a[c] = np.nan
            b[c] = np.nan
        cov[:, :] = np.nan
        return np.nan, 0
    inv = np.empty((3, 3))
    inv[0, 0] = c00 / det
    inv[0, 1] = inv[1, 0] = c01 / det
    inv[0, 2] = inv[2, 0] = c02 / det
    inv[1, 1] = (m00 * m22 - m02 * m02) / det
    inv[1, 2] = inv[2, 1] = (m01 * m02 - m00 * m12) / det
    inv[2, 2] = (m00 * m11 - m01 * m01) / det
    for c in range(2):
        o[c] = inv[0, 0] * r[0, c] + inv[0, 1] * r[1, c] + inv[0, 2] * r[2, c]
        a[c] = inv[1, 0] * r[0, c] + inv[1, 1] * r[1, c] + inv[1, 2] * r[2, c]
        b[c] = inv[2, 0] * r[0, c] + inv[2, 1] * r[1, c] + inv[2, 2] * r[2, c]
    sum2 = 0.0
    wsum2 = 0.0
    for i in range(n_pk):
        if not use[i]:
            continue
        h, k = hk[i, 0], hk[i, 1]
        ry = p[f, i, 0] - (o[0] + h * a[0] + k * b[0])
        rx = p[f, i, 1] - (o[1] + h * a[1] + k * b[1])
        d2 = ry * ry + rx * rx
        sum2 += d2
        wsum2 += w[f, i] * d2
    dof = 2 * count - 6
    s2 = wsum2 / dof if dof > 0 else np.nan
    cov[:, :] = 0.0
    for i in range(3):
        for j in range(3):
            cov[2 * i, 2 * j] = s2 * inv[i, j]
            cov[2 * i + 1, 2 * j + 1] = s2 * inv[i, j]
    return math.sqrt(sum2 / count), count


@_jit
def _stable_order(code):  # type: ignore[no-untyped-def]
    """``np.argsort(code, kind="mergesort")``: a bottom-up merge sort, stable. Numba's own
    stable argsort took ~16 s to compile, half of this module's compile time."""
    m = code.shape[0]
    order = np.arange(m)
    spare = np.empty(m, np.int64)
    width = 1
    while width < m:
        for lo in range(0, m, 2 * width):
            mid = min(lo + width, m)
            hi = min(lo + 2 * width, m)
            i, j = lo, mid
            for k in range(lo, hi):
                # ties take the left run first: equal keys keep their order
                if j >= hi or (i < mid and code[order[i]] <= code[order[j]]):
                    spare[k] = order[i]
                    i += 1
                else:
                    spare[k] = order[j]
                    j += 1
        order, spare = spare, order
        width *= 2
    return order


@_jit
def _median(values, count):  # type: ignore[no-untyped-def]
    """``np.median(values[:count])``, the same value (the middle one, or the two middle ones'
    sum halved), through the merge sort above: with Numba's ``np.median`` the fit took
    5.6-6.1 s to compile in a new process, with this 4.7-4.8 s (Zen 4 VM)."""
    if count == 0:
        return np.nan
    v = values[:count]
    for i in range(count):
        if math.isnan(v[i]):
            return np.nan
    order = _stable_order(v)
    mid = count // 2
    if count % 2:
        return v[order[mid]]
    return (v[order[mid - 1]] + v[order[mid]]) / 2.0


@_jit
def _unique(hk, res, use):  # type: ignore[no-untyped-def]
    """Keep only the nearest of several used peaks with the same index (ties: the first)."""
    n = use.shape[0]
    idx = np.empty(n, np.int64)
    m = 0
    for i in range(n):
        if use[i]:
            idx[m] = i
            m += 1
    if m < 2:
        return
    code = np.empty(m, np.int64)
    for u in range(m):
        # indices are small integers: one key per (h, k)
        code[u] = np.int64(hk[idx[u], 0]) * 4294967296 + np.int64(hk[idx[u], 1])
    order = _stable_order(code)  # stable: equal keys keep peak order
    start = 0
    while start < m:
        stop = start + 1
        while stop < m and code[order[stop]] == code[order[start]]:
            stop += 1
        if stop - start > 1:
            best = idx[order[start]]
            for v in range(start + 1, stop):
                j = idx[order[v]]
                if res[j] < res[best]:
                    use[best] = False
                    best = j
                else:
                    use[j] = False
        start = stop


@_jit
def fit_frames(  # type: ignore[no-untyped-def]
    p, o0, a0, b0, w, fixed, use_fixed, limit, outlier_sigma, n_iter, min_peaks, clip_floor,
    rayleigh_median, o_out, a_out, b_out, rms_out, n_out, cov_out,
):  # fmt: skip
    """Fit every frame; the arguments are those of the NumPy reference, outputs last."""
    frames, n = p.shape[0], p.shape[1]
    hk = np.empty((n, 2))
    res = np.empty(n)
    use = np.zeros(n, np.bool_)
    used = np.zeros(n, np.bool_)
    valid = np.zeros(n, np.bool_)
    buf = np.empty(n)
    buf2 = np.empty(n)
    for f in range(frames):
        o = o0[f].copy()
        a = a0[f].copy()
        b = b0[f].copy()
        for i in range(n):
            wi = w[f, i]
            valid[i] = (
                math.isfinite(p[f, i, 0]) and math.isfinite(p[f, i, 1]) and wi > 0
                and math.isfinite(wi)
            )  # fmt: skip
        # re-centre on the median offset from the nearest lattice points
        _index(p, o, a, b, fixed, use_fixed, f, hk)
        cy = 0
        cx = 0
        for i in range(n):
            if not valid[i]:
                continue
            dy = p[f, i, 0] - (o[0] + hk[i, 0] * a[0] + hk[i, 1] * b[0])
            dx = p[f, i, 1] - (o[1] + hk[i, 0] * a[1] + hk[i, 1] * b[1])
            if not math.isnan(dy):
                buf[cy] = dy
                cy += 1
            if not math.isnan(dx):
                buf2[cx] = dx
                cx += 1
        sy = _median(buf, cy)
        sx = _median(buf2, cx)
        o[0] += 0.0 if math.isnan(sy) else sy
        o[1] += 0.0 if math.isnan(sx) else sx
        used[:] = False
        rms, n_matched = np.nan, 0
        cov_out[f] = np.nan
        for it in range(n_iter):
            _index(p, o, a, b, fixed, use_fixed, f, hk)
            count = 0
            for i in range(n):
                ry = p[f, i, 0] - (o[0] + hk[i, 0] * a[0] + hk[i, 1] * b[0])
                rx = p[f, i, 1] - (o[1] + hk[i, 0] * a[1] + hk[i, 1] * b[1])
                res[i] = math.hypot(ry, rx)
                use[i] = valid[i] and res[i] <= limit[f]
                if use[i]:
                    buf[count] = res[i]
                    count += 1
            if it > 0:
                clip = max(outlier_sigma * _median(buf, count) / rayleigh_median, clip_floor)
                if count == 0:
                    clip = np.nan
                for i in range(n):
                    use[i] = use[i] and res[i] <= clip
            if not use_fixed:
                _unique(hk, res, use)
            if it > 0:
                same = True
                for i in range(n):
                    if use[i] != used[i]:
                        same = False
                        break
                if same:
                    break
            for i in range(n):  # loops, not array assignment: that compiles 2 s of shape checks
                used[i] = use[i]
            for i in range(n):
                if not use[i]:
                    hk[i, 0] = 0.0
                    hk[i, 1] = 0.0
            rms, n_matched = _solve(p, hk, w, use, f, min_peaks, o, a, b, cov_out[f])
        for c in range(2):
            o_out[f, c] = o[c]
            a_out[f, c] = a[c]
            b_out[f, c] = b[c]
        rms_out[f] = rms
        n_out[f] = n_matched
