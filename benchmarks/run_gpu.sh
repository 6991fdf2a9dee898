#!/usr/bin/env bash
# The GPU check: everything a GPU machine should run for this project, in one command that ends
# within GPU_CHECK_BUDGET_S (330 s) on one H200. Steps, in order, each bounded by `timeout`, each
# failure recorded with its reason while the script goes on:
#
#   wheels        install the carried wheels (.whl/, made by benchmarks/gpu_wheels.sh) with
#                 --no-index --no-deps into a target folder on PYTHONPATH; check that numpy,
#                 CuPy, numba and numba-cuda are the machine's own afterwards
#   numba-compat  compile one kernel with numba.cuda.compile_ptx; where numba-cuda 0.30 fails on
#                 numpy >= 2.5 (np.row_stack, issue 15 fault 3) and .whl/numpy-pin/ has a wheel,
#                 put that numpy (< 2.5, what the gpu extra resolves to) first on PYTHONPATH
#   probe         versions, machine, device, each GPU kernel against NumPy, pinned H2D, kvikio
#   gpu-tests     pytest -m gpu (not the CPU suite), with addopts overridden so that it runs
#                 with or without pytest-benchmark
#   analyses      benchmarks/run_analyses.py --backend cupy: template matching, ring strain and
#                 SSB on small simulated files (ANALYSES_SIZE, 128MiB), each checked against its
#                 NumPy reference first; its JSON rewritten after every case (ANALYSES_CAP_S, 60 s)
#   bench         benchmarks/gpu.py: ceilings, then each analysis x mode x dtype, its JSON
#                 rewritten after every measurement
#   disks         benchmarks/bench_disks.py --device cuda: disk correlation at known positions
#                 and in whole frames on CuPy, and the cuFFT ceiling of the same transforms
#   ptycho        benchmarks/bench_ptychography.py --device gpu: seconds per iteration of
#                 iterative ptychography on CuPy against the cuFFT floor; its result goes into
#                 steps.json (key "ptychography"), the files that come back being eight already
#
# Writes under $OUT (the device tool's output folder: at most 8 files come back) and copies the
# results into benchmarks/results/ (RESULTS_DIR). Exits 0 where every step passed, else the
# number of failed steps (summary.txt and steps.json say which and why).
#
#   OUT=/tmp/gpu-run bash benchmarks/run_gpu.sh
#
# Settings (environment): GPU_CHECK_BUDGET_S (330), BENCH_GIB (1), BENCH_REPEAT (3),
# ANALYSES_SIZE (128MiB), ANALYSES_CAP_S (60),
# GPU_TESTS (tests), DISKS_CAP_S (60), DISKS_FRAMES (8192), PTYCHO_CAP_S (45), WHEEL_DIR (.whl),
# SITE_DIR (/tmp/gpu-check-site), RESULTS_DIR
# (benchmarks/results), GPU_CHECK_NUMPY_PIN (auto | never), PYTHON (python3).
# The step functions run indirectly (exported, through `bash -c` under `timeout`).
# shellcheck disable=SC2317
set -u
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-/tmp/gpu-check-out}  # outside the tree: nothing stray travels with the next call
RESULTS_DIR=${RESULTS_DIR:-$ROOT/benchmarks/results}
PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET_S:-330}
WHEEL_DIR=${WHEEL_DIR:-.whl}
SITE_DIR=${SITE_DIR:-/tmp/gpu-check-site}
GPU_TESTS=${GPU_TESTS:-tests}
mkdir -p "$OUT" "$RESULTS_DIR"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT
export PYTHONUNBUFFERED=1 PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export OUT PY WHEEL_DIR SITE_DIR GPU_TESTS SCRATCH
LOG="$OUT/check.log"
SUMMARY="$OUT/summary.txt"
STEPS="$SCRATCH/steps.tsv"
: > "$LOG"
: > "$STEPS"
printf 'GPU check %s, budget %ss\n' "$(date -u +%FT%TZ)" "$BUDGET" > "$SUMMARY"
failed=0

remaining() { echo $((BUDGET - SECONDS)); }

