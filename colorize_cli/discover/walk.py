"""The walk over the input folder: which entries are scans, which are skipped and why.

Rules, in the order they are applied to each folder entry:

* Hidden entries (name starts with ``.``) are skipped silently and are not listed in
  ``Skipped``: ``.git``, ``.DS_Store``, ``._scan.tif`` resource forks and our own temp files
  are noise, not scans a user expects to hear about.
* ``exclude`` globs prune files and whole folders; ``include`` globs (when given) keep only
  files that match, or that lie in a folder that matches (see :mod:`colorize_cli.discover.globs`).
* Symlinks are followed when ``follow_symlinks``; a link whose real target is outside the
  input root is skipped unless ``allow_outside_root``. Folders are identified by
  ``(st_dev, st_ino)`` and walked at most once: real folders are walked first, linked folders
  afterwards in sorted order, so a link to a folder that was already walked (its own
  ancestor: "symlink loop"; anywhere else: "symlink to a folder already walked") is skipped.
* A file is a scan when its first bytes name a raster format of ``formats.py`` (JPEG, PNG,
  TIFF, WebP, JPEG 2000, BMP, GIF, PNM, PSD, PCX, HEIF, AVIF), whatever its name; TGA, which has no
  signature, by its extension. A document (PDF, PostScript/EPS, SVG) is skipped with a
  reason naming its format. A file whose bytes say nothing (empty, unreadable, text) but whose
  extension is an image extension is still found: it is a broken scan, and the reading
  stage fails it with the real reason. Only files with neither are skipped.
"""

from __future__ import annotations

import errno
import heapq
import os
import stat
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from colorize_cli.discover.formats import EXT_FORMAT, not_a_raster, raster_format, read_head
from colorize_cli.discover.globs import Glob, first_match
from colorize_cli.discover.relpath import rel_key, within


class WalkRules(Protocol):
    """The two symlink options the walk reads (DiscoverOptions has them)."""

    follow_symlinks: bool
    allow_outside_root: bool


class Found(NamedTuple):
    """A file the walk took for a scan; ``fmt`` is what its bytes say, or its extension."""

    rel: str
    path: str
    fmt: str


@dataclass
class Walk:
    """State of one walk: what was found and skipped so far; discover() runs one per call."""

    real_root: str
    opts: WalkRules
    include: list[Glob]
    exclude: list[Glob]
    out_id: tuple[int, int] | None

    def __post_init__(self) -> None:
        self.found: list[Found] = []
        self.skipped: list[tuple[str, str, str]] = []  # (rel, path, reason)
        self.visited: set[tuple[int, int]] = set()
        self.stack: list[tuple[str, str, bool]] = []  # (folder path, rel prefix, included)
        self.links: list[tuple[tuple[str, ...], str, str, bool, tuple[int, int]]] = []

    def run(self, root: str) -> None:
        st = os.stat(root)
        self.visited.add((st.st_dev, st.st_ino))
        self.stack.append((root, "", False))
        while True:
            while self.stack:
                self._scan(*self.stack.pop())
            if not self.links:
                return
            _, path, rel, included, ident = heapq.heappop(self.links)
            self._enter_link(path, rel, included, ident)

    def _skip(self, rel: str, path: str, reason: str) -> None:
        self.skipped.append((rel, path, reason))

    def _scan(self, folder: str, prefix: str, included: bool) -> None:
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as err:
            why = "permission denied" if isinstance(err, PermissionError) else err.strerror
            self._skip(prefix.rstrip("/") or ".", folder, f"folder unreadable: {why}")
            return
        for entry in entries:
            if not entry.name.startswith("."):
                self._visit(entry, prefix + entry.name, included)

    def _visit(self, entry: os.DirEntry[str], rel: str, included: bool) -> None:
        name, path = entry.name, entry.path
        is_link = entry.is_symlink()
        if is_link:
            if not self.opts.follow_symlinks:
                return self._skip(rel, path, "symlink (not followed)")
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return self._skip(rel, path, f"broken symlink -> {os.readlink(path)}")
            except OSError as err:
                loop = err.errno == errno.ELOOP
                return self._skip(rel, path, "symlink loop" if loop else f"unreadable: {err.strerror}")
            is_dir, is_file = stat.S_ISDIR(st.st_mode), stat.S_ISREG(st.st_mode)
        else:
            is_dir, is_file = entry.is_dir(follow_symlinks=False), entry.is_file(follow_symlinks=False)

        hit = first_match(self.exclude, rel, name, is_dir)
        if hit is not None:
            what = "folder excluded" if is_dir else "excluded"
            return self._skip(rel, path, f"{what} by --exclude '{hit.text}'")

        if is_dir:
            inc = included or first_match(self.include, rel, name, True) is not None
            if is_link:  # walked after every real folder, so real paths win over links
                ident = (st.st_dev, st.st_ino)
                heapq.heappush(self.links, (rel_key(rel), path, rel, inc, ident))
            else:
                st = entry.stat(follow_symlinks=False)
                self._enter(path, rel, inc, (st.st_dev, st.st_ino))
            return

        if self.include and not included and first_match(self.include, rel, name, False) is None:
            pats = ", ".join(f"'{g.text}'" for g in self.include)
            return self._skip(rel, path, f"not matched by --include {pats}")
        if not is_file:
            return self._skip(rel, path, "not a regular file")
        if is_link and not self.opts.allow_outside_root:
            target = os.path.realpath(path)
            if not within(target, self.real_root):
                return self._skip(rel, path, f"symlink outside input root -> {target}")
        self._sniff(path, rel, name)

    def _enter(self, path: str, rel: str, included: bool, ident: tuple[int, int]) -> None:
        if ident == self.out_id:
            return self._skip(rel, path, "folder is the output folder")
        if ident in self.visited:
            return self._skip(rel, path, "folder already walked")  # a bind mount seen twice
        self.visited.add(ident)
        self.stack.append((path, rel + "/", included))

    def _enter_link(self, path: str, rel: str, included: bool, ident: tuple[int, int]) -> None:
        target = os.path.realpath(path)
        if not self.opts.allow_outside_root and not within(target, self.real_root):
            return self._skip(rel, path, f"symlink outside input root -> {target}")
        if ident == self.out_id:
            return self._skip(rel, path, "symlink to the output folder")
        if ident in self.visited:
            if within(os.path.realpath(os.path.dirname(path)), target):
                return self._skip(rel, path, "symlink loop")
            return self._skip(rel, path, f"symlink to a folder already walked -> {target}")
        self.visited.add(ident)
        self.stack.append((path, rel + "/", included))

    def _sniff(self, path: str, rel: str, name: str) -> None:
        problem = ""
        try:
            head = read_head(path)
        except PermissionError:
            head, problem = b"", "permission denied"
        except OSError as err:
            head, problem = b"", f"unreadable: {err.strerror}"
        ext = os.path.splitext(name)[1].lower()
        document = not_a_raster(head, ext)
        fmt = None if document else raster_format(head) or EXT_FORMAT.get(ext)
        if document:
            self._skip(rel, path, document)
        elif fmt is not None:
            self.found.append(Found(rel, path, fmt))
        elif problem:
            self._skip(rel, path, problem)
        else:
            self._skip(rel, path, "empty file" if not head else "not an image")
