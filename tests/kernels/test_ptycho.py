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


def _arguments(rng, b, dtype, moved, terms):
    obj = np.exp(1j * rng.standard_normal((3 * N, 4 * N))) * (1 + 0.1 * rng.random((3 * N, 4 * N)))
    probe = rng.standard_normal((N, N)) + 1j * rng.standard_normal((N, N))
    amplitudes = np.abs(rng.standard_normal((b, N, N))).astype(dtype)
    corners = np.stack([rng.integers(0, 2 * N, b), rng.integers(0, 3 * N, b)], -1)
    fractions = rng.random((b, 2)) if moved else None
    return (obj, probe, amplitudes, corners, fractions, 0.8, 0.1, terms)


class TestPtychoStepContract(KernelContract):
    op = "ptycho_step"
    simulate = False  # CuPy array code: a real GPU only
    moved, terms = False, False

    def arguments(self, rng, tile):
        return _arguments(rng, tile.shape[0], tile.dtype, self.moved, self.terms)

    def call(self, kernel, args, swap):
        self._returned = kernel(*args)

    def expected(self, args):
        misfit, numerator, weight = ptycho.reference(*args)
        return [args[0], np.asarray(misfit)] + ([numerator, weight] if self.terms else [])

    def outputs(self, args):
        misfit, numerator, weight = self._returned
        if not self.terms:
            assert numerator is None and weight is None
        wrap = type(args[0]).__module__.startswith("cupy")
        value = __import__("cupy").asarray(misfit) if wrap else np.asarray(misfit)
        return [args[0], value] + ([numerator, weight] if self.terms else [])


class TestPtychoStepMovedContract(TestPtychoStepContract):
    moved, terms = True, True


class TestPtychoStepProbeTermsContract(TestPtychoStepContract):
    terms = True


@pytest.mark.parametrize("moved", [False, True])
def test_reference_against_a_loop_over_positions(rng, moved):
    obj, probe, amplitudes, corners, fractions, step, r, _ = _arguments(
        rng, 5, np.float64, moved, True
    )
    want_obj = obj.copy()
    total = np.zeros(obj.shape, complex)
    weight = np.zeros(obj.shape)
    numerator = np.zeros((N, N), complex)
    window_weight = np.zeros((N, N))
    misfit = 0.0
    k = np.fft.fftfreq(N)
    for j, (y, x) in enumerate(corners):
        p = probe
        if moved:
            ramp = np.exp(-2j * np.pi * (fractions[j, 0] * k[:, None] + fractions[j, 1] * k))
            p = np.fft.ifft2(np.fft.fft2(probe) * ramp)
        o = obj[y : y + N, x : x + N]
        psi = p * o
        spectrum = np.fft.fft2(psi, norm="ortho")
        misfit += ((np.abs(spectrum) - amplitudes[j]) ** 2).sum()
        fixed = spectrum * amplitudes[j] / np.abs(spectrum)
        d = np.fft.ifft2(fixed, norm="ortho") - psi
        total[y : y + N, x : x + N] += np.conj(p) * d
        weight[y : y + N, x : x + N] += np.abs(p) ** 2
        g = np.conj(o) * d
        if moved:
            g = np.fft.ifft2(np.fft.fft2(g) * np.conj(ramp))
        numerator += g
        window_weight += np.abs(o) ** 2
    top = weight.max()
    want_obj += step * total / ((1 - r) * weight + r * top)
    got_misfit, got_numerator, got_weight = ptycho.reference(
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
        def __getattr__(self, name):
            return getattr(np, name)

    atomic = types.ModuleType("cupyx")
    atomic.scatter_add = lambda a, index, values: np.add.at(a, index, values)
    monkeypatch.setitem(sys.modules, "cupy", StandIn("cupy"))
    monkeypatch.setitem(sys.modules, "cupyx", atomic)
    args = _arguments(rng, 6, np.float32, moved, True)
    mine = copy.deepcopy(args)
    want = ptycho.reference(*args)
    got = ptycho.gpu(*mine)
    np.testing.assert_allclose(mine[0], args[0], rtol=1e-12, atol=1e-12)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12)
