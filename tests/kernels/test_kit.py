"""The kernel contract kit itself: every operation in the catalog has a contract, and the kit's
data are what it promises (random, wide ranges, odd shapes)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from libertem_gpu.kernels import backends_for, get_impl, reads_stored_order, registry
from libertem_gpu.kernels.catalog import OPERATIONS
from libertem_gpu.kernels.operation import Impl
from tests.kernels.kit import DTYPES, SHAPES, random_tile


def _contract_ops() -> set[str]:
    """Operations named by a ``KernelContract`` subclass in a test module of this folder
    (read as text, so that no test module is imported twice)."""
    found = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        text = path.read_text()
        for body in re.split(r"\nclass ", text)[1:]:
            header, _, rest = body.partition("\n")
            if "Contract" in header:
                found.update(re.findall(r'^    op = "(\w+)"', rest.split("\nclass ")[0], re.M))
    return found


def test_every_operation_has_a_contract():
    assert {op.name for op in OPERATIONS} <= _contract_ops()


def test_every_cpu_dtype_is_in_the_kit():
    from libertem_gpu.kernels.tiles import SUPPORTED_DTYPES

    assert {d.name for d in SUPPORTED_DTYPES} == set(DTYPES)


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_tiles_are_random_and_wide(dtype):
    rng = np.random.default_rng(5)
    tile = random_tile(rng, (7, 13, 17), dtype)
    assert tile.dtype == np.dtype(dtype)
    assert len(np.unique(tile)) > (1 if dtype == "bool" else 100)
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        span = min(int(info.max), 2**40) - max(int(info.min), -(2**40))
        assert int(tile.max()) - int(tile.min()) > span // 2


def test_shapes_are_odd():
    for n, (rows, cols) in SHAPES:
        assert n % 2 and rows % 2 and cols % 2


def test_capabilities_answer_the_planner():
    assert backends_for("sum_frames") == ("numpy", "cupy")
    assert backends_for("masks_spans") == ("numpy",)
    assert backends_for("sum_frames", "masks_spans") == ("numpy",)
    assert reads_stored_order("sum_frames", "numpy", ">u2")
    assert reads_stored_order("sum_frames", "numpy", np.uint32)
    assert not reads_stored_order("sum_frames", "numpy", np.int16)
    assert not reads_stored_order("sum_frames", "cupy", np.uint16)  # swapped on the device
    assert not reads_stored_order("moments", "numpy", np.uint16)
    assert not reads_stored_order("nope", "numpy", np.uint16)
    assert get_impl("apply_masks", "cupy").target == "libertem_gpu.kernels.masks_gpu:prepare"


def test_a_registered_impl_states_what_it_reads():
    impl = Impl(
        "libertem_gpu.kernels.sum_sig:reference",
        dtypes=frozenset({np.dtype(np.uint16)}),
        swaps=frozenset({np.dtype(np.uint16)}),
    )
    registry.register_kernel("kit_op", "testing", impl)
    try:
        assert reads_stored_order("kit_op", "testing", ">u2")
        assert backends_for("kit_op") == ("testing",)
    finally:
        registry._TABLE.pop(("kit_op", "testing"))
        registry._resolved.pop(("kit_op", "testing"), None)


def test_asking_for_the_numpy_kernels_imports_no_gpu_code():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, libertem_gpu.kernels as k\n"
        "from libertem_gpu.kernels import masks\n"
        "for op in ('sum_frames', 'com', 'apply_masks', 'centre_of_mass'):\n"
        "    k.get_kernel(op, 'numpy')\n"
        "k.get_impl('sum_frames', 'cupy')\n"
        "bad = [m for m in ('cupy', 'numba.cuda', 'libertem_gpu.kernels.masks_gpu',"
        " 'libertem_gpu.kernels.com_gpu') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
