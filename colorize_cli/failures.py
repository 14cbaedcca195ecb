"""Why a file failed, as a kind a program can act on and a sentence a person can read.

The kind is decided where the failure is raised (the reader knows a file is truncated, the writer
knows the disk is full) and is stored in the manifest next to the reason, so resume decisions
never have to parse a message. Torch-free and dependency-free: every stage may raise these.
"""

from __future__ import annotations

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
    INTERNAL = "internal"  # anything else: a bug or an exhausted resource


# Failures that say nothing about the scan itself: a plain rerun tries them again, because the
# message told the user to fix something (free space, permissions, the folder) and rerun.
RETRIED_BY_DEFAULT: frozenset[Kind] = frozenset(
    {Kind.VANISHED, Kind.UNREADABLE, Kind.INPUT_CHANGED, Kind.OUTPUT_SIDE, Kind.DISK_FULL, Kind.INTERRUPTED}
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
