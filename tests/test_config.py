"""Run-time settings."""

from __future__ import annotations

import threading

import pytest

from libertem_gpu import config


def test_set_is_scoped():
    before = config.get("tile_bytes_cpu")
    with config.set(tile_bytes_cpu=123):
        assert config.get("tile_bytes_cpu") == 123
    assert config.get("tile_bytes_cpu") == before


def test_unknown_keys_list_the_valid_ones():
    with pytest.raises(KeyError, match="tile_bytes_cpu"):
        config.get("tile_size")
    with pytest.raises(KeyError, match="unknown setting"):
        with config.set(tile_size=1):
            pass


def test_settings_do_not_leak_between_threads():
    seen = []
    with config.set(tile_bytes_cpu=5):
        t = threading.Thread(target=lambda: seen.append(config.get("tile_bytes_cpu")))
        t.start()
        t.join()
    assert seen == [config.defaults()["tile_bytes_cpu"]]
