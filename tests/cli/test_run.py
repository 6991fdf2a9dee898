"""``libertem-gpu run`` in process: every analysis against NumPy (or, for analyses whose maths
is tested in tests/udf, against the same UDF run from Python), every output format round-trips
with its provenance, images, corrections, roi, progress."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest

import libertem_gpu
from libertem_gpu import Context, load_results
from libertem_gpu.cli import main
from tests.conftest import random_data

NAV, SIG = (3, 5), (13, 17)


@pytest.fixture
def raw_file(tmp_path, rng):
    data = random_data(rng, (*NAV, *SIG), "<u2") // 64
    path = tmp_path / "scan.raw"
    data.tofile(path)
    return path, data


def _argv(path, *more):
    # No --format: a file no format recognises is raw when shape and dtype are given.
    return ["run", str(path), "--nav-shape", "3,5", "--sig-shape", "13,17", "--dtype", "<u2", *more]


def _library(data, udf, roi=None, corrections=None):
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=data)
        return ctx.run_udf(dataset=ds, udf=udf, roi=roi, corrections=corrections)


def test_every_analysis_in_one_run(raw_file, tmp_path, capsys):
    path, data = raw_file
    rng = np.random.default_rng(1)
    stack = rng.random((2, *SIG)).astype(np.float32)
    np.save(tmp_path / "masks.npy", stack)
    out = tmp_path / "all.h5"
    argv = _argv(path, "--out", str(out), "--executor", "inline", "--cy", "6", "--cx", "7.5")
    for name in ("sum", "sumsig", "std", "max", "min", "com", "logsum", "sumfft"):
        argv += ["--analysis", name]
    argv += [
        "--bf",
        "3",
        "--adf",
        "3",
        "6",
        "--ring",
        "5",
        "9",
        "1.5",
        "4",
        "--disk",
        "4",
        "4",
        "2",
    ]
    argv += [
        "--point",
        "2",
        "11",
        "--rect",
        "1",
        "2",
        "4",
        "7",
        "--mask",
        str(tmp_path / "masks.npy"),
    ]
    argv += ["--pick", "2,4", "--pick", "0,1", "--fem", "2", "5", "--radial-fourier", "1", "6"]
    argv += ["--n-bins", "2", "--max-order", "3", "--crystallinity", "1", "4", "--real-rad", "2"]
    argv += ["--radial-profile", "6.5", "--sectors", "3"]
    assert main(argv) == 0
    assert "GB/s" in capsys.readouterr().out
    res = load_results(out)
    v = data.astype(np.float64)
    frames = v.reshape(-1, *SIG)
    yy, xx = np.mgrid[0 : SIG[0], 0 : SIG[1]]

    def d2(cy, cx):
        return (yy - cy) ** 2 + (xx - cx) ** 2

    rect = np.zeros(SIG, bool)
    rect[1:5, 2:9] = True
    point = np.zeros(SIG, bool)
    point[2, 11] = True
    detectors = {
        "bf": d2(6, 7.5) <= 9,
        "adf": (d2(6, 7.5) <= 36) & (d2(6, 7.5) > 9),
        "ring": (d2(5, 9) <= 16) & (d2(5, 9) > 2.25),
        "disk": d2(4, 4) <= 4,
        "point": point,
        "rect": rect,
        "mask1": stack[0],
        "mask2": stack[1],
    }
    for name, mask in detectors.items():
        want = (frames * mask).sum(axis=(1, 2)).reshape(NAV)
        np.testing.assert_allclose(res[f"{name}_intensity"], want, rtol=1e-5, err_msg=name)
        assert res.dims(f"{name}_intensity") == ["scan_y", "scan_x"]
    np.testing.assert_allclose(res["sum_intensity"], v.sum(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(res["sumsig_intensity"], v.sum(axis=(2, 3)), rtol=1e-12)
    np.testing.assert_allclose(res["std_var"], v.var(axis=(0, 1)), rtol=1e-9)
    np.testing.assert_array_equal(res["max_intensity"], v.max(axis=(0, 1)))
    np.testing.assert_array_equal(res["min_intensity"], v.min(axis=(0, 1)))
    np.testing.assert_array_equal(res["pick_intensity"], data[[0, 2], [1, 4]])
    np.testing.assert_array_equal(res["pick_positions"], [[0, 1], [2, 4]])
    assert res["pick_intensity"].dtype == np.uint16
    # Analyses whose maths tests/udf checks: the CLI must pass the same parameters.
    same = {
        "com": libertem_gpu.CoMUDF.with_params(cy=6, cx=7.5),
        "logsum": libertem_gpu.LogsumUDF(),
        "sumfft": libertem_gpu.SumFFTUDF(),
        "fem": libertem_gpu.FEMUDF(center=(6, 7.5), rad_in=2, rad_out=5),
        "radial_fourier": libertem_gpu.RadialFourierUDF(
            cy=6, cx=7.5, ri=1, ro=6, n_bins=2, max_order=3
        ),
        "crystallinity": libertem_gpu.CrystallinityUDF(
            rad_in=1, rad_out=4, real_center=(6, 7.5), real_rad=2
        ),
        "radial_profile": libertem_gpu.RadialProfileUDF(center=(6, 7.5), rad_max=6.5, n_sectors=3),
    }
    for name, udf in same.items():
        for key, value in _library(data, udf).items():
            np.testing.assert_allclose(
                res[f"{name}_{key}"], value.data, rtol=1e-6, atol=1e-9, err_msg=f"{name}_{key}"
            )
    assert res["com_icom"].shape == NAV  # iCoM comes with the CoM of a 2-D scan
    assert res.dims("radial_fourier_complex") == ["scan_y", "scan_x", "bin", "order"]
    assert res.dims("radial_profile_intensity") == ["scan_y", "scan_x", "ring", "sector"]
    assert res["radial_profile_intensity"].shape == (*NAV, 7, 3)
    assert res.dims("sumfft_intensity") == ["freq_y", "freq_x"]
    assert res.dims("pick_intensity") == ["frame", "sig_y", "sig_x"]
    names = [a["name"] for a in res.metadata["analyses"]]
    assert names[:8] == ["sum", "sumsig", "std", "max", "min", "com", "logsum", "sumfft"]
    assert {"bf", "adf", "ring", "disk", "point", "rect", "mask1", "mask2", "fem"} <= set(names)
    assert {"radial_fourier", "radial_profile", "crystallinity", "pick"} <= set(names)


@pytest.mark.parametrize("ext", [".h5", ".npz", ".zarr"])
def test_formats_round_trip_with_provenance(raw_file, tmp_path, ext):
    path, data = raw_file
    roi = np.zeros(NAV, bool)
    roi[1:, 2:] = True
    np.save(tmp_path / "roi.npy", roi)
    out = tmp_path / f"res{ext}"
    argv = _argv(path, "--analysis", "sum", "--bf", "4", "--sync-offset", "2", "--out", str(out))
    assert main([*argv, "--roi", str(tmp_path / "roi.npy"), "--executor", "threads"]) == 0
    res = load_results(out)
    assert sorted(res) == ["bf_intensity", "sum_intensity"]
    flat = np.zeros((15, *SIG))
    flat[:13] = data.reshape(15, *SIG)[2:].astype(np.float64)  # sync offset 2: 2 blank at end
    picked = flat[roi.reshape(-1)]
    np.testing.assert_allclose(res["sum_intensity"], picked.sum(axis=0), rtol=1e-12)
    bf = res["bf_intensity"].reshape(-1)
    has_data = roi.reshape(-1) & (np.arange(15) < 13)  # positions without data: never processed
    assert np.isnan(bf[~has_data]).all()
    yy, xx = np.mgrid[0:13, 0:17]
    disk = (yy - 6) ** 2 + (xx - 8) ** 2 <= 16
    want = (flat[has_data] * disk).sum(axis=(1, 2))
    np.testing.assert_allclose(bf[has_data], want, rtol=1e-6)
    meta = res.metadata
    assert meta["version"] == libertem_gpu.__version__
    created = datetime.datetime.fromisoformat(meta["created"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - created).total_seconds()) < 600
    ds = meta["dataset"]
    assert ds["path"] == str(path) and ds["format"] == "raw"
    assert (ds["nav_shape"], ds["sig_shape"], ds["dtype"]) == ([3, 5], [13, 17], "uint16")
    assert ds["sync_offset"] == 2
    assert ds["roi"] == {"source": str(tmp_path / "roi.npy"), "positions": 6, "of": 15}
    assert ds["calibration"]["nav"] == [None, None]
    bf_entry = next(a for a in meta["analyses"] if a["name"] == "bf")
    assert bf_entry["parameters"] == {"detector": "bf", "cy": 6.0, "cx": 8.0, "r": 4.0}
    assert meta["arrays"]["sum_intensity"]["dims"] == ["sig_y", "sig_x"]
    assert meta["command"].startswith(f"libertem-gpu run {path} ") and "--roi" in meta["command"]
    # Written atomically: only the result (and the inputs) in the folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["scan.raw", "roi.npy", out.name])


def test_npz_metadata_is_a_plain_json_entry(raw_file, tmp_path):
    path, _ = raw_file
    out = tmp_path / "r.npz"
    assert main(_argv(path, "--analysis", "max", "--out", str(out))) == 0
    with np.load(out, allow_pickle=False) as f:
        doc = json.loads(str(f["libertem_gpu_metadata"]))
    assert doc["analyses"] == [{"name": "max", "udf": "MaxUDF", "parameters": {}}]


def test_radial_profile_defaults_to_the_whole_frame(raw_file, tmp_path):
    """``--radial-profile`` without RMAX: rings one pixel wide around the frame's centre out
    to the farthest pixel, so that every pixel is counted once."""
    path, data = raw_file
    out = tmp_path / "profile.npz"
    assert main(_argv(path, "--radial-profile", "--out", str(out))) == 0
    res = load_results(out)
    assert res["radial_profile_pixels"].sum() == SIG[0] * SIG[1]
    assert res.dims("radial_profile_intensity") == ["scan_y", "scan_x", "ring"]
    want = _library(data, libertem_gpu.RadialProfileUDF())["intensity"].data
    np.testing.assert_allclose(res["radial_profile_intensity"], want, rtol=1e-12)
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        main(_argv(path, "--radial-profile", "wide", "--out", str(out)))
    assert exited.value.code == 2


def test_shifts_move_detectors_and_rings(raw_file, tmp_path, rng):
    """``--shifts``: virtual detectors and radial profiles follow the beam; the file is named
    in the provenance; a file of the wrong shape is a usage error naming it."""
    path, data = raw_file
    shifts = rng.integers(-2, 3, (*NAV, 2))
    np.save(tmp_path / "shifts.npy", shifts)
    out = tmp_path / "moved.npz"
    moved = ["--shifts", str(tmp_path / "shifts.npy")]
    argv = _argv(path, "--bf", "4", "--radial-profile", "6", *moved)
    assert main([*argv, "--out", str(out)]) == 0
    res = load_results(out)
    cy, cx = (SIG[0] - 1) / 2, (SIG[1] - 1) / 2
    bf = libertem_gpu.ApplyMasksUDF([libertem_gpu.masks.disk(SIG, cy, cx, 4)], shifts=shifts)
    np.testing.assert_allclose(res["bf_intensity"], _library(data, bf)["intensity"].data[..., 0])
    profile = libertem_gpu.RadialProfileUDF(center=(cy, cx), rad_max=6, shifts=shifts)
    want = _library(data, profile)["intensity"].data
    np.testing.assert_allclose(res["radial_profile_intensity"], want, rtol=1e-12)
    plain = _library(data, libertem_gpu.RadialProfileUDF(center=(cy, cx), rad_max=6))
    assert not np.allclose(want, plain["intensity"].data)
    np.save(tmp_path / "bad.npy", np.zeros((*NAV, 3)))
    bad = _argv(path, "--bf", "4", "--shifts", str(tmp_path / "bad.npy"), "--out", str(out))
    assert main(bad) == 2


def test_descan_measures_then_moves_detectors(tmp_path, rng):
    """``--descan``: the plane fitted around ``--cy/--cx`` moves the detectors and the
    profile as the library's estimate_descan does; the plane is in the provenance; not with
    ``--shifts``."""
    from tests.udf.test_mask_shifts import walking_beam

    frames, truth = walking_beam(rng)
    np.save(tmp_path / "scan.npy", frames)
    out = tmp_path / "d.npz"
    argv = ["run", str(tmp_path / "scan.npy"), "--bf", "3", "--radial-profile", "12"]
    argv += ["--cy", "19.5", "--cx", "19.5", "--descan"]
    assert main([*argv, "--out", str(out)]) == 0
    res = load_results(out)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames)
        found = libertem_gpu.estimate_descan(ctx, ds, center=(19.5, 19.5))
        bf = libertem_gpu.ApplyMasksUDF(
            [libertem_gpu.masks.disk((40, 40), 19.5, 19.5, 3)], shifts=found.shifts
        )
        want = ctx.run_udf(dataset=ds, udf=bf)["intensity"].data[..., 0]
    assert np.abs(found.shifts - truth).max() <= 1
    np.testing.assert_allclose(res["bf_intensity"], want, rtol=1e-6)
    (entry,) = [a for a in res.metadata["analyses"] if a["name"] == "radial_profile"]
    np.testing.assert_allclose(entry["parameters"]["descan_plane"], found.plane)
    np.save(tmp_path / "s.npy", truth)
    both = [*argv, "--shifts", str(tmp_path / "s.npy"), "--out", str(tmp_path / "x.npz")]
    assert main(both) == 2
    # The descan-corrected mean pattern, from the file's shifts; refused without shifts.
    aligned = ["run", str(tmp_path / "scan.npy"), "--aligned-sum", "--out", str(tmp_path / "a.npz")]
    assert main([*aligned, "--shifts", str(tmp_path / "s.npy")]) == 0
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames)
        want = ctx.run_udf(dataset=ds, udf=libertem_gpu.AlignedSumUDF(shifts=truth))
    res = load_results(tmp_path / "a.npz")
    np.testing.assert_allclose(res["aligned_sum_mean"], want["mean"].data, equal_nan=True)
    assert res.dims("aligned_sum_mean") == ["sig_y", "sig_x"]
    assert main(aligned) == 2


def test_parallax_measures_then_images(tmp_path, rng):
    """``--parallax U``: the shifts measured around ``--cy/--cx``, the image from the same
    fit as the library's; the matrix in the provenance; the image also as PNG and TIFF."""
    from tests.udf.test_parallax import _defocused_scan

    frames, _, _ = _defocused_scan(rng, nav=(12, 14), n=16)
    np.save(tmp_path / "scan.npy", frames)
    out = tmp_path / "p.npz"
    argv = ["run", str(tmp_path / "scan.npy"), "--parallax", "3", "--cy", "9.6", "--cx", "10.3"]
    assert main([*argv, "--out", str(out), "--images", str(tmp_path / "img")]) == 0
    res = load_results(out)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames)
        fit = libertem_gpu.estimate_parallax(ctx, ds, center=(9.6, 10.3))
        want = ctx.run_udf(dataset=ds, udf=fit.udf(upsampling=3))["image"].data
    np.testing.assert_allclose(res["parallax_image"], want, rtol=1e-12, equal_nan=True)
    assert res.dims("parallax_image") == ["fine_y", "fine_x"]
    (entry,) = [a for a in res.metadata["analyses"] if a["name"] == "parallax"]
    np.testing.assert_allclose(entry["parameters"]["shift_matrix"], fit.shift_matrix)
    assert (tmp_path / "img" / "parallax_image.png").exists()
    assert main([*argv, "--parallax", "0", "--out", str(tmp_path / "q.npz")]) == 2


