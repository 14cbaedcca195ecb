"""Output names: each scan's path under the output folder, unique even on a case-insensitive disk.

Names are resolved over the whole tree before sharding, so every ``--shard K/N`` machine gives
every scan the same output name.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from colorize_cli.discover.formats import EXT_FORMAT, EXTENSIONS, NOT_KEPT_SPELLINGS, OUT_FORMATS, output_format
from colorize_cli.discover.relpath import rel_key


class _Name(NamedTuple):
    parent: str  # "dir/sub/" or ""
    stem: str
    ext: str  # the input's image extension as spelled, or "" (unknown extensions stay in stem)
    out_ext: str


def _name_for(rel: str, fmt: str, out_format: str | None) -> _Name:
    parent, _, name = rel.rpartition("/")
    stem, ext = os.path.splitext(name)
    if ext.lower() not in EXT_FORMAT:
        stem, ext = name, ""  # "scan.001" -> "scan.001.jpg", so numbered scans stay apart
    written = OUT_FORMATS[out_format.lower()] if out_format else output_format(fmt)
    if out_format is None and ext and EXT_FORMAT[ext.lower()] == written and ext.lower() not in NOT_KEPT_SPELLINGS:
        out_ext = ext  # the same format: keep the user's spelling (.JPG, .jpeg, .tiff)
    else:  # another format, or an extension that lied about the content
        out_ext = EXTENSIONS[written][0]
    return _Name(parent + "/" if parent else "", stem, ext, out_ext)


def _collision_key(rel: str) -> str:
    """Outputs are compared the way a case-insensitive, normalising filesystem would."""
    return unicodedata.normalize("NFC", rel).casefold()


def _alternatives(n: _Name, suffix: str) -> Iterable[str]:
    base = f"{n.stem}_{n.ext[1:]}" if n.ext else n.stem
    if n.ext:
        yield f"{n.parent}{base}{suffix}{n.out_ext}"
    k = 2
    while True:
        yield f"{n.parent}{base}_{k}{suffix}{n.out_ext}"
        k += 1


def assign_outputs(found: Sequence[tuple[str, str]], out_format: str | None, suffix: str) -> list[str]:
    """Output paths (relative, posix) for ``(rel, fmt)`` inputs; no two equal, ignoring case.

    Each input's plain name is ``<stem><suffix><ext>``. When plain names collide (``a.png`` and
    ``a.jpg`` with ``--format png``; ``A.png`` and ``a.png``), the inputs are ranked: first the
    ones whose extension is unchanged by the mapping, then by sorted relative path. The first
    keeps the plain name; each other folds its original extension into the stem
    (``a.jpg`` -> ``a_jpg.png``), then counts (``a_jpg_2.png``, ...) until the name is free.
    Plain names are all claimed before any renamed one, so a renamed output never takes the
    plain name of another input. Resolution runs before sharding, so every shard agrees.
    """
    names = [_name_for(rel, fmt, out_format) for rel, fmt in found]
    plain = [f"{n.parent}{n.stem}{suffix}{n.out_ext}" for n in names]
    order = sorted(
        range(len(found)),
        key=lambda i: (names[i].ext.lower() != names[i].out_ext.lower(), rel_key(found[i][0])),
    )
    out: list[str | None] = [None] * len(found)
    claimed: set[str] = set()
    losers: list[int] = []
    for i in order:
        key = _collision_key(plain[i])
        if key in claimed:
            losers.append(i)
        else:
            claimed.add(key)
            out[i] = plain[i]
    for i in losers:
        for alt in _alternatives(names[i], suffix):
            key = _collision_key(alt)
            if key not in claimed:
                claimed.add(key)
                out[i] = alt
                break
    return [o for o in out if o is not None]


def page_path(path: Path, index: int) -> Path:
    """Where page `index` (0-based) goes when the format holds one image a file."""
    path = Path(path)
    return path if index == 0 else path.with_name(f"{path.stem}_page{index + 1}{path.suffix}")


def page_files(output: Path, pages: int | None) -> list[Path]:
    """Every file a scan's pages went to: a TIFF holds them all, other formats one file a page.
    What resume checks before it calls a scan done."""
    output = Path(output)
    if not pages or pages <= 1 or EXT_FORMAT.get(output.suffix.lower()) == "TIFF":
        return [output]
    return [page_path(output, i) for i in range(pages)]


_PAGE_N = re.compile(r"^(?P<stem>.+)_page(?:[2-9]|[1-9][0-9]+)(?P<ext>\.[^.]*)?$")


def first_page_name(name: str) -> str:
    """The name of page 1 for a page-N file name (``a_page3.jpg`` -> ``a.jpg``); other names as
    they are. The temp sweep uses it to find the page files of the outputs it is given."""
    m = _PAGE_N.match(name)
    return m.group("stem") + (m.group("ext") or "") if m else name
