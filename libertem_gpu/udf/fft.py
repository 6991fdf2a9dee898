"""Fourier-space analyses of each frame: the sum of the frames' power spectra
(:class:`SumFFTUDF`) and a virtual detector applied in Fourier space (:class:`ApplyFFTMaskUDF`).

Both transform whole frames, a tile of frames at a time (``power_spectrum`` in
:mod:`libertem_gpu.kernels.fourier`, ``fft_mask_sum`` in :mod:`libertem_gpu.kernels.fourier_mask`,
which :class:`~libertem_gpu.CrystallinityUDF` runs too, through :class:`FourierMaskSumUDF`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from libertem_gpu import host_threads, masks
from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import kernel_backends, kernel_input_dtype, on_worker
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl, BufferNamespace

__all__ = [
    "ApplyFFTMaskUDF",
    "FourierMaskSumUDF",
    "SumFFTUDF",
    "fft_ring_weights",
    "real_space_mask",
]


def _sig2(meta: Any, what: str) -> tuple[int, int]:
    sig = tuple(int(n) for n in meta.dataset_shape.sig)
    if len(sig) != 2:
        raise InvalidParameterError(f"{what} needs two signal dimensions, got sig_shape {sig}")
    return sig  # type: ignore[return-value]


def _check_real_disk(real_center: Any, real_rad: Any) -> None:
    if real_center is not None and len(tuple(real_center)) != 2:
        raise InvalidParameterError(f"real_center must be (row, column), got {real_center!r}")
    if real_rad is not None and not float(real_rad) >= 0:
        raise InvalidParameterError(f"real_rad must be >= 0, got {real_rad!r}")


def real_space_mask(
    sig_shape: tuple[int, int], real_center: Any = None, real_rad: Any = None
) -> np.ndarray | None:
    """1 outside a disk of ``real_rad`` around ``real_center`` (row, column), 0 inside, as
    LiberTEM blanks the zero-order peak before transforming; None if either is None."""
    if real_center is None or real_rad is None:
        return None
    rows, cols = sig_shape
    cy, cx = real_center
    return 1.0 - masks.circular(cx, cy, cols, rows, real_rad).astype(np.float64)


def fft_ring_weights(sig_shape: tuple[int, int], rad_in: float, rad_out: float) -> np.ndarray:
    """LiberTEM's ring in Fourier space: 1 where ``rad_in < |k| <= rad_out`` around
    ``(rows / 2, cols / 2)``, moved to zero frequency at ``[0, 0]`` by ``fftshift`` (full
    unshifted spectrum, float64)."""
    rows, cols = sig_shape
    outer = masks.circular(cols * 0.5, rows * 0.5, cols, rows, rad_out)
    inner = masks.circular(cols * 0.5, rows * 0.5, cols, rows, rad_in)
    return np.fft.fftshift((outer & ~inner).astype(np.float64))


class SumFFTUDF(UDF):
    """The sum over the scan of each frame's power spectrum, ``|FFT2(frame * real_mask)|**2``.

    The frames' diffractograms (power spectra) summed, not the spectrum of the summed frame:
    periodicities present in every frame but at varying phase (lattice fringes in a tilt
    series, the fringe spacing of holograms) add up instead of cancelling. LiberTEM 0.16's
    ``SumfftAnalysis`` (see :mod:`libertem_gpu.analysis.fft`) instead shows the transform of
    the sum of frames; this UDF is its per-frame counterpart.

    Parameters
    ----------
    real_center : (float, float), optional
        ``(row, column)`` of a disk blanked in each frame before the transform (e.g. the
        zero-order peak); needs ``real_rad``.
    real_rad : float, optional
        That disk's radius in pixels.
    fftshift : bool
        Zero frequency at the centre (``numpy.fft.fftshift``, pixel ``(rows // 2, cols //
        2)``) as displayed; False: at ``[0, 0]``.
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    intensity : sig, float64
        ``sum over frames of |FFT2(frame * real_mask)|**2``.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, SumFFTUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.ones((2, 3, 8, 8), dtype=np.uint16))
    >>> power = ctx.run_udf(dataset=ds, udf=SumFFTUDF())["intensity"].data
    >>> float(power[4, 4])  # zero frequency: (64 counts)**2 per frame, 6 frames
    24576.0
    """

    def __init__(
        self,
        real_center: Any = None,
        real_rad: float | None = None,
        fftshift: bool = True,
        backends: Sequence[str] | None = None,
    ) -> None:
        _check_real_disk(real_center, real_rad)
        super().__init__(
            real_center=real_center, real_rad=real_rad, fftshift=fftshift, backends=backends
        )

    def get_preferred_input_dtype(self) -> Any:
        """The stored type (complex data too), converted inside the operation."""
        return kernel_input_dtype(self.meta, "power_spectrum", complex_ok=True)

    def get_backends(self) -> tuple[str, ...]:
        """The CPU (scipy.fft) and, where a GPU is, CuPy (cuFFT)."""
        return tuple(self.params.backends or kernel_backends("power_spectrum"))

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``power``: private full-size accumulator (real frames fill its ``rfft2`` half);
        ``intensity``: the spectrum, from it."""
        assert self.meta is not None
        sig = _sig2(self.meta, "SumFFTUDF")
        f8 = np.float64
        return {
            "power": self.buffer(kind="single", extra_shape=sig, dtype=f8, use="private"),
            "intensity": self.buffer(kind="sig", dtype=f8, use="result_only"),
        }

    def preprocess(self) -> None:
        """Lay the operation out once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            sig = _sig2(self.meta, "SumFFTUDF")
            mask = real_space_mask(sig, self.params.real_center, self.params.real_rad)
            prepare = get_kernel("power_spectrum", self.meta.kernels)
            self._op = prepare(sig, mask, self.meta.input_dtype)

    def process_tile(self, tile: Any) -> None:
        """Add the tile's power spectra."""
        rows, cols = self._op.shape
        self._op(tile, self.results.power[:rows, :cols])

    def merge(self, dest: BufferNamespace, src: BufferNamespace) -> None:
        """Sums add."""
        host_threads.combine_into(np.add, dest.power, src.power)

    def get_results(self) -> dict[str, Any]:
        """The full spectrum (real frames: from the half by symmetry), shifted if asked."""
        from libertem_gpu.kernels.fourier import full_spectrum, half_width

        assert self.meta is not None
        power = np.asarray(self.results.power)
        cols = power.shape[1]
        if np.dtype(self.meta.input_dtype).kind != "c":
            power = full_spectrum(power[:, : half_width(cols)], cols)
        if self.params.fftshift:
            power = np.fft.fftshift(power)
        return {"intensity": power}


