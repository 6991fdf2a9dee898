"""The kernel contract kit: every registered implementation of an operation equals its NumPy
reference on random data (never zeros or constants, wide integer ranges), odd shapes, strided
tiles, every input dtype it declares, and, where it declares it, tiles in reversed byte order.
GPU implementations run under the CUDA simulator in a child process, with NumPy standing in for
CuPy (tiny inputs: the simulator runs one Python thread per CUDA thread).

An operation's test module subclasses :class:`KernelContract` (as ``TestXxxContract``) and says
how to make the arguments of one call and what the outputs must then hold::

    class TestSumFramesContract(KernelContract):
        op = "sum_frames"

        def arguments(self, rng, tile):
            return (flat(tile), rng.standard_normal(tile[0].size))

        def expected(self, args):
            return [args[1] + sum_frames.reference(args[0])]

        def outputs(self, args):
            return [args[1]]

The first argument is always the tile; ``swap=True`` is passed where the tile is given in
reversed byte order. Not a test module itself (no ``test_`` prefix).
"""

from __future__ import annotations

import copy
import importlib.util
import inspect
import json
import os
import sys
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from libertem_gpu.kernels import get_impl, get_kernel, registry
from tests import background

#: Every tile dtype the CPU kernels accept (native byte order).
DTYPES = (
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float32",
    "float64",
    "bool",
)
#: ``(frames, (rows, cols))``: odd sizes that no block, chunk or lane count divides.
SHAPES = ((1, (1, 1)), (3, (3, 7)), (7, (13, 17)))
#: The simulator's cases: a few frames of a few pixels (contiguous: the simulator copies
#: arguments to its "device" and refuses strided ones).
SIM_SHAPES = ((3, (3, 5)), (4, (2, 3)))
#: The dtypes the simulator runs: one of each kind and width the GPU wrappers tell apart (bool
#: is viewed as uint8 there; every other type only changes the load). In the simulator the
#: kernels run as Python on NumPy scalars, so more dtypes would test NumPy's conversions, not
#: the GPU's, at about 1 s of simulation each: every declared dtype runs on a real GPU
#: (``test_gpu_matches_reference``, ``pytest -m gpu``).
SIM_DTYPES = ("uint8", "uint16", "uint32", "int16", "float32", "float64", "bool")
#: Dtypes that also run the second simulator case (it picks other code paths in some
#: operations, e.g. GEMM for several masks); the others run the first only.
SIM_SECOND_DTYPES = ("uint16", "float64")
#: The dtype that also runs the larger cases below (the simulator is slow).
SIM_LARGE_DTYPE = "uint16"
#: Shapes that exercise the wrappers' grid logic with the simulator's block of 32 threads and
#: chunks of 16 blocks: pixels over several blocks with a ragged last one, then
#: (``KernelContract.sim_many_frames``, (3, 4)): frames over several chunks, and more frames than
#: a block (reductions over frames in several groups).
SIM_LARGE_SHAPES = ((2, (7, 11)), (2, (23, 29)))
#: Backends whose implementations run on a GPU (here: in the simulator).
GPU_BACKENDS = frozenset({"cupy"})

ROOT = Path(__file__).resolve().parents[2]
_SIM_SCRIPT = Path(__file__).with_name("kit_sim.py")


def random_tile(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Random values over a wide range of ``dtype``: the whole range up to 32 bits, +-2**40 for
    64-bit integers (sums stay exact in float64), standard normal times 1000 for floats."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) > 0.5
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        lo = max(int(info.min), -(2**40))
        hi = min(int(info.max), 2**40)
        return rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64).astype(dtype)
    return (rng.standard_normal(shape) * 1000).astype(dtype)


def flat(tile: np.ndarray) -> np.ndarray:
    """``(n, rows, cols)`` as ``(n, rows * cols)``, a view even for strided frames."""
    return tile.reshape(tile.shape[0], -1)


