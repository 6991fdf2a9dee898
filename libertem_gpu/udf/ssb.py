"""Single side band (SSB) ptychography in one streaming pass: :class:`SSBUDF`.

With a focused probe each scan frequency ``Q`` of a weak phase object shows up only where the
bright-field disk overlaps its copies moved by ``+-Q`` (the "trotters",
:mod:`~libertem_gpu.udf.ssb_geometry`). The UDF sums, for every frequency whose trotters hold
pixels, each frame's trotter pixels weighed for that frequency times the frame's Fourier phase
factor at its scan position: the scan's Fourier transform restricted to the trotters, built
frame by frame without holding the scan. The phase image is the inverse transform of those
sums, normalised by the disk's mean intensity.

Scan positions without data (a roi, a short acquisition) count as the mean frame, which adds
nothing to any frequency but zero: they are neither read nor invented. With ``shifts`` (the
disk's walk across the detector, descan) each frame is read around its own disk position.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import (
    allowed_backends,
    check_center,
    kernel_input_dtype,
    on_worker,
)
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace
from libertem_gpu.udf.mask_shifts import as_shifts, check_shifts, frame_shifts, shift_groups
from libertem_gpu.udf.run_cache import backend_device, shared_for_run
from libertem_gpu.udf.ssb_geometry import (
    Optics,
    aperture_pixels,
    check_optics,
    scan_frequencies,
    trotters,
)

__all__ = ["SSBUDF"]

#: The largest weight matrix (pixels x frequencies) a run lays out, in bytes of float32.
MAX_WEIGHT_BYTES = 4 * 2**30


@functools.lru_cache(maxsize=4)
def _plan(
    optics: Optics,
    nav: tuple[int, int],
    sig: tuple[int, int],
    center: tuple[float, float],
    cutoff: float,
) -> tuple[np.ndarray, ...]:
    """``(index, freqs, offsets, norms, pixels, k)``: the frequencies whose trotters weigh at
    least ``cutoff`` (their rfft2 indices, cycles per step, detector shifts and norms), and
    the aperture's pixels (flat indices and offsets from ``center``)."""
    pixels, k = aperture_pixels(sig, center, optics.semiconv_pix)
    index, freqs, offsets = scan_frequencies(nav, optics)
    _, norms = trotters(k, offsets, optics, with_weights=False)
    keep = norms >= cutoff
    return index[keep], freqs[keep], offsets[keep], norms[keep], pixels, k


