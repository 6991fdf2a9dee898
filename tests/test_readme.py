"""The README: its first code block holds the two set-up commands, and its Python example (with a
user-written UDF) runs and gives the right answers on the inline and threads executors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def code_blocks(text: str) -> list[tuple[str, str]]:
    """``(language, body)`` of each fenced code block, in order."""
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```\s*$", text, re.S | re.M)]


def setup_commands() -> list[str]:
    """The lines of the README's first code block (also what ``.ci/run`` runs)."""
    return code_blocks(README.read_text())[0][1].strip().splitlines()


def test_first_block_is_the_two_commands():
    lines = setup_commands()
    assert len(lines) == 2
    demo, tests = lines
    assert "pip install" in demo and "libertem_gpu demo" in demo
    assert "pip install" in tests and "pytest" in tests
    for line in lines:
        assert line.startswith("python3 -m pip install ")


def python_example() -> str:
    blocks = [body for lang, body in code_blocks(README.read_text()) if lang == "python"]
    assert blocks, "README has no python code block"
    return blocks[0]


@pytest.mark.parametrize("executor", ["inline", "threads"])
def test_python_example_runs(executor, capsys):
    code = python_example()
    assert code.count('Context("threads")') == 1
    assert "(UDF)" in code, "the example should define a UDF of its own"
    code = code.replace('Context("threads")', f'Context("{executor}")')
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(code, str(README), "exec"), namespace)
    try:
        data = namespace["data"]
        total = namespace["total"]
        brightest = namespace["brightest"]
        np.testing.assert_allclose(
            total["intensity"].data, data.sum(axis=(0, 1), dtype=np.float64), rtol=1e-12
        )
        np.testing.assert_array_equal(brightest["brightest"].data, data.max(axis=(2, 3)))
        assert "(64, 64) (16, 16)" in capsys.readouterr().out
    finally:
        namespace["ctx"].close()


def _readme_table_module():
    """``benchmarks/readme_table.py`` (standard library only), imported from its path."""
    import importlib.util

    path = README.parent / "benchmarks" / "readme_table.py"
    spec = importlib.util.spec_from_file_location("readme_table", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_table_is_generated_from_the_result_it_cites():
    """The README's performance table is exactly what ``benchmarks/readme_table.py`` prints
    for the committed result file named in its marker (regenerate it with that script's
    ``--write README.md``)."""
    readme_table = _readme_table_module()
    block = readme_table.readme_block(README.read_text())
    assert block is not None, "README has no generated benchmark table"
    cited, table = block
    assert cited.startswith("benchmarks/results/") and cited.endswith(".json")
    assert (README.parent / cited).is_file(), f"the README cites {cited}, which is not there"
    assert f"From `{cited}`" in table
    assert table == readme_table.render_file(cited, str(README.parent))
