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

__all__ = ["atomic_dir", "atomic_path"]


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


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary folder beside ``path``; on success move it to ``path``.

    For outputs that are folders (Zarr stores). If the block raises, or is interrupted, the
    temporary folder is removed and ``path`` is left as it was. With ``overwrite`` an existing
    ``path`` (file or folder) is replaced only once the new folder is complete.
    """
    import shutil

    final = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(final)
    stem, ext = os.path.splitext(name)
    tmp = tempfile.mkdtemp(prefix=f".{stem}.", suffix=f".part{ext}", dir=folder)
    try:
        yield tmp
        if os.path.lexists(final):
            if not overwrite:
                raise FileExistsError(17, "exists", final)
            # Move the old one aside first, so that ``path`` is never half-deleted.
            old = tempfile.mkdtemp(prefix=f".{stem}.", suffix=".old", dir=folder)
            os.replace(final, os.path.join(old, name))
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
