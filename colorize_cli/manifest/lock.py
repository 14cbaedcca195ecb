"""One writer per output folder: the folder lock, and who holds it.

An unsharded run holds ``<out>/.colorize.lock`` exclusively for its life. A ``--shard K/N`` run
holds the same file *shared* (so shards of one folder may run at once, the shared-filesystem
case sharding exists for, but never beside an unsharded run) plus ``<out>/.colorize.K-of-N.lock``
exclusively (so the same shard never runs twice), and is refused while a shard of a different N
is alive. Locks are ``flock``s: the kernel drops one when its holder dies, even by kill -9, so a
lock file left behind by a dead run is taken over automatically. Taking and releasing happen
under a short exclusive flock on the folder itself, so two runs started together see each other.

Each holder writes its pid, host, start time and temp-file owner tag into its lock file: a
refusal names the holder, and the stale-temp sweep keeps the temp files of every live holder.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from colorize_cli.io.fsutil import owner_tag, write_all

from colorize_cli.manifest.records import encode_line, shard_tag, utc_now_iso

# POSIX. On Windows the lock degrades to O_EXCL only: a stale lock must be deleted by hand.
try:
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

_SHARD_LOCK = re.compile(r"^\.colorize\.(\d+)-of-(\d+)\.lock$")


class LockedError(RuntimeError):
    """Another live run holds the output folder (or the same shard of it)."""

    def __init__(self, message: str, path: Path, holder: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.path = path
        self.holder = dict(holder)


def lock_path(out_root: str | os.PathLike[str], shard: tuple[int, int] | None = None) -> Path:
    """``<out>/.colorize.lock``, or ``<out>/.colorize.K-of-N.lock`` for a shard's own lock."""
    return Path(out_root) / f".colorize{shard_tag(shard)}.lock"


