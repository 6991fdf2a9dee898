"""Off-axis electron holography: :class:`HoloReconstructUDF` reconstructs the complex wave of
each frame (a hologram) from one sideband of its spectrum, and the helpers LiberTEM 0.14 had
around it (frequency arrays, the smooth aperture, estimates of the sideband's position and
size).

A hologram ``I = |e^{2 pi i q.r} + A e^{i phi}|^2 = 1 + A^2 + 2 A cos(2 pi q.r - phi)`` holds
the object wave ``A e^{i phi}`` in the sidebands at ``+-q`` of its spectrum. The reconstruction
moves one sideband to zero frequency, cuts a window of ``out_shape`` around it, weighs it by a
smooth disk (the aperture) and transforms back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from libertem_gpu.errors import InvalidParameterError
from libertem_gpu.kernels import get_kernel
from libertem_gpu.udf._common import kernel_backends, kernel_input_dtype, on_worker
from libertem_gpu.udf.base import UDF
from libertem_gpu.udf.buffers import BufferDecl

__all__ = [
    "HoloReconstructUDF",
    "aperture_function",
    "estimate_sideband_position",
    "estimate_sideband_size",
    "freq_array",
    "get_slice_fft",
    "holo_aperture",
]


def freq_array(shape: tuple[int, int], sampling: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """``|k|`` of each pixel of an unshifted spectrum of ``shape``: ``hypot`` of
    ``numpy.fft.fftfreq`` along each axis for the given ``sampling`` (pixel size per axis)."""
    fy = np.fft.fftfreq(int(shape[0]), sampling[0])
    fx = np.fft.fftfreq(int(shape[1]), sampling[1])
    return np.hypot(fy[:, None], fx[None, :])


def aperture_function(r: Any, apradius: float, rsmooth: float) -> np.ndarray:
    """A disk of radius ``apradius`` whose edge falls from 1 to 0 over about ``2 * rsmooth``:
    ``0.5 * (1 - tanh((|r| - apradius) / (0.5 * rsmooth)))``; a hard edge for ``rsmooth == 0``
    (0.5 on it)."""
    r = np.abs(np.asarray(r, dtype=np.float64))
    if rsmooth == 0:
        return np.where(r < apradius, 1.0, np.where(r == apradius, 0.5, 0.0))
    return 0.5 * (1.0 - np.tanh((r - apradius) / (0.5 * rsmooth)))


def holo_aperture(
    out_shape: tuple[int, int], sb_size: float, sb_smoothness: float = 0.05
) -> np.ndarray:
    """The sideband aperture :class:`HoloReconstructUDF` uses, as LiberTEM 0.14 built it:
    ``out_shape``, zero frequency at ``[0, 0]``, radius ``sb_size`` pixels of the output's
    spectrum.

    LiberTEM converts both sizes to frequencies with ``f = mean(1 / out_shape)`` and (as its
    code does, although its documentation calls ``sb_smoothness`` a fraction of ``sb_size``)
    applies that factor twice to the smoothing: the edge is ``sb_size * sb_smoothness * f``
    pixels wide, i.e. nearly hard for usual sizes. Kept for the same numbers.
    """
    oy, ox = (int(n) for n in out_shape)
    f = float(np.mean((1.0 / oy, 1.0 / ox)))
    radius = sb_size * f
    return aperture_function(freq_array((oy, ox)), radius, radius * sb_smoothness * f)


def get_slice_fft(out_shape: tuple[int, int], sig_shape: tuple[int, int]) -> tuple[slice, slice]:
    """The centred window of ``out_shape`` in an fftshifted spectrum of ``sig_shape``
    (``int(s / 2 - o / 2)`` to ``int(s / 2 + o / 2)`` on each axis)."""
    return tuple(  # type: ignore[return-value]
        slice(int(s / 2 - o / 2), int(s / 2 + o / 2))
        for s, o in zip(sig_shape, out_shape, strict=True)
    )


def estimate_sideband_position(
    holo_data: np.ndarray,
    holo_sampling: tuple[float, float] = (1.0, 1.0),
    central_band_mask_radius: float | None = None,
    sb: Literal["lower", "upper"] = "lower",
) -> tuple[int, int]:
    """The strongest peak of a hologram's spectrum away from zero frequency, in the lower
    (rows ``< rows // 2``) or upper half of the unshifted spectrum.

    Parameters
    ----------
    holo_data : numpy.ndarray
        One hologram, 2-D.
    holo_sampling : (float, float)
        Pixel size per axis (frequencies in its inverse units).
    central_band_mask_radius : float, optional
        Frequencies up to this are ignored (default: 5 % of the largest frequency).
    sb : {"lower", "upper"}
        Which of the two sidebands.

    Returns
    -------
    (int, int)
        ``(row, column)`` in the unshifted spectrum, as ``sb_position`` takes it.
    """
    data = np.asarray(holo_data)
    if data.ndim != 2:
        raise InvalidParameterError(f"holo_data must be one 2-D hologram, got shape {data.shape}")
    if sb not in ("lower", "upper"):
        raise InvalidParameterError(f"sb must be 'lower' or 'upper', got {sb!r}")
    freq = freq_array(data.shape, holo_sampling)
    radius = freq.max() / 20 if central_band_mask_radius is None else central_band_mask_radius
    spectrum = np.abs(np.fft.fft2(data)) * (freq > radius)
    half = data.shape[0] // 2
    part = spectrum[:half] if sb == "lower" else spectrum[half:]
    row, col = np.unravel_index(int(np.argmax(part)), part.shape)
    return int(row) + (0 if sb == "lower" else half), int(col)


def estimate_sideband_size(
    sb_position: Sequence[float], holo_shape: Sequence[int], sb_size_ratio: float = 0.5
) -> float:
    """A sideband radius: ``sb_size_ratio`` times the distance from ``sb_position`` to the
    nearest zero frequency (a corner of the unshifted spectrum of ``holo_shape``)."""
    pos = np.asarray(sb_position, dtype=np.float64)
    rows, cols = (float(n) for n in holo_shape)
    corners = np.array([(0, 0), (0, cols), (rows, 0), (rows, cols)])
    return float(np.min(np.hypot(*(pos - corners).T)) * sb_size_ratio)


def _pair(value: Any, name: str, positive: bool) -> tuple[int, int]:
    try:
        pair = tuple(value)
    except TypeError:
        pair = ()
    if len(pair) != 2 or not all(float(v).is_integer() for v in pair):
        raise InvalidParameterError(f"{name} must be two integers (rows, columns), got {value!r}")
    ints = (int(float(pair[0])), int(float(pair[1])))
    if positive and min(ints) < 1:
        raise InvalidParameterError(f"{name} must be positive, got {value!r}")
    return ints


class HoloReconstructUDF(UDF):
    """Reconstruct the complex wave of each frame of an off-axis hologram (LiberTEM 0.14's
    ``HoloReconstructUDF``, same parameters, same numbers).

    Per frame: the spectrum ``FFT2(frame)`` is rolled by ``sb_position`` (which brings the
    sideband opposite ``sb_position`` to zero frequency), the centred window of ``out_shape``
    is cut, weighed by the aperture and transformed back. Scaled as LiberTEM: a hologram
    ``1 + A^2 + 2 A cos(2 pi q.r - phi)`` gives ``A e^{i phi}`` times
    ``(rows * cols) / (out_rows * out_cols)`` (1 where ``out_shape`` is the frame's shape).

    Parameters
    ----------
    out_shape : (int, int)
        Shape of each reconstructed wave, at most the frame's shape (a smaller one
        downsamples: the result is nav-shaped of this shape).
    sb_position : (int, int)
        The sideband's ``(row, column)`` in the unshifted spectrum of a frame (see
        :func:`estimate_sideband_position`).
    sb_size : float, optional
        Aperture radius in pixels of the output's spectrum (see
        :func:`estimate_sideband_size`); needed unless ``aperture`` is given.
    sb_smoothness : float
        Smoothing of the aperture's edge, as LiberTEM (see :func:`holo_aperture`).
    precision : bool
        True: transforms in float64, ``wave`` complex128; False: float32 and complex64.
    aperture : array_like, optional
        Your own aperture instead (LiberTEM-holo's way): ``out_shape``, zero frequency at
        ``[0, 0]`` (e.g. :func:`holo_aperture` times a line filter).
    backends : sequence of str, optional
        Restrict the backends this UDF may run on.

    Results
    -------
    wave : nav, extra_shape ``out_shape``, complex128 (complex64 without ``precision``)
        The reconstructed wave of each frame.

    Examples
    --------
    >>> import numpy as np
    >>> from libertem_gpu import Context, HoloReconstructUDF
    >>> ctx = Context("inline")
    >>> y, x = np.mgrid[:32, :32]
    >>> holo = 1 + np.cos(2 * np.pi * (8 * y + 8 * x) / 32)  # A = 1/2, carrier (8, 8)
    >>> ds = ctx.load("memory", data=np.broadcast_to(holo, (2, 2, 32, 32)).copy())
    >>> udf = HoloReconstructUDF(out_shape=(16, 16), sb_position=(8, 8), sb_size=4)
    >>> wave = ctx.run_udf(dataset=ds, udf=udf)["wave"].data
    >>> wave.shape, round(float(np.abs(wave).mean()), 3)  # 1/2 * (32 * 32) / (16 * 16)
    ((2, 2, 16, 16), 2.0)
    """

    def __init__(
        self,
        out_shape: Sequence[int],
        sb_position: Sequence[float],
        sb_size: float | None = None,
        sb_smoothness: float = 0.05,
        precision: bool = True,
        aperture: Any = None,
        backends: Sequence[str] | None = None,
    ) -> None:
        out = _pair(out_shape, "out_shape", positive=True)
        position = _pair(sb_position, "sb_position", positive=False)
        if aperture is None:
            if sb_size is None or not float(sb_size) > 0:
                raise InvalidParameterError(
                    f"sb_size must be a positive radius in pixels, got {sb_size!r}"
                )
            if not float(sb_smoothness) >= 0:
                raise InvalidParameterError(f"sb_smoothness must be >= 0, got {sb_smoothness!r}")
        else:
            aperture = np.asarray(aperture)
            if aperture.shape != out or not np.all(np.isfinite(aperture)):
                raise InvalidParameterError(
                    f"aperture must be finite, of out_shape {out}, got shape {aperture.shape}"
                )
        super().__init__(
            out_shape=out,
            sb_position=position,
            sb_size=sb_size,
            sb_smoothness=sb_smoothness,
            precision=bool(precision),
            aperture=aperture,
            backends=backends,
        )

    def get_aperture(self) -> np.ndarray:
        """The aperture this reconstruction applies (``out_shape``, zero frequency at
        ``[0, 0]``)."""
        p = self.params
        if p.aperture is not None:
            return np.asarray(p.aperture)
        return holo_aperture(p.out_shape, float(p.sb_size), float(p.sb_smoothness))

    def get_preferred_input_dtype(self) -> Any:
        """The stored type (complex data too), converted inside the operation."""
        return kernel_input_dtype(self.meta, "holo_reconstruct", complex_ok=True)

    def get_backends(self) -> tuple[str, ...]:
        """The CPU (scipy.fft) and, where a GPU is, CuPy (cuFFT)."""
        return tuple(self.params.backends or kernel_backends("holo_reconstruct"))

    def get_result_buffers(self) -> dict[str, BufferDecl]:
        """``wave``: nav, ``out_shape`` per frame, complex."""
        assert self.meta is not None
        sig = tuple(int(n) for n in self.meta.dataset_shape.sig)
        out = self.params.out_shape
        if len(sig) != 2:
            raise InvalidParameterError(
                f"HoloReconstructUDF needs two signal dimensions, got sig_shape {sig}"
            )
        if out[0] > sig[0] or out[1] > sig[1]:
            raise InvalidParameterError(f"out_shape {out} must not exceed the frame's shape {sig}")
        dtype = np.complex128 if self.params.precision else np.complex64
        return {"wave": self.buffer(kind="nav", extra_shape=out, dtype=dtype)}

    def preprocess(self) -> None:
        """Lay the operation out once per partition (window indices, aperture)."""
        if on_worker(self.meta):
            assert self.meta is not None
            p = self.params
            sig = tuple(int(n) for n in self.meta.dataset_shape.sig)
            prepare = get_kernel("holo_reconstruct", self.meta.kernels)
            self._op = prepare(
                sig,
                p.out_shape,
                p.sb_position,
                self.get_aperture(),
                self.meta.input_dtype,
                double=p.precision,
            )

    def process_tile(self, tile: Any) -> None:
        """Reconstruct each frame of the tile."""
        self._op(tile, self.results.wave)