# step NAME CAP_S COMMAND...: run COMMAND with a timeout of min(CAP_S, time left), log its output
# under a header, and record status, seconds and reason (the last "REASON:" line it printed, else
# its last line) in steps.tsv.
step() {
    local name=$1 cap=$2 left rc t0 why status
    shift 2
    left=$(($(remaining) - 5))
    [ "$cap" -lt "$left" ] || cap=$left
    printf '\n===== %s (cap %ss, %ss used)\n' "$name" "$cap" "$SECONDS" >> "$LOG"
    if [ "$cap" -lt 5 ]; then
        status=skipped rc=-1 why="no time left in the ${BUDGET}s budget"
        t0=$SECONDS
    else
        t0=$SECONDS
        # bash -c: a step may be one of the functions below (exported), which timeout cannot run.
        # The log streams into check.log, so that a run killed from outside still shows it.
        timeout -k 5 "$cap" bash -c '"$@"' "$name" "$@" 2>&1 | tee -a "$LOG" > "$SCRATCH/$name.log"
        rc=${PIPESTATUS[0]}
        why=$(grep '^REASON: ' "$SCRATCH/$name.log" | tail -n 1 | cut -c9-)
        if [ "$rc" -eq 0 ]; then
            status=ok why=""
        elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
            status=timeout why="timed out after ${cap}s${why:+ ($why)}"
        else
            status=failed
            [ -n "$why" ] || why=$(grep -v '^\s*$' "$SCRATCH/$name.log" | tail -n 1 | cut -c1-300)
            why="exit $rc: ${why:-no output}"
        fi
    fi
    [ "$status" = ok ] || failed=$((failed + 1))
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$((SECONDS - t0))" "$why" >> "$STEPS"
    printf '%-13s %-8s %4ss  %s\n' "$name" "$status" "$((SECONDS - t0))" "$why" | tee -a "$SUMMARY"
}

# --- wheels ------------------------------------------------------------------------------------
install_wheels() {
    local before after
    shopt -s nullglob
    local wheels=("$WHEEL_DIR"/*.whl)
    shopt -u nullglob
    if [ ${#wheels[@]} -eq 0 ]; then
        echo "REASON: no wheels in $WHEEL_DIR/ (run benchmarks/gpu_wheels.sh where PyPI is" \
            "reachable, and name $WHEEL_DIR in the device call's carry)"
        return 1
    fi
    before=$("$PY" benchmarks/gpu_probe.py versions) || return 1
    echo "before: $before"
    rm -rf "$SITE_DIR"
    if ! "$PY" -m pip install --isolated --no-index --no-deps --no-compile --no-cache-dir \
        --disable-pip-version-check --target "$SITE_DIR" "${wheels[@]}" > "$SCRATCH/pip.log" 2>&1; then
        cat "$SCRATCH/pip.log"
        echo "REASON: pip install of ${#wheels[@]} wheels failed:" \
            "$(grep -m 1 '^ERROR' "$SCRATCH/pip.log" | cut -c1-250)"
        rm -f "$SCRATCH/pip.log"
        return 1
    fi
    cat "$SCRATCH/pip.log"
    rm -f "$SCRATCH/pip.log"
    after=$(PYTHONPATH="$SITE_DIR:$PYTHONPATH" "$PY" benchmarks/gpu_probe.py versions) || return 1
    PYTHONPATH="$SITE_DIR:$PYTHONPATH" "$PY" benchmarks/gpu_probe.py same-versions "$before" "$after"
}
export -f install_wheels
step wheels 90 install_wheels
if [ -d "$SITE_DIR" ] && grep -q $'^wheels\tok' "$STEPS"; then
    export PYTHONPATH="$SITE_DIR:$PYTHONPATH"
    # cuda-pathfinder (which libkvikio asks for libcufile) searches site-packages, never a
    # --target folder; after those it honours LD_LIBRARY_PATH, so the carried cuFile goes last
    # there (the image's own, where it has one, is still found first).
    if [ -d "$SITE_DIR/nvidia/cu13/lib" ]; then
        export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$SITE_DIR/nvidia/cu13/lib"
    fi
fi

# --- numpy that numba-cuda can compile with ----------------------------------------------------
numba_compat() {
    "$PY" benchmarks/gpu_probe.py numba-compat
    local rc=$?
    [ "$rc" -eq 3 ] || return "$rc"
    shopt -s nullglob
    local pin=("$WHEEL_DIR"/numpy-pin/numpy-*.whl)
    shopt -u nullglob
    if [ "${GPU_CHECK_NUMPY_PIN:-auto}" = never ] || [ ${#pin[@]} -eq 0 ]; then
        echo "REASON: numba-cuda cannot compile with this numpy, and no numpy < 2.5 is carried" \
            "($WHEEL_DIR/numpy-pin/) or GPU_CHECK_NUMPY_PIN=never"
        return 1
    fi
    echo "numba-cuda fails with the machine's numpy: putting ${pin[0]##*/} first on PYTHONPATH"
    "$PY" -m pip install --isolated --no-index --no-deps --no-compile --no-cache-dir \
        --disable-pip-version-check --target "$SITE_DIR-numpy" "${pin[0]}" || return 1
    PYTHONPATH="$SITE_DIR-numpy:$PYTHONPATH" "$PY" benchmarks/gpu_probe.py numba-compat
}
export -f numba_compat
rm -rf "$SITE_DIR-numpy"
step numba-compat 90 numba_compat
if [ -d "$SITE_DIR-numpy" ] && grep -q $'^numba-compat\tok' "$STEPS"; then
    export PYTHONPATH="$SITE_DIR-numpy:$PYTHONPATH"
    echo "numpy pinned below 2.5 for numba-cuda (issue 15, fault 3)" | tee -a "$SUMMARY"
