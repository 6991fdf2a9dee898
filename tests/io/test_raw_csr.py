"""The raw_csr data set (sparse frames, LiberTEM's layout): frames against SciPy's dense matrix
for every data type, shape overrides, sync offsets, repeated indices; detection; bad files."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse

from libertem_gpu.errors import FileFormatError
from libertem_gpu.io.formats.raw_csr import CSRDataSet
from tests.io.contract import check_bad_files, check_dataset, check_guess_can_open


def write_csr(folder, matrix, nav_shape, sig_shape, dtypes=("<i4", "<i4", "<u2"), table="raw_csr"):
    """Write ``matrix`` (a scipy CSR matrix, one row per frame) as three raw files and a TOML
    file naming them; returns the TOML's path."""
    indptr_dtype, indices_dtype, data_dtype = dtypes
    matrix.indptr.astype(indptr_dtype).tofile(folder / "rowind.dat")
    matrix.indices.astype(indices_dtype).tofile(folder / "coords.dat")
    matrix.data.astype(data_dtype).tofile(folder / "values.dat")
    toml = folder / "data.toml"
    toml.write_text(
        "[params]\n"
        f'filetype = "{table}"\n'
        f"nav_shape = {list(nav_shape)}\n"
        f"sig_shape = {list(sig_shape)}\n\n"
        f"[{table}]\n"
        'indptr_file = "rowind.dat"\n'
        f'indptr_dtype = "{indptr_dtype}"\n'
        'indices_file = "coords.dat"\n'
        f'indices_dtype = "{indices_dtype}"\n'
        'data_file = "values.dat"\n'
        f'data_dtype = "{data_dtype}"\n'
    )
    return toml


def sparse_frames(rng, frames, npix, density=0.05, dtype=np.uint16):
    dense = rng.integers(1, 1000, (frames, npix)) * (rng.random((frames, npix)) < density)
    return scipy.sparse.csr_matrix(dense.astype(dtype))


@pytest.mark.parametrize(
    ("dtypes", "nav", "sig"),
    [
        (("<i4", "<i4", "<u2"), (5, 7), (13, 17)),
        (("<i8", "<u4", "<i4"), (4, 6), (9, 5)),
        (("<i4", "<i2", "<f4"), (3, 2, 4), (8, 8)),
        ((">i4", ">i4", ">u4"), (11,), (6, 7)),
        (("<u8", "<i4", "|u1"), (2, 3), (31,)),
    ],
)
def test_frames_as_scipy_makes_them(ctx, rng, tmp_path, dtypes, nav, sig):
    npix = int(np.prod(sig))
    matrix = sparse_frames(rng, int(np.prod(nav)), npix)
    if np.dtype(dtypes[2]).kind == "f":
        matrix.data = matrix.data.astype(np.float32) + np.float32(0.25)
    toml = write_csr(tmp_path, matrix, nav, sig, dtypes)
    ds = ctx.load("raw_csr", path=toml)
    expected = matrix.toarray().astype(np.dtype(dtypes[2]).newbyteorder("="))
    check_dataset(ctx, ds, expected.reshape(*nav, *sig), dtype=dtypes[2])
    assert type(ctx.load("auto", path=toml)) is CSRDataSet


def test_overrides_offsets_and_repeated_indices(inline_ctx, rng, tmp_path):
    dense = rng.integers(0, 5, (12, 20)) * (rng.random((12, 20)) < 0.3)
    matrix = scipy.sparse.csr_matrix(dense.astype(np.uint16))
    # Frame 0 names pixel 3 twice: the values add up, as in SciPy.
    indptr = matrix.indptr.copy()
    indices = np.concatenate([[3, 3], matrix.indices[indptr[1] :]])
    data = np.concatenate([[2, 5], matrix.data[indptr[1] :]])
    indptr = np.concatenate([[0], indptr[1:] - indptr[1] + 2])
    twice = scipy.sparse.csr_matrix((data, indices, indptr), shape=(12, 20))
    toml = write_csr(tmp_path, twice, (3, 4), (4, 5))
    want = twice.toarray()  # sums the repeated pixel
    assert want[0, 3] == 7
    ds = inline_ctx.load("raw_csr", path=toml, nav_shape=(2, 6), sig_shape=(2, 10))
    check_dataset(inline_ctx, ds, want.reshape(2, 6, 2, 10))
    shifted = inline_ctx.load("raw_csr", path=toml, sync_offset=2)
    expected = np.zeros((12, 20), np.uint16)
    expected[:10] = want[2:]
    check_dataset(inline_ctx, shifted, expected.reshape(3, 4, 4, 5))


