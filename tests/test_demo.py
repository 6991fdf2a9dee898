"""The demo: synthetic data generation and the one-pass analysis job."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from libertem_gpu.demo import (
    demo_layout,
    format_size,
    generate_frames,
    parse_size,
    run_demo,
    synthetic,
    write_demo_data,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GiB", 2**30),
        ("64MiB", 64 * 2**20),
        ("64 mib", 64 * 2**20),
        ("1.5KiB", 1536),
        ("500MB", 500 * 10**6),
        ("4096", 4096),
        (123, 123),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "12XB", "GiB", "-3MiB", "0", "1.2.3"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_format_size():
    assert format_size(2**30) == "1.0 GiB"
    assert format_size(3 * 2**19) == "1.5 MiB"
    assert format_size(10) == "10 B"


@pytest.mark.parametrize("size", [2**20, 64 * 2**20, 2**30, 10**9 + 7])
def test_layout_fits_size(size):
    nav, sig = demo_layout(size)
    nbytes = 2 * nav[0] * nav[1] * sig[0] * sig[1]
    assert nbytes <= size
    # Near-square, and not much smaller than asked.
    assert abs(nav[0] - nav[1]) <= 2 + nav[0] // 10
    assert nbytes > 0.9 * size


def test_frames_are_deterministic_and_chunking_invariant():
    nav, sig = (5, 7), (32, 48)
    a = np.concatenate(list(generate_frames(nav, sig, seed=3)))
    b = np.concatenate(list(generate_frames(nav, sig, seed=3, chunk_frames=4)))
    c = np.concatenate(list(generate_frames(nav, sig, seed=4)))
    assert a.dtype == np.uint16
    assert a.shape == (35, 32, 48)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_frames_too_small():
    with pytest.raises(ValueError, match="16 x 16"):
        next(generate_frames((2, 2), (8, 8)))


def test_poisson_table_statistics():
    table, step = synthetic._poisson_table(50.0)
    bits = synthetic._RANDOM_BITS
    rng = np.random.default_rng(1)
    u = rng.integers(0, 2**bits, size=200_000)
    for level in (0, 3, 40, 255):
        lam = level * step
        samples = table[(level << bits) | u].astype(np.float64)
        assert abs(samples.mean() - lam) < 0.02 + 0.02 * lam
        assert abs(samples.var() - lam) < 0.05 + 0.05 * lam


def test_physics_disk_moves_with_the_sample():
    """The centre of mass of each frame follows the deflection the sample prescribes, and the
    disk dims where the halo brightens."""
    nav, sig = (18, 18), (64, 64)
    frames = np.concatenate(list(generate_frames(nav, sig, seed=0))).astype(np.float64)
    g = synthetic.disk_geometry(sig)
    sample = synthetic._sample(nav, g["radius"] / 4, 0)
    yy, xx = np.mgrid[0 : sig[0], 0 : sig[1]]
    inner = np.hypot(yy - g["cy"], xx - g["cx"]) <= g["radius"] * 1.3
    total = (frames * inner).sum(axis=(1, 2))
    com_y = (frames * inner * yy).sum(axis=(1, 2)) / total - g["cy"]
    com_x = (frames * inner * xx).sum(axis=(1, 2)) / total - g["cx"]
    assert np.corrcoef(com_y, sample.shift_y.ravel())[0, 1] > 0.95
    assert np.corrcoef(com_x, sample.shift_x.ravel())[0, 1] > 0.95
    ring = np.hypot(yy - g["cy"], xx - g["cx"]) > g["halo_inner"]
    halo = (frames * ring).sum(axis=(1, 2))
    assert np.corrcoef(total, halo)[0, 1] < -0.8


def test_write_demo_data(tmp_path):
    data = write_demo_data(tmp_path, "1MiB", sig_shape=(32, 32), seed=5)
    assert os.path.getsize(data.path) == data.nbytes <= 2**20
    on_disk = np.fromfile(data.path, dtype=np.uint16).reshape(-1, 32, 32)
    expected = np.concatenate(list(generate_frames(data.nav_shape, (32, 32), seed=5)))
    np.testing.assert_array_equal(on_disk, expected)


def _reference(path, nav, sig, cy, cx, r_bf, ri, ro):
    frames = np.fromfile(path, dtype=np.uint16).reshape(*nav, *sig).astype(np.float64)
    yy, xx = np.mgrid[0 : sig[0], 0 : sig[1]]
    d = np.hypot(yy - cy, xx - cx)
    bf = d <= r_bf
    adf = (d <= ro) & (d > ri)
    total = (frames * bf).sum(axis=(2, 3))
    return {
        "sum": frames.sum(axis=(0, 1)),
        "bright_field": total,
        "annular_dark_field": (frames * adf).sum(axis=(2, 3)),
        "com_y": (frames * bf * yy).sum(axis=(2, 3)) / total - cy,
        "com_x": (frames * bf * xx).sum(axis=(2, 3)) / total - cx,
    }


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_run_demo_matches_numpy(tmp_path, executor):
    lines = []
    report = run_demo(
        "1MiB",
        tmp_path / "out",
        executor=executor,
        sig_shape=(48, 40),
        keep=True,
        tmp_dir=tmp_path,
        log=lines.append,
    )
    assert report.kept_data and os.path.exists(report.data.path)
    assert any("GB/s" in line for line in lines)
    d = report.data
    ref = _reference(
        d.path, d.nav_shape, d.sig_shape, d.cy, d.cx, d.radius * 1.3, d.halo_inner, d.halo_outer
    )
    with np.load(tmp_path / "out" / "results.npz") as res:
        np.testing.assert_allclose(res["sum"], ref["sum"], rtol=1e-6)
        np.testing.assert_allclose(res["bright_field"], ref["bright_field"], rtol=1e-5)
        np.testing.assert_allclose(res["annular_dark_field"], ref["annular_dark_field"], rtol=1e-5)
        np.testing.assert_allclose(res["com_field_y"], ref["com_y"], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(res["com_field_x"], ref["com_x"], rtol=1e-4, atol=1e-4)
        assert res["com_divergence"].shape == d.nav_shape
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["nav_shape"] == list(d.nav_shape)
    assert summary["gb_per_s"] > 0
    names = {os.path.basename(f) for f in report.files}
    assert {"results.npz", "sum.png", "bright_field.png", "com_field.png"} <= names
    assert report.notes == []


@pytest.mark.parametrize("size", ["1MiB", "64KiB"])
def test_warm_up_takes_the_kernels_of_the_timed_pass(tmp_path, monkeypatch, size):
    # 1 MiB is a large run here (small runs: up to 256 KiB), but its warm-ups' 8 and 32 frames
    # are small: they must still take the compiled kernels, or the timed pass compiles them.
    # Tiles of both sides of the depth where the sum over frames changes its loop (on Intel).
    from libertem_gpu import config, plan
    from libertem_gpu.kernels import registry, sum_frames_cpu

    taken = []
    choose = plan.choose_kernels
    monkeypatch.setattr(plan, "choose_kernels", lambda *a: taken.append(choose(*a)) or taken[-1])
    depths = []
    summed = registry.get_kernel("sum_frames", "numpy")
    spy = lambda t, *a, **k: depths.append(len(t)) or summed(t, *a, **k)  # noqa: E731
    monkeypatch.setitem(registry._resolved, ("sum_frames", "numpy"), spy)  # whatever ran before
    with config.set(small_run_bytes=256 * 2**10):
        run_demo(size, tmp_path / "out", executor="inline", sig_shape=(32, 32), log=print)
    assert len(taken) == 3  # two warm-ups, the timed pass
    assert taken[0] == taken[1] == taken[2] == ("numpy" if size == "1MiB" else "plain")
    if size == "1MiB":
        pairs = sum_frames_cpu._PAIR_MIN_FRAMES
        assert min(depths[:2]) < pairs <= max(depths[:2])


def test_run_demo_without_pillow_and_h5py(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)
    monkeypatch.setitem(sys.modules, "h5py", None)
    lines = []
    report = run_demo(
        "256KiB", tmp_path / "out", executor="inline", sig_shape=(32, 32), log=lines.append
    )
    names = sorted(os.listdir(tmp_path / "out"))
    assert names == ["results.npz", "summary.json"]
    assert any("pillow is not installed" in n for n in report.notes)
    assert any("h5py is not installed" in n for n in report.notes)
    assert any("pillow" in line for line in lines)
    # The temporary data set is gone.
    assert not os.path.exists(os.path.dirname(report.data.path))


def test_run_demo_writes_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    run_demo("256KiB", tmp_path, executor="inline", sig_shape=(32, 32), log=lambda s: None)
    with h5py.File(tmp_path / "results.h5", "r") as f, np.load(tmp_path / "results.npz") as npz:
        assert set(f) == set(npz.files)
        np.testing.assert_array_equal(f["sum"][()], npz["sum"])
