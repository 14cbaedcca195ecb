"""Appending records to a manifest file and reading them back, validated.

Why JSON Lines, appended and fsync'ed one record at a time: a run over 100,000 scans can be
killed at any moment (power cut, kill -9, Ctrl-C), and the manifest is what the next run trusts
to skip finished work. A crash can at worst leave one torn last line; readers skip it and
writers start on a fresh line, so every complete record stays readable forever.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from colorize_cli.io.fsutil import write_all

from colorize_cli.manifest.records import FileRecord, encode_line, record_problem

log = logging.getLogger("colorize_cli.manifest")


class ManifestWriter:
    """Appends records to a manifest, one line each, flushed and fsync'ed per record.

    Thread-safe: the engine's writer threads each call :meth:`write` when they finish a file.
    Each record is a single os.write on an O_APPEND descriptor, so a crash tears at most the
    record in flight. If an earlier crash left a torn last line, writing resumes on a new line.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._torn = False  # a failed write left a partial line that could not be cut off
        self._created = False  # this writer created the file (an empty one is removed on close)

    def open(self) -> ManifestWriter:
        if self._fd is not None:
            raise RuntimeError(f"manifest writer for {self.path} is already open")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
            self._created = True
        except FileExistsError:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size > 0:
                os.lseek(fd, size - 1, os.SEEK_SET)
                if os.read(fd, 1) != b"\n":  # torn line from a crash: isolate it
                    _write_all(fd, b"\n")
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def write(self, record: FileRecord | Mapping[str, Any]) -> None:
        """Append one record and make it durable before returning."""
        data = encode_line(record.to_json() if isinstance(record, FileRecord) else record)
        with self._lock:
            if self._fd is None:
                raise ValueError(f"manifest writer for {self.path} is closed")
            if self._torn:
                data = b"\n" + data
            start = os.fstat(self._fd).st_size
            try:
                _write_all(self._fd, data)
                if self.fsync:
                    os.fsync(self._fd)
            except OSError:
                # A full disk can accept half a line: cut it off so the next record starts clean.
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    self._torn = True
                raise
            self._torn = False

    def close(self) -> None:
        """Close; a manifest this writer created and could not write a single record to (a disk
        full from the start) is removed rather than left empty."""
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                try:
                    if self._created and os.fstat(fd).st_size == 0:
                        self.path.unlink(missing_ok=True)
                finally:
                    os.close(fd)

    def __enter__(self) -> ManifestWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    """fsutil.write_all, looked up here so a test can simulate a file system that cuts a line."""
    write_all(fd, data)


def read_manifest(
    path: str | os.PathLike[str],
    bad_lines: list[int] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield each complete, valid record of a manifest, in file order. A missing file yields
    nothing.

    A line that is not JSON (a torn last line after a crash, a line mangled by hand) or is JSON
    that breaks the schema (wrong types, a path leaving its root) is skipped, never fatal: each is
    logged as one warning naming its line number and why, and the number is appended to
    ``bad_lines``.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        for number, raw in enumerate(f, start=1):
            line = raw.strip()
            if not line:
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                record, problem = None, "not JSON"
            else:
                problem = record_problem(record)
            if problem is not None:
                log.warning("%s: line %d skipped: %s", path, number, problem)
                if bad_lines is not None:
                    bad_lines.append(number)
                continue
            yield record
