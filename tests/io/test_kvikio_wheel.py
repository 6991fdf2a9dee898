"""The kvikio transport against the real kvikio-cu13 wheel, installed without its CUDA
dependencies (issue 15, faults 1 and 2).

The wheels (kvikio-cu13, libkvikio-cu13, rapids-logger and nvidia-cufile, about 16 MB) are
installed with ``pip install --no-deps --target DIR`` into a folder under the system's temporary
folder the first time (or DIR is named in ``LIBERTEM_GPU_TEST_KVIKIO_SITE``); where they cannot
be installed (no network, Python < 3.11 has no kvikio wheel), the tests skip and say why.
Each case runs in a fresh interpreter with DIR on ``sys.path``, so that
what one case imported (or failed to import) cannot change another's answer: with the cuFile
library on the loader's path, and without it (``import kvikio`` then raises a ``RuntimeError``).
No GPU is needed: kvikio imports and answers its settings without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The wheels, without their dependencies (which pull about 2 GB of CUDA toolkit wheels).
WHEELS = (
    "kvikio-cu13==26.10.0",
    "libkvikio-cu13==26.10.0",
    "rapids-logger==0.3.0",
    "nvidia-cufile==1.20.0.107",
)


def _install_site() -> tuple[str, str]:
    """The folder holding the wheels, installing them on first use; or "" and why not."""
    site = os.environ.get("LIBERTEM_GPU_TEST_KVIKIO_SITE", "")
    if site:
        return site, "" if (Path(site) / "kvikio").is_dir() else f"no kvikio in {site}"
    if sys.version_info < (3, 11):
        return "", "kvikio-cu13 has wheels for CPython 3.11 and later only"
    folder = Path(tempfile.gettempdir()) / f"libertem-gpu-test-kvikio-{sys.version_info[1]}"
    if not (folder / "kvikio").is_dir():
        cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target"]
        proc = subprocess.run(
            [*cmd, str(folder), *WHEELS], capture_output=True, text=True, timeout=600
        )
        if proc.returncode != 0:
            return "", f"could not install the kvikio wheels: {proc.stderr[-300:]}"
    return str(folder), ""


SITE, WHY_NOT = _install_site()
pytestmark = pytest.mark.skipif(not SITE, reason=WHY_NOT)


def _run(code: str, cufile: bool, tmp_path: Path | None = None) -> dict:
    """Run ``code`` (which prints one JSON line last) in a fresh interpreter with the kvikio
    wheel; ``cufile``: with nvidia-cufile's library on ``LD_LIBRARY_PATH`` (cuda-pathfinder
    looks for it in site-packages, never a ``--target`` folder, then on the loader's path)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SITE, str(ROOT)])
    lib = str(Path(SITE) / "nvidia" / "cu13" / "lib")
    paths = [p for p in env.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != lib]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*paths, lib] if cufile else paths)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        cwd=tmp_path or ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _with_cufile() -> None:
    got = _run("import json, kvikio; print(json.dumps(kvikio.__version__))", cufile=True)
    assert got


@pytest.fixture(scope="module")
def cufile_ok():
    """Skip where the wheel does not import even with its cuFile library (a folder without
    nvidia-cufile, or a venv without cuda-pathfinder)."""
    try:
        _with_cufile()
    except AssertionError as e:
        pytest.skip(f"kvikio does not import with the carried cuFile: {str(e)[-300:]}")


STATUS = """
    import json, sys
    {before}
    from libertem_gpu.io.transports.kvikio import kvikio_status
    ok, reason, compat = kvikio_status()
    import kvikio.defaults
    print(json.dumps({{"ok": ok, "reason": reason, "compat": compat,
                      "preferred": bool(kvikio.defaults.is_compat_mode_preferred())}}))
"""


@pytest.mark.parametrize("before", ["", "import kvikio", "import kvikio.defaults"])
def test_status_knows_compat_mode_whatever_was_imported(cufile_ok, before):
    # Fault 1: `import kvikio` leaves no `kvikio.defaults` attribute (compat was None), and
    # after `import kvikio.defaults` the AUTO setting's truth value said "compat" everywhere.
    got = _run(STATUS.format(before=before), cufile=True)
    assert got["ok"] and got["reason"] == ""
    assert got["compat"] is not None
    assert got["compat"] == got["preferred"]


