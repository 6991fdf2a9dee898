"""Writing output files so that each appears complete or not at all.

Every file the library writes (results, images, summaries, generated data) is written under a
temporary name in the same folder and renamed over the final path only once it is complete and
flushed, so that an interrupted save (Ctrl-C, a full disk, a crash) leaves nothing at the final
path that looks valid.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    The temporary file keeps ``path``'s extension (writers such as ``np.savez`` and image
    libraries go by it). If the block raises, or is interrupted, the temporary file is removed
    and ``path`` is left as it was.

    Examples
    --------
    >>> import numpy as np, os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "r.npz")
    >>> with atomic_path(target) as tmp:
    ...     np.savez(tmp, a=np.arange(3))
    >>> sorted(np.load(target))
    ['a']
    """
    final = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(final))
    stem, ext = os.path.splitext(name)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".part{ext}", dir=folder)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
