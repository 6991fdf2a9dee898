"""The ``ptycho_step`` operation: every implementation against the NumPy reference (contract
kit), with and without fractional moves and probe terms; the reference against a loop over
positions written from the definition; the CuPy implementation's logic on NumPy through
stand-in modules."""

from __future__ import annotations

import copy
import sys
import types

import numpy as np
import pytest

from libertem_gpu.kernels import ptycho
from tests.kernels.kit import KernelContract

N = 8


def _arguments(rng, b, dtype, moved, terms, modes=1, positions=False):
    obj = np.exp(1j * rng.standard_normal((3 * N, 4 * N))) * (1 + 0.1 * rng.random((3 * N, 4 * N)))
    probe = rng.standard_normal((modes, N, N)) + 1j * rng.standard_normal((modes, N, N))
    amplitudes = np.abs(rng.standard_normal((b, N, N))).astype(dtype)
    corners = np.stack([rng.integers(0, 2 * N, b), rng.integers(0, 3 * N, b)], -1)
    fractions = rng.random((b, 2)) if moved else None
    return (obj, probe, amplitudes, corners, fractions, 0.8, 0.1, terms, positions)


class TestPtychoStepContract(KernelContract):
    op = "ptycho_step"
    simulate = False  # CuPy array code: a real GPU only
    moved, terms, modes, positions = False, False, 1, False

    def arguments(self, rng, tile):
        return _arguments(
            rng, tile.shape[0], tile.dtype, self.moved, self.terms, self.modes, self.positions
        )

    def call(self, kernel, args, swap):
        self._returned = kernel(*args)

    def expected(self, args):
        misfit, numerator, weight, shifts = ptycho.reference(*args)
        out = [args[0], np.asarray(misfit)] + ([numerator, weight] if self.terms else [])
        return out + ([shifts] if self.positions else [])

    def outputs(self, args):
        misfit, numerator, weight, shifts = self._returned
        if not self.terms:
            assert numerator is None and weight is None
        if not self.positions:
            assert shifts is None
        wrap = type(args[0]).__module__.startswith("cupy")
        value = __import__("cupy").asarray(misfit) if wrap else np.asarray(misfit)
        if wrap and self.positions:  # the shifts come back to the host
            shifts = __import__("cupy").asarray(shifts)
        out = [args[0], value] + ([numerator, weight] if self.terms else [])
        return out + ([shifts] if self.positions else [])


class TestPtychoStepMovedContract(TestPtychoStepContract):
    moved, terms = True, True


class TestPtychoStepProbeTermsContract(TestPtychoStepContract):
    terms = True


class TestPtychoStepModesContract(TestPtychoStepContract):
    """Three incoherent probe modes, moved, with the probe's terms."""

    moved, terms, modes = True, True, 3


class TestPtychoStepPositionsContract(TestPtychoStepContract):
    """Each position's best move, two modes, moved."""

    moved, modes, positions = True, 2, True


@pytest.mark.parametrize("moved, modes", [(False, 1), (True, 1), (True, 2)])
def test_reference_against_a_loop_over_positions(rng, moved, modes):
    obj, probe, amplitudes, corners, fractions, step, r, _, _ = _arguments(
        rng, 5, np.float64, moved, True, modes
    )
    want_obj = obj.copy()
    total = np.zeros(obj.shape, complex)
    weight = np.zeros(obj.shape)
    numerator = np.zeros((modes, N, N), complex)
    window_weight = np.zeros((N, N))
    misfit = 0.0
    k = np.fft.fftfreq(N)
    for j, (y, x) in enumerate(corners):
        ramp = np.ones((N, N))
        if moved:
            ramp = np.exp(-2j * np.pi * (fractions[j, 0] * k[:, None] + fractions[j, 1] * k))
        o = obj[y : y + N, x : x + N]
        p = [np.fft.ifft2(np.fft.fft2(probe[m]) * ramp) for m in range(modes)]
        psi = [p[m] * o for m in range(modes)]
        spectra = [np.fft.fft2(psi[m], norm="ortho") for m in range(modes)]
        modulus = np.sqrt(sum(np.abs(s) ** 2 for s in spectra))  # intensities add
        misfit += ((modulus - amplitudes[j]) ** 2).sum()
        for m in range(modes):
            fixed = spectra[m] * amplitudes[j] / modulus
            d = np.fft.ifft2(fixed, norm="ortho") - psi[m]
            total[y : y + N, x : x + N] += np.conj(p[m]) * d
            weight[y : y + N, x : x + N] += np.abs(p[m]) ** 2
            numerator[m] += np.fft.ifft2(np.fft.fft2(np.conj(o) * d) * np.conj(ramp))
        window_weight += np.abs(o) ** 2
    top = weight.max()
    want_obj += step * total / ((1 - r) * weight + r * top)
    got_misfit, got_numerator, got_weight, _ = ptycho.reference(
        obj, probe, amplitudes, corners, fractions, step, r, True
    )
    np.testing.assert_allclose(obj, want_obj, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_misfit, misfit, rtol=1e-12)
    np.testing.assert_allclose(got_numerator, numerator, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got_weight, window_weight, rtol=1e-12)


@pytest.mark.parametrize("moved", [False, True])
def test_gpu_logic_on_numpy_stand_ins(rng, monkeypatch, moved):
    """The CuPy implementation (flat window indices, atomic adds of real and imaginary parts)
    run with NumPy standing in for CuPy: its logic is checked on machines without a GPU
    (``pytest -m gpu`` runs it on CuPy)."""

    class StandIn(types.ModuleType):
        asnumpy = staticmethod(np.asarray)

        def __getattr__(self, name):
            return getattr(np, name)

    atomic = types.ModuleType("cupyx")
    atomic.scatter_add = lambda a, index, values: np.add.at(a, index, values)
    monkeypatch.setitem(sys.modules, "cupy", StandIn("cupy"))
    monkeypatch.setitem(sys.modules, "cupyx", atomic)
    args = _arguments(rng, 6, np.float32, moved, True, modes=2, positions=True)
    mine = copy.deepcopy(args)
    want = ptycho.reference(*args)
    got = ptycho.gpu(*mine)
    np.testing.assert_allclose(mine[0], args[0], rtol=1e-12, atol=1e-12)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