def test_ssb_with_the_disk_given_or_measured(tmp_path):
    """``--ssb KV STEP MRAD``: the phase equals the library's with the same optics (the disk
    from --cy/--cx/--semiconv-pix, or measured on the mean frame), and shows the specimen;
    the optics go into the provenance."""
    from libertem_gpu.demo.phase_object import random_phase, scan_phase_object
    from libertem_gpu.udf.parallax_fit import find_bright_field

    phase = random_phase((40, 44), cutoff=0.2, strength=0.05, seed=4)
    frames, _ = scan_phase_object(phase, 2, 32, 8, dose=1000, seed=2)
    np.save(tmp_path / "scan.npy", frames)
    # 300 kV and 25 mrad over 8 pixels: the simulation's 16 detector pixels per cycle per step
    step = libertem_gpu.electron_wavelength(300e3) * 8 / (16 * 25e-3)
    argv = ["run", str(tmp_path / "scan.npy"), "--ssb", "300", str(step), "25"]
    given = ["--cy", "16", "--cx", "16", "--semiconv-pix", "8"]
    assert main([*argv, *given, "--out", str(tmp_path / "a.npz")]) == 0
    assert main([*argv, "--out", str(tmp_path / "b.npz")]) == 0
    optics = {"wavelength": libertem_gpu.electron_wavelength(300e3), "scan_step": step}
    optics["semiconv"] = 25e-3
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames)
        want_given = ctx.run_udf(
            dataset=ds, udf=libertem_gpu.SSBUDF(**optics, semiconv_pix=8, center=(16, 16))
        )["phase"].data
        center, radius = find_bright_field(frames.sum(axis=(0, 1)))
        want_found = ctx.run_udf(
            dataset=ds, udf=libertem_gpu.SSBUDF(**optics, semiconv_pix=radius, center=center)
        )["phase"].data
    a, b = load_results(tmp_path / "a.npz"), load_results(tmp_path / "b.npz")
    np.testing.assert_allclose(a["ssb_phase"], want_given, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(b["ssb_phase"], want_found, rtol=1e-12, atol=1e-15)
    assert a.dims("ssb_phase") == ["scan_y", "scan_x"]
    truth = phase[::2, ::2]
    assert np.corrcoef(a["ssb_phase"].ravel(), truth.ravel())[0, 1] > 0.98
    (entry,) = [e for e in b.metadata["analyses"] if e["name"] == "ssb"]
    assert entry["parameters"]["semiconv_pix"] == pytest.approx(radius)
    assert entry["parameters"]["voltage_kv"] == 300
    assert main([*argv[:3], "300", "0", "25", "--out", str(tmp_path / "c.npz")]) == 2
    # --shifts: the disk read where the beam's walk puts it
    walk = np.zeros((20, 22, 2), int)
    walk[:, 11:] = (1, -1)
    np.save(tmp_path / "walk.npy", walk)
    shifted = ["--shifts", str(tmp_path / "walk.npy"), "--out", str(tmp_path / "d.npz")]
    assert main([*argv, *given, *shifted]) == 0
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=frames)
        udf = libertem_gpu.SSBUDF(**optics, semiconv_pix=8, center=(16, 16), shifts=walk)
        want_walk = ctx.run_udf(dataset=ds, udf=udf)["phase"].data
    np.testing.assert_allclose(load_results(tmp_path / "d.npz")["ssb_phase"], want_walk, rtol=1e-12)
    assert not np.allclose(want_walk, want_given)