def _swap_tile(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments with the tile's bytes reversed per element, viewed as its native dtype
    (as a big-endian file maps into memory)."""
    return (args[0].byteswap(), *args[1:])


class KernelContract:
    """Base of an operation's contract tests; subclass it as ``TestXxxContract``."""

    #: The operation's name in the catalog.
    op: ClassVar[str]
    #: Dtypes to test (those the implementation declares are tested among these).
    dtypes: ClassVar[tuple[str, ...]] = DTYPES
    #: Tolerance, relative to the largest magnitude of the expected output.
    rtol: ClassVar[float] = 1e-12
    #: Whether the simulator runs this operation's GPU implementation (False: real GPU only).
    simulate: ClassVar[bool] = True
    #: Frames of the simulator's many-frames case (see :data:`SIM_LARGE_SHAPES`). Kernels with
    #: a block per frame (grid ``(frames, pixel chunks)``) take 17: more frames only add blocks,
    #: which the simulator runs one Python thread each (35 frames: 6-7 s a case).
    sim_many_frames: ClassVar[int] = 35

    # --- what a subclass says ----------------------------------------------------------------

    def arguments(self, rng: np.random.Generator, tile: np.ndarray) -> tuple[Any, ...]:
        """The arguments of one call, the tile ``(n, rows, cols)`` (or a view of it) first;
        outputs hold random values, so that accumulating is checked."""
        raise NotImplementedError

    def expected(self, args: tuple[Any, ...]) -> list[np.ndarray]:
        """What :meth:`outputs` must hold after the call, from the reference."""
        raise NotImplementedError

    def outputs(self, args: tuple[Any, ...]) -> list[Any]:
        """The arrays the call updates."""
        raise NotImplementedError

    def call(self, kernel: Any, args: tuple[Any, ...], swap: bool) -> None:
        """Call the implementation (operations with a prepare step override this)."""
        if swap:
            kernel(*args, swap=True)
        else:
            kernel(*args)

    # --- the kit -----------------------------------------------------------------------------

    def check(
        self,
        backend: str,
        dtype: str,
        shape: Any,
        strided: bool,
        swap: bool,
        on_device: bool = False,
    ) -> None:
        """One case: make the arguments, run ``backend``'s implementation, compare;
        ``on_device``: the arrays go to the GPU first (CuPy), the outputs come back."""
        n, sig = shape
        rng = np.random.default_rng(zlib.crc32(f"{self.op}{dtype}{n}{strided}{swap}".encode()))
        if strided:  # every other frame of a larger stack: the first axis strided
            tile = random_tile(rng, (2 * n, *sig), dtype)[::2]
        else:
            tile = random_tile(rng, (n, *sig), dtype)
        args = self.arguments(rng, tile)
        want = self.expected(copy.deepcopy(args))
        if swap:
            args = _swap_tile(args)
        if on_device:
            import cupy as cp

            args = tuple(cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args)
        self.call(get_kernel(self.op, backend), args, swap)
        got = [o.get() if on_device else np.asarray(o) for o in self.outputs(args)]
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            w = np.asarray(w)
            assert g.shape == w.shape, (g.shape, w.shape)
            if w.dtype.kind in "fc":
                scale = float(np.max(np.abs(w[np.isfinite(w)]), initial=0.0)) + 1.0
                np.testing.assert_allclose(g, w, rtol=self.rtol, atol=self.rtol * scale)
            else:
                np.testing.assert_array_equal(g, w)

    def backends(self, gpu: bool) -> list[str]:
        """Registered backends of the operation (the reference aside), GPU or not."""
        found = [b for o, b in registry.registered_kernels() if o == self.op]
        return [b for b in found if b != registry.REFERENCE and (b in GPU_BACKENDS) == gpu]

    def not_applicable(self, test: str, dtype: str | None = None) -> str | None:
        """Why ``test`` (with ``dtype``) does not apply to this operation, or None: such cases
        are left out at collection (tests/kernels/conftest.py) rather than skipped, so that a
        skip always means missing hardware."""
        if test == "test_cpu_matches_reference" and dtype is not None:
            declared = any(
                dtype in self.dtypes and np.dtype(dtype) in get_impl(self.op, b).dtypes
                for b in self.backends(gpu=False)
            )
            return None if declared else f"{self.op} declares no CPU implementation for {dtype}"
        if test == "test_cpu_reads_stored_byte_order":
            swapping = any(
                np.dtype(d) in get_impl(self.op, b).swaps
                for b in self.backends(gpu=False)
                for d in self.dtypes
            )
            return None if swapping else f"{self.op} reads native byte order only"
        if test in ("test_gpu_matches_reference", "test_gpu_in_simulator"):
            if not self.backends(gpu=True):
                return f"{self.op} has no GPU implementation"
            if test == "test_gpu_in_simulator" and not self.simulate:
                return f"{self.op}'s GPU implementation runs on a real GPU only"
        return None

    def test_declared(self) -> None:
        """The operation is in the catalog with a reference and a CPU implementation, whose
        declared dtypes the kit knows how to test."""
        assert callable(get_kernel(self.op, registry.REFERENCE))
        assert self.backends(gpu=False), f"no CPU implementation of {self.op}"
        for backend in self.backends(gpu=False) + self.backends(gpu=True):
            impl = get_impl(self.op, backend)
            assert {d.name for d in impl.dtypes} <= set(DTYPES)
            assert impl.swaps <= impl.dtypes

    @pytest.mark.parametrize("strided", [False, True])
    @pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1][0]}x{s[1][1]}")
    @pytest.mark.parametrize("dtype", DTYPES)
    def test_cpu_matches_reference(self, dtype: str, shape: Any, strided: bool) -> None:
        ran = False
        for backend in self.backends(gpu=False):
            if dtype in self.dtypes and np.dtype(dtype) in get_impl(self.op, backend).dtypes:
                self.check(backend, dtype, shape, strided, swap=False)
                ran = True
        if not ran:
            pytest.skip(f"{self.op} declares no CPU implementation for {dtype}")

    def test_cpu_reads_stored_byte_order(self) -> None:
        """Where an implementation declares that it swaps as it reads, it gives the same
        results from byte-reversed tiles (``swap=True``)."""
        ran = False
        for backend in self.backends(gpu=False):
            swaps = get_impl(self.op, backend).swaps
            for dtype in (d for d in self.dtypes if np.dtype(d) in swaps):
                self.check(backend, dtype, SHAPES[-1], True, swap=True)
                ran = True
        if not ran:
            pytest.skip(f"{self.op} reads native byte order only")

    @pytest.mark.gpu
    def test_gpu_matches_reference(self) -> None:
        """On a real GPU (``-m gpu``): every GPU implementation on strided odd-shaped tiles of
        every dtype it declares."""
        from libertem_gpu.backends import device

        backends = self.backends(gpu=True)
        if not backends:
            pytest.skip(f"{self.op} has no GPU implementation")
        info = device.probe()
        if not info.available:
            pytest.skip(f"no usable GPU: {info.reason}")
        for backend in backends:
            for dtype in self.dtypes:
                if np.dtype(dtype) in get_impl(self.op, backend).dtypes:
                    self.check(backend, dtype, SHAPES[-1], True, swap=False, on_device=True)

    def test_gpu_in_simulator(self) -> None:
        backends = self.backends(gpu=True)
        if not backends:
            pytest.skip(f"{self.op} has no GPU implementation")
        if not self.simulate:
            pytest.skip(f"{self.op}'s GPU implementation runs on a real GPU only")
        results = simulator_results(type(self))
        for backend in backends:
            cases = {k: v for k, v in results.items() if k.startswith(f"{self.op}[{backend}]")}
            assert cases, f"the simulator ran no case of {self.op} on {backend}"
            failed = {k: v for k, v in cases.items() if v != "ok"}
            assert not failed, "\n".join(f"{k}:\n{v}" for k, v in failed.items())


