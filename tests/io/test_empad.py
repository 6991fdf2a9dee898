"""EMPAD data sets: written .xml/.raw pairs (scan and series, float32 and uint32), bad files,
XML fuzzing."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.formats.empad import EMPADDataSet, parse_empad_xml
from tests.conftest import random_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_empad import write_empad


@pytest.mark.parametrize(
    ("nav", "dtype", "series"),
    [((3, 4), "float32", False), ((5,), "float32", True), ((2, 3), "uint32", False)],
)
def test_contract(ctx, rng, tmp_path, nav, dtype, series):
    data = random_data(rng, (*nav, 128, 128), dtype)
    xml = write_empad(
        tmp_path, data, series=series, dtype_tag=dtype if dtype != "float32" else None
    )
    ds = ctx.load("auto", path=xml)
    assert isinstance(ds, EMPADDataSet)
    check_dataset(ctx, ds, data, dtype=dtype)
    raw = ctx.load("empad", path=ds.meta["raw_path"], nav_shape=nav, dtype=dtype)
    check_dataset(ctx, raw, data)


def test_windows_path_and_analyses(ctx, rng, tmp_path):
    data = random_data(rng, (2, 3, 128, 128), "float32")
    xml = write_empad(tmp_path, data, prefix="D:\\\\EMPAD\\\\")
    ds = ctx.load("empad", path=xml)
    assert "SumUDF" in check_builtin_analyses(ctx, ds, data)


def test_against_rosettasciio(ctx, rng, tmp_path):
    empad = pytest.importorskip("rsciio.empad")
    data = random_data(rng, (3, 4, 128, 128), "float32")
    xml = write_empad(tmp_path, data)
    expected = np.asarray(empad.file_reader(xml)[0]["data"])
    check_dataset(ctx, ctx.load("empad", path=xml), expected)


def test_bad_files(rng, tmp_path):
    data = random_data(rng, (3, 4, 128, 128), "float32")
    xml = write_empad(tmp_path, data)
    raw = EMPADDataSet(xml).initialize().meta["raw_path"]
    os.truncate(raw, os.path.getsize(raw) - 130 * 128 * 4)
    with pytest.raises(FileFormatError, match=r"scan_x4_y3\.raw.*holds 11 frames.*needs 12"):
        EMPADDataSet(xml).initialize()
    lying = write_empad(tmp_path, data, xml_nav=(4, 4), write_raw=False)
    with pytest.raises(MissingFileError, match=r"acquisition\.xml.*scan_x4_y4\.raw"):
        EMPADDataSet(lying).initialize()
    os.rename(raw, tmp_path / "scan_x4_y4.raw")
    with pytest.raises(FileFormatError, match=r"scan_x4_y4\.raw.*needs 16"):
        EMPADDataSet(lying).initialize()
    with pytest.raises(MissingFileError, match=r"scan_x4_y4\.raw.*nav_shape"):
        EMPADDataSet(tmp_path / "scan_x4_y4.raw").initialize()
    Path(xml).write_text("<root><raw_file filename='a.raw'/><type>scan</type>")
    with pytest.raises(FileFormatError, match=r"acquisition\.xml.*not a valid"):
        EMPADDataSet(xml).initialize()


_VALID = (
    b'<root><raw_file filename="scan_x4_y3.raw"/><type>scan</type><scan_parameters mode="acquire">'
    b"<scan_resolution_x>4</scan_resolution_x><scan_resolution_y>3</scan_resolution_y>"
    b"</scan_parameters><data_type>float32</data_type></root>"
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_xml_random(data):
    try:
        parse_empad_xml(data, "fuzz.xml")
    except LiberTEMGPUError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=6))
def test_fuzz_xml_mutated(edits):
    data = bytearray(_VALID)
    for pos, value in edits:
        data[pos] = value
    try:
        parse_empad_xml(bytes(data), "fuzz.xml")
    except LiberTEMGPUError:
        pass


def test_shared_bad_files(ctx, rng, tmp_path):
    (tmp_path / "good").mkdir()
    xml = write_empad(tmp_path / "good", random_data(rng, (3, 4, 128, 128), "float32"))
    raw = next((tmp_path / "good").glob("*.raw"))
    check_bad_files(ctx, "empad", xml, raw)


def test_guess_can_open_contract(rng, tmp_path):
    (tmp_path / "good").mkdir()
    xml = write_empad(tmp_path / "good", random_data(rng, (3, 4, 128, 128), "float32"))
    check_guess_can_open(EMPADDataSet, [xml], tmp_path)