def test_pca_with_a_roi_equals_the_library(tmp_path, rng):
    """``--pca K``: components (frame axes first), scores, spectrum and mean as
    ``decompose`` finds them, with the roi; one image per component; K of 0 is refused."""
    maps, patterns = rng.random((3, 9, 10)), rng.random((3, 12, 11))
    data = np.einsum("cij,cab->ijab", maps, patterns) + 0.01 * rng.random((9, 10, 12, 11))
    np.save(tmp_path / "scan.npy", data)
    roi = rng.random((9, 10)) > 0.2
    np.save(tmp_path / "roi.npy", roi)
    out, images = tmp_path / "p.npz", tmp_path / "img"
    argv = ["run", str(tmp_path / "scan.npy"), "--pca", "3", "--roi", str(tmp_path / "roi.npy")]
    assert main([*argv, "--out", str(out), "--images", str(images)]) == 0
    res = load_results(out)
    with Context("inline") as ctx:
        want = libertem_gpu.decompose(ctx, ctx.load("memory", data=data), n_components=3, roi=roi)
    np.testing.assert_allclose(res["pca_components"], np.moveaxis(want.components, 0, -1))
    np.testing.assert_allclose(res["pca_scores"], want.scores, equal_nan=True)
    np.testing.assert_allclose(res["pca_singular_values"], want.singular_values)
    np.testing.assert_allclose(res["pca_explained_variance_ratio"], want.explained_variance_ratio)
    np.testing.assert_allclose(res["pca_mean"], want.mean)
    assert res.dims("pca_components") == ["sig_y", "sig_x", "component"]
    assert res.dims("pca_scores") == ["scan_y", "scan_x", "component"]
    assert {f"pca_{r}_{i}.png" for r in ("components", "scores") for i in range(3)} <= {
        p.name for p in images.iterdir()
    }
    assert main([*argv[:2], "--pca", "0", "--out", str(tmp_path / "q.npz")]) == 2


