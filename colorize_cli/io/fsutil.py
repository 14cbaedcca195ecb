"""File-system helpers shared by every stage that reads or writes: one way to write every byte,
one way to write atomically, one way to read and hash an input, one way to hash a file.

Atomic means: the bytes go to a hidden temp file in the target's own folder (so the rename never
crosses a file system), every write is checked to have landed whole, the file is flushed to disk,
and only then renamed over the final name. A crash, kill -9 or full disk at any moment leaves
either the old file or the new one under that name, never half of one.

Checked means: encoders (Pillow's among them) may ignore a short ``write()`` (only ``write() < 0``
is an error to them), which on a nearly full disk silently cuts a file. So encoders never get a
file descriptor: they write through :class:`_CheckedRaw`, which loops until every byte is written
and turns a write that makes no progress into ENOSPC; the file's size is compared with what was
written before the rename.

Temp files are named ``.<final name>.<owner><random>.tmp``: 4 hex digits naming the writing
process (host, pid and process start time hashed, see :func:`owner_tag`) and 4 random ones. A
later run removes a temp file only when its owner holds no lock on the output folder, i.e. is
provably gone (see ``engine.remove_stale_temps``).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import secrets
import socket
import stat as stat_module
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from colorize_cli.failures import FileFailure, Kind

TEMP_SUFFIX = ".tmp"
_CHUNK = 1 << 20


def owner_tag() -> str:
    """4 hex digits naming this process: its host, pid and start time, hashed. The start time
    makes a reused pid a different owner. Collisions only ever keep a stale temp file, never
    delete a live one (a live owner's tag is always in the keep set)."""
    return _owner_tag(os.getpid())  # keyed by pid: a forked child is a different owner


@lru_cache(maxsize=None)
def _owner_tag(pid: int) -> str:
    try:  # field 22 of /proc/<pid>/stat: start time in clock ticks since boot (Linux)
        started = open(f"/proc/{pid}/stat", "rb").read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        started = "?"
    return hashlib.sha256(f"{socket.gethostname()}:{pid}:{started}".encode()).hexdigest()[:4]


def temp_name_for(path: Path) -> Path:
    return path.parent / f".{path.name}.{owner_tag()}{secrets.token_hex(2)}{TEMP_SUFFIX}"


_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<owner>[0-9a-f]{4})[0-9a-f]{4}\.tmp$")


def temp_target(name: str) -> str | None:
    """The final name a temp file of ours was meant for, or None when `name` is not one."""
    m = _TEMP_NAME.match(name)
    return m.group("name") if m else None


def temp_owner(name: str) -> str | None:
    """The owner tag of a temp file of ours, or None when `name` is not one."""
    m = _TEMP_NAME.match(name)
    return m.group("owner") if m else None


def write_all(fd: int, data: bytes | memoryview) -> None:
    """Write every byte or raise. A short write is retried (the retry reports the real error);
    a write that makes no progress at all is ENOSPC, never an endless loop."""
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.ENOSPC, "short write: no byte was written")
        view = view[written:]


class _CheckedRaw(io.RawIOBase):
    """A write-only, seekable raw file over a descriptor, whose writes are all-or-error. It has no
    fileno() on purpose: Pillow would then write to the descriptor itself, unchecked."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = 0
        self.end = 0  # the highest offset written: the size the file must have
        self.abandoned = False  # set on error: the buffer's last flush must not write anything

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        if self.abandoned:
            return len(view)
        write_all(self._fd, view)
        self._pos += len(view)
        self.end = max(self.end, self._pos)
        return len(view)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._pos = os.lseek(self._fd, offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def fileno(self) -> int:
        raise io.UnsupportedOperation("writes go through the checked write()")

    def close(self) -> None:  # the descriptor belongs to atomic_output
        super().close()


def _create_temp(path: Path) -> tuple[int, Path]:
    """Opened with mode 0o666 so the umask, not mkstemp's 0o600, decides the final permissions."""
    for _ in range(100):
        tmp = temp_name_for(path)
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), tmp
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
    """Write `path` atomically: `with atomic_output(p) as f: f.write(...)`. Every write is checked
    (see the module docstring); on any error the temp file is removed and the error re-raised.
    `durable=False` skips the fsyncs (for files that are cheap to remake, like thumbnails);
    `times_ns` sets (atime, mtime) before the rename."""
    path = Path(path)
    fd, tmp = _create_temp(path)
    try:
        try:
            raw = _CheckedRaw(fd)
            fp = io.BufferedWriter(raw, buffer_size=_CHUNK)
            try:
                yield fp  # type: ignore[misc]
                fp.flush()
            except BaseException:
                raw.abandoned = True
                raise
            finally:
                fp.close()
            size = os.fstat(fd).st_size
            if size != raw.end:  # belt and braces: the file must hold every byte written
                raise OSError(errno.ENOSPC, f"short write: {size} of {raw.end} bytes reached the file")
            if durable:
                os.fsync(fd)  # delayed-allocation file systems report a full disk only here
        finally:
            os.close(fd)
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


