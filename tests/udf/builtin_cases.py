"""Data set cases shared by the tests of the built-in analyses.

Each case covers a few axes (dtype, nav dims, sig dims, roi, sync_offset, partitions, tiling,
memory or big-endian raw file); together they cover every axis for every analysis without the
full cross product.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from libertem_gpu.io.tiles import TilingScheme
from tests.conftest import random_data


@dataclass(frozen=True)
class Case:
    dtype: str
    nav: tuple[int, ...]
    sig: tuple[int, ...]
    roi: bool
    sync_offset: int
    parts: int
    tiling: TilingScheme | None
    source: str = "memory"  # or "raw" (written with the dtype as given, e.g. big-endian)

    @property
    def id(self) -> str:
        t = "auto" if self.tiling is None else f"d{self.tiling.depth}r{self.tiling.sig_rows}"
        nav = "x".join(map(str, self.nav))
        sig = "x".join(map(str, self.sig))
        return (
            f"{self.source}-{self.dtype}-nav{nav}-sig{sig}-roi{int(self.roi)}"
            f"-sync{self.sync_offset}-p{self.parts}-{t}"
        )


SPLIT = TilingScheme(depth=2, sig_rows=5)
DEPTH3 = TilingScheme(depth=3)

CASES = [
    Case("uint8", (7,), (13, 17), False, 0, 3, SPLIT),
    Case("uint16", (4, 5), (13, 17), True, 3, 3, SPLIT),
    Case("uint32", (2, 3, 4), (13, 17), False, -4, 3, None),
    Case("int32", (5, 6), (23,), True, 0, 2, DEPTH3),
    Case("float32", (6, 5), (13, 17), True, -2, 3, SPLIT),
    Case("float64", (3, 4), (9,), False, 1, 3, TilingScheme(depth=2, sig_rows=4)),
    Case(">u2", (4, 6), (13, 17), True, 2, 3, DEPTH3, source="raw"),
    Case(">f4", (9,), (13, 17), False, -1, 2, SPLIT, source="raw"),
    Case(">u4", (3, 4), (13, 17), True, -1, 3, SPLIT, source="raw"),
    Case("int16", (3, 5), (13, 17), True, 2, 3, SPLIT),
    Case("bool", (4, 3), (9, 11), True, 0, 2, DEPTH3),
    Case("uint32", (5, 4), (11, 9), True, 0, 2, TilingScheme(depth=3, sig_rows=4)),
    Case("float32", (3, 4), (5, 6, 7), True, 1, 3, TilingScheme(depth=2, sig_rows=2)),
]
CASES_2D_SIG = [c for c in CASES if len(c.sig) == 2]


def case_params(cases: list[Case]) -> list:
    return [pytest.param(c, id=c.id) for c in cases]


@dataclass
class Loaded:
    """A data set of a case with what its analyses should see."""

    ds: object
    frames: np.ndarray  # (nav_size, *sig) float64 as the scan sees them (sync_offset applied)
    native: np.ndarray  # the same in the data set's native dtype (zero where there is no data)
    roi: np.ndarray | None  # nav-shaped bool
    case: Case
    has_data: np.ndarray  # flat bool: positions whose frame exists (sync_offset may shift past)

    @property
    def roi_flat(self) -> np.ndarray:
        return np.ones(self.has_data.size, bool) if self.roi is None else self.roi.reshape(-1)

    @property
    def processed(self) -> np.ndarray:
        """Flat bool: the positions that are processed (in the roi, holding data)."""
        return self.roi_flat & self.has_data

    @property
    def selected(self) -> np.ndarray:
        """float64 frames that are processed, in scan order."""
        return self.frames[self.processed]

    @property
    def selected_native(self) -> np.ndarray:
        return self.native[self.processed]

    @property
    def in_roi_native(self) -> np.ndarray:
        """Native frames of every position in the roi, zero where there is no data."""
        return self.native[self.roi_flat]

    def run(self, ctx, udf):
        return ctx.run_udf(dataset=self.ds, udf=udf, roi=self.roi, tiling=self.case.tiling)


def load_case(ctx, case: Case, rng: np.random.Generator, tmp_path) -> Loaded:
    """Random data for ``case``, its data set, and the frames the scan sees."""
    dtype = np.dtype(case.dtype)
    native_dtype = dtype.newbyteorder("=")
    data = random_data(rng, case.nav + case.sig, native_dtype)
    nav_size = math.prod(case.nav)
    if case.source == "memory":
        ds = ctx.load(
            "memory",
            data=data,
            sig_dims=len(case.sig),
            sync_offset=case.sync_offset,
            num_partitions=case.parts,
        )
    else:
        path = tmp_path / "data.raw"
        data.astype(dtype).tofile(path)
        ds = ctx.load(
            "raw",
            path=path,
            nav_shape=case.nav,
            sig_shape=case.sig,
            dtype=case.dtype,
            sync_offset=case.sync_offset,
            num_partitions=case.parts,
        )
    flat = data.reshape((nav_size, *case.sig))
    native = np.zeros_like(flat)
    has_data = np.zeros(nav_size, bool)
    for i in range(nav_size):  # positive sync_offset skips frames, negative runs before them
        src = i + case.sync_offset
        if 0 <= src < nav_size:
            native[i] = flat[src]
            has_data[i] = True
    roi = None
    if case.roi:
        roi = rng.random(case.nav) > 0.4
        roi.flat[0] = True  # and the last position in or out, as the draw falls
    return Loaded(ds, native.astype(np.float64), native, roi, case, has_data)


def assert_nav(result, expected_processed: np.ndarray, loaded: Loaded, rtol: float = 1e-7) -> None:
    """A nav result: raw_data equals the expected values at the processed positions and is NaN
    (or 0) at positions of the roi without data; data is NaN (or 0) outside the roi."""
    fill = np.nan if result.raw_data.dtype.kind in "fc" else 0
    in_roi = loaded.processed[loaded.roi_flat]
    expected_selected = np.full(
        (len(in_roi), *expected_processed.shape[1:]), fill, np.result_type(expected_processed)
    )
    expected_selected[in_roi] = expected_processed
    assert not result.valid_mask.reshape(-1)[~loaded.has_data].any()
    atol = rtol * max(1.0, float(np.nanmax(np.abs(expected_selected), initial=0.0)))
    np.testing.assert_allclose(result.raw_data, expected_selected, rtol=rtol, atol=atol)
    nav = loaded.case.nav
    extra = expected_selected.shape[1:]
    assert result.data.shape == nav + extra
    if loaded.roi is None:
        np.testing.assert_allclose(
            result.data.reshape(-1, *extra), expected_selected, rtol=rtol, atol=atol
        )
    else:
        np.testing.assert_allclose(result.data[loaded.roi], expected_selected, rtol=rtol, atol=atol)
        outside = result.data[~loaded.roi]
        if result.data.dtype.kind in "fc":
            assert np.isnan(outside).all()
        else:
            assert (outside == 0).all()