def test_table_name_in_any_case_and_an_empty_matrix(inline_ctx, tmp_path):
    empty = scipy.sparse.csr_matrix((6, 12), dtype=np.uint16)
    toml = write_csr(tmp_path, empty, (2, 3), (3, 4), table="RAW_CSR")
    ds = inline_ctx.load("raw_csr", path=toml)
    check_dataset(inline_ctx, ds, np.zeros((2, 3, 3, 4), np.uint16))


def test_detection(rng, tmp_path):
    toml = write_csr(tmp_path, sparse_frames(rng, 6, 12), (2, 3), (3, 4))
    check_guess_can_open(CSRDataSet, [toml], tmp_path)
    other = tmp_path / "pyproject.toml"
    other.write_text('[project]\nname = "x"\n')
    assert not CSRDataSet.guess_can_open(str(other))


def test_bad_files_lose_nothing(inline_ctx, rng, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    toml = write_csr(folder, sparse_frames(rng, 6, 12, density=0.5), (2, 3), (3, 4))
    check_bad_files(inline_ctx, "raw_csr", toml, data_file=folder / "values.dat")


def _edit(toml, old, new):
    toml.write_text(toml.read_text().replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "match"),
    [
        ('filetype = "raw_csr"', 'filetype = "raw"', r"filetype = \"raw_csr\", found 'raw'"),
        ("[raw_csr]", "[other]", r"no \[raw_csr\] table"),
        ("nav_shape = [2, 3]", "nav_shape = [2, -3]", "nav_shape must be a list of positive"),
        ('indptr_dtype = "<i4"', 'indptr_dtype = "<f4"', "indptr_dtype must be an integer"),
        ('data_dtype = "<u2"', 'data_dtype = "<c8"', "data_dtype must be a real number"),
        ('data_dtype = "<u2"', 'data_dtype = "nonsense"', "is no dtype"),
        ('indices_file = "coords.dat"', 'indices_file = "gone.dat"', "gone.dat"),
        ('indices_file = "coords.dat"', "indices_file = 3", "indices_file and indices_dtype"),
        ("[params]", "[params", "not a valid TOML file"),
    ],
)
def test_bad_descriptors_name_the_problem(inline_ctx, rng, tmp_path, old, new, match):
    toml = write_csr(tmp_path, sparse_frames(rng, 6, 12), (2, 3), (3, 4))
    _edit(toml, old, new)
    with pytest.raises(Exception, match=match) as caught:
        inline_ctx.load("raw_csr", path=toml)
    assert "data.toml" in str(caught.value) or "gone.dat" in str(caught.value)


def test_inconsistent_files_name_the_file(inline_ctx, rng, tmp_path):
    matrix = sparse_frames(rng, 6, 12, density=0.5)
    toml = write_csr(tmp_path, matrix, (2, 3), (3, 4))
    # Fewer values than indices.
    np.asarray(matrix.data[:-1], "<u2").tofile(tmp_path / "values.dat")
    with pytest.raises(FileFormatError, match="values.dat holds .* values; they pair up"):
        inline_ctx.load("raw_csr", path=toml)
    np.asarray(matrix.data, "<u2").tofile(tmp_path / "values.dat")
    # A pixel index beyond the frame: found when its frames are read.
    bad = matrix.indices.copy()
    bad[-1] = 12
    bad.astype("<i4").tofile(tmp_path / "coords.dat")
    ds = inline_ctx.load("raw_csr", path=toml)
    with pytest.raises(FileFormatError, match=r"coords\.dat: pixel index 12"):
        inline_ctx.run_udf(dataset=ds, udf=__import__("libertem_gpu").SumUDF())
    matrix.indices.astype("<i4").tofile(tmp_path / "coords.dat")
    # Row pointers that decrease.
    ptr = matrix.indptr.copy()
    ptr[2], ptr[3] = ptr[3], ptr[2] - 1
    ptr.astype("<i4").tofile(tmp_path / "rowind.dat")
    ds = inline_ctx.load("raw_csr", path=toml)
    with pytest.raises(FileFormatError, match=r"rowind\.dat: row pointers .* decrease"):
        inline_ctx.run_udf(dataset=ds, udf=__import__("libertem_gpu").SumUDF())
