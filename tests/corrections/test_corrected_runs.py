"""Runs with detector corrections equal the analyses of the corrected NumPy frames, for the
built-in analyses and user UDFs, on every executor, with rois, several partitions, frames split
into row slabs, nav of 1 to 3 dims, and excluded pixels at edges, corners and in clusters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from libertem_gpu import (
    UDF,
    ApplyMasksUDF,
    CoMUDF,
    CorrectionSet,
    PickUDF,
    StdDevUDF,
    SumSigUDF,
    SumUDF,
)
from libertem_gpu.io.tiles import TilingScheme
from libertem_gpu.plan import plan_run
from tests.conftest import random_data
from tests.corrections.reference import bad_pixels, corrected
from tests.udf.test_com import com_reference


@dataclass(frozen=True)
class Case:
    dtype: str
    nav: tuple[int, ...]
    sig: tuple[int, int]
    roi: bool
    parts: int
    tiling: TilingScheme | None
    dark: bool = True
    gain: bool = True
    source: str = "memory"


CASES = [
    # partial frames: row slabs of 5 requested, re-sized around the excluded rows
    Case("uint16", (7,), (13, 17), False, 3, TilingScheme(depth=2, sig_rows=5)),
    Case("uint8", (4, 5), (11, 9), True, 2, None, gain=False),
    Case("int32", (2, 3, 2), (9, 10), True, 3, TilingScheme(depth=3), dark=False),
    # big-endian file: byte order converted before the correction
    Case(">u2", (3, 4), (13, 17), True, 3, TilingScheme(depth=2, sig_rows=4), source="raw"),
]


class FrameStats(UDF):
    """A user UDF that asks for the stored type: with corrections it gets floats (LiberTEM)."""

    def get_preferred_input_dtype(self):
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self):
        return {
            "total": self.buffer(kind="nav", dtype=np.float64),
            "is_float": self.buffer(kind="nav", dtype=bool),
        }

    def process_frame(self, frame):
        self.results.total[:] = frame.sum(dtype=np.float64)
        self.results.is_float[:] = frame.dtype.kind == "f"


def load(ctx, case: Case, rng, tmp_path):
    data = random_data(rng, case.nav + case.sig, np.dtype(case.dtype).newbyteorder("="))
    if case.source == "memory":
        ds = ctx.load("memory", data=data, num_partitions=case.parts)
    else:
        path = tmp_path / "data.raw"
        data.astype(case.dtype).tofile(path)
        ds = ctx.load(
            "raw",
            path=path,
            nav_shape=case.nav,
            sig_shape=case.sig,
            dtype=case.dtype,
            num_partitions=case.parts,
        )
    roi = rng.random(case.nav) > 0.4 if case.roi else None
    if roi is not None:
        roi.flat[0] = True
    rows, cols = case.sig
    dark = rng.random(case.sig) * 50 if case.dark else None
    gain = rng.random(case.sig) + 0.5 if case.gain else None
    excluded = bad_pixels(rng, rows, cols)
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
    flat = data.reshape(-1, rows, cols)
    if roi is not None:
        flat = flat[roi.reshape(-1)]
    out_dtype = np.result_type(np.float32, data.dtype)
    frames = corrected(flat, dark, gain, excluded, out_dtype)
    return ds, roi, corr, frames


def check_nav(result, expected, rtol):
    scale = float(np.max(np.abs(expected))) + 1.0
    np.testing.assert_allclose(result.raw_data, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.source}-{c.dtype}-nav{len(c.nav)}")
def test_builtins_see_corrected_frames(ctx, rng, tmp_path, case):
    ds, roi, corr, frames = load(ctx, case, rng, tmp_path)
    rows, cols = case.sig
    masks = [rng.random(case.sig), (rng.random(case.sig) > 0.5).astype(np.float64)]
    udfs = [
        SumUDF(),
        SumSigUDF(),
        StdDevUDF(),
        ApplyMasksUDF(mask_factories=[lambda m=m: m for m in masks]),
        CoMUDF.with_params(cy=rows / 2, cx=cols / 2, r=cols / 2.5),
    ]
    res = ctx.run_udf(ds, udfs, roi=roi, tiling=case.tiling, corrections=corr)
    f64 = frames.astype(np.float64)
    rtol = 1e-9  # sums of the same float32 (or float64) values in another order
    np.testing.assert_allclose(res[0]["intensity"].raw_data, f64.sum(axis=0), rtol=rtol)
    check_nav(res[1]["intensity"], f64.sum(axis=(1, 2)), rtol)
    np.testing.assert_allclose(res[2]["mean"].raw_data, f64.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(res[2]["var"].raw_data, f64.var(axis=0), rtol=1e-7)
    want_masks = np.stack([(f64 * m).sum(axis=(1, 2)) for m in masks], axis=-1)
    check_nav(res[3]["intensity"], want_masks, 1e-6)  # float32 mask products
    raw_com, *_ = com_reference(f64, case.sig, cy=rows / 2, cx=cols / 2, r=cols / 2.5)
    check_nav(res[4]["raw_com"], raw_com, 1e-6)


@pytest.mark.parametrize("case", CASES[1:3], ids=lambda c: f"{c.dtype}-nav{len(c.nav)}")
def test_frames_and_user_udfs_get_the_corrected_floats(ctx, rng, tmp_path, case):
    ds, roi, corr, frames = load(ctx, case, rng, tmp_path)
    pick, stats = ctx.run_udf(ds, [PickUDF(), FrameStats()], roi=roi, corrections=corr)
    # Exactly the reference's values, in the reference's type.
    assert pick["intensity"].raw_data.dtype == frames.dtype
    np.testing.assert_array_equal(pick["intensity"].raw_data, frames)
    assert stats["is_float"].raw_data.all()
    np.testing.assert_allclose(
        stats["total"].raw_data, frames.astype(np.float64).sum(axis=(1, 2)), rtol=1e-12
    )
    mapped = ctx.map(ds, lambda frame: frame[0, 0], roi=roi, corrections=corr)
    np.testing.assert_array_equal(mapped.raw_data, frames[:, 0, 0])


def test_dataset_default_and_override(inline_ctx, rng):
    data = random_data(rng, (3, 4, 6, 7), np.dtype(np.uint16))
    dark = rng.random((6, 7)) * 100
    ds = inline_ctx.load("memory", data=data, corrections=CorrectionSet(dark=dark))
    flat = data.reshape(12, 6, 7)
    got = inline_ctx.run_udf(ds, SumUDF())["intensity"].raw_data
    np.testing.assert_allclose(got, corrected(flat, dark, None, None).sum(axis=0, dtype=float))
    gain = rng.random((6, 7)) + 1
    over = inline_ctx.run_udf(ds, SumUDF(), corrections=CorrectionSet(gain=gain))
    want = corrected(flat, None, gain, None).sum(axis=0, dtype=float)
    np.testing.assert_allclose(over["intensity"].raw_data, want, rtol=1e-9)
    assert inline_ctx.run_udf(ds, FrameStats())["is_float"].raw_data.all()
    # an empty set changes nothing, not even the type a native-type UDF gets
    raw = inline_ctx.run_udf(
        inline_ctx.load("memory", data=data), FrameStats(), corrections=CorrectionSet()
    )
    assert not raw["is_float"].raw_data.any()


def test_analysis_run_takes_corrections(inline_ctx, rng):
    data = random_data(rng, (2, 3, 8, 8), np.dtype(np.uint16))
    ds = inline_ctx.load("memory", data=data)
    excluded = np.zeros((8, 8), bool)
    excluded[3, 3] = True
    corr = CorrectionSet(excluded_pixels=excluded, dark=np.full((8, 8), 3.0))
    res = inline_ctx.run(inline_ctx.create_sum_analysis(dataset=ds), corrections=corr)
    want = corrected(data.reshape(6, 8, 8), np.full((8, 8), 3.0), None, excluded)
    np.testing.assert_allclose(res.intensity.raw_data, want.sum(axis=0, dtype=float), rtol=1e-9)


def test_iter_gives_corrected_partial_results(inline_ctx, rng):
    data = random_data(rng, (6, 5, 7), np.dtype(np.uint8))
    ds = inline_ctx.load("memory", data=data, num_partitions=3)
    corr = CorrectionSet(gain=rng.random((5, 7)) + 0.5)
    *_, last = inline_ctx.run_udf_iter(ds, SumUDF(), corrections=corr)
    want = corrected(data, None, corr.get_gain_map(), None).sum(axis=0, dtype=float)
    np.testing.assert_allclose(last.buffers[0]["intensity"].raw_data, want, rtol=1e-9)


def test_plan_splits_frames_around_excluded_rows(inline_ctx, rng):
    data = random_data(rng, (2, 20, 9), np.dtype(np.uint16))
    ds = inline_ctx.load("memory", data=data)
    excluded = np.zeros((20, 9), bool)
    excluded[5, 4] = True  # slabs of 5 would cut between rows 4 and 5
    excluded[14, 0] = True
    plan = plan_run(
        ds,
        [SumUDF()],
        tiling=TilingScheme(depth=1, sig_rows=5),
        corrections=CorrectionSet(excluded_pixels=excluded),
    )
    height = plan.scheme.sig_rows
    assert height is not None and height != 5
    boundaries = set(range(height, 20, height))
    assert not boundaries & {5, 6, 14, 15}
    assert not plan.scheme.stored_byteorder
    # no height avoids every boundary: whole frames
    every_row = np.zeros((20, 9), bool)
    every_row[::2, 4] = True
    plan = plan_run(
        ds,
        [SumUDF()],
        tiling=TilingScheme(depth=1, sig_rows=5),
        corrections=CorrectionSet(excluded_pixels=every_row),
    )
    assert plan.scheme.sig_rows is None


def test_row_slabs_keep_environments_whole(ctx, rng):
    # excluded pixels at the first and last rows, an edge, and a cluster across rows 8 and 9:
    # slabs of 4 rows would cut the cluster's environment, the plan picks another height
    data = random_data(rng, (5, 21, 11), np.dtype(np.uint16))
    ds = ctx.load("memory", data=data, num_partitions=2)
    excluded = np.zeros((21, 11), bool)
    excluded[0, 0] = excluded[20, 10] = excluded[12, 0] = True
    excluded[8, 5] = excluded[9, 5] = excluded[9, 6] = True
    corr = CorrectionSet(
        dark=rng.random((21, 11)) * 9, gain=rng.random((21, 11)) + 1, excluded_pixels=excluded
    )
    tiling = TilingScheme(depth=2, sig_rows=4)
    plan = plan_run(ds, [SumUDF()], tiling=tiling, corrections=corr)
    assert plan.scheme.sig_rows not in (None, 4, 21)
    res = ctx.run_udf(ds, [SumUDF(), SumSigUDF()], tiling=tiling, corrections=corr)
    frames = corrected(data, corr.get_dark_frame(), corr.get_gain_map(), excluded)
    f64 = frames.astype(np.float64)
    np.testing.assert_allclose(res[0]["intensity"].raw_data, f64.sum(axis=0), rtol=1e-9)
    np.testing.assert_allclose(res[1]["intensity"].raw_data, f64.sum(axis=(1, 2)), rtol=1e-9)


def _other_udfs():
    from libertem_gpu import (
        FEMUDF,
        CrystallinityUDF,
        LogsumUDF,
        MaxUDF,
        RadialFourierUDF,
        SumFFTUDF,
    )

    return [
        LogsumUDF(),
        FEMUDF(center=(6, 7), rad_in=1, rad_out=5),
        CrystallinityUDF(rad_in=1, rad_out=4),
        SumFFTUDF(),
        MaxUDF(),
        RadialFourierUDF(cx=7.0, cy=6.0, ri=0.0, ro=6.0, n_bins=2, max_order=3),
    ]


@pytest.mark.parametrize("index", range(6))
def test_other_analyses_see_corrected_frames(inline_ctx, rng, index):
    # every analysis on the stored data with corrections equals it on the corrected frames
    data = random_data(rng, (3, 4, 13, 15), np.dtype(np.uint16))
    rows, cols = 13, 15
    excluded = bad_pixels(rng, rows, cols)
    dark, gain = rng.random((rows, cols)) * 50, rng.random((rows, cols)) + 0.5
    corr = CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
    frames = corrected(data.reshape(12, rows, cols), dark, gain, excluded)
    udf = _other_udfs()[index]
    got = inline_ctx.run_udf(inline_ctx.load("memory", data=data), udf, corrections=corr)
    ref_ds = inline_ctx.load("memory", data=frames.reshape(3, 4, rows, cols))
    want = inline_ctx.run_udf(ref_ds, _other_udfs()[index])
    assert set(got) == set(want)
    for key in want:
        a, b = np.asarray(got[key].raw_data), np.asarray(want[key].raw_data)
        scale = float(np.nanmax(np.abs(b))) if b.size else 1.0
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6 * scale, err_msg=key)
