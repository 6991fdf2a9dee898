"""The README's performance table, from one result file of ``benchmarks/run_cpu.py``.

Usage::

    python benchmarks/readme_table.py benchmarks/results/RESULT.json            # print it
    python benchmarks/readme_table.py benchmarks/results/RESULT.json --write README.md

``--write`` replaces what lies between the README's markers (``<!-- readme_table.py ... -->``
and ``<!-- readme_table.py: end -->``); the opening marker names the result file, and
``tests/test_readme.py`` checks that the README's table is exactly what this script prints for
that file. The table cites the file, the machine (CPU model and the vector/matrix instruction
sets recorded with the run) and the floor it was measured against.

Reads both result schemas: files from before the shared floor (:mod:`floor`) and the result
checks say so in the table (old floor, results not verified). Rows whose masks let a kernel read
only part of each frame (``vbf``, ``rings16``) get no ratio to the floor: their GB/s count the
whole file. Needs only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from typing import Any

#: Analyses whose kernels may read only the masked pixels' bytes (drawn binary masks).
SUBSET_ANALYSES = ("vbf", "rings16")
LABELS = {
    "sum": "SumUDF",
    "sumsig": "SumSigUDF",
    "std": "StdDevUDF",
    "com": "CoMUDF (disk)",
    "masks1": "ApplyMasksUDF, 1 dense float mask",
    "masks16": "ApplyMasksUDF, 16 dense float masks",
    "vbf": "ApplyMasksUDF, bright-field disk",
    "rings16": "ApplyMasksUDF, 16 drawn rings",
    "custom": "a user's NumPy UDF (sum of float32 tiles)",
}
BEGIN = "<!-- readme_table.py {path}: generated, do not edit -->"
END = "<!-- readme_table.py: end -->"
BEGIN_RE = re.compile(r"<!-- readme_table\.py (\S+): generated, do not edit -->\n(.*?)" + END, re.S)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _machine(report: dict[str, Any]) -> str:
    m = report["machine"]
    isa = m.get("isa")
    isa_text = ", ".join(isa) if isa else "none of avx2/avx512f/amx"
    if isa is None:
        isa_text = "instruction set not recorded"
    target = m.get("numba_cpu_name", "host")
    if target != "host":
        used = ", ".join(m.get("isa_compiled") or []) or "?"
        isa_text += f"; kernels compiled for {target}: {used} only"
        if m.get("openblas_coretype"):
            isa_text += f", OpenBLAS as {m['openblas_coretype']}, NumPy without AVX-512"
    versions = m.get("versions", {})
    return (
        f"{m['cpu']} ({isa_text}), {m.get('cores_usable')} cores, Python {m.get('python')}, "
        f"numpy {versions.get('numpy')}, numba {versions.get('numba')}"
    )


def _floor(report: dict[str, Any]) -> str:
    if any("floor_kernel" in run for run in report["runs"]):
        return (
            "the shared floor (`benchmarks/floor.py`: the file mapped once, the faster of a "
            "wrapping uint32 sum and a fastmath float32 sum of its bytes, all cores), measured "
            "alternately with each analysis"
        )
    return (
        "the **old floor** (uint16 widened into a uint64 sum, float32 with fastmath, the file "
        "mapped inside each timed run; partly compute-bound on uint16, so these ratios flatter)"
    )


def _verified(report: dict[str, Any]) -> str:
    entries = [e for run in report["runs"] for e in run["analyses"].values()]
    if entries and all("verified" in e or "error" in e for e in entries):
        return "every figure's result was checked against NumPy"
    return "results not checked against NumPy (recorded before the checks existed)"


def _row(dtype: str, name: str, e: dict[str, Any]) -> str:
    label = LABELS.get(name, name)
    if "error" in e:
        return f"| {dtype} | {label} | wrong result: no figure | - | - | - | - |"
    if name in SUBSET_ANALYSES or e.get("reads_subset"):
        fraction = e.get("bytes_read_fraction")
        reads = "part" if fraction is None else f"~{fraction:.0%}"
        vs_floor = f"- (reads {reads} of the bytes)"
    else:
        ratio = e.get("ratio_floor")
        target = e.get("target_floor")
        target_text = f"{target}"
        ceiling = e.get("ratio_gemm16_ceiling")
        if ratio is not None and target is not None and ceiling:
            # Issue 22: 16 masks need 0.4 of the floor or the sgemm ceiling, whichever is
            # lower (16 multiply-adds per pixel bound them, not memory).
            at_ceiling = ratio / ceiling
            if at_ceiling < target:
                target, target_text = at_ceiling, f"{at_ceiling:.2f}, the sgemm ceiling"
        ok = "" if ratio is None or target is None else (" ok" if ratio >= target else " MISS")
        vs_floor = _fmt(ratio, 2) if target is None else f"{_fmt(ratio, 2)} (>= {target_text}){ok}"
    lt = e.get("ratio_libertem")
    lt_target = e.get("target_libertem")
    lt_text = _fmt(lt, 1)
    if lt is not None and lt_target is not None and lt < lt_target <= round(lt, 1):
        lt_text = _fmt(lt, 2)  # not "3.0 (>= 3.0) MISS"
    if lt is not None and lt_target is not None:
        lt_text += f" (>= {lt_target}) " + ("ok" if lt >= lt_target else "MISS")
    elif "libertem_error" in e:
        lt_text = "wrong result"
    dask = "wrong result" if "dask_error" in e else _fmt(e.get("ratio_dask"), 0)
    return (
        f"| {dtype} | {label} | {_fmt(e.get('gbps'), 1)} | {_fmt(e.get('floor_gbps'), 1)} "
        f"| {vs_floor} | {dask} | {lt_text} |"
    )


def _per_analysis(
    report: dict[str, Any], key: str, figure: Callable[[dict[str, Any]], str]
) -> list[str]:
    """``"<dtype> <analysis> <figure(entry)>"`` for every analysis whose entry has ``key``."""
    return [
        f"{run['dtype']} {LABELS.get(name, name)} {figure(e)}"
        for run in report["runs"]
        for name, e in run["analyses"].items()
        if key in e
    ]


def render(report: dict[str, Any], path: str) -> str:
    """The table and its captions for ``report`` (a parsed result file), citing ``path``."""
    size = report.get("size_bytes")
    size_text = f"{size / 2**30:.3g} GiB" if size else "?"
    lines = [
        f"From `{path}` ({report.get('date', '?')}): {_machine(report)}; one {size_text} raw "
        f"file per dtype in the page cache, `threads` executor, best of {report.get('repeat')}. "
        f"Floor: {_floor(report)}; {_verified(report)}.",
        "",
        "| dtype | analysis | GB/s | floor GB/s | / floor (target) | x Dask | x LiberTEM 0.16 |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for run in report["runs"]:
        for name, entry in run["analyses"].items():
            lines.append(_row(run["dtype"], name, entry))
    lines += [
        "",
        "GB/s count the whole file. The drawn masks (bright-field disk, rings) may be read as "
        "runs of masked pixels, fewer bytes than the file: they are not compared with the floor.",
    ]
    windowed = _per_analysis(
        report, "ratio_windowed_floor", lambda e: f"{e['ratio_windowed_floor']:.2f}"
    )
    if windowed:
        lines += [
            "",
            "Against the windowed floor (the same sum, reading the file through 16 MiB windows "
            "mapped, faulted and unmapped inside the timed run, as any reader that maps must; "
            "`floor.windowed_floor`): " + "; ".join(windowed) + ".",
        ]
    kept = _per_analysis(
        report,
        "kept_ratio_floor",
        lambda e: f"{e['kept_gbps']:.1f} GB/s, {e['kept_ratio_floor']:.2f}",
    )
    if kept:
        lines += [
            "",
            "With the file kept mapped between runs (setting `keep_mapped_bytes`, off by "
            "default; timed alternately with the default), GB/s and ratio to the floor: "
            + "; ".join(kept)
            + ".",
        ]
    reclaim = report.get("machine", {}).get("proactive_reclaim")
    resident = [
        e["file_resident_fraction"]
        for run in report["runs"]
        for e in run["analyses"].values()
        if e.get("file_resident_fraction") is not None
    ]
    if reclaim:
        lines += [
            "",
            f"This machine's kernel runs proactive reclaim (DAMON: {', '.join(reclaim)}), "
            "which evicts page-cache pages it finds cold, so a file read from the page cache "
            "in one run may be read from disk in part in the next"
            + (
                f"; after each analysis's runs, {min(resident):.0%} to {max(resident):.0%} of "
                "the file was resident."
                if resident
                else "."
            ),
        ]
    extra = []
    if "startup" in report:
        s = report["startup"]
        extra.append(
            f"Start-up to the first result: {s['warm_s']:.2f} s ({s['cold_s']:.2f} s with an "
            "empty Numba cache, as right after installation)."
        )
    if "demo_memory" in report:
        m = report["demo_memory"]
        extra.append(
            f"`libertem-gpu demo --size {m['size']}` peaks at {m['peak_rss_mib']:.0f} MiB resident."
        )
    if extra:
        lines += ["", " ".join(extra)]
    return "\n".join(lines)


def render_file(path: str, root: str | None = None) -> str:
    """:func:`render` of the result file at ``path`` (relative to ``root``, the repository
    root by default, and cited as given)."""
    root = root or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, path)) as f:
        return render(json.load(f), path)


def readme_block(text: str) -> tuple[str, str] | None:
    """``(cited path, table text)`` of the generated block in a README's text, or None."""
    m = BEGIN_RE.search(text)
    if m is None:
        return None
    return m[1], m[2].rstrip("\n")


def write_readme(readme: str, path: str, table: str) -> None:
    """Replace the generated block in ``readme`` (it must have the markers) by ``table``."""
    with open(readme) as f:
        text = f.read()
    if BEGIN_RE.search(text) is None:
        raise SystemExit(f"{readme} has no '{BEGIN.format(path='PATH')}' ... '{END}' block")
    block = f"{BEGIN.format(path=path)}\n{table}\n{END}"
    text = BEGIN_RE.sub(lambda _: block, text, count=1)
    with open(readme, "w") as f:
        f.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("result", help="result file, relative to the repository root")
    parser.add_argument("--write", metavar="README", help="replace the README's generated block")
    args = parser.parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.relpath(os.path.abspath(args.result), root)
    table = render_file(path, root)
    if args.write:
        write_readme(args.write, path, table)
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