def test_pca_of_counts_normalised_for_poisson_noise(tmp_path, rng):
    """``--pca K --pca-poisson``: ``decompose(..., poisson=True)``, with the scales saved."""
    maps, patterns = rng.random((2, 8, 9)), rng.random((2, 10, 11))
    counts = rng.poisson(30 * np.einsum("cij,cab->ijab", maps, patterns)).astype(np.uint16)
    np.save(tmp_path / "scan.npy", counts)
    out = tmp_path / "p.npz"
    argv = ["run", str(tmp_path / "scan.npy"), "--pca", "2", "--pca-poisson", "--out", str(out)]
    assert main(argv) == 0
    res = load_results(out)
    with Context("inline") as ctx:
        ds = ctx.load("memory", data=counts)
        want = libertem_gpu.decompose(ctx, ds, n_components=2, poisson=True)
    np.testing.assert_allclose(res["pca_singular_values"], want.singular_values)
    np.testing.assert_allclose(res["pca_frame_scale"], want.frame_scale)
    np.testing.assert_allclose(res["pca_pixel_scale"], want.pixel_scale)
    assert res.dims("pca_pixel_scale") == ["sig_y", "sig_x"]
    (entry,) = res.metadata["analyses"]
    assert entry["parameters"]["poisson"] is True


