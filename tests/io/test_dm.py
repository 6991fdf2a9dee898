"""Gatan DM3/DM4 data sets: written 2-D to 4-D images (C-ordered and transposed 4-D stacks, both
byte orders), rosettasciio cross-check, bad files and tag-tree fuzzing."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libertem_gpu.errors import DataSetError, FileFormatError, LiberTEMGPUError, MissingFileError
from libertem_gpu.io.calibration import AxisCalibration
from libertem_gpu.io.formats.dm import DMDataSet, read_dm_tags
from libertem_gpu.io.registry import load
from tests.conftest import random_data
from tests.io.builtin_analyses import check_builtin_analyses
from tests.io.contract import CollectFramesUDF, check_bad_files, check_dataset, check_guess_can_open
from tests.io.writers_dm import Group, image_group, write_dm, write_dm_stack


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("c_order", [True, False])
@pytest.mark.parametrize("dtype", ["uint16", "float32", "int16"])
def test_4d_stack(ctx, rng, tmp_path, version, c_order, dtype):
    data = random_data(rng, (3, 5, 13, 17), dtype)
    path = tmp_path / f"scan.dm{version}"
    write_dm_stack(path, data, version=version, c_order=c_order)
    ds = ctx.load("auto", path=str(path))
    assert isinstance(ds, DMDataSet) and ds.meta["transposed"] is not c_order
    check_dataset(ctx, ds, data, dtype=dtype)
    check_builtin_analyses(ctx, ds, data)


@pytest.mark.parametrize("shape", [(7, 13, 17), (1, 13, 17)])
def test_3d_stack_and_image(ctx, rng, tmp_path, shape):
    data = random_data(rng, shape, "int32")
    path = tmp_path / "stack.dm4"
    write_dm_stack(path, data if shape[0] > 1 else data[0], order=">")
    ds = ctx.load("dm", path=str(path))
    check_dataset(ctx, ds, data, dtype="int32")


def test_force_c_order_and_dataset_index(inline_ctx, rng, tmp_path):
    data = random_data(rng, (2, 3, 5, 4), "uint8")
    path = tmp_path / "t.dm4"
    write_dm_stack(path, data, c_order=False)
    ds = inline_ctx.load("dm", path=str(path), force_c_order=True)
    # Read as if C-ordered, the transposed bytes give the (sig, nav) array.
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, data.transpose(2, 3, 0, 1).reshape(5, 4, 2, 3))
    thumb = inline_ctx.load("dm", path=str(path), dataset_index=0)
    assert thumb.shape.to_tuple() == (1, 10, 12)
    with pytest.raises(DataSetError, match="dataset_index=5"):
        load("dm", path=str(path), dataset_index=5)


@pytest.mark.parametrize("c_order", [True, False])
def test_cross_check_rosettasciio(inline_ctx, rng, tmp_path, c_order):
    dm = pytest.importorskip("rsciio.digitalmicrograph")
    data = random_data(rng, (3, 4, 11, 9), "uint16")
    path = tmp_path / "x.dm4"
    write_dm_stack(path, data, c_order=c_order)
    ref = dm.file_reader(str(path))[-1]["data"]
    # rosettasciio hands transposed files over as stored: (sig, nav).
    np.testing.assert_array_equal(ref if c_order else ref.transpose(2, 3, 0, 1), data)
    ds = inline_ctx.load("dm", path=str(path))
    frames = inline_ctx.run_udf(dataset=ds, udf=CollectFramesUDF())["frames"].data
    np.testing.assert_array_equal(frames, data)


# --- bad files --------------------------------------------------------------------------------


def _good(tmp_path, rng):
    path = tmp_path / "b.dm4"
    write_dm_stack(path, random_data(rng, (2, 3, 13, 17), "uint16"))
    return path


@pytest.mark.parametrize("keep", [6, 40, 300, -100])
def test_truncated(tmp_path, rng, keep):
    path = _good(tmp_path, rng)
    raw = path.read_bytes()
    path.write_bytes(raw[:keep] if keep > 0 else raw[: keep - 8 - 2 * 3 * 13 * 17])
    with pytest.raises(FileFormatError, match=str(path)):
        load("dm", path=str(path))


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="nope.dm4"):
        load("dm", path=str(tmp_path / "nope.dm4"))


def test_header_lies_about_sizes(tmp_path, rng):
    data = random_data(rng, (2, 3, 13, 17), "uint16")
    path = tmp_path / "lie.dm4"
    image = image_group(data, [17, 13, 3, 4])  # Dimensions say 4 scan rows, data holds 2
    write_dm(path, Group(("ImageList", Group(("", image)))))
    with pytest.raises(FileFormatError, match="Dimensions"):
        load("dm", path=str(path))


@pytest.mark.parametrize(
    ("entry", "shown"), [(Group(("", np.uint32(3))), "TagGroup"), (np.float32(2.5), "2.5")]
)
def test_dimensions_that_are_not_whole_numbers(tmp_path, rng, entry, shown):
    # A damaged tag tree can hold a group or a fraction among the Dimensions (found by the
    # tag-tree fuzzer): a FileFormatError naming the file and the entry, not a TypeError.
    data = random_data(rng, (2, 13, 17), "uint16")
    image = image_group(data, [17, 13, 2])
    image_data = dict(image.entries)["ImageData"]
    image_data.entries = [
        ("Dimensions", Group(("", np.uint32(17)), ("", entry), ("", np.uint32(2))))
        if name == "Dimensions"
        else (name, value)
        for name, value in image_data.entries
    ]
    path = tmp_path / "dims.dm4"
    write_dm(path, Group(("ImageList", Group(("", image)))))
    with pytest.raises(
        FileFormatError, match=rf"dims\.dm4: image 0 has Dimensions entry .*{shown}"
    ):
        load("dm", path=str(path))


def test_no_image_and_bad_version(tmp_path):
    path = tmp_path / "empty.dm4"
    write_dm(path, Group(("Other", np.int32(1))))
    with pytest.raises(FileFormatError, match="ImageList"):
        load("dm", path=str(path))
    path.write_bytes(b"\x00\x00\x00\x07" + path.read_bytes()[4:])
    with pytest.raises(FileFormatError, match="version 3 or 4"):
        load("dm", path=str(path))
    assert not DMDataSet.guess_can_open(str(path))


# --- fuzzing ------------------------------------------------------------------------------------


def _parse_bytes(raw: bytes, suffix: str = ".dm4") -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"f{suffix}"
        path.write_bytes(raw)
        try:
            ds = load("dm", path=str(path))
            with ds.get_reader() as reader:
                out = np.empty((ds.image_count, *ds.sig_shape), dtype=reader.dtype)
                reader.read_into(out, 0, ds.image_count)
        except LiberTEMGPUError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data):
    _parse_bytes(b"\x00\x00\x00\x04" + data)


_GOOD: dict[int, bytes] = {}


def _good_bytes(version: int) -> bytes:
    if version not in _GOOD:
        with tempfile.TemporaryDirectory() as d:
            data = (np.arange(2 * 3 * 4 * 5, dtype="u2") * 3 + 1).reshape(2, 3, 4, 5)
            write_dm_stack(Path(d) / "g.dm4", data, version=version)
            _GOOD[version] = (Path(d) / "g.dm4").read_bytes()
    return _GOOD[version]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from([3, 4]),
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 255)), min_size=1, max_size=6),
    st.integers(0, 3),
)
def test_fuzz_mutated_tag_trees(version, mutations, shorten):
    raw = bytearray(_good_bytes(version))
    for pos, value in mutations:
        raw[pos % len(raw)] = value
    _parse_bytes(bytes(raw[: len(raw) - shorten * 101]))


def test_tag_tree_values(tmp_path):
    path = tmp_path / "tags.dm3"
    write_dm(
        path,
        Group(("A", Group(("b", np.float64(2.5)), ("c", "text"))), ("", np.int16(-3))),
        version=3,
        order=">",
    )
    version, root = read_dm_tags(str(path))
    assert version == 3
    assert root.find("A", "b") == 2.5 and root.get("") == -3
    text = root.find("A", "c").values
    assert "".join(map(chr, text.tolist())) == "text"


@pytest.mark.parametrize("c_order", [True, False])
def test_read_into_matches_view(rng, tmp_path, c_order):
    # The GPU path fills pinned buffers through read_into; the CPU path maps views.
    data = random_data(rng, (3, 4, 13, 17), "uint16")
    path = tmp_path / "r.dm4"
    write_dm_stack(path, data, c_order=c_order, order=">")
    ds = load("dm", path=str(path))
    flat = data.reshape(12, 13, 17)
    with ds.get_reader() as reader:
        out = np.empty((5, 13, 17), dtype=reader.dtype)
        reader.read_into(out, 6, 11)
        np.testing.assert_array_equal(out, flat[6:11])
        np.testing.assert_array_equal(reader.view(2, 9), flat[2:9])


def _good_dm(rng, folder):
    folder.mkdir()
    write_dm_stack(folder / "x.dm4", random_data(rng, (3, 4, 13, 17), "uint16"))
    return folder / "x.dm4"


def test_shared_bad_files(ctx, rng, tmp_path):
    check_bad_files(ctx, "dm", _good_dm(rng, tmp_path / "good"))


def test_guess_can_open_contract(rng, tmp_path):
    check_guess_can_open(DMDataSet, [_good_dm(rng, tmp_path / "good")], tmp_path)


# --- damaged image tags ------------------------------------------------------------------------


def _stack_with_damaged_data_image(path, data, damage: str, version: int) -> None:
    from tests.io.writers_dm import Group, image_group, write_dm

    thumb = (np.arange(12 * 10, dtype="u1") % 251).reshape(10, 12)
    dims = list(reversed(data.shape))
    main = image_group(data, dims)
    image_data = dict(main.entries)["ImageData"]
    if damage == "dims":  # one more dimension than DM images have
        image_data.entries = [
            ("Dimensions", Group(*[("", np.uint32(d)) for d in [*dims, 1, 1]]))
            if name == "Dimensions"
            else (name, value)
            for name, value in image_data.entries
        ]
    else:  # the Data tag's label is damaged
        image_data.entries = [
            ("Dat\x00" if name == "Data" else name, value) for name, value in image_data.entries
        ]
    root = Group(("ImageList", Group(("", image_group(thumb, [12, 10])), ("", main))))
    write_dm(path, root, version=version)


@pytest.mark.parametrize("version", [3, 4])
@pytest.mark.parametrize("damage", ["dims", "data-label"])
def test_damaged_data_image_is_not_replaced_by_the_thumbnail(rng, tmp_path, damage, version):
    path = tmp_path / f"damaged.dm{version}"
    data = random_data(rng, (6, 9, 11), "uint16")
    _stack_with_damaged_data_image(path, data, damage, version)
    with pytest.raises(FileFormatError, match=rf"damaged\.dm{version}.*image 1.*dataset_index=0"):
        DMDataSet(str(path)).initialize()
    assert DMDataSet(str(path), dataset_index=0).initialize().sig_shape == (10, 12)


# --- calibration --------------------------------------------------------------------------------

# (scale, origin, units) per axis of the data, nav first: DM maps index i to (i - origin) * scale.
_CALS = [(2.5, 1.0, "nm"), (1.5, 0.0, "nm"), (0.25, 6.0, "1/nm"), (0.125, -2.0, "1/nm")]


def _expected(cal):
    scale, origin, units = cal
    # float32 in the file, as DM writes them
    scale, origin = float(np.float32(scale)), float(np.float32(origin))
    return AxisCalibration(scale, -origin * scale, units)


@pytest.mark.parametrize(("version", "c_order"), [(3, True), (4, True), (4, False)])
def test_calibration_4d(rng, tmp_path, version, c_order):
    data = random_data(rng, (2, 3, 5, 4), "uint8")
    path = tmp_path / f"cal.dm{version}"
    write_dm_stack(
        path,
        data,
        version=version,
        c_order=c_order,
        calibrations=_CALS,
        tags=(("Microscope Info", Group(("STEM Camera Length", np.float32(80.0)))),),
    )
    cal = load("dm", path=str(path)).calibration
    assert cal.nav == tuple(_expected(c) for c in _CALS[:2])
    assert cal.sig == tuple(_expected(c) for c in _CALS[2:])
    assert cal.nav[0].offset == -2.5 and cal.sig[1].offset == 0.25  # (i - origin) * scale at 0
    assert (cal.camera_length, cal.camera_length_units, cal.source) == (80.0, "mm", "dm tags")


@pytest.mark.parametrize("c_order", [True, False])
def test_calibration_cross_check_rosettasciio(tmp_path, rng, c_order):
    dm = pytest.importorskip("rsciio.digitalmicrograph")
    path = tmp_path / "x.dm4"
    data = random_data(rng, (2, 3, 5, 4), "uint16")
    write_dm_stack(path, data, c_order=c_order, calibrations=_CALS)
    axes = dm.file_reader(str(path))[-1]["axes"]  # in its array order
    if not c_order:  # rosettasciio hands transposed files over as stored: (sig, nav)
        axes = axes[2:] + axes[:2]
    cal = load("dm", path=str(path)).calibration
    for ours, theirs in zip((*cal.nav, *cal.sig), axes, strict=True):
        assert ours.scale == pytest.approx(theirs["scale"])
        assert ours.offset == pytest.approx(theirs["offset"])
        assert ours.units == theirs["units"]


def test_calibration_3d_and_2d(rng, tmp_path):
    stack = tmp_path / "stack.dm3"
    cals = [(1.0, 0.0, ""), (0.5, 0.0, "µm"), (0.75, 0.0, "µm")]
    # (larger than the 12 x 10 thumbnail the writer puts first)
    write_dm_stack(stack, random_data(rng, (3, 13, 17), "u2"), version=3, calibrations=cals)
    cal = load("dm", path=str(stack)).calibration
    assert cal.nav == (None,)  # the stack axis has no units: uncalibrated
    assert cal.sig == (AxisCalibration(0.5, 0.0, "µm"), AxisCalibration(0.75, 0.0, "µm"))
    assert cal.camera_length is None
    image = tmp_path / "image.dm4"
    write_dm_stack(image, random_data(rng, (13, 17), "u2"), calibrations=cals[1:])
    cal = load("dm", path=str(image)).calibration
    assert cal.nav == (None,)
    assert cal.sig == (AxisCalibration(0.5, 0.0, "µm"), AxisCalibration(0.75, 0.0, "µm"))


@pytest.mark.parametrize("with_calibrations", [True, False])
def test_uncalibrated_is_none(rng, tmp_path, with_calibrations):
    path = tmp_path / "plain.dm4"
    write_dm_stack(
        path, random_data(rng, (2, 3, 5, 4), "uint8"), with_calibrations=with_calibrations
    )
    cal = load("dm", path=str(path)).calibration
    assert cal.nav == (None, None) and cal.sig == (None, None) and cal.is_empty
