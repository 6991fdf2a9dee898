#!/usr/bin/env bash
# Download, on a machine with PyPI, every wheel the GPU machine lacks for benchmarks/run_gpu.sh
# (Python 3.12, manylinux x86_64), into the ignored folder .whl/ that travels with the working
# tree when the device call names it in `carry` (64 MiB in all, the working tree included).
#
#   bash benchmarks/gpu_wheels.sh            # download, then check completeness
#   bash benchmarks/gpu_wheels.sh --check    # only check what is in .whl/
#
# Every wheel is named with its version and fetched with --no-deps: kvikio's own dependencies
# pull the CUDA toolkit wheels (about 2 GB), which the GPU machine has already; only the cuFile
# library (nvidia-cufile) comes along. numpy, CuPy, numba and numba-cuda are never fetched into
# .whl/ (the machine has them, and run_gpu.sh installs with --no-deps so that nothing replaces
# them). The one exception is .whl/numpy-pin/: numpy < 2.5 (fault 3 of issue 15, numba-cuda
# 0.30 calls the np.row_stack that numpy 2.5 removed), installed by run_gpu.sh only where the
# machine's numba-cuda fails to compile a kernel with the machine's numpy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
DEST=${WHEEL_DIR:-.whl}
LIMIT_MIB=${WHEEL_LIMIT_MIB:-56}   # leaves room for the working tree under the 64 MiB carry limit

# What `pip install ".[gpu]" pytest-benchmark` resolved for Python 3.12 (2026-12-02), less what
# the GPU machine's image holds in versions that work (numpy, CuPy, numba, numba-cuda, the CUDA
# wheels, pandas, h5py, pytest). Pure-Python and binary dependencies of dask/distributed/
# dask-cuda/kvikio are listed even where the image may have them, so the run does not depend on
# the image's versions. Not needed on Python 3.12 (so not carried): importlib-metadata, zipp
# (dask wants them below 3.12 only), urllib3 (distributed no longer requires it).
WHEELS=(
    # the packages the check needs
    dask==2026.7.1
    distributed==2026.7.1
    dask-cuda==26.10.0
    rapids-dask-dependency==26.10.0
    kvikio-cu13==26.10.0
    libkvikio-cu13==26.10.0
    nvidia-cufile==1.20.0.107
    rapids-logger==0.3.0
    pytest-benchmark==5.3.1
    py-cpuinfo2==10.1.1
    # their dependencies
    cloudpickle==3.1.3
    fsspec==2026.9.0
    toolz==1.2.0
    partd==1.4.2
    locket==1.0.0
    pyyaml==6.0.4
    msgpack==1.2.4
    psutil==7.2.2
    sortedcontainers==2.4.0
    tblib==3.2.2
    tornado==6.6.1
    zict==3.0.0
    click==8.5.1
    jinja2==3.1.6
    markupsafe==3.0.4
    packaging==26.4
    nvidia-ml-py==13.615.71
)
NUMPY_PIN=numpy==2.4.6

PLATFORMS=(
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64
)
download() {
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --abi cp312 --abi abi3 --abi none "${PLATFORMS[@]}" --platform any \
        -d "$1" "${@:2}"
}

if [ "${1:-}" != "--check" ]; then
    mkdir -p "$DEST/numpy-pin"
    echo "downloading ${#WHEELS[@]} wheels into $DEST/"
    download "$DEST" "${WHEELS[@]}"
    download "$DEST/numpy-pin" "$NUMPY_PIN"
fi

# Completeness: one wheel per name, every requirement met by a wheel here or by the image, and
# the total under the limit (benchmarks/wheel_check.py says what is missing and why).
"$PY" benchmarks/wheel_check.py "$DEST" --limit-mib "$LIMIT_MIB"

# Where a Python 3.12 is at hand (PY312, python3.12 on PATH, or pyenv's), install the wheels as
# run_gpu.sh does (--no-index --no-deps into a throwaway target) and import those that need
# nothing the GPU machine alone has (numpy, CuPy, CUDA).
if [ -z "${PY312:-}" ]; then
    for candidate in python3.12 "$HOME"/.pyenv/versions/3.12.*/bin/python3.12; do
        if "$candidate" --version > /dev/null 2>&1; then
            PY312=$candidate
            break
        fi
    done
fi
if [ -n "${PY312:-}" ]; then
    target=$(mktemp -d "${TMPDIR:-/tmp}/gpu-wheels.XXXXXX")
    trap 'rm -rf "$target"' EXIT
    "$PY312" -m pip install --quiet --root-user-action=ignore --isolated --no-index --no-deps --no-compile \
        --disable-pip-version-check --target "$target" "$DEST"/*.whl
    PYTHONPATH=$target "$PY312" -c '
import importlib
import sys
mods = ["dask", "distributed", "yaml", "msgpack", "psutil", "tornado", "markupsafe", "jinja2",
        "zict", "tblib", "cloudpickle", "fsspec", "toolz", "partd", "locket", "click", "pynvml",
        "sortedcontainers", "packaging", "cpuinfo", "rapids_dask_dependency"]
for m in mods:
    importlib.import_module(m)
print(f"installed on Python {sys.version.split()[0]} with --no-index --no-deps;",
      f"{len(mods)} modules import")'
else
    echo "no Python 3.12 here: skipped the install check (set PY312=/path/to/python3.12)"
fi
