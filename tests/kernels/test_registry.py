import subprocess
import sys

import pytest

from libertem_gpu.errors import BackendError
from libertem_gpu.kernels import get_kernel, registry
from libertem_gpu.kernels.sum_frames import cpu, reference

OPS = ["sum_frames", "sum_sig", "moments", "max", "min", "masks_dense", "masks_sparse", "com"]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", ["numpy", "reference"])
def test_all_ops_resolve(op, backend):
    assert callable(get_kernel(op, backend))


def test_lookup_and_register():
    assert get_kernel("sum_frames", "numpy") is cpu
    assert get_kernel("sum_frames", "reference") is reference
    with pytest.raises(LookupError, match="sum_frames/numpy"):
        get_kernel("sum_frames", "nope")
    with pytest.raises(BackendError):
        get_kernel("nope", "numpy")
    registry.register_kernel("test_op", "testing", "libertem_gpu.kernels.sum_sig:reference")
    try:
        assert get_kernel("test_op", "testing").__module__.endswith("sum_sig")
    finally:
        registry._TABLE.pop(("test_op", "testing"))
        registry._resolved.pop(("test_op", "testing"))


def test_import_is_lazy():
    code = (
        "import sys, libertem_gpu.kernels as k; k.get_kernel('masks_dense', 'numpy');"
        "assert 'cupy' not in sys.modules;"
        "assert 'libertem_gpu.kernels.com' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
