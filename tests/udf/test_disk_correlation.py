"""FullFrameCorrelationUDF and SparseCorrelationUDF against the NumPy reference path
(libertem_gpu.disks.peaks) on random data over the shared cases (dtypes, nav of 1-3 dims, rois,
sync offsets, partitions, split tiles, big-endian files, every executor); positions on
simulated disk lattices with Poisson noise; frames without disks; parameter errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import FullFrameCorrelationUDF, SparseCorrelationUDF
from libertem_gpu.disks import disk_template, find_peaks, find_peaks_sparse
from libertem_gpu.disks.simulate import disk_frames, lattice_positions
from libertem_gpu.errors import InvalidParameterError
from tests.udf.builtin_cases import CASES_2D_SIG, assert_nav, case_params, load_case

REFINES = ("com", "parabolic", "upsampled")


def _check(res, want, loaded, rtol):
    peaks, heights, found = want
    assert res["peaks"].raw_data.dtype == np.float32
    assert res["n_found"].raw_data.dtype == np.int32
    assert res["n_found"].data.shape == loaded.case.nav  # extra shape ()
    assert_nav(res["n_found"], found, loaded)
    assert_nav(res["heights"], heights, loaded, rtol=rtol)
    # positions: float32 maps against float64 ones move a refined offset by ~1e-6 px
    got = res["peaks"].raw_data[loaded.processed[loaded.roi_flat]]
    np.testing.assert_allclose(got, peaks, atol=1e-3, rtol=0)
    assert_nav(res["peaks"], peaks, loaded, rtol=1e-3)


def _rtol(dtype):
    dtype = np.dtype(dtype)
    narrow = dtype.itemsize <= 2 or dtype == np.dtype(np.float32).newbyteorder(dtype.byteorder)
    return 2e-5 if narrow else 1e-9


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG))
def test_full_frame_matches_reference(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    template = rng.standard_normal((5, 3))
    refine = REFINES[CASES_2D_SIG.index(case) % 3]
    params = dict(n_peaks=4, min_dist=2.5, refine=refine, upsample=10, min_height=-np.inf)
    res = loaded.run(ctx, FullFrameCorrelationUDF(template, **params))
    want = find_peaks(loaded.selected_native, template, **params)
    _check(res, want, loaded, _rtol(case.dtype))


@pytest.mark.parametrize("case", case_params(CASES_2D_SIG))
def test_sparse_matches_reference(ctx, rng, tmp_path, case):
    loaded = load_case(ctx, case, rng, tmp_path)
    template = rng.standard_normal((3, 5))
    rows, cols = case.sig
    positions = rng.uniform(-1, [rows, cols], size=(4, 2))  # some windows past the edges
    refine = REFINES[(CASES_2D_SIG.index(case) + 1) % 3]
    params = dict(search=2, refine=refine, upsample=10, min_height=-np.inf)
    res = loaded.run(ctx, SparseCorrelationUDF(positions, template, **params))
    want = find_peaks_sparse(loaded.selected_native, template, positions, **params)
    _check(res, want, loaded, _rtol(case.dtype))


def _lattice(rng, nav=(2, 3), sig=(67, 61), radius=4.0, dose=1e7):
    base = lattice_positions(sig, (33.4, 29.7), (15.3, 2.1), (-1.7, 14.6), margin=radius + 3)
    n = int(np.prod(nav))
    true = base + rng.uniform(-0.5, 0.5, (n, 1, 2)) + rng.uniform(-0.2, 0.2, (n, len(base), 2))
    frames = disk_frames(true, sig, radius, dose=dose, background=2.0, rng=rng)
    return base, true, frames.astype(np.uint32).reshape(*nav, *sig)


@pytest.mark.parametrize("refine", REFINES)
def test_positions_on_a_simulated_lattice(inline_ctx, rng, refine):
    """Disks at random subpixel positions, 1e7 electrons per disk: every disk found within
    0.05 px by either UDF (and by the reference path), whatever the refinement."""
    base, true, data = _lattice(rng)
    ds = inline_ctx.load("memory", data=data, num_partitions=2)
    t = disk_template(4.0)
    full = inline_ctx.run_udf(ds, FullFrameCorrelationUDF(t, n_peaks=len(base), refine=refine))
    sparse = inline_ctx.run_udf(ds, SparseCorrelationUDF(base, t, search=3, refine=refine))
    got_full = full["peaks"].raw_data
    assert (full["n_found"].raw_data == len(base)).all()
    for i in range(len(true)):  # the full-frame peaks come by height: match them up
        dist = np.linalg.norm(got_full[i][:, None] - true[i][None], axis=-1)
        assert dist.min(axis=0).max() < 0.05
    assert (sparse["n_found"].raw_data == len(base)).all()
    assert np.linalg.norm(sparse["peaks"].raw_data - true, axis=-1).max() < 0.05
    heights = full["heights"].raw_data
    assert (np.diff(heights, axis=1) <= 0).all()


def test_frames_without_disks(inline_ctx, rng):
    """A blank frame gives no peaks (NaN, n_found 0); so does a noisy one below min_height,
    while the disks of the other frames are found."""
    base, _, data = _lattice(rng, nav=(3,), dose=1e5)
    data[1] = 5  # blank
    data[2] = rng.poisson(5, data.shape[1:])  # noise only
    ds = inline_ctx.load("memory", data=data)
    t = disk_template(4.0)
    for udf in (
        FullFrameCorrelationUDF(t, n_peaks=len(base), min_height=100.0),
        SparseCorrelationUDF(base, t, search=3, min_height=100.0),
    ):
        res = inline_ctx.run_udf(ds, udf)
        assert res["n_found"].data.tolist() == [len(base), 0, 0]
        assert np.isnan(res["peaks"].data[1:]).all() and np.isnan(res["heights"].data[1:]).all()
        assert not np.isnan(res["peaks"].data[0]).any()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda t: FullFrameCorrelationUDF(t, n_peaks=0), "n_peaks"),
        (lambda t: FullFrameCorrelationUDF(t, n_peaks=2, refine="gauss"), "refine"),
        (lambda t: FullFrameCorrelationUDF(t, n_peaks=2, upsample=1), "upsample"),
        (lambda t: FullFrameCorrelationUDF(t, n_peaks=2, min_dist=-1), "min_dist"),
        (lambda t: FullFrameCorrelationUDF(np.ones((3, 3)), n_peaks=2), "constant"),
        (lambda t: FullFrameCorrelationUDF(np.zeros(5), n_peaks=2), "2-D"),
        (lambda t: SparseCorrelationUDF(np.zeros((3, 3)), t), r"\(P, 2\)"),
        (lambda t: SparseCorrelationUDF([(1, np.nan)], t), r"\(P, 2\)"),
        (lambda t: SparseCorrelationUDF([(1, 2)], t, search=0), "search"),
        (lambda t: SparseCorrelationUDF([(1, 2)], t, min_height=np.nan), "min_height"),
    ],
)
def test_bad_parameters(make, match):
    with pytest.raises(InvalidParameterError, match=match):
        make(disk_template(2.0))


def test_errors_before_any_read(inline_ctx, rng):
    """A template larger than the frame, or frames that are not 2-D, fail when the run is
    planned."""
    ds = inline_ctx.load("memory", data=rng.random((2, 9, 9)).astype(np.float32))
    with pytest.raises(InvalidParameterError, match="larger than the frame"):
        inline_ctx.run_udf(ds, FullFrameCorrelationUDF(rng.random((11, 3)), n_peaks=1))
    ds1 = inline_ctx.load("memory", data=rng.random((2, 3, 9)).astype(np.float32), sig_dims=1)
    with pytest.raises(InvalidParameterError, match="two signal dimensions"):
        inline_ctx.run_udf(ds1, SparseCorrelationUDF([(1, 2)], rng.random((3, 3))))
