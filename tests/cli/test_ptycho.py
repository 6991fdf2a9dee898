"""``libertem-gpu run --ptychography KV STEP MRAD``: the reconstruction as ``ptychography``
gives it from the same optics (the disk given or found, a vacuum frame for the probe), saved
with its dimensions; bad numbers, files and scans that are not 2-D refused."""

from __future__ import annotations

import numpy as np

import libertem_gpu
from libertem_gpu import Context, load_results
from libertem_gpu.cli import main
from libertem_gpu.demo.phase_object import random_phase, scan_phase_object
from libertem_gpu.udf.ssb_geometry import electron_wavelength

KV, MRAD, RADIUS, FRAME = 300.0, 25.0, 4.0, 16


def _scan(tmp_path):
    """A simulated scan whose object pixel is 10 wavelengths: the step of 2 pixels in Å."""
    phase = random_phase((32, 32), cutoff=0.2, strength=0.3, seed=1)
    frames, _ = scan_phase_object(phase, step=2, frame=FRAME, radius=RADIUS)
    np.save(tmp_path / "scan.npy", frames)
    pixel = electron_wavelength(KV * 1e3) * RADIUS / (FRAME * MRAD * 1e-3)
    return frames, phase[::2, ::2], 2 * pixel


def test_ptychography_equals_the_library(tmp_path):
    frames, truth, step = _scan(tmp_path)
    out = tmp_path / "p.npz"
    argv = ["run", str(tmp_path / "scan.npy"), "--ptychography", str(KV), str(step), str(MRAD)]
    argv += ["--cy", "8", "--cx", "8", "--semiconv-pix", str(RADIUS)]
    assert main([*argv, "--ptycho-iterations", "12", "--out", str(out)]) == 0
    res = load_results(out)
    with Context("inline") as ctx:
        want = libertem_gpu.ptychography(
            ctx, ctx.load("memory", data=frames), wavelength=electron_wavelength(KV * 1e3),
            scan_step=step, semiconv=MRAD * 1e-3, semiconv_pix=RADIUS, center=(8.0, 8.0),
            iterations=12,
        )  # fmt: skip
    np.testing.assert_allclose(res["ptycho_phase"], want.phase, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res["ptycho_object"], want.object, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(res["ptycho_errors"], want.errors, rtol=1e-10)
    assert np.corrcoef(res["ptycho_phase"].ravel(), truth.ravel())[0, 1] > 0.99
    assert res.dims("ptycho_phase") == ["scan_y", "scan_x"]
    assert res.dims("ptycho_probe") == ["probe_y", "probe_x"]
    entry = next(a for a in res.metadata["analyses"] if a["name"] == "ptychography")
    assert entry["parameters"]["pixel_size_angstrom"] == want.pixel_size
    # the disk found on the mean frame: the same window, a result as good
    found = tmp_path / "f.npz"
    assert main([*argv[:6], "--ptycho-iterations", "12", "--out", str(found)]) == 0
    again = load_results(found)
    assert np.corrcoef(again["ptycho_phase"].ravel(), truth.ravel())[0, 1] > 0.99
    # two probe modes: saved mode first
    modes = tmp_path / "m.npz"
    two = ["--ptycho-iterations", "4", "--ptycho-modes", "2"]
    assert main([*argv, *two, "--out", str(modes)]) == 0
    assert load_results(modes).dims("ptycho_probe") == ["mode", "probe_y", "probe_x"]


def test_bad_input_is_refused(tmp_path):
    frames, _, step = _scan(tmp_path)
    base = ["run", str(tmp_path / "scan.npy"), "--out", str(tmp_path / "x.npz")]
    assert main([*base, "--ptychography", "300", "0", "25"]) == 2
    assert main([*base, "--ptychography", "300", str(step), "25", "--ptycho-iterations", "0"]) == 2
    assert main([*base, "--ptychography", "300", str(step), "25", "--ptycho-modes", "0"]) == 2
    np.save(tmp_path / "line.npy", frames[0])
    line = ["run", str(tmp_path / "line.npy"), "--out", str(tmp_path / "y.npz")]
    assert main([*line, "--ptychography", "300", str(step), "25"]) == 2


def test_vacuum_frame_from_a_file(tmp_path):
    frames, _, step = _scan(tmp_path)
    vacuum, _ = scan_phase_object(np.zeros((2, 2)), step=2, frame=FRAME, radius=RADIUS, edge=2.0)
    np.save(tmp_path / "vacuum.npy", vacuum[0, 0])
    out = tmp_path / "v.npz"
    argv = ["run", str(tmp_path / "scan.npy"), "--ptychography", str(KV), str(step), str(MRAD)]
    argv += ["--cy", "8", "--cx", "8", "--semiconv-pix", str(RADIUS), "--ptycho-iterations", "3"]
    assert main([*argv, "--ptycho-vacuum", str(tmp_path / "vacuum.npy"), "--out", str(out)]) == 0
    res = load_results(out)
    with Context("inline") as ctx:
        want = libertem_gpu.ptychography(
            ctx, ctx.load("memory", data=frames), wavelength=electron_wavelength(KV * 1e3),
            scan_step=step, semiconv=MRAD * 1e-3, semiconv_pix=RADIUS, center=(8.0, 8.0),
            iterations=3, vacuum=vacuum[0, 0],
        )  # fmt: skip
    np.testing.assert_allclose(res["ptycho_probe"], want.probe, rtol=1e-10, atol=1e-12)
    entry = next(a for a in res.metadata["analyses"] if a["name"] == "ptychography")
    assert entry["parameters"]["vacuum"] == str(tmp_path / "vacuum.npy")
    missing = [*argv, "--ptycho-vacuum", str(tmp_path / "nope.npy"), "--out", str(out)]
    assert main(missing) == 1
    np.save(tmp_path / "small.npy", vacuum[0, 0, :8])
    small = [*argv, "--ptycho-vacuum", str(tmp_path / "small.npy"), "--out", str(out)]
    assert main(small) != 0
