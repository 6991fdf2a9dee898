"""The software prefetch intrinsic: compiles inside a kernel, never faults, changes nothing."""

import platform

import numba
import numpy as np
import pytest

from libertem_gpu import config
from libertem_gpu.kernels import prefetch
from libertem_gpu.kernels.prefetch import prefetch_bytes, prefetch_span


@numba.njit(cache=False)
def _sum_with_prefetch(a, step, ahead):
    total = 0
    for i in range(0, a.size, step):
        prefetch_bytes(a, (i + ahead) * a.itemsize)
        for j in range(i, min(i + step, a.size)):
            total += a[j]
    return total


@pytest.mark.parametrize("ahead", [0, 64, 10**9])
def test_prefetch_changes_no_result_and_never_faults(ahead):
    # Far past the end of the array too: a prefetch is a hint, not a load.
    a = np.random.default_rng(2).integers(0, 1000, 1001).astype(np.uint16)
    assert _sum_with_prefetch(a, 32, ahead) == int(a.astype(np.int64).sum())


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction")
def test_prefetch_emits_an_l2_prefetch_on_x86():
    a = np.arange(64, dtype=np.float32)
    _sum_with_prefetch(a, 16, 16)
    asm = _sum_with_prefetch.inspect_asm(_sum_with_prefetch.signatures[0])
    assert "prefetcht1" in asm


@numba.njit(cache=False)
def _sum_with_span(a, chunk, ahead):
    total = 0
    for i in range(0, a.size, chunk):
        prefetch_span(a, i * a.itemsize + ahead, (i + chunk) * a.itemsize + ahead)
        for j in range(i, min(i + chunk, a.size)):
            total += a[j]
    return total


@pytest.mark.parametrize("ahead", [0, 512, 10**9])
def test_prefetch_span_changes_no_result_and_never_faults(ahead):
    a = np.random.default_rng(3).integers(0, 1000, 3001).astype(np.uint16)
    assert _sum_with_span(a, 1024, ahead) == int(a.astype(np.int64).sum())


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 instruction")
def test_prefetch_span_emits_l1_prefetches_on_x86():
    a = np.arange(4096, dtype=np.uint16)
    _sum_with_span(a, 1024, 512)
    asm = _sum_with_span.inspect_asm(_sum_with_span.signatures[0])
    assert "prefetcht0" in asm


@pytest.mark.parametrize(
    ("cpu_name", "gains"),
    [
        ("znver4", False),
        ("znver3", False),
        ("bdver2", False),
        ("sapphirerapids", True),
        ("haswell", True),
        ("neoverse-v2", True),
    ],
)
def test_auto_prefetches_except_on_amd(monkeypatch, host_cpu, cpu_name, gains):
    host_cpu(cpu_name)
    assert prefetch.enabled() is gains
    with config.set(software_prefetch=True):
        assert prefetch.enabled() is True
    with config.set(software_prefetch="off"):
        assert prefetch.enabled() is False
    monkeypatch.setenv("LIBERTEM_GPU_SOFTWARE_PREFETCH", "1")
    assert prefetch.enabled() is True
    monkeypatch.setenv("LIBERTEM_GPU_SOFTWARE_PREFETCH", "auto")
    assert prefetch.enabled() is gains
    monkeypatch.setenv("LIBERTEM_GPU_SOFTWARE_PREFETCH", "sometimes")
    with pytest.raises(ValueError, match="LIBERTEM_GPU_SOFTWARE_PREFETCH"):
        prefetch.enabled()
