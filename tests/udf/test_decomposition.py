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


def scan_frames(data, nav, sync):
    """Each position's frame as the scan sees it (``sync_offset`` applied), float64, and
    whether it holds data."""
    n = int(np.prod(nav))
    flat = data.reshape(n, -1).astype(np.float64)
    has_data = np.zeros(n, bool)
    seen = np.zeros_like(flat)
    for i in range(n):
        if 0 <= i + sync < n:
            seen[i], has_data[i] = flat[i + sync], True
    return seen, has_data


@pytest.mark.parametrize(
    "nav, sig, use_roi, sync",
    [((9, 11), (13, 17), False, 0), ((40,), (7, 5, 3), True, 2), ((3, 4, 5), (23,), True, -3)],
)
def test_matches_numpy_svd(ctx, rng, nav, sig, use_roi, sync):
    data = mixture(rng, nav, sig)
    ds = ctx.load("memory", data=data, sig_dims=len(sig), sync_offset=sync, num_partitions=3)
    seen, has_data = scan_frames(data, nav, sync)
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


@pytest.mark.parametrize(
    "nav, sig, use_roi, sync",
    [((9, 11), (13, 17), False, 0), ((40,), (7, 5, 3), True, 2)],
)
def test_poisson_normalised_matches_numpy(ctx, rng, nav, sig, use_roi, sync):
    """``poisson=True``: NumPy's SVD of ``X / sqrt(a b)`` (frame and pixel totals over the
    processed frames), centred; reconstruct and nmf scale back."""
    counts = rng.poisson(20 * mixture(rng, nav, sig, noise=0)).astype(np.uint16)
    counts.reshape(-1, *sig)[..., 0] = 0  # a pixel that never counts: left out
    ds = ctx.load("memory", data=counts, sig_dims=len(sig), sync_offset=sync, num_partitions=3)
    n = int(np.prod(nav))
    seen, has_data = scan_frames(counts, nav, sync)
    roi = rng.random(nav) > 0.3 if use_roi else None
    processed = has_data & (True if roi is None else roi.reshape(-1))
    frames = seen[processed]
    a, b = frames.sum(axis=1), frames.sum(axis=0)
    pixel_w = np.where(b > 0, 1 / np.sqrt(np.where(b > 0, b, 1)), 0)
    normalised = frames / np.sqrt(a)[:, None] * pixel_w
    found = decompose(ctx, ds, n_components=3, roi=roi, poisson=True, power_iterations=3)
    scores, s, vt, ratio = numpy_pca(normalised)
    np.testing.assert_allclose(found.singular_values[:2], s[:2], rtol=1e-3)
    np.testing.assert_allclose(found.explained_variance_ratio[:2], ratio[:2], rtol=1e-3)
    got = found.components.reshape(3, -1)
    assert not got[:, 0].any()  # the silent pixel
    assert abs(got[0] @ vt[0]) > 0.999
    np.testing.assert_allclose(found.mean.reshape(-1), normalised.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(found.pixel_scale.reshape(-1), np.sqrt(b))
    np.testing.assert_allclose(found.frame_scale.reshape(-1)[processed], np.sqrt(a))
    # All components: the normalised frames exactly in the subspace's span; then scaled back.
    rebuilt = found.reconstruct().reshape(n, -1)[processed]
    approx = (scores[:, :3] @ vt[:3] + normalised.mean(axis=0)) * np.sqrt(a)[:, None] * np.sqrt(b)
    np.testing.assert_allclose(rebuilt, approx, atol=1e-2 * frames.max())
    maps, patterns = found.nmf(3, iterations=300)
    m = maps.reshape(n, 3)[processed]
    assert (m >= 0).all() and (patterns >= 0).all()
    # The factors rebuild the frames (in counts, not normalised) as the components do.
    product = m @ patterns.reshape(3, -1)
    assert np.linalg.norm(product - rebuilt) < 0.1 * np.linalg.norm(rebuilt)


def test_poisson_needs_counts(inline_ctx: Context, rng):
    data = rng.standard_normal((4, 5, 6, 7))
    with pytest.raises(InvalidParameterError, match="non-negative"):
        decompose(inline_ctx, inline_ctx.load("memory", data=data), n_components=2, poisson=True)
    with pytest.raises(InvalidParameterError, match="poisson must be True or False"):
        decompose(inline_ctx, inline_ctx.load("memory", data=data.clip(0)), poisson="yes")
