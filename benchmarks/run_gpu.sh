#!/usr/bin/env bash
# On the GPU machine (Python 3.12, CUDA 13, CuPy + numba-cuda + pytest + h5py preinstalled):
# install the wheels in .whl/ (dask, kvikio, ...), then run the GPU tests, the CPU suite and the
# GPU benchmark, writing logs and results under $OUT. Usage: OUT=/some/dir benchmarks/run_gpu.sh
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-run}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"

if compgen -G ".whl/*.whl" > /dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
        > "$OUT/pip.log" 2>&1 || echo "wheel install failed (see pip.log)" | tee -a "$OUT/summary.txt"
    export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

{
    echo "date: $(date -Is)"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
    "$PY" - <<'PYEOF'
from libertem_gpu.backends import device
info = device.probe()
print("probe:", info)
PYEOF
} > "$OUT/device.txt" 2>&1

status=0
"$PY" -m pytest -q -m gpu -p no:cacheprovider -rs tests \
    --junitxml="$OUT/gpu-tests.xml" > "$OUT/gpu-tests.log" 2>&1 || status=1
echo "gpu tests (-m gpu):" >> "$OUT/summary.txt"
tail -5 "$OUT/gpu-tests.log" >> "$OUT/summary.txt"

# The whole suite (CPU tests, CUDA simulator and PTX checks, and the gpu tests again).
"$PY" -m pytest -q -p no:cacheprovider tests --junitxml="$OUT/all-tests.xml" \
    > "$OUT/cpu-tests.log" 2>&1 || status=1
echo "whole suite:" >> "$OUT/summary.txt"
tail -5 "$OUT/cpu-tests.log" >> "$OUT/summary.txt"

BENCH_TMP="${BENCH_TMP:-/tmp}" "$PY" benchmarks/gpu.py --gib "${BENCH_GIB:-4}" --out "$OUT" \
    > "$OUT/bench.log" 2>&1 || status=1
echo "benchmark:" >> "$OUT/summary.txt"
tail -3 "$OUT/bench.log" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $status
