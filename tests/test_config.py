"""Run-time settings."""

from __future__ import annotations

import contextvars
import threading

import pytest

from libertem_gpu import config


def test_set_is_scoped():
    before = config.get("tile_bytes_cpu")
    with config.set(tile_bytes_cpu=123):
        assert config.get("tile_bytes_cpu") == 123
    assert config.get("tile_bytes_cpu") == before


def test_a_call_on_its_own_changes_settings_from_then_on():
    # As dask.config.set: without ``with`` the change stays (it once did nothing at all). Run
    # in a copy of the context, as a session of its own, so the change leaves no trace here.
    key = "tile_bytes_cpu"  # no environment variable overrides it
    default = config.defaults()[key]

    def session():
        config.set(**{key: default + 7})
        assert config.get(key) == default + 7
        with config.set(**{key: 5}):
            assert config.get(key) == 5
        assert config.get(key) == default + 7
        return config.snapshot()[key]  # what a run carries to its workers

    assert contextvars.copy_context().run(session) == default + 7
    assert config.get(key) == default


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(KeyError, match="tile_bytes_cpu"):
        config.get("tile_size")
    with pytest.raises(KeyError, match="unknown setting"):
        with config.set(tile_size=1):
            pass
    with pytest.raises(KeyError, match="unknown setting"):
        config.set(tile_size=1)


def test_settings_do_not_leak_between_threads():
    seen = []
    with config.set(tile_bytes_cpu=5):
        t = threading.Thread(target=lambda: seen.append(config.get("tile_bytes_cpu")))
        t.start()
        t.join()
    assert seen == [config.defaults()["tile_bytes_cpu"]]