class FourierMaskSumUDF(UDF):
    """Base of the UDFs that sum each frame's weighted Fourier amplitudes with the
    ``fft_mask_sum`` operation (:class:`ApplyFFTMaskUDF`, :class:`~libertem_gpu.CrystallinityUDF`):
    it runs the operation; a subclass says which weights, blank and result type.

    Subclasses implement :meth:`weights` and :meth:`real_mask`, and set :attr:`result_dtype`,
    :attr:`complex_ok` and :attr:`label`.
    """

    #: The ``intensity`` buffer's type.
    result_dtype: Any = np.float32
    #: Whether complex data are transformed (else refused before any data is read).
    complex_ok = True
    #: What error messages call the analysis.
    label = "FourierMaskSumUDF"

    def weights(self, sig_shape: tuple[int, int], complex_input: bool) -> np.ndarray:
        """Weights over the ``rfft2`` half (real frames) or the whole unshifted spectrum."""
        raise NotImplementedError

    def real_mask(self, sig_shape: tuple[int, int]) -> np.ndarray | None:
        """Real-space weights applied to each frame before the transform, or None."""
        raise NotImplementedError

    def get_preferred_input_dtype(self) -> Any:
        """The stored type, converted inside the operation."""
        return kernel_input_dtype(self.meta, "fft_mask_sum", complex_ok=self.complex_ok)

    def get_backends(self) -> tuple[str, ...]:
        """The CPU (partial DFT or scipy.fft) and, where a GPU is, CuPy (cuFFT)."""
        return kernel_backends("fft_mask_sum")

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``intensity``: one value per frame, :attr:`result_dtype`."""
        if self.meta is not None:  # bad masks fail here, on the client, before any read
            sig = _sig2(self.meta, self.label)
            self.weights(sig, False)
            self.real_mask(sig)
        return {"intensity": self.buffer(kind="nav", dtype=self.result_dtype)}

    def preprocess(self) -> None:
        """Lay the operation out (its strategy chosen) once per partition."""
        if on_worker(self.meta):
            assert self.meta is not None
            sig = _sig2(self.meta, self.label)
            weights = self.weights(sig, np.dtype(self.meta.input_dtype).kind == "c")
            prepare = get_kernel("fft_mask_sum", self.meta.kernels)
            self._op = prepare(sig, self.real_mask(sig), weights, self.meta.input_dtype)

    def process_tile(self, tile: Any) -> None:
        """Each frame's weighted amplitude sum."""
        self._op(tile, self.results.intensity)


