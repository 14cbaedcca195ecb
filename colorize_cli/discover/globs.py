"""``--include`` / ``--exclude`` patterns, matched by wcmatch's glob (``**`` is a globstar).

Rules on top of the glob syntax: patterns apply to the posix path relative to the input root
(a leading ``./`` or ``/`` is dropped), a pattern without ``/`` also matches an entry's bare
name (``*.tif`` finds ``deep/down/x.tif``), a folder also matches as ``name/`` (so ``out/**``
and ``drafts/`` name the folder itself), and matching ignores case (scanners write ``.TIF`` as
often as ``.tif``). ``*`` stays inside one folder; ``**`` crosses folders, zero included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from wcmatch import glob as wcglob

_FLAGS = wcglob.GLOBSTAR | wcglob.IGNORECASE | wcglob.DOTGLOB | wcglob.FORCEUNIX


@dataclass(frozen=True)
class Glob:
    """One compiled pattern; ``text`` is what the user typed, for messages."""

    text: str
    bare: bool = field(init=False)  # no "/" inside: also tried against the entry's own name
    _matcher: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        norm = self.text
        while norm.startswith("./"):
            norm = norm[2:]
        norm = norm.lstrip("/")
        object.__setattr__(self, "bare", "/" not in norm.rstrip("/"))
        object.__setattr__(self, "_matcher", wcglob.compile(norm, flags=_FLAGS))

    def matches(self, rel: str, name: str, is_dir: bool) -> bool:
        tries = (rel, name) if self.bare else (rel,)
        if is_dir:
            tries += tuple(t + "/" for t in tries)
        return any(self._matcher.match(t) for t in tries)


def compile_globs(patterns: Sequence[str]) -> list[Glob]:
    return [Glob(p) for p in patterns]


def first_match(globs: Sequence[Glob], rel: str, name: str, is_dir: bool) -> Glob | None:
    return next((g for g in globs if g.matches(rel, name, is_dir)), None)


def glob_matches(pattern: str, rel: PurePosixPath | str, is_dir: bool = False) -> bool:
    """Whether an --include/--exclude pattern matches a path relative to the input root."""
    text = str(rel)
    return Glob(pattern).matches(text, text.rpartition("/")[2], is_dir)