class RunLock:
    """Use of an output folder for one run's life; see the module docstring for the rules.

    flock belongs to the open file, so even a second RunLock in the same process is refused.
    """

    def __init__(
        self,
        out_root: str | os.PathLike[str],
        shard: tuple[int, int] | None = None,
        *,
        argv: Sequence[str] = (),
    ) -> None:
        self.root = Path(out_root)
        self.path = lock_path(out_root, shard)  # the file holding this run's details
        self.shard = shard
        self.argv = list(argv)
        self._fd: int | None = None
        self._folder_fd: int | None = None  # a shard's shared hold on .colorize.lock

    def acquire(self) -> RunLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this RunLock")
        self.root.mkdir(parents=True, exist_ok=True)
        with _folder_gate(self.root):
            try:
                if self.shard is None:
                    self._fd = _take(self.path, exclusive=True)
                    if self._fd is None:
                        raise self._refusal_by_folder_holder()
                else:
                    self._folder_fd = _take(lock_path(self.root), exclusive=False)
                    if self._folder_fd is None:
                        raise self._refusal(lock_path(self.root), None, "an unsharded run and shards cannot share a folder")
                    self._refuse_other_shard_counts()
                    self._fd = _take(self.path, exclusive=True)
                    if self._fd is None:
                        raise self._refusal(self.path, self.shard)
                self._write_holder(self._fd)
                self._refuse_nested()  # after taking ours: of two runs started together, one sees the other
            except BaseException:
                self._let_go()  # also on a full disk: no empty lock file is left behind
                raise
        return self

    def release(self) -> None:
        if self._fd is None and self._folder_fd is None:
            return
        with _folder_gate(self.root):
            self._let_go()

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- internals (called under the folder gate) ------------------------------------------------
    def _let_go(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _unlink_and_close(self.path, fd)
        folder_fd, self._folder_fd = self._folder_fd, None
        if folder_fd is not None:
            if _try_flock(folder_fd, exclusive=True):  # no other shard holds the folder: tidy up
                _unlink_and_close(lock_path(self.root), folder_fd)
            else:
                os.close(folder_fd)

    def _refuse_other_shard_counts(self) -> None:
        assert self.shard is not None
        for path, shard in _shard_lock_files(self.root):
            if shard[1] != self.shard[1] and _is_live(path):
                raise self._refusal(path, shard, f"shards of one folder must all be K/{shard[1]}")

    def _refuse_nested(self) -> None:
        """One writer per output tree: a live run on a folder above this one (whose outputs may
        land here) or below it refuses this run too. Ancestors cost a stat each; descendants
        one listing per folder of the output tree (the only place their lock files can be)."""
        if fcntl is None:  # pragma: no cover - Windows
            return
        real = os.path.realpath(self.root)
        here = real
        while (up := os.path.dirname(here)) != here:
            here = up
            held = _live_lock_in(Path(here))
            if held is not None:
                raise self._refusal(held, None, f"it writes {here}, which holds this output folder; one writer per output tree")
        for folder, _dirs, files in os.walk(real):
            if folder != real and any(name == ".colorize.lock" or _SHARD_LOCK.match(name) for name in files):
                held = _live_lock_in(Path(folder))
                if held is not None:
                    raise self._refusal(held, None, f"it writes {folder}, inside this output folder; one writer per output tree")

    def _refusal_by_folder_holder(self) -> LockedError:
        """The folder lock is taken: by an unsharded run (its details are in the file) or by
        shards holding it shared (their details are in their own files)."""
        for path, shard in _shard_lock_files(self.root):
            if _is_live(path):
                return self._refusal(path, shard, "an unsharded run and shards cannot share a folder")
        return self._refusal(self.path, None)

    def _refusal(self, path: Path, shard: tuple[int, int] | None, why: str = "") -> LockedError:
        holder = _read_holder(path)
        if holder:
            who = (
                f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, "
                f"started {holder.get('started', '?')}"
            )
        else:
            who = "details not readable yet"
        what = "this output folder"
        if shard is not None:
            what += f" (shard {shard[0]}-of-{shard[1]})"
        hint = f" ({why})" if why else ""
        message = f"another colorize-dir run ({who}) is using {what}{hint}; if it is gone, delete {path}"
        return LockedError(message, path, holder)

    def _write_holder(self, fd: int) -> None:
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": utc_now_iso(),
            "argv": self.argv,
            "owner": owner_tag(),
            "shard": f"{self.shard[0]}/{self.shard[1]}" if self.shard else None,
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        write_all(fd, encode_line(info))
        os.fsync(fd)


def live_owners(out_root: str | os.PathLike[str]) -> set[str]:
    """Temp-file owner tags of every run that holds a lock on this folder now (ours included)."""
    root = Path(out_root)
    owners: set[str] = set()
    with _folder_gate(root):
        for path in [lock_path(root), *(p for p, _ in _shard_lock_files(root))]:
            if _is_live(path):
                owner = _read_holder(path).get("owner")
                if isinstance(owner, str):
                    owners.add(owner)
    return owners


# --------------------------------------------------------------------------- flock helpers


@contextmanager
def _folder_gate(root: Path) -> Iterator[None]:
    """A short exclusive flock on the output folder itself, held while a run takes or lets go
    of its locks. Where a file system cannot flock a folder, runs go on without the gate."""
    try:
        fd = os.open(root, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:
                pass
        yield
    finally:
        os.close(fd)  # closing drops the flock


def _take(path: Path, *, exclusive: bool) -> int | None:
    """An open, flocked descriptor of ``path`` (created if needed), or None when a live holder
    has it. Retries if the file is swapped under us by a racing release."""
    for _ in range(100):
        fd = _open(path)
        if not _try_flock(fd, exclusive):
            os.close(fd)
            return None
        if _still_linked(path, fd):
            return fd
        os.close(fd)  # we locked a file that was just unlinked by its releasing owner
    raise LockedError(f"could not take {path}: it keeps changing", path, {})


def _open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except FileNotFoundError:  # released between our two opens: create it ourselves
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)


def _try_flock(fd: int, exclusive: bool) -> bool:
    if fcntl is None:  # pragma: no cover - Windows: O_EXCL alone; existing file means "held"
        return os.fstat(fd).st_size == 0
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _is_live(path: Path) -> bool:
    """Whether a live run holds ``path`` exclusively (a shared test lock disturbs no holder)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        return not _try_flock(fd, exclusive=False)
    finally:
        os.close(fd)


def _live_lock_in(folder: Path) -> Path | None:
    """The lock file of a live run (unsharded or a shard) on ``folder``, if any."""
    for path in [lock_path(folder), *(p for p, _ in _shard_lock_files(folder))]:
        if os.path.exists(path) and _is_live(path):
            return path
    return None


def _still_linked(path: Path, fd: int) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (mine.st_dev, mine.st_ino)


def _unlink_and_close(path: Path, fd: int) -> None:
    """Unlink while still holding the flock, then let go: a waiting run never locks a file
    that is about to disappear (it re-checks that the file it locked is still linked)."""
    try:
        if _still_linked(path, fd):
            path.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


def _shard_lock_files(root: Path) -> list[tuple[Path, tuple[int, int]]]:
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    found = []
    for name in names:
        m = _SHARD_LOCK.match(name)
        if m:
            found.append((root / name, (int(m.group(1)), int(m.group(2)))))
    return found


def _read_holder(path: Path) -> dict[str, Any]:
    """A holder's pid/host/start, best effort (it may be mid-write)."""
    try:
        with open(path, "rb") as f:
            info = json.loads(f.read(64 * 1024).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}
