"""``libertem-gpu run --ellipse`` and ``--fit-ellipse``: FEM and radial profiles with the
distortion undone, as the library computes them, the fit in the provenance; usage errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

import libertem_gpu
from libertem_gpu import Context, load_results
from libertem_gpu.cli import main
from tests.udf.test_ellipse import ring_image


@pytest.fixture
def ring_scan(tmp_path, rng):
    """An elliptical ring (ratio 1.08, major axis at 35 degrees) whose strength varies over a
    4 x 5 scan, as counts; saved as .npy."""
    ring = ring_image((48, 52), (23.4, 26.1), 15.0, 1.08, math.radians(35), width=1.2)
    frames = rng.poisson(80 * ring * rng.uniform(0.5, 1.5, (4, 5, 1, 1)) + 3)
    path = tmp_path / "rings.npy"
    np.save(path, frames.astype(np.uint16))
    return path, frames.astype(np.uint16)


def _run(frames, *udfs):
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames)
        return ctx.run_udf(dataset=ds, udf=list(udfs))


def test_fit_ellipse_then_profile_and_fem(ring_scan, tmp_path):
    path, frames = ring_scan
    out = tmp_path / "r.npz"
    argv = ["run", str(path), "--radial-profile", "22", "--fem", "12", "18"]
    argv += ["--fit-ellipse", "8", "21", "--cy", "24", "--cx", "25", "--out", str(out)]
    assert main(argv) == 0
    res = load_results(out)
    fit = libertem_gpu.fit_ellipse(frames.sum(axis=(0, 1)), 8, 21, center=(24, 25))
    assert abs(fit.ratio - 1.08) < 0.01 and abs(fit.angle - math.radians(35)) < 0.1
    profile, fem = _run(
        frames,
        libertem_gpu.RadialProfileUDF(rad_max=22, ellipse=fit),
        libertem_gpu.FEMUDF(center=fit.center, rad_in=12, rad_out=18, ellipse=fit),
    )
    np.testing.assert_allclose(res["radial_profile_intensity"], profile["intensity"].data)
    np.testing.assert_allclose(res["fem_intensity"], fem["intensity"].data)
    entries = {a["name"]: a["parameters"] for a in res.metadata["analyses"]}
    for name in ("radial_profile", "fem"):
        recorded = entries[name]["ellipse_fit"]
        assert recorded["ratio"] == pytest.approx(fit.ratio)
        assert recorded["angle_deg"] == pytest.approx(math.degrees(fit.angle))
        assert entries[name]["center"] == pytest.approx(list(fit.center))


def test_given_ellipse_in_degrees(ring_scan, tmp_path):
    path, frames = ring_scan
    out = tmp_path / "g.npz"
    argv = ["run", str(path), "--radial-profile", "20", "--sectors", "4"]
    assert main([*argv, "--ellipse", "1.08", "35", "--out", str(out)]) == 0
    res = load_results(out)
    (want,) = _run(
        frames,
        libertem_gpu.RadialProfileUDF(
            center=(23.5, 25.5), rad_max=20, n_sectors=4, ellipse=(1.08, math.radians(35))
        ),
    )
    np.testing.assert_allclose(res["radial_profile_intensity"], want["intensity"].data)
    (entry,) = res.metadata["analyses"]
    assert entry["parameters"]["ellipse"] == {"ratio": 1.08, "angle_deg": 35.0}


def test_ellipse_usage_errors(ring_scan, tmp_path, capsys):
    path, _ = ring_scan
    out = ["--out", str(tmp_path / "x.npz")]
    both = ["--radial-profile", "--ellipse", "1.1", "0", "--fit-ellipse", "5", "20"]
    assert main(["run", str(path), *both, *out]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["run", str(path), "--bf", "3", "--ellipse", "1.1", "0", *out]) == 2
    err = capsys.readouterr().err
    assert "applies to --fem, --radial-profile, --templates and --ring-strain" in err
    assert main(["run", str(path), "--radial-profile", "--ellipse", "0", "10", *out]) == 1
    assert "ratio > 0" in capsys.readouterr().err
    # An annulus that holds no ring: the fit says so.
    assert main(["run", str(path), "--fem", "2", "4", "--fit-ellipse", "1", "4", *out]) == 1
    assert "sectors show a ring" in capsys.readouterr().err
