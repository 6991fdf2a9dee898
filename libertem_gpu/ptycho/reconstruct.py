"""Iterative ptychography of a focused or defocused probe scan: :func:`ptychography`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError, ShapeMismatchError, UnsupportedDTypeError
from libertem_gpu.ptycho.frames import WindowFramesUDF, cut_and_bin
from libertem_gpu.ptycho.geometry import (
    check_binning,
    choose_window,
    initial_modes,
    initial_probe,
    pixel_size,
    probe_corners,
    scan_image,
)
from libertem_gpu.ptycho.solver import SolverSettings, solve
from libertem_gpu.sizes import format_size
from libertem_gpu.udf.ssb_geometry import check_optics

__all__ = ["Ptychography", "ptychography"]


@dataclass(frozen=True)
class Ptychography:
    """The result of :func:`ptychography`.

    Attributes
    ----------
    object : numpy.ndarray
        Complex transmission of the specimen, 2-D, in the detector's frame (the scan turned
        by ``scan_rotation``), on pixels of ``pixel_size``; 1 where no probe reached.
    phase : numpy.ndarray
        ``(rows, columns)`` of the scan: the object's phase at each probe position (bilinear
        between its pixels), radians, less its mean; NaN at positions not used.
    probe : numpy.ndarray
        ``(N, N)`` complex: the probe in real space, centred, as refined; with several
        ``probe_modes``, ``(M, N, N)``: its modes, orthogonal, strongest first.
    errors : numpy.ndarray
        Per iteration, the misfit of the patterns' amplitudes:
        ``sum (|FFT(psi)| - sqrt(I))^2 / sum I``.
    pixel_size : float
        Of ``object`` (and ``probe``), in the unit of the wavelength.
    positions : numpy.ndarray
        ``(rows, columns, 2)``: each probe centre in ``object``'s pixels (row, column), as
        corrected with ``position_step``; NaN where not used.
    window : tuple of int
        ``(y0, x0, size, binning)``: the part of each frame used.
    """

    object: np.ndarray
    phase: np.ndarray
    probe: np.ndarray
    errors: np.ndarray
    pixel_size: float
    positions: np.ndarray
    window: tuple[int, int, int, int]


def ptychography(
    ctx: Any,
    dataset: Any,
    *,
    wavelength: float,
    scan_step: float | Sequence[float],
    semiconv: float,
    semiconv_pix: float,
    center: Sequence[float] | None = None,
    defocus: float = 0.0,
    cs: float = 0.0,
    vacuum: np.ndarray | None = None,
    scan_rotation: float = 0.0,
    flip_y: bool = False,
    window: int | None = None,
    binning: int = 1,
    iterations: int = 30,
    batch_size: int = 32,
    object_step: float = 1.0,
    probe_step: float = 1.0,
    probe_after: int = 2,
    probe_modes: int = 1,
    position_step: float = 0.0,
    start: Ptychography | None = None,
    roi: Any = None,
    corrections: Any = None,
    backend: str | None = None,
    seed: int = 0,
    progress: bool = False,
    callback: Callable[[int, float], Any] | None = None,
) -> Ptychography:
    """Reconstruct the specimen's complex transmission and the probe from a 4D-STEM scan by
    iterative ptychography (rPIE-style updates in batches), on the GPU where there is one.

    One streaming pass gathers each frame's window about the bright-field disk (binned) into
    memory: ``rows x columns x (window / binning)**2`` float32. The iterations then run on
    that, with CuPy on a GPU or NumPy and SciPy's FFTs on the CPU.

    Parameters
    ----------
    ctx : Context
        Runs the pass.
    dataset : DataSet
        A 2-D scan of 2-D frames, real-valued.
    wavelength : float
        The electrons' wavelength (:func:`~libertem_gpu.electron_wavelength`: ångström).
    scan_step : float or (float, float)
        Scan step (row, column), in the unit of ``wavelength``.
    semiconv : float
        The probe's semi-convergence angle, radians.
    semiconv_pix : float
        The bright-field disk's radius on the detector, pixels.
    center : (float, float), optional
        The disk's centre on the detector (row, column), pixels; by default found on the
        mean frame (one more pass).
    defocus, cs : float
        The probe's defocus and spherical aberration, in the unit of ``wavelength``
        (``chi = 2 pi / wavelength (defocus theta^2 / 2 + cs theta^4 / 4)``, as
        :class:`~libertem_gpu.SSBUDF`): the starting probe, which the iterations refine.
    vacuum : numpy.ndarray, optional
        A frame recorded without specimen with the same beam (detector-shaped; the mean of a
        vacuum scan, say): the starting probe's aperture is the square root of its intensity,
        cut and binned as the frames are and corrected by ``corrections``, instead of a disk
        with a hard edge; ``defocus`` and ``cs`` still give its phase. A measured aperture
        brings its soft edge and the detector's blur into the model from the start.
    scan_rotation, flip_y : float, bool
        The detector's orientation against the scan, as :class:`~libertem_gpu.SSBUDF` and
        :class:`~libertem_gpu.CoMUDF` take them.
    window : int, optional
        Side of the square of each frame used, about the centre, in frame pixels (a
        multiple of ``2 * binning``); by default the largest that fits. The object's pixel is
        ``wavelength / (window * semiconv / semiconv_pix)``: a larger window resolves finer.
    binning : int
        Sum ``binning x binning`` blocks of the window: less memory and faster iterations,
        same object pixel, a smaller field of view per probe position.
    iterations : int
        Passes over all positions.
    batch_size : int
        Positions updated together; smaller batches converge in fewer iterations, larger ones
        run faster per iteration (on a GPU especially).
    object_step, probe_step : float
        Step sizes of the updates (1: the full rPIE step); ``probe_step=0`` keeps the probe.
    probe_after : int
        Iterations with the probe fixed before it is refined.
    probe_modes : int
        Incoherent modes of the probe (mixed-state ptychography, Thibault and Menzel 2013):
        1 for a coherent beam; 2 to 5 where the source's size, vibration or the energy
        spread blur the patterns (the misfit says whether more modes help).
    position_step : float
        Correct the probe positions (scan distortions, drift, a scan step a little off):
        from the sixth iteration on, each batch's positions move by this fraction of the move
        that best explains their patterns, at most half a pixel a batch, their mean kept
        (a common move is the object's). 0 (default): positions as the scan says; 1 to 2
        where they are off by up to a pixel or two.
    start : Ptychography, optional
        A result of this data set with the same geometry (window, binning, scan and optics)
        to go on from: its object and probe (with its modes; ``probe_modes`` is then not
        used) are where the iterations start, e.g. to run more of them.
    roi : numpy.ndarray, optional
        Scan positions to use (bool, the scan's shape).
    corrections : CorrectionSet, optional
        Applied to every frame before it is windowed.
    backend : str, optional
        Where the iterations run: ``"numpy"`` (the CPU), ``"cupy"`` (a GPU; an error where
        none can run), ``"auto"`` (a GPU where there is one), or None for the ``backend``
        setting (``"auto"`` unless set).
    seed : int
        Of the order positions are visited in.
    progress : bool
        Show a progress bar for the pass, then one of the iterations with the misfit.
    callback : callable, optional
        ``callback(iteration, error)`` after each iteration, to watch convergence; if it
        returns true, the iterations stop there (e.g. once the error stops falling).

    Returns
    -------
    Ptychography

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, ptychography
    >>> from libertem_gpu.demo.phase_object import random_phase, scan_phase_object
    >>> phase = random_phase((32, 32), cutoff=0.2, strength=0.3, seed=1)
    >>> frames, optics = scan_phase_object(phase, step=2, frame=16, radius=4)
    >>> ctx = Context("inline")
    >>> found = ptychography(ctx, ctx.load("memory", data=frames), iterations=20, **optics)
    >>> bool(np.corrcoef(found.phase.ravel(), phase[::2, ::2].ravel())[0, 1] > 0.99)
    True
    """
    optics = check_optics(
        wavelength, scan_step, semiconv, semiconv_pix, scan_rotation, flip_y, defocus, cs,
        "ptychography",
    )  # fmt: skip
    nav = tuple(int(n) for n in dataset.shape.nav)
    sig = tuple(int(n) for n in dataset.shape.sig)
    if len(nav) != 2 or len(sig) != 2:
        raise ShapeMismatchError(
            f"ptychography needs a 2-D scan of 2-D frames; this data set is {nav} x {sig}"
        )
    if np.dtype(dataset.dtype).kind == "c":
        raise UnsupportedDTypeError(
            f"ptychography reads intensities; this data set holds {np.dtype(dataset.dtype)}"
        )
    for name, value, least in (
        ("iterations", iterations, 1),
        ("batch_size", batch_size, 1),
        ("probe_after", probe_after, 0),
        ("probe_modes", probe_modes, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise InvalidParameterError(
                f"ptychography: {name} must be a whole number >= {least}, got {value!r}"
            )
    for name, step in (
        ("object_step", object_step),
        ("probe_step", probe_step),
        ("position_step", position_step),
    ):
        if not (isinstance(step, (int, float, np.number)) and 0 <= float(step) <= 2):
            raise InvalidParameterError(f"ptychography: {name} must be in [0, 2], got {step!r}")
    from libertem_gpu.backends import get_backend, resolve_backend

    backend_name = resolve_backend(backend, [("numpy", "cupy")])
    binning = check_binning(binning)
    if center is None:
        center = _disk_centre(ctx, dataset, roi, corrections)
    cy, cx = (float(c) for c in center)
    if not (math.isfinite(cy) and math.isfinite(cx)):
        raise InvalidParameterError(f"ptychography: center must be finite, got {center!r}")
    win = choose_window(sig, (cy, cx), window, binning)
    all_corners, shape = probe_corners(nav, optics, win)
    settings = SolverSettings(
        iterations=int(iterations),
        batch_size=int(batch_size),
        object_step=float(object_step),
        probe_step=float(probe_step),
        probe_after=int(probe_after),
        seed=int(seed),
        position_step=float(position_step),
    )
    aperture = None if vacuum is None else _vacuum_window(vacuum, sig, win, corrections)
    modes = initial_modes(initial_probe(win, optics, aperture), int(probe_modes))
    if start is not None:
        _check_start(start, win, shape, pixel_size(win, optics))
        modes = np.asarray(start.probe).reshape(-1, win.pixels, win.pixels)
    n = win.pixels
    arrays = get_backend(backend_name)()
    try:
        wanted = math.prod(nav) if roi is None else int(np.count_nonzero(roi))
        _check_memory(wanted, n, arrays.free_device_bytes(), settings.batch_size, len(modes))
        amplitudes, used = _gather(ctx, dataset, win, roi, corrections, progress)
        xp = arrays.xp
        bar = _IterationBar(settings.iterations, callback) if progress else None
        try:
            obj, probe, errors, corners = solve(
                xp.asarray(amplitudes), all_corners[used], shape, xp.asarray(modes), settings,
                xp=xp, backend=backend_name, callback=callback if bar is None else bar,
                start_object=None if start is None else xp.asarray(start.object),
            )  # fmt: skip
        finally:
            if bar is not None:
                bar.close()
        obj, probe = arrays.to_numpy(obj), arrays.to_numpy(probe)
    finally:
        arrays.close()
    if probe.shape[0] == 1:
        probe = probe[0]
    at_positions = np.angle(scan_image(obj, corners, n))
    phase = np.full(math.prod(nav), np.nan)
    phase[used] = at_positions - at_positions.mean()
    positions = np.full((math.prod(nav), 2), np.nan)
    positions[used] = corners + n // 2
    return Ptychography(
        object=obj,
        phase=phase.reshape(nav),
        probe=probe,
        errors=np.asarray(errors),
        pixel_size=pixel_size(win, optics),
        positions=positions.reshape(*nav, 2),
        window=(win.y0, win.x0, win.size, win.binning),
    )


class _IterationBar:
    """A tqdm bar of the iterations with the latest misfit, called as the solver's callback;
    it passes each call on to the user's ``callback`` (whose return value stops the run)."""

    def __init__(self, iterations: int, callback: Callable[[int, float], Any] | None) -> None:
        from tqdm.auto import tqdm

        self.bar: Any = tqdm(total=iterations, unit="iteration", desc="ptychography")
        self.callback = callback

    def __call__(self, iteration: int, error: float) -> Any:
        self.bar.set_postfix_str(f"misfit {error:.3g}", refresh=False)
        self.bar.update(1)
        return None if self.callback is None else self.callback(iteration, error)

    def close(self) -> None:
        """Draw the bar a last time and release it."""
        self.bar.close()


def _gather(
    ctx: Any, dataset: Any, win: Any, roi: Any, corrections: Any, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The pass: each used frame's window as amplitudes (``(used, N, N)`` float32, zero
    frequency first) and which scan positions were used (flat bool)."""
    udf = WindowFramesUDF(win.y0, win.x0, win.size, win.binning)
    res = ctx.run_udf(dataset=dataset, udf=udf, roi=roi, corrections=corrections, progress=progress)
    used = np.asarray(res["frames"].valid_mask).reshape(-1)
    if not used.any():
        raise InvalidParameterError("ptychography: no frame was processed (empty roi?)")
    n = win.pixels
    # raw_data: the roi's positions in scan order (no copy of the scan with NaN elsewhere)
    frames = np.asarray(res["frames"].raw_data).reshape(-1, n, n)
    in_roi = np.ones(used.size, bool) if roi is None else np.asarray(roi, bool).reshape(-1)
    if not used[in_roi].all():
        frames = frames[used[in_roi]]
    amplitudes = np.fft.ifftshift(frames, axes=(-2, -1))  # one copy, zero frequency first
    np.sqrt(np.maximum(amplitudes, 0, out=amplitudes), out=amplitudes)
    if not np.isfinite(amplitudes).all():
        raise InvalidParameterError("ptychography: the frames hold NaN or infinite values")
    return amplitudes, used


def _vacuum_window(vacuum: Any, sig: tuple[int, ...], win: Any, corrections: Any) -> np.ndarray:
    """The vacuum frame's window, cut and binned as the frames are (:func:`cut_and_bin`), after
    ``corrections``; refused where it is not a finite frame with intensity in the window."""
    frame = np.asarray(vacuum)
    if frame.shape != sig:
        raise ShapeMismatchError(
            f"ptychography: vacuum must be one frame of the data set's shape {sig}, got an "
            f"array of shape {frame.shape}"
        )
    if frame.dtype.kind not in "uif":
        raise UnsupportedDTypeError(
            f"ptychography: vacuum must hold real intensities, got {frame.dtype}"
        )
    frame = frame.astype(np.float64)
    if corrections is not None and corrections.have_corrections():
        from libertem_gpu.corrections.detector import correct

        frame = correct(
            frame[np.newaxis],
            dark_image=corrections.get_dark_frame(),
            gain_map=corrections.get_gain_map(),
            excluded_pixels=corrections.excluded_coords,
            sig_shape=sig,
            allow_empty=corrections.allow_empty,
        )[0]
    binned = cut_and_bin(frame[np.newaxis], win.y0, win.x0, win.size, win.binning)[0]
    if not np.isfinite(binned).all():
        raise InvalidParameterError("ptychography: vacuum holds NaN or infinite values")
    if not (binned > 0).any():
        raise InvalidParameterError(
            f"ptychography: vacuum has no intensity in the window (rows {win.y0}:"
            f"{win.y0 + win.size}, columns {win.x0}:{win.x0 + win.size}): is it a vacuum "
            "frame of this beam?"
        )
    return binned


def _check_start(start: Any, win: Any, shape: tuple[int, int], pixel: float) -> None:
    """``start`` must be a result of the same geometry: same window, object and pixel."""
    if not isinstance(start, Ptychography):
        raise InvalidParameterError(
            f"ptychography: start must be what ptychography returned, got {type(start).__name__}"
        )
    want = (win.y0, win.x0, win.size, win.binning)
    if (
        tuple(start.window) != want
        or start.object.shape != shape
        or not math.isclose(start.pixel_size, pixel, rel_tol=1e-9)
    ):
        raise InvalidParameterError(
            "ptychography: start is of another geometry (window "
            f"{tuple(start.window)}, object {start.object.shape}, pixel {start.pixel_size:g}) "
            f"than this run (window {want}, object {shape}, pixel {pixel:g}): give the same "
            "window, binning, scan and optics"
        )


def _available_bytes() -> int | None:
    """Memory the system can give without swapping (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _check_memory(positions: int, n: int, device_free: int | None, batch: int, modes: int) -> None:
    """Refuse, before the pass, windows that would not fit: in memory they are held twice
    (the gathered frames and their amplitudes, float32); on a GPU (``device_free`` bytes
    free) the amplitudes once, with about a dozen complex arrays of a batch's size."""
    need = 2 * positions * n * n * 4
    free = _available_bytes()
    advice = "bin them (binning=), take a smaller window (window=) or part of the scan (roi=)"
    if free is not None and need > 0.8 * free:
        raise InvalidParameterError(
            f"ptychography: {positions} windows of {n} x {n} pixels need {format_size(need)} "
            f"held in memory, and {format_size(free)} are available; {advice}"
        )
    on_device = positions * n * n * 4 + 12 * batch * modes * n * n * 16
    if device_free is not None and on_device > 0.8 * device_free:
        raise InvalidParameterError(
            f"ptychography: {positions} windows of {n} x {n} pixels need "
            f"{format_size(on_device)} on the GPU, and {format_size(device_free)} are free "
            f"there; {advice}, or run on the CPU (backend='numpy')"
        )


def _disk_centre(ctx: Any, dataset: Any, roi: Any, corrections: Any) -> tuple[float, float]:
    """The bright-field disk's centre on the mean frame (one pass)."""
    from libertem_gpu import SumUDF
    from libertem_gpu.udf.parallax_fit import find_bright_field

    total = ctx.run_udf(dataset=dataset, udf=SumUDF(), roi=roi, corrections=corrections)
    centre, _ = find_bright_field(np.asarray(total["intensity"].data))
    return centre
