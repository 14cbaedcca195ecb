"""Paths relative to the input root, as discovery handles them: posix text, sorted folder by folder."""

from __future__ import annotations

import os


def rel_key(rel: str) -> tuple[str, ...]:
    """Sort key of a posix relative path: by folder, then name, so "a/b" sorts before "a-b"."""
    return tuple(rel.split("/"))


def within(path: str, root: str) -> bool:
    """Whether an absolute ``path`` is ``root`` or lies below it (text only, nothing resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)
