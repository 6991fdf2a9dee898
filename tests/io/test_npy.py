"""The .npy data set."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.errors import DataSetError, FileFormatError
from libertem_gpu.io.formats.npy import NPYDataSet
from tests.conftest import random_data
from tests.io.contract import check_bad_files, check_dataset, check_guess_can_open


@pytest.mark.parametrize(
    ("dtype", "shape", "sig_dims"),
    [
        ("uint16", (5, 7, 13, 17), 2),
        (">i4", (4, 6, 9, 5), 2),
        ("float32", (2, 3, 4, 5, 7), 2),
        ("uint8", (9, 31), 1),
    ],
)
def test_contract(ctx, rng, tmp_path, dtype, shape, sig_dims):
    data = random_data(rng, shape, dtype)
    np.save(tmp_path / "x.npy", data)
    ds = ctx.load("npy", path=tmp_path / "x.npy", sig_dims=sig_dims)
    check_dataset(ctx, ds, data, dtype=dtype)
    auto = ctx.load("auto", path=tmp_path / "x.npy", sig_dims=sig_dims)
    assert type(auto) is type(ds)


def test_reshape_nav(inline_ctx, rng, tmp_path):
    data = random_data(rng, (12, 5, 6), "uint16")
    np.save(tmp_path / "x.npy", data)
    ds = inline_ctx.load("npy", path=tmp_path / "x.npy", nav_shape=(3, 4))
    check_dataset(inline_ctx, ds, data.reshape(3, 4, 5, 6))


def test_fortran_order_refused(inline_ctx, tmp_path):
    np.save(tmp_path / "f.npy", np.asfortranarray(np.ones((3, 4, 5, 6), dtype=np.uint16)))
    with pytest.raises(FileFormatError, match=r"f\.npy.*Fortran order"):
        inline_ctx.load("npy", path=tmp_path / "f.npy")


def test_truncated(inline_ctx, tmp_path):
    np.save(tmp_path / "t.npy", np.ones((3, 4, 5, 6), dtype=np.uint16))
    raw = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(raw[:-7])
    with pytest.raises(FileFormatError, match=r"t\.npy.*too short"):
        inline_ctx.load("npy", path=tmp_path / "t.npy")


def test_not_npy(inline_ctx, tmp_path):
    (tmp_path / "bad.npy").write_bytes(b"not a numpy file at all" * 10)
    with pytest.raises(FileFormatError, match=r"bad\.npy"):
        inline_ctx.load("npy", path=tmp_path / "bad.npy")


def test_object_dtype_refused(inline_ctx, tmp_path):
    np.save(tmp_path / "o.npy", np.array([[None, 1]] * 3, dtype=object), allow_pickle=True)
    with pytest.raises(DataSetError, match="dtype"):
        inline_ctx.load("npy", path=tmp_path / "o.npy", sig_dims=1)


def test_too_few_dims(inline_ctx, tmp_path):
    np.save(tmp_path / "s.npy", np.ones((4, 5), dtype=np.uint16))
    with pytest.raises(DataSetError, match="cannot be split"):
        inline_ctx.load("npy", path=tmp_path / "s.npy", sig_dims=2)


def test_shared_bad_files(ctx, rng, tmp_path):
    (tmp_path / "good").mkdir()
    np.save(tmp_path / "good" / "x.npy", random_data(rng, (3, 4, 7, 5), "uint16"))
    check_bad_files(ctx, "npy", tmp_path / "good" / "x.npy")


def test_guess_can_open_contract(rng, tmp_path):
    np.save(tmp_path / "x.npy", random_data(rng, (3, 4, 7, 5), "uint16"))
    check_guess_can_open(NPYDataSet, [tmp_path / "x.npy"], tmp_path)


def _npy_with_header(path, header: str) -> str:
    """A version 1.0 .npy file with ``header`` as written, then some data bytes."""
    text = header.encode("latin-1")
    text += b" " * ((64 - (10 + len(text) + 1) % 64) % 64) + b"\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + bytes(64))
    return str(path)


@pytest.mark.parametrize(
    "header",
    [
        "{'descr': '<u2', 'fortran_order': False, 'shape': (3, 4",  # tokenize.TokenError
        "{'descr': '<u2', 'fortran_order': False, 'shape': (3, '''",
        "{'descr': '<u2', 'fortran_order': False, 'shape': (3, 4), 'x': [}",
    ],
)
def test_unparsable_headers_name_the_file(inline_ctx, tmp_path, capsys, header):
    from libertem_gpu.cli import main

    path = _npy_with_header(tmp_path / "broken.npy", header)
    with pytest.raises(FileFormatError, match=r"broken\.npy.*not a valid \.npy"):
        inline_ctx.load("npy", path=path)
    assert main(["info", path]) != 0  # an error line, no traceback
    assert "broken.npy" in capsys.readouterr().err


@pytest.mark.parametrize("shape", [(0, 4, 5), (3, 0, 4, 5), (3, 4, 0, 5)])
def test_empty_shapes_name_the_file(inline_ctx, tmp_path, shape):
    header = f"{{'descr': '<u2', 'fortran_order': False, 'shape': {shape}, }}"
    path = _npy_with_header(tmp_path / "empty.npy", header)
    with pytest.raises(FileFormatError, match=r"empty\.npy.*shape"):
        inline_ctx.load("npy", path=path)


def test_float16_loads_and_runs(ctx, rng, tmp_path):
    data = random_data(rng, (3, 4, 5, 6), "float16")
    np.save(tmp_path / "h.npy", data)
    check_dataset(ctx, ctx.load("npy", path=tmp_path / "h.npy"), data, dtype="float16")
