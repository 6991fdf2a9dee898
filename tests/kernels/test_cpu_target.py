import pytest

from libertem_gpu.kernels import cpu_target


@pytest.fixture
def numba_config(monkeypatch):
    from numba.core import config

    cpu_target.target_features.cache_clear()
    yield lambda name, features: (
        monkeypatch.setattr(config, "CPU_NAME", name),
        monkeypatch.setattr(config, "CPU_FEATURES", features),
    )
    cpu_target.target_features.cache_clear()


def test_explicit_features_win(numba_config):
    numba_config("haswell", "+avx2,+fma,-avx512f,-avx512dq")
    assert cpu_target.target_has("avx2", "fma")
    assert not cpu_target.target_has("avx512dq")


@pytest.mark.parametrize(
    ("name", "avx512"),
    [("haswell", False), ("znver3", False), ("skylake-avx512", True), ("znver4", True)],
)
def test_cpu_name_without_features(numba_config, name, avx512):
    numba_config(name, "")
    assert cpu_target.target_has("avx512dq") is avx512
    assert cpu_target.target_has("avx2", "fma")


def test_unknown_cpu_name_without_features_claims_nothing(numba_config):
    numba_config("x86-64", "")
    assert not cpu_target.target_has("avx2")
    assert not cpu_target.target_has("avx512f")


def test_host_features_when_unset(numba_config):
    # Numba compiles for the host's features when none are named, even under another CPU name
    import llvmlite.binding as llvm

    numba_config("haswell", None)
    host = llvm.get_host_cpu_features()
    assert cpu_target.target_has("avx512dq") is bool(host.get("avx512dq"))
    assert cpu_target.target_has("sse2")


@pytest.mark.parametrize(
    ("name", "amd"),
    [
        ("znver4", True),
        ("znver2", True),
        ("btver2", True),
        ("sapphirerapids", False),
        ("skylake-avx512", False),
        ("generic", False),
    ],
)
def test_host_is_amd_by_llvm_cpu_name(host_cpu, name, amd):
    host_cpu(name)
    assert cpu_target.host_is_amd() is amd