@dataclass(frozen=True)
class InputBytes:
    """One read of an input: its bytes, and the size, mtime and sha256 of exactly those bytes."""

    data: bytes
    size: int
    mtime: float
    sha256: str


def open_input(path: str | os.PathLike[str], *, follow: bool = False, inside: str | None = None) -> tuple[int, os.stat_result]:
    """A read-only descriptor of an input, opened once, never blocking (a FIFO would hang a read
    forever) and never through a final symlink unless ``follow``; a followed link must lead inside
    ``inside`` (a real path) when one is given. What was opened must be a regular file (fstat of
    the descriptor itself: a device such as /dev/zero is endless), returned with that stat.
    FileFailure otherwise."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    nofollow = getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags | nofollow)
    except OSError as err:
        if err.errno != errno.ELOOP or not nofollow:
            raise
        if not follow:  # a regular file when found, a symlink now
            raise FileFailure("symlink (not followed): the input was replaced by a symlink", Kind.UNSUPPORTED) from None
        fd = os.open(path, flags)
        if inside is not None:
            target = _opened_path(fd, path)
            if not (target == inside or target.startswith(inside.rstrip(os.sep) + os.sep)):
                os.close(fd)
                raise FileFailure(f"symlink outside input root -> {target}", Kind.UNSUPPORTED) from None
    st = os.fstat(fd)
    if not stat_module.S_ISREG(st.st_mode):
        os.close(fd)
        if stat_module.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", str(path))
        what = "a FIFO" if stat_module.S_ISFIFO(st.st_mode) else "a device" if stat_module.S_ISCHR(st.st_mode) or stat_module.S_ISBLK(st.st_mode) else "a socket or other special file"
        raise FileFailure(f"not a regular file ({what})", Kind.UNSUPPORTED)
    return fd, st


def _opened_path(fd: int, path: str | os.PathLike[str]) -> str:
    """The real path of what ``fd`` opened (Linux: from /proc, no race); else realpath of the name."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(path)


def read_input(path: str | os.PathLike[str], *, follow: bool = True, inside: str | None = None,
               max_bytes: int | None = None) -> InputBytes:
    """Stat, read and hash an input once, from one open file (:func:`open_input`). A file rewritten
    (or replaced) while it was read is refused, so a record never pairs old stat values with new
    bytes; one larger than ``max_bytes`` is refused before a byte is read. OSErrors of open/read
    propagate for the caller to word."""
    fd, before = open_input(path, follow=follow, inside=inside)  # the one fstat before the read
    with open(fd, "rb", buffering=0) as f:
        if max_bytes is not None and before.st_size > max_bytes:
            raise FileFailure(f"image too large: the file holds {before.st_size} bytes, more than --max-pixels allows",
                              Kind.TOO_LARGE)
        digest = hashlib.sha256()
        parts: list[bytes] = []
        left = before.st_size + 1  # a file growing while read is caught below, not read forever
        while left > 0 and (chunk := f.read(min(_CHUNK, left))):
            digest.update(chunk)
            parts.append(chunk)
            left -= len(chunk)
        after_fd = os.fstat(f.fileno())
    try:
        after = os.stat(path)  # by name too: a replace-by-rename leaves our descriptor untouched
    except FileNotFoundError:
        raise FileFailure("input changed while being read (it was removed)", Kind.INPUT_CHANGED) from None
    data = b"".join(parts)
    ident = lambda st: (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)  # noqa: E731
    if not (ident(before) == ident(after_fd) == ident(after) and len(data) == before.st_size):
        raise FileFailure("input changed while being read", Kind.INPUT_CHANGED)
    return InputBytes(data=data, size=before.st_size, mtime=before.st_mtime, sha256=digest.hexdigest())


def sha256_file(path: str | os.PathLike[str], chunk_size: int = _CHUNK, follow: bool = True) -> str:
    """The file's sha256; with ``follow`` False a symlink is refused (ELOOP), never opened."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)))
    if not follow and not stat_module.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    with open(fd, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()