def test_configure_reports_kvikio_settings(cufile_ok):
    got = _run(
        """
        import json
        import kvikio
        from libertem_gpu.io.transports.kvikio import configure_kvikio
        print(json.dumps(configure_kvikio(num_threads=3, task_size=2**20)))
        """,
        cufile=True,
    )
    assert got["num_threads"] == 3 and got["task_size"] == 2**20
    assert got["compat_mode"] in ("ON", "OFF", "AUTO")
    assert isinstance(got["compat_mode_preferred"], bool)


CHOOSE = """
    import json
    import kvikio.defaults
    from libertem_gpu.io.layout import FileSegment, FrameLayout
    from libertem_gpu.io.transports import choose_transport
    {setup}
    layout = FrameLayout((FileSegment("d.raw", 0, 64, 4),), 64)
    choice = choose_transport("auto", layout, "d")
    print(json.dumps(type(choice.device).__name__ if choice.device else choice.host_path))
"""


def test_auto_chooses_kvikio_where_gds_is_active(cufile_ok):
    # GPUDirect Storage active: kvikio's own answer, stood in for (no GDS here), is "compat
    # mode not preferred"; the setting itself stays AUTO, whose truth value is True.
    gds = "kvikio.defaults.is_compat_mode_preferred = lambda: False"
    assert _run(CHOOSE.format(setup=gds), cufile=True) == "KvikioTransport"
    # No GDS (this machine), or compat mode switched on: the pinned pipeline.
    assert _run(CHOOSE.format(setup=""), cufile=True) == "pinned"
    on = "kvikio.defaults.set('compat_mode', kvikio.CompatMode.ON)"
    assert _run(CHOOSE.format(setup=on), cufile=True) == "pinned"


def test_without_cufile_kvikio_is_unavailable_with_the_reason(tmp_path):
    # Fault 2: `import kvikio` raises DynamicLibNotFoundError, a RuntimeError, not ImportError.
    got = _run(
        """
        import json, warnings
        try:
            import kvikio
            raised = None
        except Exception as e:
            raised = [type(e).__name__, isinstance(e, RuntimeError)]
        from libertem_gpu.io.layout import FileSegment, FrameLayout
        from libertem_gpu.io.transports import choose_transport
        from libertem_gpu.io.transports.kvikio import KvikioTransport, KvikioUnusable
        from libertem_gpu.io.transports.kvikio import kvikio_status
        first, second = kvikio_status(), kvikio_status()
        try:
            KvikioTransport()
            unusable = None
        except KvikioUnusable as e:
            unusable = str(e)
        layout = FrameLayout((FileSegment("d.raw", 0, 64, 4),), 64)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kv = choose_transport("kvikio", layout, "d")
            auto = choose_transport("auto", layout, "d")
        print(json.dumps({"raised": raised, "first": first, "second": second,
                          "unusable": unusable, "kvikio": kv.host_path, "device": kv.device,
                          "auto": auto.host_path, "warnings": [str(w.message) for w in caught]}))
        """,
        cufile=False,
    )
    if got["raised"] is None:
        pytest.skip("this machine has its own cuFile library: kvikio imports without the wheel's")
    assert got["raised"] == ["DynamicLibNotFoundError", True]
    assert got["first"] == got["second"]
    ok, reason, compat = got["first"]
    assert not ok and compat is None and "DynamicLibNotFoundError" in reason
    assert "DynamicLibNotFoundError" in got["unusable"]
    assert got["kvikio"] == got["auto"] == "pinned" and got["device"] is None
    assert any("falling back" in w for w in got["warnings"])


def test_import_or_skip_skips_where_import_raises_runtime_error(tmp_path):
    # pytest.importorskip("kvikio") errors here instead of skipping; the suite's helper skips.
    (tmp_path / "test_k.py").write_text(
        textwrap.dedent(
            """
            import pytest
            from tests.optional import import_or_skip

            def test_helper():
                import_or_skip("kvikio")

            def test_pytest_importorskip():
                pytest.importorskip("kvikio")
            """
        )
    )
    got = _run(
        f"""
        import json, subprocess, sys
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
             "-p", "no:benchmark", {str(tmp_path / "test_k.py")!r}],
            capture_output=True, text=True,
        )
        print(json.dumps(proc.stdout))
        """,
        cufile=False,
        tmp_path=tmp_path,
    )
    if "1 passed" in got or "2 passed" in got:
        pytest.skip("this machine has its own cuFile library: kvikio imports without the wheel's")
    assert "SKIPPED" in got and "cannot be imported here" in got
    assert "1 failed, 1 skipped" in got  # pytest's own helper errors on the RuntimeError
