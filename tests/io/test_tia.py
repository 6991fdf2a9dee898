"""FEI TIA .ser/.emi data sets: the real file frame by frame, written series (1-D and 2-D scans,
both offset widths, irregular spacing), rosettasciio cross-check, bad files and header fuzzing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.formats.tia import SERDataSet, parse_ser_header
from libertem_gpu.io.registry import load
from tests.conftest import random_data
from tests.data_files import data_path, needs_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import CollectFramesUDF, check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_tia import write_emi, write_ser

DATA = data_path("tia")
EMI = DATA / "128x128x5-diffraction_preview.emi"
needs_real_file = needs_data("tia/128x128x5-diffraction_preview.emi")


@needs_real_file
@pytest.mark.parametrize("name", [EMI.name, "128x128x5-diffraction_preview_1.ser"])
def test_real_file_reference_values(inline_ctx, name):
    ds = inline_ctx.load("auto", path=str(DATA / name))
    assert isinstance(ds, SERDataSet)
    assert ds.shape.to_tuple() == (5, 128, 128) and ds.dtype == np.int32
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    assert frames.sum() == 9416326
    assert (frames**2).sum() == 2257766808
    assert frames.max() == 1317
    assert frames[0].sum() == 1755276 and frames[-1].sum() == 1874086


@needs_real_file
def test_real_file_matches_rosettasciio(ctx):
    rsciio_tia = pytest.importorskip("rsciio.tia")
    ref = rsciio_tia.file_reader(str(EMI))[0]["data"]
    ds = ctx.load("ser", path=str(EMI))
    check_dataset(ctx, ds, ref, dtype="int32")
    check_builtin_analyses(ctx, ds, ref)


@pytest.mark.parametrize(
    "nav_shape, kwargs",
    [
        ((7,), {}),
        ((7,), {"version": 0x0210, "irregular": True}),
        ((3, 4), {"positions": True}),
        ((3, 4), {}),
    ],
)
@pytest.mark.parametrize("dtype", ["uint16", "int32", "float32"])
def test_written_series(ctx, rng, tmp_path, nav_shape, kwargs, dtype):
    data = random_data(rng, (*nav_shape, 13, 17), dtype)
    write_ser(tmp_path / "scan_1.ser", data.reshape(-1, 13, 17), nav_shape, **kwargs)
    write_emi(tmp_path / "scan.emi")
    ds = ctx.load("auto", path=str(tmp_path / "scan.emi"))
    if len(nav_shape) == 2 and not kwargs.get("positions"):
        # Without position tags the dimensions are taken in C order: x-first lists read (x, y).
        assert ds.nav_shape == nav_shape[::-1]
        ds = ctx.load("ser", path=str(tmp_path / "scan_1.ser"), nav_shape=nav_shape)
    check_dataset(ctx, ds, data, dtype=dtype)
    check_builtin_analyses(ctx, ds, data)


def test_cross_check_rosettasciio(inline_ctx, rng, tmp_path):
    rsciio_tia = pytest.importorskip("rsciio.tia")
    data = random_data(rng, (3, 4, 11, 9), "int16")
    write_ser(tmp_path / "x_1.ser", data.reshape(-1, 11, 9), (3, 4), positions=True)
    write_emi(tmp_path / "x.emi")
    ref = rsciio_tia.file_reader(str(tmp_path / "x.emi"))[0]["data"]
    np.testing.assert_array_equal(ref, data)
    ds = inline_ctx.load("ser", path=str(tmp_path / "x.emi"))
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, ref)


def test_interrupted_acquisition(inline_ctx, rng, tmp_path):
    data = random_data(rng, (6, 5, 4), "uint16")
    write_ser(tmp_path / "s_1.ser", data, (6,), valid=4)
    write_emi(tmp_path / "s.emi")
    ds = inline_ctx.load("ser", path=str(tmp_path / "s_1.ser"))
    assert ds.nav_shape == (4,)
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, data[:4])


def test_sig_shape_override_and_sync_offset(inline_ctx, rng, tmp_path):
    data = random_data(rng, (5, 6, 4), "uint8")
    write_ser(tmp_path / "s_1.ser", data, (5,))
    write_emi(tmp_path / "s.emi")
    ds = inline_ctx.load("ser", path=str(tmp_path / "s.emi"), sig_shape=(24,), sync_offset=1)
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames[:4], data[1:].reshape(4, 24))
    assert np.isnan(frames[4]).all()  # no frame 6 in the file: position 4 is not processed


# --- bad files --------------------------------------------------------------------------------


def _good(tmp_path, rng, **kwargs):
    data = random_data(rng, (6, 5, 4), "uint16")
    write_ser(tmp_path / "b_1.ser", data, (6,), **kwargs)
    write_emi(tmp_path / "b.emi")
    return tmp_path / "b_1.ser"


def test_missing_emi(tmp_path, rng):
    ser = _good(tmp_path, rng)
    os.remove(tmp_path / "b.emi")
    with pytest.raises(MissingFileError, match=r"b\.emi"):
        load("auto", path=str(ser))
    assert load("ser", path=str(ser), require_emi=False).nav_shape == (6,)


def test_missing_ser(tmp_path, rng):
    ser = _good(tmp_path, rng)
    os.rename(ser, tmp_path / "b_2.ser")
    with pytest.raises(MissingFileError, match=r"b_1\.ser.*ser_index"):
        load("ser", path=str(tmp_path / "b.emi"))
    assert load("ser", path=str(tmp_path / "b.emi"), ser_index=2).nav_shape == (6,)


@pytest.mark.parametrize("cut", [10, 60, 200, 300])
def test_truncated(tmp_path, rng, cut):
    ser = _good(tmp_path, rng)
    size = os.path.getsize(ser)
    with open(ser, "r+b") as f:
        f.truncate(size - cut if cut > 100 else cut)
    with pytest.raises(FileFormatError, match=str(ser)):
        load("ser", path=str(ser))


def test_header_lies_about_counts(tmp_path, rng):
    ser = _good(tmp_path, rng)
    raw = bytearray(ser.read_bytes())
    raw[14:18] = (1_000_000).to_bytes(4, "little")  # total elements
    raw[18:22] = (1_000_000).to_bytes(4, "little")
    ser.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="too short for the offset tables"):
        load("ser", path=str(ser))


def test_unsupported_dtype_and_magic(tmp_path, rng):
    ser = _good(tmp_path, rng)
    raw = bytearray(ser.read_bytes())
    first = int.from_bytes(raw[_offsets_at(raw) : _offsets_at(raw) + 8], "little")
    raw[first + 40 : first + 42] = (9).to_bytes(2, "little")  # complex64
    ser.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="data type code 9"):
        load("ser", path=str(ser))
    ser.write_bytes(b"MM" + bytes(raw[2:]))
    with pytest.raises(FileFormatError, match="not a TIA"):
        load("ser", path=str(ser))


def _offsets_at(raw: bytes) -> int:
    return int.from_bytes(raw[22:30], "little")


# --- fuzzing ------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_header_parser_random(data):
    try:
        parse_ser_header(data, "fuzz.ser")
    except FileFormatError:
        pass


_GOOD: dict[str, bytes] = {}


def _good_bytes() -> bytes:
    if "ser" not in _GOOD:
        with tempfile.TemporaryDirectory() as d:
            data = np.arange(3 * 4 * 5, dtype="<u2").reshape(3, 4, 5) * 7 + 1
            write_ser(Path(d) / "g_1.ser", data, (3,), positions=False)
            _GOOD["ser"] = (Path(d) / "g_1.ser").read_bytes()
    return _GOOD["ser"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 2),
)
def test_fuzz_mutated_files_raise_only_library_errors(mutations, shorten):
    raw = bytearray(_good_bytes())
    for pos, value in mutations:
        raw[pos % len(raw)] = value
    raw = raw[: len(raw) - shorten * 37]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "f_1.ser"
        path.write_bytes(bytes(raw))
        try:
            ds = load("ser", path=str(path), require_emi=False)
            with ds.get_reader() as reader:
                out = np.empty((ds.image_count, *ds.sig_shape), dtype=reader.dtype)
                reader.read_into(out, 0, ds.image_count)
        except LiberTEMGPUError:
            pass


@pytest.mark.parametrize("irregular", [False, True])
def test_read_into_matches_view(rng, tmp_path, irregular):
    # The GPU path fills pinned buffers through read_into; the CPU path maps views.
    data = random_data(rng, (6, 13, 17), "uint16")
    write_ser(tmp_path / "r_1.ser", data, (6,), irregular=irregular)
    ds = load("ser", path=str(tmp_path / "r_1.ser"), require_emi=False)
    with ds.get_reader() as reader:
        out = np.empty((4, 13, 17), dtype=reader.dtype)
        reader.read_into(out, 1, 5)
        np.testing.assert_array_equal(out, data[1:5])
        # Irregular spacing gives runs of 2 frames: a view never spans two runs.
        view = reader.view(1, 3)
        assert (view is None) is irregular
        np.testing.assert_array_equal(reader.view(2, 4), data[2:4])
        if view is not None:
            np.testing.assert_array_equal(view, data[1:3])
    flat = load("ser", path=str(tmp_path / "r_1.ser"), require_emi=False, sig_shape=(221,))
    with flat.get_reader() as reader:
        out = np.empty((2, 221), dtype=reader.dtype)
        reader.read_into(out, 4, 6)
        np.testing.assert_array_equal(out, data[4:6].reshape(2, 221))
        assert reader.view(4, 6) is None


def _good_ser(rng, folder):
    folder.mkdir()
    write_ser(folder / "x_1.ser", random_data(rng, (12, 13, 17), "int32"), (3, 4))
    write_emi(folder / "x.emi")
    return folder / "x.emi", folder / "x_1.ser"


def test_shared_bad_files(ctx, rng, tmp_path):
    emi, ser = _good_ser(rng, tmp_path / "good")
    check_bad_files(ctx, "ser", emi, ser)


def test_guess_can_open_contract(rng, tmp_path):
    # .emi files hold their XML after the image data: no cheap signature, claimed by name.
    emi, ser = _good_ser(rng, tmp_path / "good")
    paths = [emi, ser, *sorted(DATA.glob("*.ser")), *sorted(DATA.glob("*.emi"))]
    check_guess_can_open(SERDataSet, paths, tmp_path, by_extension=("emi",))