# --- the simulator run, shared by the contracts of a session ---------------------------------

_sim_results: dict[str, str] = {}
_sim_done: set[str] = set()
#: The contracts whose simulator runs :func:`start_simulator` started in the background, by
#: child (:func:`_sim_key`).
_sim_started: dict[str, list[str]] = {}


def _name(cls: type) -> str:
    """``module=path:qualname``: the child loads the test module from its file."""
    return f"{cls.__module__}={inspect.getfile(cls)}:{cls.__qualname__}"


def _contracts() -> list[type[KernelContract]]:
    found, todo = [], list(KernelContract.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if getattr(cls, "op", None) and cls.simulate:
            found.append(cls)
    return found


def _sim_key(cls: type) -> str:
    """One simulator child per test module: a module's simulator test waits for its own
    contracts only, not for every module's (about 90 s of simulation in all, on one core)."""
    return f"kernel-simulator-{cls.__module__.rsplit('.', 1)[-1]}"


def _sim_child(todo: list[str]) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["NUMBA_ENABLE_CUDASIM"] = "1"
    return [sys.executable, str(_SIM_SCRIPT), *todo], env


def start_simulator(classes: list[type[KernelContract]]) -> None:
    """Start the simulator run of ``classes`` in the background (``tests/background.py``), so
    that it runs on a second core while the session goes on; :func:`simulator_results`
    collects it. Does nothing without numba-cuda."""
    if _sim_started or importlib.util.find_spec("numba_cuda") is None:
        return
    for cls in classes:
        if cls.simulate and _name(cls) not in _sim_done:
            _sim_started.setdefault(_sim_key(cls), []).append(_name(cls))
    for key, todo in _sim_started.items():
        todo.sort()
        background.start(key, *_sim_child(todo), cwd=str(ROOT))


def simulator_results(cls: type[KernelContract]) -> dict[str, str]:
    """The simulator's results (``{case: "ok" | traceback}``) of ``cls`` and the contracts of
    its module: collected from the module's background child, or run now in one child process
    where none was started."""
    if importlib.util.find_spec("numba_cuda") is None:
        pytest.skip("numba-cuda is not installed (pip install numba-cuda[cu13])")
    if _name(cls) not in _sim_done:
        key = _sim_key(cls)
        if _name(cls) in _sim_started.get(key, ()):
            todo = _sim_started.pop(key)
        else:
            same_module = {_name(c) for c in _contracts() if _sim_key(c) == key}
            key, todo = f"{key}-now", sorted(same_module - _sim_done | {_name(cls)})
        done = background.collect(key, *_sim_child(todo), cwd=str(ROOT))
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULTS ")]
        if done.returncode != 0 or not lines:
            raise AssertionError(
                f"simulator run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        _sim_results.update(json.loads(lines[-1][len("RESULTS ") :]))
        _sim_done.update(todo)
    return _sim_results


def run_simulated(cls: type[KernelContract]) -> dict[str, str]:
    """Run one contract's GPU cases here (in the simulator child): the declared dtypes among
    :data:`SIM_DTYPES` on the first of :data:`SIM_SHAPES`, a few on the second."""
    import traceback

    contract = cls()
    results = {}
    for backend in contract.backends(gpu=True):
        impl = get_impl(contract.op, backend)
        for dtype in contract.dtypes:
            if dtype not in SIM_DTYPES or np.dtype(dtype) not in impl.dtypes:
                continue
            shapes = SIM_SHAPES if dtype in SIM_SECOND_DTYPES else SIM_SHAPES[:1]
            if dtype == SIM_LARGE_DTYPE:
                shapes = (*shapes, *SIM_LARGE_SHAPES, (contract.sim_many_frames, (3, 4)))
            for shape in shapes:
                key = f"{contract.op}[{backend}][{dtype}][{shape[0]}x{shape[1]}]"
                try:
                    contract.check(backend, dtype, shape, False, swap=False)
                    results[key] = "ok"
                except Exception:
                    results[key] = traceback.format_exc(limit=6)
    return results
