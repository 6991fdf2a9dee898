"""ptychography on simulated scans of phase objects: a strong phase (beyond SSB's weak-phase
approximation) comes back on every executor; with defocus and counting noise; a wrong
defocus corrected by refining the probe; a turned or flipped detector as SSBUDF takes it; a
cropped, binned window (fractional positions); rois and positions without data; the disk
found on the mean frame; errors."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu import SSBUDF, Context, ptychography
from libertem_gpu.demo.phase_object import random_phase, scan_phase_object
from libertem_gpu.errors import (
    BackendError,
    BackendUnavailableError,
    InvalidParameterError,
    ShapeMismatchError,
    UnsupportedDTypeError,
)


def corr(a, b):
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def strong():
    """A phase of 0.3 rad rms, 16 x 16 positions of 16 x 16 frames, in focus."""
    phase = random_phase((32, 32), cutoff=0.2, strength=0.3, seed=1)
    frames, optics = scan_phase_object(phase, step=2, frame=16, radius=4)
    return phase[::2, ::2], frames, optics


def test_strong_phase_on_every_executor(ctx, strong):
    truth, frames, optics = strong
    ds = ctx.load("memory", data=frames, num_partitions=3)
    found = ptychography(ctx, ds, iterations=20, backend="numpy", **optics)
    assert corr(found.phase, truth) > 0.995
    assert found.errors[-1] < 0.01 * found.errors[0]
    assert found.probe.shape == (16, 16) and found.object.ndim == 2
    assert found.pixel_size == pytest.approx(1.0) and found.window == (0, 0, 16, 1)
    np.testing.assert_allclose(found.positions[3, 5], found.positions[0, 0] + (6, 10))


def rms(a, b):
    return float(np.sqrt((((a - a.mean()) - (b - b.mean())) ** 2).mean()))


def test_beyond_the_weak_phase_approximation():
    """A phase of 1 rad rms: SSB, linear in the phase, gets its shape but not its values."""
    phase = random_phase((32, 32), cutoff=0.2, strength=1.0, seed=1)
    frames, optics = scan_phase_object(phase, step=2, frame=16, radius=4)
    truth = phase[::2, ::2]
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    found = ptychography(ctx, ds, iterations=20, **optics)
    ssb = ctx.run_udf(dataset=ds, udf=SSBUDF(**optics))["phase"].data
    assert rms(found.phase, truth) < 0.12 and corr(found.phase, truth) > 0.99
    assert rms(ssb, truth) > 3 * rms(found.phase, truth)


def test_defocus_and_counting_noise():
    phase = random_phase((48, 48), cutoff=0.15, strength=0.2, seed=3)
    frames, optics = scan_phase_object(phase, step=2, frame=24, radius=6, defocus=10, dose=200)
    ctx = Context("inline")
    found = ptychography(ctx, ctx.load("memory", data=frames), iterations=15, **optics)
    assert corr(found.phase, phase[::2, ::2]) > 0.97


def test_refining_the_probe_corrects_a_wrong_defocus():
    phase = random_phase((48, 48), cutoff=0.15, strength=0.3, seed=2)
    frames, optics = scan_phase_object(phase, step=3, frame=24, radius=6, defocus=12)
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    guess = dict(optics, defocus=0.0)
    truth = phase[::3, ::3]
    kept = ptychography(ctx, ds, iterations=40, probe_step=0, **guess)
    refined = ptychography(ctx, ds, iterations=40, **guess)
    assert corr(refined.phase, truth) > 0.99
    assert rms(kept.phase, truth) > 5 * rms(refined.phase, truth)
    assert refined.errors[-1] < 0.01 * kept.errors[-1]


@pytest.mark.parametrize("turn", ["rot90", "flip"])
def test_turned_detector_as_ssb_takes_it(strong, turn):
    truth, frames, optics = strong
    n = frames.shape[-1]
    cy, cx = optics["center"]
    if turn == "rot90":  # pixel (y, x) -> (n - 1 - x, y)
        data = np.rot90(frames, 1, axes=(2, 3)).copy()
        more = {"scan_rotation": 90.0, "center": (n - 1 - cx, cy)}
    else:
        data = frames[:, :, ::-1].copy()
        more = {"flip_y": True, "center": (n - 1 - cy, cx)}
    ctx = Context("inline")
    ds = ctx.load("memory", data=data)
    args = {**optics, **more}
    found = ptychography(ctx, ds, iterations=20, **args)
    # turned, the disk's centre is a pixel off the middle: a 14-pixel window fits about it
    assert corr(found.phase, truth) > 0.98
    wrong = ptychography(ctx, ds, iterations=20, **{**args, "scan_rotation": -90.0})
    assert corr(wrong.phase, truth) < 0.5


def test_cropped_binned_window_fractional_positions():
    """A window of 20 of 32 pixels makes the object's pixel 1.6 and a step of 3 pixels 1.875
    of them; binning by 2 halves the window's pixels, not the object's."""
    phase = random_phase((48, 48), cutoff=0.12, strength=0.3, seed=4)
    frames, optics = scan_phase_object(phase, step=3, frame=32, radius=5)
    ctx = Context("inline")
    found = ptychography(
        ctx, ctx.load("memory", data=frames), window=20, binning=2, iterations=30, **optics
    )
    assert found.window == (6, 6, 20, 2) and found.probe.shape == (10, 10)
    assert found.pixel_size == pytest.approx(1.6)
    assert corr(found.phase, phase[::3, ::3]) > 0.97


def test_roi_sync_offset_and_found_centre(strong, rng):
    """Three frames of junk before the scan's first (``sync_offset=3``): each position gets
    its own frame, the last three none."""
    truth, frames, optics = strong
    flat = frames.reshape(256, 16, 16)
    junk = rng.random((3, 16, 16)).astype(np.float32)
    data = np.concatenate([junk, flat[:-3]]).reshape(frames.shape)
    ctx = Context("inline")
    ds = ctx.load("memory", data=data, sync_offset=3)
    roi = np.ones((16, 16), bool)
    roi[:2] = False
    given = ptychography(ctx, ds, roi=roi, iterations=15, **optics)
    optics_no_centre = {k: v for k, v in optics.items() if k != "center"}
    found = ptychography(ctx, ds, roi=roi, iterations=15, **optics_no_centre)
    unused = ~roi.reshape(-1)
    unused[-3:] = True  # the last three positions hold no frame
    for result in (given, found):
        assert np.isnan(result.phase.reshape(-1)[unused]).all()
        assert np.isnan(result.positions.reshape(-1, 2)[unused]).all()
        assert np.isfinite(result.phase.reshape(-1)[~unused]).all()
    assert found.window == given.window
    used = ~unused
    assert corr(given.phase.reshape(-1)[used], truth.reshape(-1)[used]) > 0.99


def test_errors(strong):
    _, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    with pytest.raises(ShapeMismatchError, match="2-D scan of 2-D frames"):
        ptychography(ctx, ctx.load("memory", data=frames[0]), **optics)
    with pytest.raises(UnsupportedDTypeError, match="complex"):
        ptychography(ctx, ctx.load("memory", data=frames.astype(np.complex64)), **optics)
    with pytest.raises(InvalidParameterError, match="iterations must be"):
        ptychography(ctx, ds, iterations=0, **optics)
    with pytest.raises(InvalidParameterError, match="probe_step must be in"):
        ptychography(ctx, ds, probe_step=-1, **optics)
    with pytest.raises(BackendError, match="tpu"):
        ptychography(ctx, ds, backend="tpu", **optics)
    with pytest.raises(InvalidParameterError, match="semiconv must be"):
        ptychography(ctx, ds, **{**optics, "semiconv": 0})
    with pytest.raises(InvalidParameterError, match="does not fit"):
        ptychography(ctx, ds, window=32, **optics)
    bad = frames.copy()
    bad[1, 2, 8, 8] = np.nan
    with pytest.raises(InvalidParameterError, match="NaN"):
        ptychography(ctx, ctx.load("memory", data=bad), **optics)


def test_gpu_asked_for_without_one(strong):
    from libertem_gpu.backends import device

    info = device.probe()
    if info.available:
        pytest.skip("a GPU is here")
    _, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    with pytest.raises(BackendUnavailableError, match="'cupy' was requested but cannot run"):
        ptychography(ctx, ds, backend="cupy", **optics)
    # 'auto' falls back to the CPU
    assert ptychography(ctx, ds, backend="auto", iterations=2, **optics).errors.shape == (2,)


@pytest.mark.gpu
def test_gpu_matches_cpu(strong):
    from libertem_gpu.backends import device

    info = device.probe()
    if not info.available:
        pytest.skip(f"no usable GPU: {info.reason}")
    _, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    cpu = ptychography(ctx, ds, iterations=10, backend="numpy", **optics)
    gpu = ptychography(ctx, ds, iterations=10, backend="cupy", **optics)
    # cuFFT and SciPy differ in the last bits, which dark pixels amplify a little
    np.testing.assert_allclose(gpu.phase, cpu.phase, atol=1e-4)
    np.testing.assert_allclose(gpu.errors, cpu.errors, rtol=1e-4)


def test_windows_that_would_not_fit_are_refused_before_the_pass(strong, monkeypatch):
    from libertem_gpu.ptycho import reconstruct

    _, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    # 256 windows of 16 x 16, twice, float32: 512 KiB; "available": 600 KiB
    monkeypatch.setattr(reconstruct, "_available_bytes", lambda: 600 * 1024)
    refused = r"256 windows of 16 x 16 pixels need 512.0 KiB.*600.0 KiB.*binning="
    with pytest.raises(InvalidParameterError, match=refused):
        ptychography(ctx, ds, **optics)
    assert ptychography(ctx, ds, binning=2, iterations=2, **optics).probe.shape == (8, 8)
    assert reconstruct._available_bytes() is None or reconstruct._available_bytes() > 0


def test_windows_that_would_not_fit_on_the_gpu_are_refused(strong, monkeypatch):
    """A backend whose arrays live on a device with little free memory (a stand-in: NumPy
    arrays, 1 MiB "free"): refused before the pass, naming the GPU; the backend is closed."""
    import libertem_gpu.backends as backends
    from libertem_gpu.backends.numpy_backend import NumpyBackend

    closed = []

    class SmallDevice(NumpyBackend):
        def free_device_bytes(self):
            return 2**20

        def close(self):
            closed.append(True)

    monkeypatch.setattr(backends, "get_backend", lambda name: SmallDevice)
    _, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    with pytest.raises(InvalidParameterError, match=r"need .* on the GPU, and 1.0 MiB are free"):
        ptychography(ctx, ds, batch_size=64, **optics)
    assert closed == [True]
    # a batch small enough fits: 256 KiB of amplitudes and 12 arrays of 4 windows
    assert ptychography(ctx, ds, batch_size=4, iterations=2, **optics).errors.shape == (2,)


def test_probe_modes_for_a_partly_coherent_beam():
    """A source of finite size, as five probe positions up to 2 px apart whose patterns add
    up: three modes fit the patterns more than twice as well as one and the phase a little
    better; on a coherent beam the extra modes stay weak and change nothing."""
    phase = random_phase((48, 48), cutoff=0.15, strength=0.4, seed=3)
    blurred = 0
    for (dy, dx), weight in (((0, 0), 0.4), ((2, 0), 0.15), ((0, 2), 0.15), ((-2, 0), 0.15),
                             ((0, -2), 0.15)):  # fmt: skip
        moved = np.roll(phase, (dy, dx), axis=(0, 1))
        frames, optics = scan_phase_object(moved, step=2, frame=24, radius=6, defocus=8)
        blurred = blurred + weight * frames
    coherent, _ = scan_phase_object(phase, step=2, frame=24, radius=6, defocus=8)
    truth = phase[::2, ::2]
    ctx = Context("inline")
    found = {}
    for name, data in (("blurred", blurred), ("coherent", coherent)):
        ds = ctx.load("memory", data=data)
        for modes in (1, 3):
            found[name, modes] = ptychography(ctx, ds, iterations=30, probe_modes=modes, **optics)
    one, three = found["blurred", 1], found["blurred", 3]
    assert one.probe.shape == (24, 24) and three.probe.shape == (3, 24, 24)
    assert three.errors[-1] < 0.5 * one.errors[-1]
    assert corr(three.phase, truth) > corr(one.phase, truth)
    flat = three.probe.reshape(3, -1)
    gram = flat.conj() @ flat.T
    power = np.real(np.diag(gram))
    assert (np.diff(power) <= 0).all()  # strongest first
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-9 * power[0])
    weak = found["coherent", 3].probe.reshape(3, -1)
    share = (np.abs(weak) ** 2).sum(axis=1)
    assert share[1:].sum() < 0.03 * share.sum()
    same = corr(found["coherent", 3].phase, truth) - corr(found["coherent", 1].phase, truth)
    assert abs(same) < 1e-3


def test_callback_sees_every_iteration_and_may_stop(strong):
    _, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    seen = []
    found = ptychography(ctx, ds, iterations=8, callback=lambda i, e: seen.append((i, e)), **optics)
    assert [i for i, _ in seen] == list(range(1, 9))
    np.testing.assert_array_equal([e for _, e in seen], found.errors)
    stopped = ptychography(ctx, ds, iterations=8, callback=lambda i, e: i == 3, **optics)
    assert stopped.errors.shape == (3,)
    np.testing.assert_array_equal(stopped.errors, found.errors[:3])


def test_progress_shows_the_iterations_and_their_misfit(strong, capsys):
    _, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    capsys.readouterr()
    shown = ptychography(ctx, ds, iterations=8, progress=True, **optics)
    err = capsys.readouterr().err
    assert "ptychography" in err and "8/8" in err
    assert f"misfit {shown.errors[-1]:.3g}" in err
    plain = ptychography(ctx, ds, iterations=8, **optics)
    np.testing.assert_array_equal(shown.errors, plain.errors)
    # the user's callback still sees every iteration and may stop the run
    seen = []
    stopped = ptychography(
        ctx, ds, iterations=8, progress=True, callback=lambda i, e: seen.append(i) or i == 3,
        **optics,
    )  # fmt: skip
    assert seen == [1, 2, 3] and stopped.errors.shape == (3,)
    assert "3/8" in capsys.readouterr().err


def test_going_on_from_a_result(strong):
    truth, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    first = ptychography(ctx, ds, iterations=5, **optics)
    kept = first.object.copy(), first.probe.copy()
    more = ptychography(ctx, ds, iterations=10, start=first, **optics)
    np.testing.assert_array_equal(first.object, kept[0])  # the start is left as it was
    np.testing.assert_array_equal(first.probe, kept[1])
    fresh = ptychography(ctx, ds, iterations=10, **optics)
    # it starts where the first stopped, not from scratch, and ends better than ten alone
    assert more.errors[0] < 0.5 * fresh.errors[0]
    assert more.errors[0] < 1.5 * first.errors[-1]
    assert more.errors[-1] < fresh.errors[-1]
    assert corr(more.phase, truth) > 0.995
    two = ptychography(ctx, ds, iterations=3, probe_modes=2, **optics)
    assert ptychography(ctx, ds, iterations=2, start=two, **optics).probe.shape == (2, 16, 16)
    with pytest.raises(InvalidParameterError, match="another geometry"):
        ptychography(ctx, ds, iterations=2, start=first, window=12, **optics)
    with pytest.raises(InvalidParameterError, match="what ptychography returned"):
        ptychography(ctx, ds, iterations=2, start=first.object, **optics)


def test_position_correction_stays_put_where_the_scan_is_right(strong):
    """On exact positions, correcting them moves them by little and keeps the phase; the
    result's positions are the corrected ones (their correction itself is tested on the
    solver, tests/ptycho/test_solver.py)."""
    truth, frames, optics = strong
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    plain = ptychography(ctx, ds, iterations=20, **optics)
    moved = ptychography(ctx, ds, iterations=20, position_step=2.0, **optics)
    shift = (moved.positions - plain.positions).reshape(-1, 2)
    assert 0 < np.abs(shift).max() < 0.3
    np.testing.assert_allclose(shift.mean(axis=0), 0, atol=1e-9)  # their mean kept
    assert corr(moved.phase, truth) > 0.995
    with pytest.raises(InvalidParameterError, match="position_step must be in"):
        ptychography(ctx, ds, position_step=3, **optics)


@pytest.fixture(scope="module")
def soft_edge():
    """The strong phase scanned through an aperture with a soft edge (3 px across its 4 px
    radius), and that beam's vacuum frame (the same scan of no specimen)."""
    phase = random_phase((32, 32), cutoff=0.2, strength=0.3, seed=1)
    frames, optics = scan_phase_object(phase, step=2, frame=16, radius=4, edge=3.0)
    vacuum, _ = scan_phase_object(np.zeros((2, 2)), step=2, frame=16, radius=4, edge=3.0)
    return phase[::2, ::2], frames, optics, vacuum[0, 0]


