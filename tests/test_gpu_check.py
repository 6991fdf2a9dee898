"""The GPU check (benchmarks/run_gpu.sh and its Python parts) without a GPU.

On a machine without a usable GPU every step must fail cleanly with its reason, the script must
still end (with the number of failed steps as its status) and leave the results skeleton; the
parts that do not need a GPU (the I/O path recorder, the sample check against NumPy, the JUnit
summary, the wheel-folder check) are checked directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from libertem_gpu.backends import device

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["wheels", "numba-compat", "probe", "gpu-tests", "analyses", "bench", "disks", "ptycho"]


def _load(name: str) -> ModuleType:
    path = ROOT / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


needs_no_gpu = pytest.mark.skipif(
    device.probe().available, reason="a GPU is usable here: run benchmarks/run_gpu.sh itself"
)
needs_shell = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("timeout") is None,
    reason="needs bash and coreutils' timeout",
)


def _run_check(tmp_path: Path, budget: int) -> tuple[subprocess.CompletedProcess, Path, Path]:
    out, results, wheels = tmp_path / "out", tmp_path / "results", tmp_path / "no-wheels"
    wheels.mkdir()
    env = {
        **os.environ,
        "OUT": str(out),
        "RESULTS_DIR": str(results),
        "WHEEL_DIR": str(wheels),
        "SITE_DIR": str(tmp_path / "site"),
        "GPU_TESTS": "tests/backends/test_cupy_backend.py",
        "GPU_CHECK_BUDGET_S": str(budget),
        "PYTHON": sys.executable,
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "run_gpu.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=budget + 30,
    )
    return proc, out, results


@needs_no_gpu
@needs_shell
def test_dry_run_fails_each_step_with_its_reason(tmp_path):
    proc, out, results = _run_check(tmp_path, budget=120)
    steps = json.loads((out / "steps.json").read_text())
    by_name = {s["step"]: s for s in steps["steps"]}
    assert [s["step"] for s in steps["steps"]] == STEPS
    failed = [s for s in steps["steps"] if s["status"] != "ok"]
    assert proc.returncode == steps["failed"] == len(failed) >= 5, proc.stdout + proc.stderr
    assert "no wheels in" in by_name["wheels"]["reason"]
    assert "no usable GPU" in by_name["probe"]["reason"]
    assert "no GPU test ran" in by_name["gpu-tests"]["reason"]
    assert by_name["bench"]["rc"] == 2 and "no usable GPU" in by_name["bench"]["reason"]
    assert by_name["disks"]["rc"] == 2 and "no usable GPU" in by_name["disks"]["reason"]
    assert by_name["ptycho"]["rc"] == 2 and "no usable GPU" in by_name["ptycho"]["reason"]
    assert "ptychography" not in steps  # no result without a GPU
    assert by_name["analyses"]["status"] == "failed"
    assert "no usable GPU" in by_name["analyses"]["reason"]
    # numba-compat passes where numba-cuda compiles here, and otherwise says why
    assert by_name["numba-compat"]["status"] == "ok" or by_name["numba-compat"]["reason"]
    for s in failed:
        assert s["reason"] and s["status"] in ("failed", "timeout", "skipped")
    summary = (out / "summary.txt").read_text()
    assert all(name in summary for name in STEPS)
    # the results skeleton, with the machine's facts
    (res_file,) = out.glob("*-gpu-check.json")
    res = json.loads(res_file.read_text())
    assert res["device"] is None
    assert res["ceilings"] == {"d2d_copy_GBps": None, "h2d_pinned_GBps": None}
    assert res["results"] == [] and "no usable GPU" in res["errors"][0]
    assert res["machine"]["date"] and res["machine"]["versions"]["numpy"] == np.__version__
    assert "cpu_model" in res["machine"] and "cpu_flags" in res["machine"]
    probe = json.loads((out / "probe.json").read_text())
    assert str(probe["device"]).startswith("failed") and "kvikio" in probe
    # what the device tool brings back: at most 8 plain files with plain names
    files = list(out.iterdir())
    assert len(files) <= 8 and all(re.fullmatch(r"[A-Za-z0-9._-]+", f.name) for f in files)
    assert not results.exists() or not any(results.iterdir())  # a dry run writes no results


@needs_shell
def test_steps_out_of_time_are_skipped_with_the_reason(tmp_path):
    proc, out, _ = _run_check(tmp_path, budget=4)
    steps = json.loads((out / "steps.json").read_text())["steps"]
    assert [s["status"] for s in steps] == ["skipped"] * len(STEPS)
    assert all("no time left" in s["reason"] for s in steps)
    assert proc.returncode == len(STEPS)


def test_io_path_recorder_sees_each_partitions_path(monkeypatch, rng, tmp_path):
    from libertem_gpu import config
    from libertem_gpu.backends.cupy_backend import CupyBackend
    from libertem_gpu.io.formats.raw import RawFileDataSet
    from libertem_gpu.io.memory import MemoryDataSet
    from libertem_gpu.io.tiles import TilePlan, TilingScheme
    from tests.backends.test_cupy_backend_logic import fake_cupy

    gpu = _load("gpu")
    cp = fake_cupy()
    monkeypatch.setattr(device, "require_cupy", lambda: cp)
    monkeypatch.setattr(CupyBackend, "iter_tiles", CupyBackend.iter_tiles)  # undone afterwards
    recorder = gpu.IOPathRecorder()
    recorder.install()
    data = rng.integers(0, 4096, size=(4, 5, 13, 17)).astype(np.uint16)
    path = tmp_path / "d.raw"
    data.tofile(path)
    raw = RawFileDataSet(
        path=str(path), nav_shape=(4, 5), sig_shape=(13, 17), dtype="uint16", num_partitions=3
    ).initialize()
    resident = MemoryDataSet(data=cp.asarray(data)).initialize()

    def run(ds):
        backend = CupyBackend()
        try:
            for p in ds.get_partitions():
                plan = TilePlan.for_partition(p, None, TilingScheme(depth=3), ds.sig_shape)
                for _ in backend.iter_tiles(ds, plan):
                    pass
        finally:
            backend.close()

    with config.set(io_backend="pread"):
        run(raw)
    assert recorder.take() == ["pinned"] * 3
    with config.set(io_backend="kvikio"), pytest.warns(RuntimeWarning, match="falling back"):
        run(raw)  # kvikio is not installed here: the path taken is the pinned one, and it says so
    assert set(recorder.take()) == {"pinned"}
    run(resident)
    assert set(recorder.take()) == {"resident"}
    assert recorder.take() == []


def test_sample_check_against_numpy(monkeypatch, rng, tmp_path):
    import libertem_gpu as lg

    gpu = _load("gpu")
    sig = (16, 20)
    monkeypatch.setattr(gpu, "SIG", sig)
    monkeypatch.setattr(gpu, "CY", 8.0)
    monkeypatch.setattr(gpu, "CX", 10.0)
    monkeypatch.setattr(gpu, "RADIUS", 6.0)
    data = rng.integers(0, 4096, size=(80, *sig)).astype(np.uint16)
    path = tmp_path / "d.raw"
    data.tofile(path)
    sample = gpu.Sample(np.memmap(path, dtype=np.uint16, mode="r", shape=data.shape), rng)
    with lg.Context("inline") as ctx:
        ds = ctx.load("memory", data=data.reshape(8, 10, *sig))
        for analysis in gpu.ANALYSES:
            result = ctx.run_udf(dataset=ds, udf=gpu.make_udf(analysis), backends="numpy")
            assert sample.check(analysis, result) < gpu.TOLERANCE.get(analysis, 1e-8), analysis
        # a row: timed, checked, and marked where the path taken is not its mode's (the numpy
        # backend reports none)
        row = gpu.measure(
            ctx, ds, "com", "resident", gpu.IOPathRecorder(), sample, 2, data.nbytes, "numpy"
        )
        assert row["GBps"] > 0 and len(row["seconds"]) == 2 and row["rel_error"] < 1e-6
        assert row["ok"] is False and "io_path None, expected 'resident'" in row["problem"]
        # a wrong answer is caught
        result = ctx.run_udf(dataset=ds, udf=gpu.make_udf("sumsig"), backends="numpy")
        result["intensity"].data[...] += 1.0
        assert sample.check("sumsig", result) > 1e-6


def test_junit_summary(tmp_path, capsys):
    probe = _load("gpu_probe")
    skipped = tmp_path / "skipped.xml"
    skipped.write_text(
        '<testsuites><testsuite><testcase classname="" name="m"><skipped message="collection '
        "skipped\">('m.py', 23, 'Skipped: no usable GPU: no CuPy')</skipped></testcase>"
        "</testsuite></testsuites>"
    )
    assert probe.junit_summary(skipped) == 1
    assert "REASON: no GPU test ran (1 skipped: no usable GPU: no CuPy)" in capsys.readouterr().out
    passed = tmp_path / "passed.xml"
    passed.write_text(
        '<testsuites><testsuite><testcase classname="a" name="t"/></testsuite></testsuites>'
    )
    assert probe.junit_summary(passed) == 0
    assert probe.junit_summary(tmp_path / "missing.xml") == 1


def _wheel(folder: Path, name: str, version: str, requires: list[str], tag: str = "py3-none-any"):
    path = folder / f"{name}-{version}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}-{version}.dist-info/METADATA", meta)


def test_wheel_check_finds_missing_duplicate_and_foreign_wheels(tmp_path):
    check = _load("wheel_check").check
    _wheel(tmp_path, "alpha", "1.0", ["beta>=2", "numpy<3", 'zipp; python_version < "3.12"'])
    _wheel(tmp_path, "beta", "2.1", [])
    assert check(tmp_path, 10) == []
    _wheel(tmp_path, "gamma", "1.0", ["delta"])
    _wheel(tmp_path, "beta", "1.0", [])
    _wheel(tmp_path, "eps", "1.0", [], tag="cp311-cp311-manylinux_2_28_x86_64")
    problems = "\n".join(check(tmp_path, 10))
    assert "delta" in problems and "two versions of beta" in problems
    assert "eps-1.0-cp311" in problems
