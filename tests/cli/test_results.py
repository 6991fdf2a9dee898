"""Saved results load back as NumPy, xarray and HyperSpy, with the data set's calibration
(``DataSet.calibration``) on their axes."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from libertem_gpu import Context, load_results
from libertem_gpu.cli import main
from libertem_gpu.errors import LiberTEMGPUError
from libertem_gpu.io.calibration import AxisCalibration, Calibration
from tests.conftest import random_data
from tests.data_files import data_path, needs_data, require_data

BLO = data_path("blo/test2.blo")
needs_blo = needs_data("blo/test2.blo")


@needs_blo
def test_blo_calibration():
    with Context("inline") as ctx:
        cal = ctx.load("auto", path=str(BLO)).calibration
    # The header: scan step 64 nm; diffraction pixels 100 / 6226 cm; camera length 2000 x 0.1 mm
    # (rosettasciio reads the same fields).
    assert cal.nav == (AxisCalibration(64.0, 0.0, "nm"),) * 2
    assert cal.sig[0] == cal.sig[1] == AxisCalibration(100 / 6226, 0.0, "cm")
    assert (cal.camera_length, cal.camera_length_units) == (200.0, "mm")
    assert Calibration.from_dict(cal.to_dict()) == cal


@pytest.mark.parametrize("positions", [False, True])
def test_tia_calibration_from_the_series_dimensions(tmp_path, rng, positions):
    from tests.io.writers_tia import write_emi, write_ser

    frames = random_data(rng, (12, 5, 6), np.uint16)
    path = tmp_path / "scan_1.ser"
    write_ser(path, frames, (3, 4), positions=positions)  # 1 nm steps, in meters
    write_emi(tmp_path / "scan.emi")
    with Context("inline") as ctx:
        ds = ctx.load("auto", path=str(path))
    assert ds.nav_shape == ((3, 4) if positions else (4, 3))  # as the reader lists them
    assert ds.calibration.nav == (AxisCalibration(1e-9, 0.0, "meters"),) * 2
    assert ds.calibration.sig == (None, None) and ds.calibration.source == "ser header"


def test_formats_without_calibration_are_empty(rng):
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=random_data(rng, (2, 3, 4, 5), np.uint8))
    assert ds.calibration.is_empty
    assert ds.calibration.nav == (None, None) and ds.calibration.sig == (None, None)


@pytest.fixture
def saved(tmp_path, rng):
    """A results file of the BLO file (calibrated) or, without it, of random data."""
    out = tmp_path / "r.h5"
    if BLO.is_file():
        argv = ["run", str(BLO)]
    else:  # pragma: no cover - without the shared data
        np.save(tmp_path / "d.npy", random_data(rng, (2, 3, 5, 5), np.uint8))
        argv = ["run", str(tmp_path / "d.npy")]
    argv += ["--analysis", "sum", "--analysis", "com", "--bf", "1.5", "--out", str(out)]
    assert main([*argv, "--executor", "inline"]) == 0
    return out


def test_numpy(saved):
    res = load_results(saved)
    assert set(res) >= {"sum_intensity", "bf_intensity", "com_field", "com_icom"}
    assert isinstance(res["bf_intensity"], np.ndarray) and res["bf_intensity"].shape == (2, 3)
    assert res.dims("com_field") == ["scan_y", "scan_x", "component"]


def test_xarray_named_dims_and_calibrated_coords(saved):
    xr = pytest.importorskip("xarray", reason="xarray is not installed")
    res = load_results(saved, as_xarray=True)
    plain = load_results(saved)
    bf = res["bf_intensity"]
    assert isinstance(bf, xr.DataArray)
    assert bf.dims == ("scan_y", "scan_x")
    np.testing.assert_array_equal(bf.values, plain["bf_intensity"])
    assert bf.attrs["analysis"] == "bf" and bf.attrs["libertem_gpu_version"]
    assert '"analyses"' in bf.attrs["provenance"]
    total = res["sum_intensity"]
    assert total.dims == ("sig_y", "sig_x")
    if BLO.is_file():
        np.testing.assert_allclose(bf.coords["scan_x"].values, [0.0, 64.0, 128.0])
        assert bf.coords["scan_y"].attrs["units"] == "nm"
        np.testing.assert_allclose(total.coords["sig_x"].values, np.arange(5) * 100 / 6226)
        assert total.coords["sig_x"].attrs["units"] == "cm"
    assert res["com_field"].dims == ("scan_y", "scan_x", "component")


def test_hyperspy_axes(saved):
    pytest.importorskip("hyperspy.api", reason="hyperspy is not installed")
    res = load_results(saved, as_hyperspy=True)
    bf = res["bf_intensity"]
    assert bf.axes_manager.signal_dimension == 2
    names = {a.name for a in bf.axes_manager.signal_axes}
    assert names == {"scan_y", "scan_x"}
    if BLO.is_file():
        assert all(a.units == "nm" and a.scale == 64.0 for a in bf.axes_manager.signal_axes)
    field = res["com_field"]
    assert field.axes_manager.navigation_axes[0].name == "component"


@pytest.mark.parametrize(
    ("option", "package"), [("as_xarray", "xarray"), ("as_hyperspy", "hyperspy")]
)
def test_missing_optional_package_is_named(saved, monkeypatch, option, package):
    monkeypatch.setitem(sys.modules, package, None)
    monkeypatch.setitem(sys.modules, "hyperspy.api", None)
    with pytest.raises(LiberTEMGPUError, match=f"needs {package}.*pip install {package}"):
        load_results(saved, **{option: True})


def test_unknown_and_missing_files(tmp_path):
    with pytest.raises(LiberTEMGPUError, match=r"unknown extension '\.txt'"):
        load_results(tmp_path / "r.txt")
    with pytest.raises(LiberTEMGPUError, match="does not exist"):
        load_results(tmp_path / "r.h5")


@needs_blo
def test_info_prints_calibration(capsys):
    import json

    assert main(["info", str(BLO)]) == 0
    out = capsys.readouterr().out
    assert "scan step:   64 nm x 64 nm" in out and "camera:      200 mm" in out
    assert main(["info", str(BLO), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["calibration"]["nav"][0] == {"scale": 64.0, "offset": 0.0, "units": "nm"}


def _calibrated_dm(tmp_path, rng):
    from tests.io.writers_dm import Group, write_dm_stack

    path = tmp_path / "scan.dm4"
    cals = [(2.0, 0.0, "nm"), (2.0, 1.0, "nm"), (0.5, 4.0, "1/nm"), (0.5, 4.0, "1/nm")]
    camera = (("Microscope Info", Group(("STEM Camera Length", np.float32(120.0)))),)
    data = random_data(rng, (2, 3, 8, 8), np.uint16)
    write_dm_stack(path, data, calibrations=cals, tags=camera)
    return path


@pytest.mark.parametrize(
    ("name", "lines"),
    [
        (
            "dm",
            ["scan step:   2 nm x 2 nm", "pixel size:  0.5 1/nm x 0.5 1/nm", "camera:      120 mm"],
        ),
        ("mib/001_4x2_6bit.mib", ["pixel size:  55 µm x 55 µm"]),
        ("mrc/Custom_movie.mrc", []),  # DE recorded -1 (unknown) for every size
    ],
)
def test_info_prints_new_calibrations(capsys, tmp_path, rng, name, lines):
    import json

    if name == "dm":
        path = str(_calibrated_dm(tmp_path, rng))
    else:
        path = str(require_data(name))
    assert main(["info", path]) == 0
    out = capsys.readouterr().out
    for line in lines:
        assert line in out
    if not lines:
        assert "scan step:" not in out and "pixel size:" not in out
    assert main(["info", path, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with Context("inline") as ctx:
        assert doc["calibration"] == ctx.load("auto", path=path).calibration.to_dict()


def test_dm_calibration_round_trips_through_saved_results(tmp_path, rng):
    path = _calibrated_dm(tmp_path, rng)
    out = tmp_path / "r.npz"
    assert (
        main(["run", str(path), "--analysis", "sum", "--out", str(out), "--executor", "inline"])
        == 0
    )
    saved = load_results(out)
    cal = Calibration.from_dict(saved.metadata["dataset"]["calibration"])
    assert cal.nav == (AxisCalibration(2.0, 0.0, "nm"), AxisCalibration(2.0, -2.0, "nm"))
    assert cal.sig == (AxisCalibration(0.5, -2.0, "1/nm"),) * 2
    assert (cal.camera_length, cal.source) == (120.0, "dm tags")
    from libertem_gpu.resultfiles.views import axis_calibrations

    assert axis_calibrations(saved, "sum_intensity") == list(cal.sig)