fi

# --- probe, GPU tests, benchmark ----------------------------------------------------------------
{ echo "===== nvidia-smi"; nvidia-smi 2>&1 | head -n 20; } >> "$LOG"
step probe 90 "$PY" benchmarks/gpu_probe.py probe --out "$OUT/probe.json"

gpu_tests() {
    # addopts overridden: pyproject's has --benchmark-disable, which needs pytest-benchmark.
    # shellcheck disable=SC2086  # GPU_TESTS may name several paths
    # -v: each test's outcome streams into check.log, kept even if the step times out.
    "$PY" -m pytest -m gpu -o addopts="--import-mode=importlib -ra" -p no:cacheprovider -v \
        --junitxml="$OUT/gpu-tests.xml" $GPU_TESTS 2>&1 | tee "$SCRATCH/pytest.log"
    local rc=${PIPESTATUS[0]}
    if [ ! -s "$OUT/gpu-tests.xml" ]; then
        echo "REASON: pytest exited $rc without results: $(grep -v '^\s*$' "$SCRATCH/pytest.log" | tail -n 1)"
        return 1
    fi
    "$PY" benchmarks/gpu_probe.py junit "$OUT/gpu-tests.xml" || return 1
    return "$rc"
}
export -f gpu_tests
step gpu-tests 120 gpu_tests

# Results go to benchmarks/results/ only from a machine with a GPU (a dry run leaves it alone).
have_gpu=$("$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])).get("device")
print("yes" if isinstance(d, dict) else "no")' "$OUT/probe.json" 2>/dev/null || echo no)
bench_outs=(--out "$OUT")
[ "$have_gpu" = yes ] && bench_outs+=(--out "$RESULTS_DIR")
step analyses "${ANALYSES_CAP_S:-60}" "$PY" benchmarks/run_analyses.py --backend cupy \
    --size "${ANALYSES_SIZE:-128MiB}" --repeat 2 --only template_match,ring_strain,ssb \
    --out "$OUT/analyses-gpu.json"
# The disk-finding benchmark (issue 19) keeps DISKS_CAP_S (60 s) of the budget for itself
# (15 s without a GPU, where it only says so).
disks_cap=${DISKS_CAP_S:-60}
ptycho_cap=${PTYCHO_CAP_S:-45}
[ "$have_gpu" = yes ] || { disks_cap=15; ptycho_cap=15; }
bench_cap=$(($(remaining) - 10 - disks_cap - ptycho_cap))
step bench "$bench_cap" "$PY" benchmarks/gpu.py "${bench_outs[@]}" \
    --gib "${BENCH_GIB:-1}" --repeat "${BENCH_REPEAT:-3}" --deadline-s "$((bench_cap - 40))"
# Into $OUT, whose files are what the device tool brings back (RESULTS_DIR on that machine is
# not); the caller copies them into benchmarks/results/.
step disks "$disks_cap" "$PY" benchmarks/bench_disks.py --device cuda --frames "${DISKS_FRAMES:-8192}" \
    --repeat "${BENCH_REPEAT:-3}" --out "$OUT"
step ptycho "$ptycho_cap" "$PY" benchmarks/bench_ptychography.py --device gpu \
    --out "$SCRATCH/ptycho-gpu.json"

# --- summary ------------------------------------------------------------------------------------
"$PY" - "$STEPS" "$OUT/steps.json" "$BUDGET" "$SECONDS" "$failed" "$SCRATCH/ptycho-gpu.json" << 'PYEOF'
import json, os, sys
steps_tsv, out, budget, seconds, failed, ptycho = sys.argv[1:]
steps = []
for line in open(steps_tsv):
    name, status, rc, secs, why = line.rstrip("\n").split("\t", 4)
    steps.append({"step": name, "status": status, "rc": int(rc), "seconds": int(secs), "reason": why})
doc = {"budget_s": int(budget), "seconds": int(seconds), "failed": int(failed), "steps": steps}
if os.path.exists(ptycho):
    doc["ptychography"] = json.load(open(ptycho))
json.dump(doc, open(out, "w"), indent=2)
PYEOF
printf 'done in %ss; %s step(s) failed\n' "$SECONDS" "$failed" | tee -a "$SUMMARY"
if [ "$have_gpu" = yes ]; then
    stamp=$(date -u +%F)
    for f in summary.txt steps.json probe.json; do
        [ -f "$OUT/$f" ] && cp "$OUT/$f" "$RESULTS_DIR/$stamp-gpu-check-$f"
    done
    [ -f "$SCRATCH/ptycho-gpu.json" ] && cp "$SCRATCH/ptycho-gpu.json" "$RESULTS_DIR/$stamp-ptychography-gpu.json"
else
    echo "no GPU found: nothing written to $RESULTS_DIR" | tee -a "$SUMMARY"
fi
exit "$failed"