def test_images_png_and_float32_tiff(raw_file, tmp_path):
    from PIL import Image

    path, data = raw_file
    images = tmp_path / "img"
    argv = _argv(path, "--analysis", "sum", "--bf", "3", "--radial-fourier", "1", "6")
    assert main([*argv, "--max-order", "1", "--images", str(images)]) == 0
    names = sorted(p.name for p in images.iterdir())
    assert {"sum_intensity.png", "sum_intensity.tif", "bf_intensity.png"} <= set(names)
    # complex results: magnitude and phase, one image per (bin, order)
    assert {"radial_fourier_complex_0_1_abs.tif", "radial_fourier_complex_0_1_phase.tif"} <= set(
        names
    )
    tif = np.asarray(Image.open(images / "sum_intensity.tif"))
    assert tif.dtype == np.float32
    np.testing.assert_allclose(tif, data.astype(np.float64).sum(axis=(0, 1)), rtol=1e-6)
    png = Image.open(images / "bf_intensity.png")
    assert png.mode == "L"
    grey = np.asarray(png)
    assert grey.min() == 0 and grey.max() == 255  # scaled to the full range
    rf = _library(data, libertem_gpu.RadialFourierUDF(cy=6, cx=8, ri=1, ro=6, max_order=1))[
        "complex"
    ].data
    phase = np.asarray(Image.open(images / "radial_fourier_complex_0_1_phase.tif"))
    np.testing.assert_allclose(phase, np.angle(rf[..., 0, 1]), atol=1e-5)


