"""Check that a folder of wheels is complete for the GPU machine (run by gpu_wheels.sh).

The GPU machine (Python 3.12, Linux x86_64) has no network: benchmarks/run_gpu.sh installs the
carried wheels with ``--no-index --no-deps``, so pip checks nothing there. This does the check
here, from the wheels' own metadata:

- one wheel per project name (two versions stop ``pip install`` of the whole folder);
- every wheel installable on CPython 3.12 / manylinux x86_64 (by its file-name tags);
- every ``Requires-Dist`` (markers evaluated for that machine, extras off) met by a wheel in the
  folder or by a package the machine's image holds (:data:`IMAGE`), or left out on purpose
  (:data:`LEFT_OUT`, with the reason);
- the total size under the carry limit.

Run: ``python benchmarks/wheel_check.py .whl [--limit-mib 56]``; exits 1 and says why where any
check fails.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from email.parser import HeaderParser
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

#: Packages the GPU machine's image holds (device README, KINDS.md, read 2026-11-17), as
#: canonical names, with the version where it matters to a requirement (None: any).
IMAGE: dict[str, str | None] = {
    "numpy": "2.5.2",
    "cupy-cuda13x": "14.2.0",
    "numba": None,
    "numba-cuda": None,
    "llvmlite": None,
    "h5py": None,
    "pandas": None,
    "pytest": None,
    "cuda-bindings": None,
    "cuda-core": None,
    "cuda-pathfinder": None,
    "cuda-toolkit": None,
    "nvidia-cuda-runtime": None,
    "nvidia-cuda-nvrtc": None,
    "nvidia-nvjitlink": None,
    "nvidia-cublas": None,
    "nvidia-cufft": None,
    "nvidia-curand": None,
    "nvidia-cusolver": None,
    "nvidia-cusparse": None,
    "typing-extensions": None,
    "pluggy": None,
    "iniconfig": None,
}

#: Requirements deliberately not carried, with the reason.
LEFT_OUT: dict[str, str] = {
    "bokeh": "distributed's dashboard only; the check runs without it",
    "pyarrow": "dask.dataframe extras, unused by the check",
    "zarr": "kvikio's zarr support, unused by the check",
    "nvidia-nvcomp-cu13": "kvikio's nvCOMP codecs, unused by the check",
    "libnvcomp-cu13": "kvikio's nvCOMP codecs, unused by the check",
}

#: The GPU machine, for evaluating environment markers.
TARGET_ENV = {
    **default_environment(),
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "extra": "",
}


def _installable(filename: str) -> bool:
    """Whether a wheel's tags allow CPython 3.12 on manylinux x86_64."""
    _, _, _, tags = parse_wheel_filename(filename)
    for tag in tags:
        py_ok = tag.interpreter in ("py3", "cp312") or tag.interpreter.startswith("py3")
        if tag.abi == "abi3":
            py_ok = tag.interpreter.startswith("cp3") and int(tag.interpreter[3:]) <= 12
        abi_ok = tag.abi in ("none", "abi3", "cp312")
        plat_ok = tag.platform == "any" or (
            tag.platform.endswith("x86_64")
            and (tag.platform.startswith("manylinux") or tag.platform == "linux_x86_64")
        )
        if py_ok and abi_ok and plat_ok:
            return True
    return False


def _requires(path: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(path) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        meta = HeaderParser().parsestr(zf.read(name).decode("utf-8", "replace"))
    return meta.get_all("Requires-Dist") or []


def check(folder: Path, limit_mib: float) -> list[str]:
    """Return the problems found in ``folder`` (empty: complete)."""
    problems: list[str] = []
    wheels = sorted(folder.glob("*.whl"))
    if not wheels:
        return [f"no wheels in {folder}/ (run benchmarks/gpu_wheels.sh)"]
    have: dict[str, Version] = {}
    for w in wheels:
        name, version, _, _ = parse_wheel_filename(w.name)
        if name in have:
            problems.append(f"two versions of {name}: {have[name]} and {version}")
        have[name] = version
        if not _installable(w.name):
            problems.append(f"{w.name}: not installable on CPython 3.12 manylinux x86_64")
    for w in wheels:
        for line in _requires(w):
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(TARGET_ENV):
                continue
            name = canonicalize_name(req.name)
            if name in have:
                if req.specifier and not req.specifier.contains(have[name], prereleases=True):
                    problems.append(f"{w.name} needs {req}, the folder has {name} {have[name]}")
            elif name in IMAGE:
                v = IMAGE[name]
                if v and req.specifier and not req.specifier.contains(v, prereleases=True):
                    problems.append(f"{w.name} needs {req}, the GPU machine has {name} {v}")
            elif name not in LEFT_OUT:
                problems.append(f"{w.name} needs {req}: neither carried nor on the GPU machine")
    total = sum(w.stat().st_size for w in folder.rglob("*.whl")) / 2**20
    print(f"{len(wheels)} wheels in {folder}/ (+ subfolders): {total:.1f} MiB in all")
    if total > limit_mib:
        problems.append(f"{total:.1f} MiB of wheels is over the {limit_mib} MiB limit")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Command line: print the problems and return 1 where there are any."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--limit-mib", type=float, default=56.0)
    args = parser.parse_args(argv)
    problems = check(args.folder, args.limit_mib)
    for p in problems:
        print("MISSING/WRONG:", p)
    if not problems:
        print("complete: every requirement is carried or on the GPU machine")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
