"""TemplateMatchUDF: against a NumPy reference (bilinear samples by scipy.ndimage, templates on the
grid, every rotation from the definition) on every other 2-D case, with every executor;
templates on the polar grid; simulated
patterns found with their rotation, mirrored ones, with descan shifts and an elliptical
distortion; parameter errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from libertem_gpu import Context, TemplateMatchUDF
from libertem_gpu.errors import InvalidParameterError, UnsupportedDTypeError
from libertem_gpu.kernels import template_match as kernel
from libertem_gpu.udf.template_match import polar_grid, polar_sampling, polar_templates
from tests.udf.builtin_cases import CASES_2D_SIG, assert_nav, case_params, load_case
from tests.udf.test_ellipse import reference_polar


def sampled_reference(frames, center, radii, angles):
    """Bilinear samples at ``center + r (sin a, cos a)`` by scipy.ndimage (0 off the frame)."""
    from scipy.ndimage import map_coordinates

    r, a = np.meshgrid(radii, angles, indexing="ij")
    py, px = center[0] + r * np.sin(a), center[1] + r * np.cos(a)
    on = (py >= 0) & (py <= frames.shape[1] - 1) & (px >= 0) & (px <= frames.shape[2] - 1)
    out = np.stack([map_coordinates(f, [py, px], order=1, mode="nearest") for f in frames])
    return np.where(on, out, 0.0)


def random_bank(rng, count, reach, spots=7):
    """Templates of random spots (no symmetry) between 0.3 and 1 of ``reach`` from the
    centre."""
    bank = []
    for _ in range(count):
        r = rng.uniform(0.3, 1.0, spots) * reach
        a = rng.uniform(0, 2 * np.pi, spots)
        bank.append(np.column_stack([r * np.sin(a), r * np.cos(a), rng.uniform(0.4, 1, spots)]))
    return bank


def render(spots, shape, center, angle, mirror=False, ellipse=None, width=1.2, peak=300.0):
    """Gaussian spots of ``spots`` mirrored (dy negated) if asked, turned by ``angle``,
    around ``center``; with ``ellipse`` (ratio, angle) stretched by its distortion."""
    y, x = np.mgrid[: shape[0], : shape[1]]
    out = np.zeros(shape)
    c, s = math.cos(angle), math.sin(angle)
    for dy, dx, value in spots:
        dy = -dy if mirror else dy
        ry, rx = s * dx + c * dy, c * dx - s * dy
        if ellipse is None:
            d2 = (y - center[0] - ry) ** 2 + (x - center[1] - rx) ** 2
        else:  # distance measured where the distortion's inverse puts each pixel
            py, px = y - center[0], x - center[1]
            r, a = reference_polar(py, px, *ellipse)
            d2 = (r * np.sin(a) - ry) ** 2 + (r * np.cos(a) - rx) ** 2
        out += peak * value * np.exp(-d2 / (2 * width**2))
    return out


def angle_error(got, want):
    return np.abs(np.angle(np.exp(1j * (np.asarray(got) - np.asarray(want)))))


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG[::2]))
def test_matches_numpy(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    sig = case.sig
    center = (sig[0] / 2 - 0.3, sig[1] / 2 + 0.2)
    bank = random_bank(rng, 4, 5.5)
    kw = dict(center=center, rad_max=6.0, rad_min=0.5, n_bins=3, n_sectors=10)
    res = loaded.run(ctx, TemplateMatchUDF(bank, n_best=2, **kw))
    # The reference: bilinear samples, the templates on the grid, every rotation, best two.
    radii = 0.5 + (np.arange(3) + 0.5) * 5.5 / 3
    angles = (np.arange(10) + 0.5) * 2 * np.pi / 10
    polar = sampled_reference(loaded.selected, center, radii, angles)
    grid = polar_grid(0.5, 6.0, 3, 10, 0.0)
    np.testing.assert_allclose(grid.radius, radii)
    score, shift = kernel.reference(polar, polar_templates(bank, grid))
    order = np.argsort(-score, axis=1)[:, :2]
    best = np.take_along_axis(score, order, axis=1)
    assert_nav(res["score"], best, loaded, rtol=1e-5)
    # Indices and rotations where the two best are not tied to float32's precision.
    clear = np.abs(best[:, 0] - best[:, 1]) > 1e-4
    in_roi = loaded.processed[loaded.roi_flat]  # raw_data: the roi's positions
    np.testing.assert_array_equal(res["template"].raw_data[in_roi][clear], order[clear])
    turn = np.take_along_axis(shift, order, axis=1) * 2 * np.pi / 10
    got = res["rotation"].raw_data[in_roi][clear]
    assert angle_error(got, turn[clear]).max() < 2e-2
    assert res["template"].data.dtype == np.int64 and res["rotation"].data.dtype == np.float64


def test_templates_on_the_polar_grid():
    grid = polar_grid(0.0, 20.0, 10, 8, 0.0)
    step = 2 * np.pi / 8
    # Ring 3's centre radius is 7; sector 2's centre angle 2.5 steps.
    on_centre = np.array([[7 * math.sin(2.5 * step), 7 * math.cos(2.5 * step), 2.0]])
    placed = polar_templates([on_centre], grid)[0]
    assert placed[3, 2] == pytest.approx(2.0) and placed.sum() == pytest.approx(2.0)
    # Halfway between rings 3 and 4, and between sectors 7 and 0 (across the wrap).
    between = np.array([[8 * math.sin(0.0), 8 * math.cos(0.0), 1.0]])
    placed = polar_templates([between], grid)[0]
    for ring, sector in ((3, 7), (3, 0), (4, 7), (4, 0)):
        assert placed[ring, sector] == pytest.approx(0.25)
    outside = np.array([[0.0, 25.0, 1.0], [0.0, 7.0, 1.0]])
    assert polar_templates([outside], grid)[0].sum() == pytest.approx(1.0)


def test_sampling_at_edges_and_around_excluded_pixels(rng):
    frame = rng.random((9, 11))
    # One ring of radius 2 around (4.3, 5.6), four sectors: points at 45, 135, 225, 315 deg.
    grid = polar_grid(1.5, 2.5, 1, 4, 0.0)
    stack = polar_sampling((9, 11), (4.3, 5.6), grid).toarray().reshape(4, -1)
    want = sampled_reference(frame[None], (4.3, 5.6), grid.radius, grid.angle)[0].ravel()
    np.testing.assert_allclose(stack @ frame.ravel(), want, rtol=1e-12)
    np.testing.assert_allclose(stack.sum(axis=1), 1.0)
    # A centre near the corner: points off the frame sample nothing.
    corner = polar_sampling((9, 11), (0.5, 0.5), grid).toarray().reshape(4, -1)
    assert corner.sum(axis=1).tolist() == pytest.approx([1.0, 0.0, 0.0, 0.0])
    # An excluded pixel: its point's other pixels take its weight.
    exclude = np.zeros((9, 11), bool)
    py, px = 4.3 + 2 * math.sin(math.pi / 4), 5.6 + 2 * math.cos(math.pi / 4)
    exclude[int(py), int(px)] = True
    left = polar_sampling((9, 11), (4.3, 5.6), grid, exclude=exclude).toarray().reshape(4, -1)
    assert left[0, int(py) * 11 + int(px)] == 0 and left[0].sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(left[1:], stack[1:])


def test_finds_the_template_and_its_rotation(inline_ctx: Context, rng):
    bank = random_bank(rng, 12, 26)
    truth = rng.integers(0, 12, 10)
    angles = rng.uniform(0, 2 * np.pi, 10)
    shape, center = (64, 66), (31.6, 32.9)
    pairs = zip(truth, angles, strict=True)
    frames = np.stack([render(bank[t], shape, center, a) for t, a in pairs])
    data = rng.poisson(frames + 2).astype(np.uint16).reshape(2, 5, *shape)
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank, center=center, n_best=3))
    np.testing.assert_array_equal(res["template"].data[..., 0].ravel(), truth)
    assert np.degrees(angle_error(res["rotation"].data[..., 0].ravel(), angles)).max() < 1.0
    score = res["score"].data
    assert (score[..., 0] > score[..., 1]).all() and (score[..., 1] >= score[..., 2]).all()
    assert (score[..., 0] > 0.3).all() and (score <= 1 + 1e-9).all()
    # The polar image's square root: the same matches.
    root = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank, center=center, power=0.5))
    np.testing.assert_array_equal(root["template"].data[..., 0].ravel(), truth)


def test_mirrored_templates(inline_ctx: Context, rng):
    bank = random_bank(rng, 5, 20)
    shape, center = (48, 48), (23.5, 23.5)
    cases = [(1, 0.4, False), (1, 2.0, True), (3, 5.1, True), (4, 3.3, False)]
    frames = np.stack([render(bank[t], shape, center, a, mirror=m) for t, a, m in cases])
    ds = inline_ctx.load("memory", data=frames.reshape(2, 2, *shape))
    res = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank, mirror=True))
    assert res["template"].data[..., 0].ravel().tolist() == [t for t, _, _ in cases]
    assert res["mirrored"].data[..., 0].ravel().tolist() == [m for _, _, m in cases]
    angles = [a for _, a, _ in cases]
    assert np.degrees(angle_error(res["rotation"].data[..., 0].ravel(), angles)).max() < 1.0
    plain = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank))
    assert "mirrored" not in plain


def test_follows_the_beam_and_undoes_the_ellipse(inline_ctx: Context, rng):
    bank = random_bank(rng, 6, 20)
    shape, center = (56, 56), (27.5, 27.5)
    shifts = np.array([[0, 0], [3, -2], [-2, 4], [1, 1]])
    ellipse = (1.08, 0.6)
    frames = np.stack(
        [
            render(bank[t], shape, (center[0] + dy, center[1] + dx), a, ellipse=ellipse)
            for t, a, (dy, dx) in zip((0, 2, 4, 5), (0.3, 1.3, 2.3, 4.0), shifts, strict=True)
        ]
    )
    ds = inline_ctx.load("memory", data=frames.reshape(2, 2, *shape))
    udf = TemplateMatchUDF(bank, center=center, shifts=shifts.reshape(2, 2, 2), ellipse=ellipse)
    res = inline_ctx.run_udf(dataset=ds, udf=udf)
    assert res["template"].data[..., 0].ravel().tolist() == [0, 2, 4, 5]
    errors = angle_error(res["rotation"].data[..., 0].ravel(), [0.3, 1.3, 2.3, 4.0])
    assert np.degrees(errors).max() < 1.0
    blind = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank, center=center))
    assert (blind["score"].data[..., 0] < res["score"].data[..., 0]).all()


def test_power_transforms_the_polar_image(inline_ctx: Context, rng):
    frames = rng.poisson(20, (6, 21, 19)).astype(np.float32) - 3  # some negative values
    bank = random_bank(rng, 4, 8)
    ds = inline_ctx.load("memory", data=frames)
    udf = TemplateMatchUDF(bank, rad_max=9.0, n_bins=6, n_sectors=24, power=0.5, n_best=4)
    res = inline_ctx.run_udf(dataset=ds, udf=udf)
    grid = polar_grid(0.0, 9.0, 6, 24, 0.0)
    polar = sampled_reference(frames.astype(np.float64), (10, 9), grid.radius, grid.angle)
    score, _ = kernel.reference(np.maximum(polar, 0) ** 0.5, polar_templates(bank, grid))
    np.testing.assert_allclose(res["score"].data, -np.sort(-score, axis=1), rtol=1e-5)


def test_positions_without_data(inline_ctx: Context, rng):
    bank = random_bank(rng, 3, 10)
    data = rng.poisson(5, (3, 4, 24, 24)).astype(np.float32)
    roi = rng.random((3, 4)) < 0.5
    roi[0, 0] = True
    roi[2, 3] = False
    ds = inline_ctx.load("memory", data=data)
    res = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank), roi=roi)
    assert np.isnan(res["score"].data[~roi]).all() and np.isfinite(res["score"].data[roi]).all()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda b: TemplateMatchUDF([]), "templates is empty"),
        (lambda b: TemplateMatchUDF([np.zeros((0, 3))]), "at least one spot"),
        (lambda b: TemplateMatchUDF([np.ones((3, 4))]), r"template 0 must be \(spots, 3\)"),
        (lambda b: TemplateMatchUDF([b[0], -b[0]]), "negative intensities"),
        (lambda b: TemplateMatchUDF([[[1, "a", 2]]]), "sequence of"),
        (lambda b: TemplateMatchUDF(b, n_best=4), "between 1 and the 3 templates"),
        (lambda b: TemplateMatchUDF(b, power=0), "power must be a number > 0"),
        (lambda b: TemplateMatchUDF(b, n_sectors=2), "n_sectors must be 3 or more"),
        (lambda b: TemplateMatchUDF(b, n_bins=0), "n_bins must be an integer >= 1"),
        (lambda b: TemplateMatchUDF(b, ellipse=(0, 1)), "ellipse"),
        (lambda b: TemplateMatchUDF(b, rad_min=9, rad_max=20), "template 0 has no spot"),
        (lambda b: TemplateMatchUDF([b[0] * [1, 1, 0]]), "template 0 has no spot of intensity"),
    ],
)
def test_bad_parameters_fail_at_once(rng, make, match):
    with pytest.raises(InvalidParameterError, match=match):
        make(random_bank(rng, 3, 8))


def test_refuses_complex_data_and_takes_one_bare_template(inline_ctx: Context, rng):
    bank = random_bank(rng, 2, 6)
    ds = inline_ctx.load("memory", data=np.ones((2, 2, 16, 16), np.complex64))
    with pytest.raises(UnsupportedDTypeError, match="TemplateMatchUDF"):
        inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank))
    frames = np.stack([render(bank[0], (16, 16), (7.5, 7.5), 0.0)] * 2)
    ds = inline_ctx.load("memory", data=frames)
    res = inline_ctx.run_udf(dataset=ds, udf=TemplateMatchUDF(bank[0][:, :2]))
    assert res["template"].data.tolist() == [[0], [0]]


@pytest.mark.gpu
def test_gpu_finds_what_the_cpu_finds(rng):
    """On a real GPU (``-m gpu``): cuFFT and cuBLAS give the CPU's matches."""
    from libertem_gpu.backends import device

    info = device.probe()
    if not info.available:
        pytest.skip(f"no usable GPU: {info.reason}")
    bank = random_bank(rng, 8, 20)
    shape, center = (48, 50), (23.7, 24.2)
    cases = list(zip(rng.integers(0, 8, 6), rng.uniform(0, 2 * np.pi, 6), strict=True))
    frames = np.stack([render(bank[t], shape, center, a) for t, a in cases])
    data = rng.poisson(frames + 2).astype(np.uint16).reshape(2, 3, *shape)
    with Context("threads") as ctx:
        ds = ctx.load("memory", data=data, num_partitions=2)
        udf = TemplateMatchUDF(bank, center=center, n_best=2, mirror=True)
        cpu = ctx.run_udf(dataset=ds, udf=udf, backends="numpy")
        gpu = ctx.run_udf(dataset=ds, udf=udf, backends="cupy")
    np.testing.assert_array_equal(gpu["template"].data, cpu["template"].data)
    np.testing.assert_array_equal(gpu["mirrored"].data, cpu["mirrored"].data)
    np.testing.assert_allclose(gpu["score"].data, cpu["score"].data, rtol=1e-4)
    assert angle_error(gpu["rotation"].data, cpu["rotation"].data).max() < 1e-3