def test_measured_vacuum_probe(soft_edge):
    """A hard-edged disk is the wrong aperture here: kept fixed it gives a poor phase. The
    vacuum frame's aperture gives the phase at once, and with the probe refined it still fits
    the patterns better and ends nearer the truth."""
    truth, frames, optics, vacuum = soft_edge
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames, num_partitions=2)
    runs = {
        (measured, step): ptychography(
            ctx, ds, iterations=20, probe_step=step, vacuum=vacuum if measured else None, **optics
        )
        for measured in (False, True)
        for step in (0.0, 1.0)
    }
    assert rms(runs[True, 0.0].phase, truth) < 0.06
    assert rms(runs[True, 0.0].phase, truth) < 0.2 * rms(runs[False, 0.0].phase, truth)
    assert runs[True, 1.0].errors[-1] < 0.5 * runs[False, 1.0].errors[-1]
    assert rms(runs[True, 1.0].phase, truth) < 0.8 * rms(runs[False, 1.0].phase, truth)


def test_vacuum_frame_is_cut_binned_and_corrected_as_the_frames(soft_edge, rng):
    from libertem_gpu import CorrectionSet
    from libertem_gpu.ptycho.geometry import choose_window
    from libertem_gpu.ptycho.reconstruct import _vacuum_window

    _, _, _, vacuum = soft_edge
    win = choose_window((16, 16), (8.0, 7.0), 12, 2)
    want = vacuum[2:14, 1:13].astype(np.float64).reshape(6, 2, 6, 2).sum(axis=(1, 3))
    np.testing.assert_allclose(_vacuum_window(vacuum, (16, 16), win, None), want, rtol=1e-12)
    dark = rng.random((16, 16)) * 5
    gain = 1 + rng.random((16, 16))
    recorded = vacuum / gain + dark
    recorded[5, 5] = 1e6  # a hot pixel, excluded: repaired from its neighbours
    hot = np.zeros((16, 16), bool)
    hot[5, 5] = True
    corrections = CorrectionSet(dark=dark, gain=gain, excluded_pixels=hot)
    corrected = _vacuum_window(recorded, (16, 16), win, corrections)
    elsewhere = np.ones((6, 6), bool)
    elsewhere[(5 - 2) // 2, (5 - 1) // 2] = False  # the binned pixel that holds (5, 5)
    np.testing.assert_allclose(corrected[elsewhere], want[elsewhere], rtol=1e-5, atol=1e-6)
    assert corrected[1, 2] == pytest.approx(want[1, 2], rel=0.2)


def test_vacuum_errors(soft_edge):
    _, frames, optics, vacuum = soft_edge
    ctx = Context("inline")
    ds = ctx.load("memory", data=frames)
    with pytest.raises(ShapeMismatchError, match=r"one frame of the data set's shape \(16, 16\)"):
        ptychography(ctx, ds, vacuum=vacuum[:8], **optics)
    with pytest.raises(UnsupportedDTypeError, match="real intensities"):
        ptychography(ctx, ds, vacuum=vacuum.astype(np.complex64), **optics)
    bad = vacuum.copy()
    bad[8, 8] = np.inf
    with pytest.raises(InvalidParameterError, match="NaN or infinite"):
        ptychography(ctx, ds, vacuum=bad, **optics)
    with pytest.raises(InvalidParameterError, match="no intensity in the window"):
        ptychography(ctx, ds, vacuum=np.zeros_like(vacuum), **optics)
