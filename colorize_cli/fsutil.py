"""File-system helpers shared by every stage that writes: one way to write atomically, one way
to hash a file.

Atomic means: the bytes go to a hidden temp file in the target's own folder (so the rename never
crosses a file system), are flushed to disk, and only then renamed over the final name. A crash,
kill -9 or full disk at any moment leaves either the old file or the new one under that name,
never half of one. Temp files are named '.<final name>.<8 hex>.tmp', which is how a later run
recognises (and removes) what a killed run left behind.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def temp_name_for(path: Path) -> Path:
    return path.parent / f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.[0-9a-f]{8}\.tmp$")


def temp_target(name: str) -> str | None:
    """The final name a temp file of ours was meant for, or None when `name` is not one."""
    m = _TEMP_NAME.match(name)
    return m.group("name") if m else None


def _create_temp(path: Path) -> tuple[int, Path]:
    """Opened with mode 0o666 so the umask, not mkstemp's 0o600, decides the final permissions."""
    for _ in range(100):
        tmp = temp_name_for(path)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(path.parent))


def fsync_dir(folder: Path) -> None:
    """Make a rename durable; not every platform or file system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: Path, *, durable: bool = True, times_ns: tuple[int, int] | None = None) -> Iterator[BinaryIO]:
    """Write `path` atomically: `with atomic_output(p) as f: f.write(...)`. On any error the temp
    file is removed and the error re-raised. `durable=False` skips the fsyncs (for files that are
    cheap to remake, like thumbnails); `times_ns` sets (atime, mtime) before the rename."""
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(fd, "wb") as fp:
            yield fp
            fp.flush()
            if durable:
                os.fsync(fp.fileno())
        if times_ns is not None:
            os.utime(tmp, ns=times_ns)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if durable:
        fsync_dir(path.parent)


def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
