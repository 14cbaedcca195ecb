"""`--only-from LIST`: redo just the files a list names (the review sheet's reject list).

The list names inputs by their path relative to INPUT, as the manifest's ``input`` and the review
sheet write them: one a line (UTF-8; blank lines and lines starting with ``#`` are left out; a
``\\r`` before the line end is dropped), or, for a ``.json`` file, a JSON array of such strings
(or an object whose ``"rejected"`` or ``"files"`` is one), which holds any name, line breaks
included. Bytes that are not UTF-8 are kept as the walk keeps them (surrogate escapes), so a
list made by ``find`` on a Linux disk still matches.

Reading is torch-free and strict: a path that is absolute or climbs out of INPUT (``..``) is a
usage error naming its line, so a list cannot send the run outside its input folder. Which listed
files exist is decided by the walk (:func:`only_listed`), not here.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, TypeVar

from colorize_cli.errors import UsageError

if TYPE_CHECKING:
    from colorize_cli.discover.find import Job, Skipped

_T = TypeVar("_T", "Job", "Skipped")


def read_list(path: str | os.PathLike[str]) -> frozenset[str]:
    """The relative paths a list file names, normalised to the manifest's form (``a/b.jpg``).

    Raises OSError when the file cannot be read, UsageError when it holds no path or a bad one."""
    raw = Path(path).read_bytes()
    text = raw.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    if str(path).lower().endswith(".json"):
        entries = _json_entries(text)
    else:
        entries = [(n, line.removesuffix("\r")) for n, line in enumerate(text.split("\n"), start=1)]
        entries = [(n, line) for n, line in entries if line.strip() and not line.startswith("#")]
    names = {_normalise(item, where) for where, item in entries}
    if not names:
        raise UsageError("names no file (one path relative to INPUT a line, or a JSON list)")
    return frozenset(names)


def _json_entries(text: str) -> list[tuple[int | str, object]]:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise UsageError(f"is not valid JSON: {err}") from None
    if isinstance(data, dict):
        data = data.get("rejected", data.get("files"))
    if not isinstance(data, list):
        raise UsageError('must be a JSON list of paths (or an object with a "rejected" list)')
    return [(f"item {n}", item) for n, item in enumerate(data, start=1)]


def _normalise(item: object, where: int | str) -> str:
    line = f"line {where}" if isinstance(where, int) else where
    if not isinstance(item, str) or not item:
        raise UsageError(f"{line}: not a path: {item!r}")
    if "\0" in item:
        raise UsageError(f"{line}: a path may not hold a NUL byte")
    if item.startswith("/") or (len(item) > 1 and item[1] == ":"):  # /abs, C:\\ or C:/
        raise UsageError(f"{line}: {item!r} is absolute; list paths relative to INPUT, as the manifest does")
    parts = [p for p in item.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"{line}: {item!r} leaves INPUT ('..'); list paths inside it")
    if not parts:
        raise UsageError(f"{line}: not a path: {item!r}")
    return PurePosixPath(*parts).as_posix()


def only_listed(items: Sequence[_T], names: frozenset[str]) -> list[_T]:
    """The items (jobs or skipped entries) whose relative path the list names, in their order."""
    return [item for item in items if item.rel.as_posix() in names]


def not_found(names: frozenset[str], found: Iterable[str]) -> list[str]:
    """The listed paths the walk did not find, sorted (moved, renamed, or from another folder)."""
    return sorted(names - set(found))