class SSBUDF(UDF):
    """Single side band ptychography: the specimen's phase from a focused-probe 4D-STEM scan,
    in one pass.

    Parameters
    ----------
    wavelength : float
        The electrons' wavelength, in a length unit of your choice (ångström with
        :func:`~libertem_gpu.udf.ssb_geometry.electron_wavelength`).
    scan_step : float or (float, float)
        The scan step (row, column), in the unit of ``wavelength``.
    semiconv : float
        The probe's semi-convergence angle, radians.
    semiconv_pix : float
        The bright-field disk's radius on the detector, pixels (with ``center``, for example
        from :func:`~libertem_gpu.udf.parallax_fit.find_bright_field` on the mean frame).
    center : tuple of float
        ``(row, column)`` of the bright-field disk's centre on the detector.
    scan_rotation : float
        Degrees, as in :class:`~libertem_gpu.CoMUDF`: detector directions, flipped where
        ``flip_y``, rotated by it, are the scan's. With the wrong half turn (180 degrees) the
        phase comes out negated.
    flip_y : bool
        The detector's y axis is flipped against the scan's.
    defocus : float
        Of the probe, in the unit of ``wavelength``: the aperture carries the phase
        ``-chi``, ``chi = 2 pi / wavelength * (defocus theta^2 / 2 + cs theta^4 / 4)``.
    cs : float
        Spherical aberration, in the unit of ``wavelength``.
    cutoff : float
        Frequencies whose trotters weigh less (``sum |B|^2``: their pixel count in focus) are
        left out (0 in the spectrum): tiny trotters give noise. The default keeps every
        trotter of a pixel or more (a whole number in focus, which rounding must not tip).
    double : bool
        Sums in float64 instead of float32 (slower; float32's relative error is about 1e-6
        of the trotters' total intensity).
    shifts : array_like or AuxData, optional
        Whole pixels ``(dy, dx)`` the disk has moved from ``center`` in each frame (descan):
        one pair for all, ``(*nav, 2)``, or aux data of ``kind="nav"``, as
        :class:`~libertem_gpu.ApplyMasksUDF` takes them (cast towards zero); for example
        :func:`~libertem_gpu.estimate_descan`'s. Pixels moved off the frame count as 0.
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    phase : single, ``(rows, columns)`` of the scan, float64
        The phase at each scan position, radians, weak phase approximation, mean 0.
    fourier : single, ``(rows, columns)``, complex128
        Its Fourier transform (``numpy.fft.fft2`` layout), 0 at frequencies left out.
    frequencies : single, ``(rows, columns)``, bool
        Which frequencies the trotters measured.

    Notes
    -----
    Cost: one matrix product per frame of its aperture pixels with a ``(pixels, frequencies)``
    weight matrix (float32 unless ``double``), whose size the run reports in errors when it
    exceeds :data:`MAX_WEIGHT_BYTES`; binning the detector shrinks it.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, SSBUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.random.default_rng(0).random((8, 9, 16, 16)))
    >>> udf = SSBUDF(wavelength=0.02, scan_step=0.5, semiconv=0.02, semiconv_pix=4,
    ...              center=(7.5, 7.5))
    >>> ctx.run_udf(dataset=ds, udf=udf)["phase"].data.shape
    (8, 9)
    """

    def __init__(
        self,
        wavelength: float,
        scan_step: float | Sequence[float],
        semiconv: float,
        semiconv_pix: float,
        center: Sequence[float],
        scan_rotation: float = 0.0,
        flip_y: bool = False,
        defocus: float = 0.0,
        cs: float = 0.0,
        cutoff: float = 0.5,
        double: bool = False,
        shifts: Any = None,
        backends: Sequence[str] | None = None,
    ) -> None:
        optics = check_optics(
            wavelength,
            scan_step,
            semiconv,
            semiconv_pix,
            scan_rotation,
            flip_y,
            defocus,
            cs,
            "SSBUDF",
        )
        cy, cx = check_center(center, "SSBUDF")
        try:
            cut = float(cutoff)
        except (TypeError, ValueError):
            cut = math.nan
        if not (math.isfinite(cut) and cut > 0):
            raise InvalidParameterError(f"SSBUDF: cutoff must be finite and > 0, got {cutoff!r}")
        super().__init__(
            wavelength=optics.wavelength,
            scan_step=optics.scan_step,
            semiconv=optics.semiconv,
            semiconv_pix=optics.semiconv_pix,
            center=(cy, cx),
            scan_rotation=optics.scan_rotation,
            flip_y=optics.flip_y,
            defocus=optics.defocus,
            cs=optics.cs,
            cutoff=cut,
            double=bool(double),
            shifts=as_shifts(shifts),
            backends=backends,
        )
        self._optics = optics

    @property
    def _shifts(self) -> Any:
        """``shifts`` as given (None, a constant tuple or nav aux data), whole on every side
        (the parameter itself reads as a tile's slice while tiles are processed)."""
        return self._kwargs.get("shifts")

    def get_preferred_input_dtype(self) -> Any:
        """The stored type: the operation converts only the disk's pixels."""
        return kernel_input_dtype(self.meta, "ssb_accumulate")

    def get_backends(self) -> tuple[str, ...]:
        """The CPU (BLAS) and, where a GPU is, CuPy (cuBLAS)."""
        return allowed_backends("ssb_accumulate", self.params.backends)

    def _shapes(self) -> tuple[tuple[int, int], tuple[int, int]]:
        assert self.meta is not None
        nav = tuple(int(n) for n in self.meta.dataset_shape.nav)
        sig = tuple(int(n) for n in self.meta.dataset_shape.sig)
        if len(nav) != 2 or len(sig) != 2:
            raise InvalidParameterError(
                f"SSBUDF needs a 2-D scan of 2-D frames, got scan {nav} and frames {sig}"
            )
        return (nav[0], nav[1]), (sig[0], sig[1])

    def _plan(self) -> tuple[np.ndarray, ...]:
        nav, sig = self._shapes()
        return _plan(self._optics, nav, sig, self.params.center, self.params.cutoff)

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """Private sums (``sums``: three per frequency; ``pixel_sum``; ``count``); the
        results from them."""
        nav, sig = self._shapes()
        check_shifts(self._shifts, sig)
        index, _, _, _, pixels, _ = self._plan()
        if len(pixels) == 0:
            raise InvalidParameterError(
                f"SSBUDF: no detector pixel within semiconv_pix={self.params.semiconv_pix} of "
                f"center {self.params.center}"
            )
        if len(index) == 0:
            raise InvalidParameterError(
                "SSBUDF: no scan frequency has trotters of at least cutoff="
                f"{self.params.cutoff} pixels: the disk moves too little for one step of "
                "frequency (check wavelength, scan_step, semiconv and semiconv_pix)"
            )
        need = len(pixels) * len(index) * (16 if self.params.double else 8)
        if need > MAX_WEIGHT_BYTES:
            raise InvalidParameterError(
                f"SSBUDF: {len(pixels)} disk pixels x {len(index)} frequencies need "
                f"{need / 2**30:.1f} GiB of weights (at most {MAX_WEIGHT_BYTES / 2**30:.0f}): "
                "bin the detector or crop the scan first (ctx.export(ds, path, bin_sig=2, "
                "crop_nav=...), libertem-gpu convert --bin-sig 2 --crop-nav ...)"
            )

        def single(shape: tuple[int, ...], dtype: Any, use: str | None) -> BufferDecl:
            return self.buffer(kind="single", extra_shape=shape, dtype=dtype, use=use)

        return {
            "sums": single((3, len(index)), np.complex128, "private"),
            "pixel_sum": single((len(pixels),), np.float64, "private"),
            "count": single((1,), np.int64, "private"),
            "phase": single(nav, np.float64, "result_only"),
            "fourier": single(nav, np.complex128, "result_only"),
            "frequencies": single(nav, bool, "result_only"),
        }

    def preprocess(self) -> None:
        """Lay out the weights on the backend, once per run and device."""
        if not on_worker(self.meta):
            return
        assert self.meta is not None
        nav, _ = self._shapes()
        kernels = self.meta.kernels
        double = self.params.double

        def build() -> Any:
            _, freqs, offsets, _, pixels, k = self._plan()
            dtype = np.complex128 if double else np.complex64
            weights, _ = trotters(k, offsets, self._optics, dtype=dtype)
            return get_kernel("ssb_accumulate", kernels)(pixels, weights, freqs, nav, double=double)

        key = (self.meta.run_key, "ssb", kernels, backend_device(self.meta))
        self._step = shared_for_run(key, build, nbytes=lambda s: s.nbytes)
        self._moved_pixels: dict[tuple[int, ...], tuple[Any, Any]] = {}

    def _moved(self, shift: tuple[int, ...]) -> tuple[Any, Any]:
        """The disk's pixels moved by ``shift`` (flat indices, 0 where off the frame) and
        which of them are on the frame (1 or 0), on the backend; kept per shift."""
        found = self._moved_pixels.get(shift)
        if found is None:
            _, (rows, cols) = self._shapes()
            pixels = self._plan()[4]
            y, x = np.divmod(pixels, cols)
            y, x = y + shift[0], x + shift[1]
            inside = (y >= 0) & (y < rows) & (x >= 0) & (x < cols)
            moved = np.where(inside, y * cols + x, 0)
            real = np.float64 if self.params.double else np.float32
            found = (self.xp.asarray(moved), self.xp.asarray(inside.astype(real)))
            self._moved_pixels[shift] = found
        return found

    def process_tile(self, tile: Any) -> None:
        """Add the tile's frames to the sums (each run of frames of one disk position with
        the disk's pixels read where it is)."""
        assert self.meta is not None and self.meta.tile is not None
        nav, _ = self._shapes()
        frames = self.meta.tile.frames
        where = self.xp.asarray(np.stack(np.unravel_index(frames, nav), axis=-1))
        sums, pixel_sum = self.results.sums, self.results.pixel_sum
        self.results.count[0] += tile.shape[0]
        if self._shifts is None:
            self._step(tile, where, sums, pixel_sum)
            return
        for shift, rows in shift_groups(frame_shifts(self._shifts, frames)):
            pixels, valid = self._moved(shift)
            self._step(tile[rows], where[rows], sums, pixel_sum, pixels=pixels, valid=valid)

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Sums add."""
        dest.sums += src.sums
        dest.pixel_sum += src.pixel_sum
        dest.count += src.count

    def get_results(self) -> dict[str, Any]:
        """The spectrum from the sums, the positions not seen counted as the mean frame; the
        phase, its inverse transform."""
        nav, _ = self._shapes()
        index, _, _, norms, _, _ = self._plan()
        sums = np.asarray(self.results.sums)
        count = int(self.results.count[0])
        half = np.zeros((nav[0], nav[1] // 2 + 1), dtype=np.complex128)
        measured = np.zeros(half.shape, dtype=bool)
        if count > 0:
            mean_weighed = sums[2] / count
            # sum over all positions = seen + (all - seen) * mean; the sum of a frequency's
            # phase factors over the whole scan is 0 (no frequency here is 0)
            spectrum = sums[0] - mean_weighed * sums[1]
            intensity = float(np.mean(self.results.pixel_sum)) / count  # per disk pixel
            if intensity != 0:  # else nothing to normalise by: no phase
                half.reshape(-1)[index] = spectrum / (1j * intensity * norms)
                measured.reshape(-1)[index] = True
        phase = np.fft.irfft2(half, s=nav)
        full_measured = np.zeros(nav, dtype=bool)
        full_measured[:, : half.shape[1]] = measured
        # the other half plane: -Q of each measured Q
        mirror = measured[(-np.arange(nav[0])) % nav[0]]
        cols = (-np.arange(half.shape[1])) % nav[1]
        full_measured[:, cols] |= mirror
        fourier = np.fft.fft2(phase)
        fourier[~full_measured] = 0  # rounding's traces, where nothing was measured
        return {"phase": phase, "fourier": fourier, "frequencies": full_measured}
