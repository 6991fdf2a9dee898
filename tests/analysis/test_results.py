"""Result sets: LiberTEM's four ways to reach a result, and the images."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.analysis.results import (
    AnalysisResult,
    AnalysisResultSet,
    complex_results,
    rgb_from_2dvector,
    visualize_simple,
)


def _set() -> AnalysisResultSet:
    a = AnalysisResult(np.ones((2, 3)), lambda: np.zeros((2, 3, 3)), "t0", "d0", "first")
    b = AnalysisResult(np.zeros((2, 3)), np.ones((2, 3, 3)), "t1", "d1", "second")
    return AnalysisResultSet([a, b], raw_results={"x": 1})


def test_access_by_key_index_iteration():
    rs = _set()
    assert rs.first is rs["first"] is rs[0]
    assert rs.second.title == "t1" and rs[1].desc == "d1"
    assert [r.key for r in rs] == rs.keys() == ["first", "second"]
    assert len(rs) == 2 and rs.raw_results == {"x": 1}
    assert rs.first.visualized.shape == (2, 3, 3)  # made on first use
    assert np.asarray(rs.first).shape == (2, 3)
    with pytest.raises(AttributeError, match="first, second"):
        rs.third  # noqa: B018
    assert "first" in repr(rs) and repr(rs.first) == "<AnalysisResult: first>"


def test_lazy_results_list():
    rs = AnalysisResultSet(lambda: [AnalysisResult(1, np.zeros(3), "t", "d", "k")])
    assert rs.k.raw_data == 1


def test_visualize_simple_scales_to_uint8_rgb():
    data = np.array([[0.0, 1.0], [2.0, np.nan]])
    img = visualize_simple(data)
    assert img.shape == (2, 2, 3) and img.dtype == np.uint8
    assert img[0, 0, 0] == 0 and img[1, 0, 0] == 255 and img[1, 1, 0] == 0
    log = visualize_simple(data, logarithmic=True)
    assert log[1, 0, 0] == 255 and 0 < log[0, 1, 0] < 255
    damaged = visualize_simple(data, damage=np.array([[True, True], [False, False]]))
    assert damaged[0, 1, 0] == 255 and damaged[1, 0, 0] == 0
    assert not visualize_simple(np.full((2, 2), np.nan)).any()
    assert not visualize_simple(np.ones((2, 2))).any()  # constant: no range


def test_rgb_from_2dvector():
    x = np.array([[1.0, 0.0], [0.0, np.nan]])
    y = np.array([[0.0, 2.0], [0.0, 0.0]])
    img = rgb_from_2dvector(x, y)
    assert img.shape == (2, 2, 3) and img.dtype == np.uint8
    assert img[0, 1].max() == 255  # the longest vector at full brightness
    assert not img[1, 0].any() and not img[1, 1].any()  # zero and non-finite: black
    assert not np.array_equal(img[0, 0], img[0, 1])  # directions differ in hue


def test_complex_results_keys():
    data = np.array([[1 + 1j, 2 - 1j]])
    lin = complex_results(data, "mask_0", "mask 0", "d", True)
    assert [r.key for r in lin] == [
        "mask_0",
        "mask_0_log",
        "mask_0_real",
        "mask_0_imag",
        "mask_0_angle",
        "mask_0_complex",
    ]
    np.testing.assert_allclose(lin[0].raw_data, np.abs(data))
    np.testing.assert_allclose(lin[4].raw_data, np.angle(data))
    assert lin[5].visualized.shape == (1, 2, 3)
    log = complex_results(data, "intensity", "intensity", "d", True, default_lin=False)
    assert [r.key for r in log][:2] == ["intensity_lin", "intensity"]