def test_corrections(raw_file, tmp_path, rng):
    path, data = raw_file
    dark = rng.random(SIG).astype(np.float32) * 10
    gain = (rng.random(SIG) + 0.5).astype(np.float32)
    excluded = np.zeros(SIG, bool)
    excluded[4, 5] = excluded[9, 2] = True
    for name, value in (("dark", dark), ("gain", gain), ("excluded", excluded)):
        np.save(tmp_path / f"{name}.npy", value)
    files = ["--dark", str(tmp_path / "dark.npy"), "--gain", str(tmp_path / "gain.npy")]
    out = tmp_path / "c.npz"
    assert main(_argv(path, "--analysis", "sum", *files, "--out", str(out))) == 0
    want = ((data.astype(np.float64) - dark) * gain).sum(axis=(0, 1))
    np.testing.assert_allclose(load_results(out)["sum_intensity"], want, rtol=1e-5)
    files += ["--excluded", str(tmp_path / "excluded.npy")]
    assert main(_argv(path, "--analysis", "sum", *files, "--out", str(out))) == 0
    res = load_results(out)
    cs = libertem_gpu.CorrectionSet(dark=dark, gain=gain, excluded_pixels=excluded)
    expected = _library(data, libertem_gpu.SumUDF(), corrections=cs)["intensity"].data
    np.testing.assert_allclose(res["sum_intensity"], expected, rtol=1e-6)
    assert res.metadata["corrections"]["excluded"] == str(tmp_path / "excluded.npy")


