"""decompose against NumPy's SVD of the centred frames: a few phases mixed over the scan
(exact within the subspace), every executor, rois and sync offsets, frames of 1 to 3
dimensions; noisy data and power iterations; reconstruct; errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import Context, Decomposition, decompose
from libertem_gpu.errors import InvalidParameterError, UnsupportedDTypeError


def mixture(rng, nav, sig, phases=3, noise=1e-3):
    maps = rng.random((phases, *nav))
    patterns = rng.random((phases, *sig))
    data = np.tensordot(np.moveaxis(maps, 0, -1), patterns, axes=1)
    return data + noise * rng.standard_normal(data.shape)


def numpy_pca(frames):
    centred = frames - frames.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    return u * s, s, vt, (s**2) / (s**2).sum()


def assert_matches(found, frames, processed, k, rtol):
    scores, s, vt, ratio = numpy_pca(frames)
    np.testing.assert_allclose(found.singular_values[:k], s[:k], rtol=rtol)
    np.testing.assert_allclose(found.explained_variance_ratio[:k], ratio[:k], rtol=rtol)
    got = found.components.reshape(len(found.components), -1)
    for i in range(k):  # the same direction, up to sign; the scores with the same sign
        sign = np.sign(got[i] @ vt[i])
        np.testing.assert_allclose(got[i], sign * vt[i], atol=rtol * 10)
        flat = found.scores.reshape(-1, found.scores.shape[-1])
        np.testing.assert_allclose(
            flat[processed, i], sign * scores[:, i], atol=rtol * 10 * np.abs(scores[:, i]).max()
        )
    assert np.isnan(found.scores.reshape(-1, found.scores.shape[-1])[~processed]).all()
    np.testing.assert_allclose(found.mean.reshape(-1), frames.mean(axis=0), rtol=1e-10)
    assert found.frames == len(frames)


@pytest.mark.parametrize(
    "nav, sig, use_roi, sync",
    [((9, 11), (13, 17), False, 0), ((40,), (7, 5, 3), True, 2), ((3, 4, 5), (23,), True, -3)],
)
def test_matches_numpy_svd(ctx, rng, nav, sig, use_roi, sync):
    data = mixture(rng, nav, sig)
    ds = ctx.load("memory", data=data, sig_dims=len(sig), sync_offset=sync, num_partitions=3)
    n = int(np.prod(nav))
    flat = data.reshape(n, -1)
    has_data = np.zeros(n, bool)
    seen = np.zeros_like(flat)
    for i in range(n):
        if 0 <= i + sync < n:
            seen[i], has_data[i] = flat[i + sync], True
    roi = rng.random(nav) > 0.3 if use_roi else None
    processed = has_data & (True if roi is None else roi.reshape(-1))
    found = decompose(ctx, ds, n_components=4, roi=roi)
    assert found.components.shape == (4, *sig) and found.scores.shape == (*nav, 4)
    # three phases: exact within the 12-wide subspace; the noise's first direction, close
    assert_matches(found, seen[processed], processed, 3, rtol=1e-7)


def test_no_spare_directions_and_no_power_iteration(rng):
    """Three phases, a subspace of exactly three directions and one pass of projections: exact
    only if the projections are centred (the mean frame is a fourth direction)."""
    data = mixture(rng, (10, 12), (9, 8), phases=3, noise=0)
    ctx = Context("inline")
    found = decompose(
        ctx, ctx.load("memory", data=data), n_components=3, oversampling=0, power_iterations=0
    )
    assert_matches(found, data.reshape(120, -1), np.ones(120, bool), 3, rtol=1e-7)


def test_a_pixel_mask_leaves_pixels_out(rng):
    data = mixture(rng, (10, 12), (9, 8), phases=3)
    mask = rng.random((9, 8)) > 0.4
    ctx = Context("inline")
    found = decompose(ctx, ctx.load("memory", data=data), n_components=4, pixel_mask=mask)
    assert (found.components[:, ~mask] == 0).all()
    inside = found.components[:, mask]
    masked = Decomposition(
        inside,
        found.scores,
        found.singular_values,
        found.explained_variance_ratio,
        found.mean[mask],
        found.frames,
    )
    assert_matches(masked, data.reshape(120, -1)[:, mask.reshape(-1)], np.ones(120, bool), 3, 1e-7)
    with pytest.raises(InvalidParameterError, match="pixel_mask must be bool"):
        decompose(ctx, ctx.load("memory", data=data), pixel_mask=mask.astype(int))
    with pytest.raises(InvalidParameterError, match="selects no pixel"):
        decompose(ctx, ctx.load("memory", data=data), pixel_mask=np.zeros((9, 8), bool))


def test_power_iterations_sharpen_noisy_components(rng):
    data = mixture(rng, (20, 24), (16, 16), phases=4, noise=0.05)
    ctx = Context("inline")
    ds = ctx.load("memory", data=data)
    _, s, _, _ = numpy_pca(data.reshape(480, -1))
    errors = []
    for rounds in (0, 2):
        found = decompose(ctx, ds, n_components=6, oversampling=4, power_iterations=rounds)
        errors.append(np.abs(found.singular_values - s[:6]).max() / s[0])
    assert errors[1] < 0.5 * errors[0] and errors[1] < 3e-3


def test_reconstruct_keeps_the_phases_and_drops_the_noise(rng):
    clean = mixture(rng, (8, 9), (10, 12), phases=2, noise=0)
    noisy = clean + 0.01 * rng.standard_normal(clean.shape)
    ctx = Context("inline")
    found = decompose(ctx, ctx.load("memory", data=noisy), n_components=2)
    rebuilt = found.reconstruct()
    assert rebuilt.shape == clean.shape
    assert np.abs(rebuilt - clean).std() < 0.5 * np.abs(noisy - clean).std()
    np.testing.assert_allclose(found.reconstruct(0), np.broadcast_to(found.mean, clean.shape))


def test_fewer_frames_than_directions(rng):
    data = rng.random((1, 3, 6, 7))
    ctx = Context("inline")
    found = decompose(ctx, ctx.load("memory", data=data), n_components=5)
    _, s, _, _ = numpy_pca(data.reshape(3, -1))
    assert len(found.singular_values) == 3 and found.components.shape == (3, 6, 7)
    np.testing.assert_allclose(found.singular_values, s, rtol=1e-10, atol=1e-12)
    one = decompose(ctx, ctx.load("memory", data=data[:, :1]), n_components=2)
    assert one.frames == 1 and (one.singular_values < 1e-12).all()
    assert (one.explained_variance_ratio == 0).all()


def test_bad_parameters_and_an_empty_roi():
    ctx = Context("inline")
    ds = ctx.load("memory", data=np.random.default_rng(0).random((3, 4, 5, 6)))
    for kwargs in ({"n_components": 0}, {"oversampling": -1}, {"power_iterations": 1.5}):
        with pytest.raises(InvalidParameterError, match=next(iter(kwargs))):
            decompose(ctx, ds, **kwargs)
    with pytest.raises(InvalidParameterError, match="no frame"):
        decompose(ctx, ds, roi=np.zeros((3, 4), bool))
    complex_ds = ctx.load("memory", data=np.ones((3, 4, 5, 6), np.complex64))
    with pytest.raises(UnsupportedDTypeError, match="real frames"):
        decompose(ctx, complex_ds)


def test_nmf_finds_non_negative_phases(rng):
    """Three phases (Gaussian spots at different places) mixed over the scan with Poisson
    counts: the non-negative factors of the PCA approximation are the phases' patterns and
    maps (matched by correlation), NaN outside the roi."""
    yy, xx = np.mgrid[:16, :16]
    spots = [(4, 4), (8, 12), (12, 5)]
    patterns = np.stack([np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4) for cy, cx in spots])
    ry, rx = np.mgrid[:20, :24]
    centres = [(5, 6), (14, 18), (15, 5)]  # each phase pure somewhere: the factors are unique
    maps = np.stack([np.exp(-((ry - cy) ** 2 + (rx - cx) ** 2) / 30) for cy, cx in centres])
    data = rng.poisson(100 * np.einsum("cij,cab->ijab", maps, patterns)).astype(np.float32)
    roi = np.ones((20, 24), bool)
    roi[0, :3] = False
    ctx = Context("inline")
    found = decompose(ctx, ctx.load("memory", data=data), n_components=4, roi=roi)
    got_maps, got_patterns = found.nmf(3, rank=3)
    assert got_maps.shape == (20, 24, 3) and got_patterns.shape == (3, 16, 16)
    assert np.isnan(got_maps[~roi]).all() and (got_maps[roi] >= 0).all()
    assert (got_patterns >= 0).all() and np.allclose(got_patterns.max(axis=(1, 2)), 1)
    matched = set()
    for i in range(3):
        corr = [np.corrcoef(got_patterns[i].ravel(), p.ravel())[0, 1] for p in patterns]
        j = int(np.argmax(corr))
        matched.add(j)
        assert corr[j] > 0.99
        assert np.corrcoef(got_maps[..., i][roi], maps[j][roi])[0, 1] > 0.99
    assert matched == {0, 1, 2}
    # the factors rebuild the frames, to the noise
    rebuilt = np.einsum("ijc,cab->ijab", got_maps[roi][None], got_patterns)[0]
    clean = 100 * np.einsum("cij,cab->ijab", maps, patterns)[roi]
    assert np.linalg.norm(rebuilt - clean) < 0.1 * np.linalg.norm(clean)  # 4.7 % here
    with pytest.raises(InvalidParameterError, match="n_factors"):
        found.nmf(0)


def test_corrections_apply_to_every_pass(rng):
    """A dark frame and a gain map given as corrections: the same as decomposing the
    corrected frames."""
    from libertem_gpu import CorrectionSet

    data = mixture(rng, (8, 9), (10, 11), phases=3) * 100
    dark = rng.random((10, 11)) * 5
    gain = 0.5 + rng.random((10, 11))
    ctx = Context("inline")
    corrected = (data - dark) * gain
    want = decompose(ctx, ctx.load("memory", data=corrected), n_components=3)
    got = decompose(
        ctx,
        ctx.load("memory", data=data),
        n_components=3,
        corrections=CorrectionSet(dark=dark, gain=gain),
    )
    np.testing.assert_allclose(got.singular_values, want.singular_values, rtol=1e-6)
    np.testing.assert_allclose(np.abs(got.scores), np.abs(want.scores), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got.mean, want.mean, rtol=1e-6)
