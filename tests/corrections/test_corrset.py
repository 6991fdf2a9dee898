"""CorrectionSet: what it accepts, and clear errors for what it does not, raised before any
data is read."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import UDF, CorrectionSet, SumUDF
from libertem_gpu.corrections import RepairDescriptor, RepairValueError
from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError
from tests.conftest import random_data


class Exploding(UDF):
    """Fails if it is ever given data: errors must come before."""

    def get_result_buffers(self):
        return {"x": self.buffer(kind="nav", dtype=np.float64)}

    def process_frame(self, frame):
        raise AssertionError("data was read")


@pytest.fixture
def ds(inline_ctx, rng):
    return inline_ctx.load("memory", data=random_data(rng, (2, 3, 6, 7), np.dtype(np.uint16)))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"dark": np.zeros((6, 6))},
            ShapeMismatchError,
            r"dark: expected .*\(6, 7\), got \(6, 6\)",
        ),
        ({"gain": np.ones((7, 6))}, ShapeMismatchError, r"gain: expected .*\(6, 7\), got \(7, 6\)"),
        (
            {"excluded_pixels": np.zeros((5, 7), bool)},
            ShapeMismatchError,
            r"excluded_pixels: expected .*\(6, 7\), got \(5, 7\)",
        ),
        (
            {"excluded_pixels": np.array([[1, 6], [2, 3]])},
            InvalidParameterError,
            r"excluded_pixels: expected coordinates inside the frame \(6, 7\), found 1 outside",
        ),
        (
            {"excluded_pixels": np.array([[1, 2, 3]])},
            InvalidParameterError,
            r"excluded_pixels: expected coordinates of shape \(2, k\)",
        ),
    ],
)
def test_mismatch_with_the_data_set(inline_ctx, ds, kwargs, error, match):
    corr = CorrectionSet(**kwargs)
    with pytest.raises(error, match=match):
        inline_ctx.run_udf(ds, Exploding(), corrections=corr)
    with pytest.raises(error, match=match):
        inline_ctx.load("memory", data=np.zeros((2, 6, 7)), corrections=corr)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"gain": np.array([[1.0, np.nan]])}, InvalidParameterError, "gain: expected finite"),
        ({"dark": np.array([[np.inf, 1.0]])}, InvalidParameterError, "dark: expected finite"),
        ({"dark": "dark.npy"}, InvalidParameterError, "dark: expected a real-valued array"),
        ({"gain": np.ones((2, 2), complex)}, InvalidParameterError, "gain: .*complex128"),
        ({"dark": 3.0}, ShapeMismatchError, "dark: expected an array shaped like a frame"),
        (
            {"dark": np.zeros((4, 4)), "gain": np.ones((4, 5))},
            ShapeMismatchError,
            r"gain: expected the frame shape \(4, 4\)",
        ),
        ({"excluded_pixels": np.array([[-1], [2]])}, InvalidParameterError, ">= 0, found -1"),
        ({"excluded_pixels": np.array([[1.5], [2]])}, InvalidParameterError, "boolean frame"),
        ({"excluded_pixels": [3, 4]}, InvalidParameterError, r"excluded_pixels: expected"),
        ({"allow_empty": "yes"}, InvalidParameterError, "allow_empty: expected True or False"),
    ],
)
def test_bad_input_when_given(kwargs, error, match):
    with pytest.raises(error, match=match):
        CorrectionSet(**kwargs)


def test_wrong_type_for_corrections(inline_ctx, ds):
    with pytest.raises(InvalidParameterError, match="corrections: expected a CorrectionSet"):
        inline_ctx.run_udf(ds, Exploding(), corrections={"dark": 1})


def test_empty_environment():
    block = np.zeros((5, 5), bool)
    block[1:4, 1:4] = True  # the centre has only excluded neighbours
    with pytest.raises(RepairValueError, match=r"1 excluded pixel\(s\) .* at \[\[2, 2\]\]"):
        CorrectionSet(excluded_pixels=block)
    corr = CorrectionSet(excluded_pixels=block, allow_empty=True)
    desc = corr.for_frames((5, 5)).repair
    assert desc.repair_counts[list(desc.exclude_flat).index(12)] == 0
    # coordinates without a shape are checked against the data set when the run is planned
    coords = CorrectionSet(excluded_pixels=np.array(np.nonzero(block)))
    with pytest.raises(RepairValueError):
        coords.check((5, 5))


def test_forms_of_excluded_pixels_agree():
    mask = np.zeros((6, 7), bool)
    mask[0, 0] = mask[2, 5] = mask[5, 6] = True
    coords = np.array(np.nonzero(mask))
    scipy_sparse = pytest.importorskip("scipy.sparse")
    forms = [mask, coords, coords[:, [2, 0, 1, 0]], scipy_sparse.coo_array(mask)]
    sparse = pytest.importorskip("sparse")
    forms.append(sparse.COO(coords=coords, data=1, shape=(6, 7)))
    want = RepairDescriptor((6, 7), coords)
    for form in forms:
        got = CorrectionSet(excluded_pixels=form).for_frames((6, 7)).repair
        np.testing.assert_array_equal(got.exclude_flat, want.exclude_flat)
        np.testing.assert_array_equal(got.repair_counts, want.repair_counts)
        np.testing.assert_array_equal(got.repair_flat, want.repair_flat)
    back = CorrectionSet(excluded_pixels=mask).get_excluded_pixels()
    np.testing.assert_array_equal(back.todense(), mask)


def test_accessors_and_pickling():
    import pickle

    dark = np.arange(12.0).reshape(3, 4)
    corr = CorrectionSet(dark=dark)
    dark[0, 0] = 99  # a copy is kept
    assert corr.get_dark_frame()[0, 0] == 0
    assert corr.get_gain_map() is None and corr.get_excluded_pixels() is None
    assert corr.have_corrections() and not corr.is_empty
    assert CorrectionSet().is_empty
    corr.for_frames((3, 4))
    again = pickle.loads(pickle.dumps(corr))
    np.testing.assert_array_equal(again.get_dark_frame(), corr.get_dark_frame())
    assert "dark=set" in repr(corr)


def test_libertem_style_set_is_taken_over(inline_ctx, ds, rng):
    class Foreign:  # LiberTEM's CorrectionSet offers these accessors
        _allow_empty = False

        def get_dark_frame(self):
            return np.full((6, 7), 5.0)

        def get_gain_map(self):
            return None

        def get_excluded_pixels(self):
            return None

    plain = inline_ctx.run_udf(ds, SumUDF())["intensity"].raw_data
    got = inline_ctx.run_udf(ds, SumUDF(), corrections=Foreign())["intensity"].raw_data
    np.testing.assert_allclose(got, plain - 6 * 5.0)


def test_libertem_import_paths():
    from libertem_gpu.compat.corrections import CorrectionSet as Compat
    from libertem_gpu.compat.corrections.detector import (
        RepairDescriptor as CompatRepair,
    )
    from libertem_gpu.compat.corrections.detector import RepairValueError as CompatError
    from libertem_gpu.compat.corrections.detector import correct as compat_correct

    assert Compat is CorrectionSet
    assert CompatRepair is RepairDescriptor and CompatError is RepairValueError
    frames = np.arange(24, dtype=np.uint16).reshape(2, 3, 4)
    out = compat_correct(frames, dark_image=np.ones((3, 4)))
    np.testing.assert_array_equal(out, frames - 1.0)
