"""Why a file failed, as a kind a program can act on and a sentence a person can read.

The kind is decided where the failure is raised (the reader knows a file is truncated, the writer
knows the disk is full) and is stored in the manifest next to the reason, so resume decisions
never have to parse a message. Torch-free and dependency-free: every stage may raise these.
"""

from __future__ import annotations

import errno
from enum import Enum


class Kind(str, Enum):
    """Failure kinds, as stored in a file record's ``kind`` field."""

    INPUT_CORRUPT = "input corrupt"  # the bytes are not a decodable image of a known format
    INPUT_TRUNCATED = "input truncated"  # the file ends before its image data does
    UNSUPPORTED = "unsupported"  # a valid file in a mode or variant this tool cannot handle
    TOO_LARGE = "too large"  # over --max-pixels, a decoder's safety limit, or a format's size limit
    VANISHED = "vanished"  # deleted (or renamed away) between discovery and reading
    UNREADABLE = "unreadable"  # exists but cannot be read: permissions, an I/O error
    INPUT_CHANGED = "input changed"  # rewritten while it was being read
    OUTPUT_SIDE = "output side"  # the output folder is blocked, not writable, vanished
    DISK_FULL = "disk full"  # no space (or quota) left for the output
    INTERRUPTED = "interrupted"  # stopped by a signal before it finished
    OUT_OF_MEMORY = "out of memory"  # the machine's or the GPU's memory ran out on this image
    INTERNAL = "internal"  # anything else: a bug or an exhausted resource (the program's fault: retried)
    CRASHED = "crashed"  # the file killed its worker process every time it was tried (--engine ray)


# Failures that say nothing about the scan itself: a plain rerun tries them again, because the
# message told the user to fix something (free space, permissions, the folder) and rerun. An
# internal failure is the program's fault (a bug, a bad option value), never the file's, so it is
# retried too; a file that crashed its worker every time (CRASHED) is not, or it would run forever.
RETRIED_BY_DEFAULT: frozenset[Kind] = frozenset(
    {Kind.VANISHED, Kind.UNREADABLE, Kind.INPUT_CHANGED, Kind.OUTPUT_SIDE, Kind.DISK_FULL, Kind.INTERRUPTED, Kind.INTERNAL}
)


class FileFailure(Exception):
    """A failure of one file; str() is the one-line reason for the manifest, ``kind`` its kind."""

    default_kind = Kind.INTERNAL

    def __init__(self, reason: str, kind: Kind | None = None) -> None:
        super().__init__(reason)
        self.kind = kind or self.default_kind


def kind_of_legacy_reason(reason: str) -> Kind:
    """The kind of a failure recorded by a version that stored only the reason (no ``kind``).
    Used once, when such a record is read; new records carry their kind."""
    text = reason.lower()
    table = (
        (("disk full", "disk quota exceeded"), Kind.DISK_FULL),
        (("worker crashed",), Kind.CRASHED),
        (("out of memory",), Kind.OUT_OF_MEMORY),
        (("output folder", "output file name"), Kind.OUTPUT_SIDE),
        (("file vanished",), Kind.VANISHED),
        (("permission denied", "read error", "cannot open"), Kind.UNREADABLE),
        (("truncated",), Kind.INPUT_TRUNCATED),
        (("image too large",), Kind.TOO_LARGE),
        (("input changed",), Kind.INPUT_CHANGED),
        (("unsupported",), Kind.UNSUPPORTED),
        (("not an image", "corrupt", "empty file", "cannot convert", "is a directory"), Kind.INPUT_CORRUPT),
    )
    for prefixes, kind in table:
        if text.startswith(prefixes):
            return kind
    return Kind.INTERNAL


def is_disk_full(err: BaseException) -> bool:
    """A full disk or an exhausted quota: the run stops starting files, and a rerun after space
    is freed redoes them (never a usage error)."""
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def is_out_of_memory(err: BaseException) -> bool:
    """Out of memory on any device: Python's MemoryError on the CPU, torch's OutOfMemoryError
    (or a RuntimeError saying so, from older torch and other backends) on a GPU. Torch-free."""
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":
        return True
    return isinstance(err, RuntimeError) and "out of memory" in str(err).lower()


def describe_failure(err: BaseException) -> tuple[Kind, str]:
    """(kind, one-line reason) of an error that failed one file. Our own errors carry the kind
    decided where they were raised; anything else is classified here, once, by its type (never
    by the wording of a message we wrote)."""
    if isinstance(err, FileFailure):
        return err.kind, str(err)
    if is_out_of_memory(err):
        return Kind.OUT_OF_MEMORY, "out of memory while processing this image"
    if is_disk_full(err):
        return Kind.DISK_FULL, "disk full" if err.errno == errno.ENOSPC else "disk quota exceeded"  # type: ignore[attr-defined]
    text = str(err).strip().splitlines()
    return Kind.INTERNAL, f"{type(err).__name__}: {text[0] if text else 'no details'}"