def test_progress_counts_frames_to_100_percent(raw_file, tmp_path, capsys):
    path, _ = raw_file
    argv = _argv(path, "--analysis", "sum", "--out", str(tmp_path / "p.npz"))
    assert main([*argv, "--progress", "--option", "num_partitions=4"]) == 0
    err = capsys.readouterr().err
    assert "100%" in err and "15/15" in err and "frame" in err and "GB/s" in err
    roi = np.zeros(NAV, bool)
    roi[0] = True
    np.save(tmp_path / "roi.npy", roi)
    assert main([*argv, "--progress", "--roi", str(tmp_path / "roi.npy")]) == 0
    assert "5/5" in capsys.readouterr().err
    # Default: progress only on a terminal (pytest's stderr is not one).
    assert main(argv) == 0
    assert "frame" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("more", "status", "text"),
    [
        (["--out", "x.npz"], 2, "--analysis NAME"),
        (["--analysis", "sum"], 2, "--out FILE"),
        (["--analysis", "sum", "--pick", "3,0", "--out", "x.npz"], 2, "--pick 3,0"),
        (["--analysis", "sum", "--out", "x.tif"], 1, ".zarr"),
        (["--bf", "3", "--mask", "missing.npy", "--out", "x.npz"], 1, "missing.npy"),
        (["--analysis", "sum", "--dark", "nope.npy", "--out", "x.npz"], 1, "--dark nope.npy"),
    ],
)
def test_usage_and_failures_speak_shell(
    raw_file, tmp_path, capsys, monkeypatch, more, status, text
):
    path, _ = raw_file
    monkeypatch.chdir(tmp_path)
    assert main(_argv(path, *more)) == status
    err = capsys.readouterr().err.strip()
    assert text in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.npz").exists()


def test_auto_raw_needs_every_shape_option(raw_file, capsys):
    path, _ = raw_file
    assert (
        main(["run", str(path), "--nav-shape", "3,5", "--analysis", "sum", "--out", "x.npz"]) == 1
    )
    err = capsys.readouterr().err
    assert "--sig-shape, --dtype" in err and "--format" in err and "sig_shape" not in err


def test_progress_is_on_by_default_on_a_terminal(raw_file, tmp_path, capsys, monkeypatch):
    import sys

    path, _ = raw_file
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    assert main(_argv(path, "--analysis", "sum", "--out", str(tmp_path / "p.npz"))) == 0
    assert "15/15" in capsys.readouterr().err
    assert (
        main(_argv(path, "--analysis", "sum", "--out", str(tmp_path / "p.npz"), "--no-progress"))
        == 0
    )
    assert "15/15" not in capsys.readouterr().err
