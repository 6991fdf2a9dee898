"""Shape: our constructor, and LiberTEM's methods (nav/sig parts, dims, size, flatten_*)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from libertem_gpu.errors import DataSetError
from libertem_gpu.shape import Dims, Shape


def test_parts_are_tuples_with_shape_answers():
    s = Shape(nav=[4, 5], sig=(16, 17))
    assert isinstance(s.nav, Dims) and s.nav == (4, 5) and s.sig == (16, 17)
    assert (s.nav.size, s.nav.dims, s.nav.to_tuple()) == (20, 2, (4, 5))
    assert (s.sig.size, s.sig.dims) == (16 * 17, 2)
    assert s.nav + s.sig == (4, 5, 16, 17)  # plain tuple meaning kept
    assert type(s.nav.to_tuple()) is tuple


def test_liberTEM_methods():
    s = Shape(nav=(3, 4, 5), sig=(6, 7))
    assert s.dims == 5 and len(s) == 5 and s.nav_dims == 3 and s.sig_dims == 2
    assert s.size == 3 * 4 * 5 * 6 * 7 and s.nav_size == 60 and s.sig_size == 42
    assert s.to_tuple() == (3, 4, 5, 6, 7) and tuple(s) == (3, 4, 5, 6, 7)
    flat_nav = s.flatten_nav()
    assert flat_nav.to_tuple() == (60, 6, 7) and flat_nav.sig_dims == 2
    flat_sig = s.flatten_sig()
    assert flat_sig.to_tuple() == (3, 4, 5, 42) and flat_sig.sig_dims == 1
    assert s[0] == 3 and s[-1] == 7 and s[1:3] == (4, 5)


def test_equality_hash_pickle_and_numpy():
    s = Shape(nav=(2, 3), sig=(4,))
    assert s == (2, 3, 4) and s == Shape(nav=(2, 3), sig=(4,))
    assert s != Shape(nav=(2,), sig=(3, 4))  # same tuple, other split
    assert hash(s) == hash(Shape(nav=(2, 3), sig=(4,)))
    assert pickle.loads(pickle.dumps(s)) == s
    assert np.zeros(s).shape == (2, 3, 4)
    with pytest.raises(AttributeError):
        s.nav = (1,)  # type: ignore[misc]


def test_from_tuple():
    assert Shape.from_tuple((2, 3, 4, 5), sig_dims=2) == Shape(nav=(2, 3), sig=(4, 5))
    assert Shape.from_tuple((7, 8), sig_dims=0).nav == (7, 8)
    with pytest.raises(DataSetError):
        Shape.from_tuple((2, 3), sig_dims=3)
