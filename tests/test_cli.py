"""The ``libertem-gpu`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from libertem_gpu import __version__
from libertem_gpu.cli import main, parse_shape
from tests.conftest import random_data


@pytest.mark.parametrize(
    ("text", "expected"),
    [("16,16", (16, 16)), ("13x17", (13, 17)), ("7", (7,)), ("2 3 4", (2, 3, 4))],
)
def test_parse_shape(text, expected):
    assert parse_shape(text) == expected


@pytest.mark.parametrize("text", ["", "a,b", "3.5,2"])
def test_parse_shape_rejects(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="shape"):
        parse_shape(text)


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out


@pytest.fixture
def raw_file(tmp_path, rng):
    data = random_data(rng, (3, 5, 13, 17), ">u2")
    path = tmp_path / "scan.raw"
    data.tofile(path)
    return path, data


def test_info_raw(raw_file, capsys):
    path, _ = raw_file
    argv = ["info", str(path), "--format", "raw", "--nav-shape", "3,5", "--sig-shape", "13x17"]
    assert main([*argv, "--dtype", ">u2"]) == 0
    out = capsys.readouterr().out
    assert "raw" in out
    assert "3 x 5" in out
    assert "13 x 17" in out
    assert ">u2" in out
    assert "frames:      15" in out


def test_info_npy_auto_json(tmp_path, rng, capsys):
    data = random_data(rng, (2, 3, 4, 5), np.float32)
    np.save(tmp_path / "x.npy", data)
    assert main(["info", str(tmp_path / "x.npy"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "npy"
    assert info["nav_shape"] == [2, 3]
    assert info["sig_shape"] == [4, 5]
    assert info["dtype"] == "float32"
    assert info["image_count"] == 6


def test_info_option_passes_format_parameters(tmp_path, rng, capsys):
    data = random_data(rng, (4, 6, 6), np.uint8)
    path = tmp_path / "h.raw"
    with open(path, "wb") as f:
        f.write(b"H" * 32)
        data.tofile(f)
    argv = ["info", str(path), "--format", "raw", "--nav-shape", "4", "--sig-shape", "6,6"]
    assert main([*argv, "--dtype", "uint8", "--option", "file_header=32", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file_header"] == 32


RAW = ["--format", "raw"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        # Truncated: the file holds 15 frames, the shape needs 30.
        (["--format", "raw", "--nav-shape", "6,5", "--sig-shape", "13,17", "--dtype", ">u2"], "15"),
        (
            ["--format", "raw", "--nav-shape", "3,5", "--sig-shape", "13,17", "--dtype", "foo"],
            "foo",
        ),
        (["--format", "raw", "--nav-shape", "3,0", "--sig-shape", "13,17", "--dtype", "u2"], "nav"),
        (["--format", "raw"], "--nav-shape"),
        (["--format", "nonsense"], "valid formats"),
        ([], "no format recognises"),
        (["--format", "raw", "--option", "oops"], "KEY=VALUE"),
    ],
)
def test_info_bad_input_is_one_clear_line(raw_file, capsys, argv, message):
    path, _ = raw_file
    assert main(["info", str(path), *argv]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert message in err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert err.startswith("libertem-gpu info: error:")


def test_info_missing_file(tmp_path, capsys):
    missing = tmp_path / "nope.raw"
    assert main(["info", str(missing)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err


def test_info_debug_shows_the_exception(tmp_path):
    from libertem_gpu.errors import MissingFileError

    with pytest.raises(MissingFileError):
        main(["--debug", "info", str(tmp_path / "nope.raw")])


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_run_saves_npz(raw_file, tmp_path, capsys, executor):
    path, data = raw_file
    out = tmp_path / "res" / "x.npz"
    argv = ["run", str(path), "--format", "raw", "--nav-shape", "3,5", "--sig-shape", "13,17"]
    argv += ["--dtype", ">u2", "--analysis", "sum", "--analysis", "sumsig", "--analysis", "com"]
    argv += ["--cy", "6", "--cx", "8", "--r", "5", "--out", str(out), "--executor", executor]
    assert main(argv) == 0
    assert "GB/s" in capsys.readouterr().out
    values = data.astype(np.float64)
    with np.load(out) as res:
        np.testing.assert_allclose(res["sum_intensity"], values.sum(axis=(0, 1)), rtol=1e-12)
        np.testing.assert_allclose(res["sumsig_intensity"], values.sum(axis=(2, 3)), rtol=1e-12)
        yy, xx = np.mgrid[0:13, 0:17]
        disk = (yy - 6.0) ** 2 + (xx - 8.0) ** 2 <= 25
        total = (values * disk).sum(axis=(2, 3))
        com_y = (values * disk * yy).sum(axis=(2, 3)) / total - 6
        np.testing.assert_allclose(res["com_field_y"], com_y, rtol=1e-5, atol=1e-6)


def test_run_needs_npz(raw_file, tmp_path, capsys):
    path, _ = raw_file
    argv = ["run", str(path), "--format", "raw", "--nav-shape", "3,5", "--sig-shape", "13,17"]
    argv += ["--dtype", ">u2", "--analysis", "sum", "--out", str(tmp_path / "x.txt")]
    assert main(argv) == 1
    assert ".npz" in capsys.readouterr().err


def test_run_rejects_unknown_analysis(raw_file, tmp_path, capsys):
    path, _ = raw_file
    with pytest.raises(SystemExit) as e:
        main(["run", str(path), "--analysis", "fft", "--out", str(tmp_path / "x.npz")])
    assert e.value.code == 2
    assert "fft" in capsys.readouterr().err


def test_worker_without_distributed(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert main(["worker", "tcp://127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert "distributed" in err and "libertem_gpu[cluster]" in err


def test_worker_passes_arguments_through(monkeypatch):
    pytest.importorskip("distributed")
    import libertem_gpu.cluster_cli as cluster_cli

    seen = []
    monkeypatch.setattr(cluster_cli, "worker_main", lambda argv: seen.append(argv) or 0)
    assert main(["worker", "--help"]) == 0
    assert main(["worker", "tcp://10.0.0.1:8786", "--nthreads", "2"]) == 0
    assert seen == [["--help"], ["tcp://10.0.0.1:8786", "--nthreads", "2"]]


def test_demo_in_a_new_process(tmp_path):
    """``python -m libertem_gpu demo`` end to end: exit 0, files written, throughput printed."""
    out = tmp_path / "demo-out"
    cmd = [sys.executable, "-m", "libertem_gpu", "demo", "--size", "512KiB", "--sig-shape", "32,32"]
    cmd += ["--out", str(out), "--tmp-dir", str(tmp_path), "--executor", "inline"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "GB/s" in proc.stdout
    assert str(out) in proc.stdout
    assert {"results.npz", "summary.json", "sum.png"} <= set(os.listdir(out))
    # Only the result folder remains: the temporary data set was removed.
    assert sorted(os.listdir(tmp_path)) == ["demo-out"]


def test_demo_bad_size(capsys):
    with pytest.raises(SystemExit) as e:
        main(["demo", "--size", "lots"])
    assert e.value.code == 2
    assert "lots" in capsys.readouterr().err


def test_run_std_max_min_and_every_com_result(raw_file, tmp_path):
    """Every analysis `run` offers, and every result it saves, against NumPy."""
    path, data = raw_file
    out = tmp_path / "all.npz"
    argv = ["run", str(path), "--format", "raw", "--nav-shape", "3,5", "--sig-shape", "13,17"]
    argv += ["--dtype", ">u2", "--out", str(out), "--cy", "6", "--cx", "8", "--r", "5", "--ri", "2"]
    for name in ("std", "max", "min", "com"):
        argv += ["--analysis", name]
    assert main(argv) == 0
    values = data.astype(np.float64).reshape(15, 13, 17)
    yy, xx = np.mgrid[0:13, 0:17]
    d2 = (yy - 6.0) ** 2 + (xx - 8.0) ** 2
    ring = (d2 <= 25) & (d2 > 4)
    total = (values * ring).sum(axis=(1, 2))
    shift_y = (values * ring * yy).sum(axis=(1, 2)) / total - 6
    shift_x = (values * ring * xx).sum(axis=(1, 2)) / total - 8
    want = {
        "std_mean": values.mean(axis=0),
        "std_var": values.var(axis=0),
        "std_std": values.std(axis=0),
        "max_intensity": values.max(axis=0),
        "min_intensity": values.min(axis=0),
        "com_field_y": shift_y.reshape(3, 5),
        "com_field_x": shift_x.reshape(3, 5),
        "com_magnitude": np.hypot(shift_y, shift_x).reshape(3, 5),
    }
    with np.load(out) as res:
        for name, expected in want.items():
            np.testing.assert_allclose(res[name], expected, rtol=1e-6, atol=1e-9, err_msg=name)
        assert int(res["std_num_frames"][0]) == 15