class ApplyFFTMaskUDF(FourierMaskSumUDF):
    """A virtual detector in Fourier space: per frame, the spectrum's amplitude
    ``|FFT2(frame * real_mask)|`` weighted by a mask and summed.

    Give either a ring (``rad_in``, ``rad_out``: LiberTEM 0.16's ``ApplyFFTMask`` analysis and
    ``CrystallinityUDF``, same numbers) or ``fourier_mask``, any weights over the spectrum.

    Parameters
    ----------
    rad_in, rad_out : float, optional
        A ring ``rad_in < |k| <= rad_out`` (frequency pixels) around zero frequency. As in
        LiberTEM, for real frames the sum runs over the half spectrum ``rfft2`` returns
        (columns ``0 .. cols // 2`` of the unshifted spectrum), which by symmetry is about half
        the ring.
    real_center : (float, float), optional
        ``(row, column)`` of a disk blanked in each frame before the transform; needs
        ``real_rad``.
    real_rad : float, optional
        That disk's radius in pixels.
    fourier_mask : array_like, optional
        Frame-shaped weights over the whole spectrum with zero frequency at the centre (pixel
        ``(rows // 2, cols // 2)``, as :class:`SumFFTUDF` shows it); instead of the ring.
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    intensity : nav, float32
        ``sum_k mask(k) * |FFT2(frame * real_mask)(k)|`` per frame.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, ApplyFFTMaskUDF
    >>> ctx = Context("inline")
    >>> ds = ctx.load("memory", data=np.random.default_rng(0).random((2, 3, 16, 16)))
    >>> udf = ApplyFFTMaskUDF(rad_in=2, rad_out=5)
    >>> ctx.run_udf(dataset=ds, udf=udf)["intensity"].data.shape
    (2, 3)
    """

    label = "ApplyFFTMaskUDF"

    def __init__(
        self,
        rad_in: float | None = None,
        rad_out: float | None = None,
        real_center: Any = None,
        real_rad: float | None = None,
        fourier_mask: Any = None,
        backends: Sequence[str] | None = None,
    ) -> None:
        _check_real_disk(real_center, real_rad)
        ring = rad_in is not None or rad_out is not None
        if ring == (fourier_mask is not None):
            raise InvalidParameterError(
                "give either a ring (rad_in and rad_out) or fourier_mask, "
                f"got rad_in={rad_in!r}, rad_out={rad_out!r} and "
                f"fourier_mask={'an array' if fourier_mask is not None else None}"
            )
        if ring and not (
            rad_in is not None and rad_out is not None and 0 <= float(rad_in) < float(rad_out)
        ):
            raise InvalidParameterError(
                f"need 0 <= rad_in < rad_out, got rad_in={rad_in!r}, rad_out={rad_out!r}"
            )
        if fourier_mask is not None:
            fourier_mask = np.asarray(fourier_mask, dtype=np.float64)
            if fourier_mask.ndim != 2 or not np.all(np.isfinite(fourier_mask)):
                raise InvalidParameterError(
                    "fourier_mask must be a finite 2-D frame-shaped array, got shape "
                    f"{fourier_mask.shape}"
                )
        super().__init__(
            rad_in=rad_in,
            rad_out=rad_out,
            real_center=real_center,
            real_rad=real_rad,
            fourier_mask=fourier_mask,
            backends=backends,
        )

    def get_backends(self) -> tuple[str, ...]:
        """Those of the operation, or of them the ones ``backends`` allows."""
        return tuple(self.params.backends or kernel_backends("fft_mask_sum"))

    def weights(self, sig_shape: tuple[int, int], complex_input: bool) -> np.ndarray:
        """The mask's weights as the operation reads them: over the ``rfft2`` half for real
        frames, the whole unshifted spectrum for complex ones."""
        from libertem_gpu.kernels.fourier import half_width, hermitian_fold

        p = self.params
        if p.fourier_mask is None:
            ring = fft_ring_weights(sig_shape, p.rad_in, p.rad_out)
            return ring if complex_input else ring[:, : half_width(sig_shape[1])]
        if p.fourier_mask.shape != tuple(sig_shape):
            raise InvalidParameterError(
                f"fourier_mask must have the frame's shape {tuple(sig_shape)}, "
                f"got {p.fourier_mask.shape}"
            )
        full = np.fft.ifftshift(p.fourier_mask)
        return full if complex_input else hermitian_fold(full)

    def real_mask(self, sig_shape: tuple[int, int]) -> np.ndarray | None:
        """The blank of ``real_center``, ``real_rad`` (see :func:`real_space_mask`)."""
        return real_space_mask(sig_shape, self.params.real_center, self.params.real_rad)
