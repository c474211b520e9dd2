"""Writing outputs so that an interruption never leaves a file that looks complete.

Every output of popeval (snapshots, the results bundle, exports, cache entries, report files) is
written through :func:`atomic_write`: the content goes to a hidden temporary file in the same folder,
is flushed to disk, and only then renamed over the target (``os.replace``, atomic on POSIX).  A kill
at any moment leaves either the previous file or the new one, never a truncated one; a failure or an
interruption removes the temporary file.

:func:`atomic_dir` does the same for a whole folder (the results bundle): it is filled under a
temporary name and renamed into place when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["TEMP_PREFIX", "atomic_dir", "atomic_write", "remove_stale_temporaries"]

#: Temporary files and folders start with this prefix (and are hidden).
TEMP_PREFIX = ".popeval-tmp-"


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str | None = "w", *, encoding: str | None = None, newline: str | None = None) -> Iterator[Any]:
    """Write ``path`` atomically.

    Parameters
    ----------
    path
        The target file; its folder is created when missing.
    mode
        ``'w'`` (text, UTF-8 unless ``encoding`` says otherwise) or ``'wb'`` yield an open file;
        ``None`` yields the temporary :class:`~pathlib.Path` instead, for tools that write to a file
        name themselves (pyreadstat, pandoc, typst, DuckDB).
    encoding, newline
        As for :func:`open` in text mode.

    Yields
    ------
    IO or Path
        The file to write to, or the temporary path to write.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "a.txt") as fh:
    ...     _ = fh.write("done")
    >>> (d / "a.txt").read_text()
    'done'
    """
    if mode not in ("w", "wb", None):
        raise ValueError(f"atomic_write: mode must be 'w', 'wb' or None, not {mode!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{target.stem}.", suffix=target.suffix, dir=target.parent)
    tmp = Path(tmp_name)
    try:
        if mode is None:
            os.close(fd)
            yield tmp
            _fsync_path(tmp)
        else:
            fh: IO[Any]
            if mode == "wb":
                fh = os.fdopen(fd, "wb")
            else:
                fh = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline=newline)
            with fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Fill a folder under a temporary name and move it into place when complete.

    An existing folder at ``path`` is replaced only after the new one is complete.  On a failure or
    an interruption the temporary folder is removed and ``path`` is left as it was.

    Yields
    ------
    Path
        The temporary folder to fill.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{target.name}.", dir=target.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if target.exists():
            old = target.parent / f"{TEMP_PREFIX}{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(folder: str | Path, *, older_than: float = 0.0) -> int:
    """Delete temporary files and folders left in ``folder`` by an interrupted write.

    Parameters
    ----------
    folder
        Where to look (not recursive).
    older_than
        Only those last modified more than this many seconds ago (for folders that other processes
        may be writing to at the same time).

    Returns
    -------
    int
        How many were removed.
    """
    n = 0
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    import time

    now = time.time()
    for p in folder.glob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if older_than and now - p.stat().st_mtime < older_than:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
            n += 1
    return n


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_path(p: Path) -> None:
    if p.is_file():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
