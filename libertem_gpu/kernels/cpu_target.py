"""What the CPU kernels are compiled for: the instruction-set features of Numba's target.

Some kernels have two loop shapes, each fast on one kind of CPU and slow on the other (an int64
loop that needs AVX-512's vector int64 multiply and conversion, a float64 loop for AVX2). They
ask :func:`target_has` which the compiled code may use. That is the CPU Numba compiles for, not
always the host: ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` name another one (benchmarks compile
for ``haswell`` on an AVX-512 machine to measure AVX2 code).
"""

from __future__ import annotations

import functools

__all__ = ["host_is_amd", "target_features", "target_has"]

# LLVM's names of AMD's x86 cores (Zen: znver1-5; older: bdver, btver, amdfam10, k8).
_AMD_CPUS = ("znver", "bdver", "btver", "amdfam", "k8", "athlon", "opteron")

# CPU names (LLVM's) whose default features include AVX-512, for a target named without an
# explicit feature list (NUMBA_CPU_FEATURES="").
_AVX512_CPUS = frozenset(
    {
        "knl",
        "knm",
        "skylake-avx512",
        "skx",
        "cascadelake",
        "cooperlake",
        "cannonlake",
        "icelake-client",
        "icelake-server",
        "rocketlake",
        "tigerlake",
        "sapphirerapids",
        "emeraldrapids",
        "graniterapids",
        "graniterapids-d",
        "diamondrapids",
        "znver4",
        "znver5",
        "x86-64-v4",
    }
)
_AVX512_DEFAULTS = frozenset({"avx512f", "avx512dq", "avx512bw", "avx512vl", "avx512cd"})
# CPU names whose default features include AVX2 and FMA (and those above).
_AVX2_CPUS = frozenset(
    {
        "haswell",
        "broadwell",
        "skylake",
        "alderlake",
        "raptorlake",
        "meteorlake",
        "arrowlake",
        "lunarlake",
        "znver1",
        "znver2",
        "znver3",
        "x86-64-v3",
    }
)
_AVX2_DEFAULTS = frozenset({"avx", "avx2", "fma"})


@functools.cache
def target_features() -> frozenset[str]:
    """The features (LLVM's names, e.g. ``"avx2"``, ``"avx512dq"``) Numba compiles for.

    Numba takes ``NUMBA_CPU_FEATURES`` where it is set and the host's features otherwise, even
    where ``NUMBA_CPU_NAME`` names another CPU; an empty feature list leaves them to the CPU
    name (only AVX2 with FMA and AVX-512 are told apart then, from :data:`_AVX2_CPUS` and
    :data:`_AVX512_CPUS`).
    """
    from numba.core import config

    features = getattr(config, "CPU_FEATURES", None)  # set by Numba at import, untyped
    if features is None:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features().flatten()
    if not features:
        name = (getattr(config, "CPU_NAME", None) or "").lower()
        if name in _AVX512_CPUS:
            return _AVX512_DEFAULTS | _AVX2_DEFAULTS
        return _AVX2_DEFAULTS if name in _AVX2_CPUS else frozenset()
    return frozenset(f[1:] for f in features.split(",") if f.startswith("+"))


def target_has(*features: str) -> bool:
    """Whether the compiled kernels may use every one of ``features`` (LLVM names)."""
    return set(features) <= target_features()


@functools.cache
def host_is_amd() -> bool:
    """Whether this machine's CPU is one of AMD's (by LLVM's name for the host CPU).

    Asked where the host's microarchitecture, not the instruction set compiled for, decides
    between loop shapes: AMD's prefetchers make software prefetch cost
    (:func:`libertem_gpu.kernels.prefetch.enabled`), and Zen 4 multiplies int64 vectors in
    one instruction where Intel takes three uops (:mod:`libertem_gpu.kernels.moments_cpu`).
    """
    import llvmlite.binding as llvm

    return llvm.get_host_cpu_name().lower().startswith(_AMD_CPUS)
