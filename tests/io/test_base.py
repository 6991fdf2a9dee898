"""FileDataSet: what every file format gets from the base class."""

from __future__ import annotations

import numpy as np
import pytest

from libertem_gpu.errors import FileFormatError
from libertem_gpu.io.fixed_layout import FixedLayoutReader
from libertem_gpu.io.formats.base import FileDataSet
from libertem_gpu.io.layout import FileSegment


class ClaimingDataSet(FileDataSet):
    """A format whose "header" declares ``claimed`` frames of 4x4 uint16 after 16 bytes."""

    format_name = "claiming-test"

    def __init__(self, path, claimed, **options):
        super().__init__(path, **options)
        self.claimed = claimed

    def _initialize(self):
        self._set_layout((self.claimed,), (4, 4), np.dtype("u2"), self.claimed, source=self.path)

    def get_reader(self):
        segment = FileSegment(self.path, 16, 32, self.claimed)
        return FixedLayoutReader([segment], self.sig_shape, self.storage_dtype)


def test_frames_past_the_end_of_the_file_are_refused_at_load(tmp_path):
    # A format that forgot to check its header against the file size still fails at load,
    # naming the file, the claim and what is there.
    path = tmp_path / "short.bin"
    path.write_bytes(bytes(16 + 5 * 32))
    assert ClaimingDataSet(str(path), 5).initialize().image_count == 5
    with pytest.raises(FileFormatError, match=r"short\.bin.*2147483648 frames.*176 bytes"):
        ClaimingDataSet(str(path), 2**31).initialize()
