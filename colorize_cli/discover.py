"""Find the scans to colorize: walk the input folder, sniff formats, map each scan to its output.

Discovery decides *what* a run does before a single pixel is decoded, so it has to be cheap
(one ``scandir`` per folder, one 16-byte read per file), deterministic (sorted, with a shard
hash that is the same on every machine, so ``--shard K/N`` runs agree on who does what and on
every output name) and safe (it never loops, never leaves the input root unless asked, and
never walks into its own output folder).

Rules, in the order they are applied to each folder entry:

* Hidden entries (name starts with ``.``) are skipped silently and are not listed in
  ``Skipped``: ``.git``, ``.DS_Store``, ``._scan.tif`` resource forks and our own temp files
  are noise, not scans a user expects to hear about.
* ``exclude`` globs prune files and whole folders; ``include`` globs (when given) keep only
  files that match, or that lie in a folder that matches. Globs use ``fnmatch`` syntax on the
  posix path relative to the input root (``*`` also crosses ``/``), a pattern without ``/``
  also matches the bare name, ``**/`` also matches zero folders, and matching ignores case
  (scanners write ``.TIF`` as often as ``.tif``).
* Symlinks are followed when ``follow_symlinks``; a link whose real target is outside the
  input root is skipped unless ``allow_outside_root``. Folders are identified by
  ``(st_dev, st_ino)`` and walked at most once: real folders are walked first, linked folders
  afterwards in sorted order, so a link to a folder that was already walked (its own
  ancestor: "symlink loop"; anywhere else: "symlink to a folder already walked") is skipped.
* A file is a scan when its first bytes name a raster format of ``formats.py`` (JPEG, PNG,
  TIFF, WebP, JPEG 2000, BMP, GIF, PNM, PSD, HEIF, AVIF), whatever its name; TGA, which has no
  signature, by its extension. A document (PDF, PostScript/EPS, SVG) is ``Skipped`` with a
  reason naming its format. A file whose bytes say nothing (empty, unreadable, text) but whose
  extension is an image extension is still a ``Job``: it is a broken scan, and the reading
  stage fails it with the real reason. Only files with neither image content nor an image
  extension are ``Skipped``.
* ``Skipped`` may name folders (excluded, unreadable, loop, outside root, the output folder);
  their reason says "folder" or "symlink", and they are never counted as scans.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import heapq
import os
import re
import stat
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, NamedTuple

from colorize_cli import formats

if TYPE_CHECKING:
    from colorize_cli.settings import RunSettings

SNIFF_BYTES = 16

# The format table (signatures, extensions, what each format is written as) lives in formats.py.
EXTENSIONS = formats.EXTENSIONS
_EXT_FORMAT = formats.EXT_FORMAT
OUT_FORMATS = formats.OUT_FORMATS


class UsageError(ValueError):
    """A mistake in how the tool was called; the CLI prints the message and exits with status 2."""


@dataclass(frozen=True)
class Job:
    """One scan to colorize. ``fmt`` is what the bytes say (or the extension, for broken files)."""

    input: Path  # absolute, through any symlinks as found
    rel: PurePosixPath  # relative to the input root, as found
    output: Path  # absolute
    fmt: str  # input format, as in formats.EXTENSIONS: JPEG | PNG | TIFF | JPEG2000 | GIF | ...
    out_fmt: str  # format to write: formats.output_format(fmt) unless --format chose one


@dataclass(frozen=True)
class Skipped:
    """A file (or folder) the walk saw and left alone, with the reason a user can act on."""

    input: Path
    rel: PurePosixPath
    reason: str


@dataclass(frozen=True)
class DiscoverOptions:
    """What to pick up and how to name the results."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = True
    allow_outside_root: bool = False
    out_format: str | None = None  # None: same as input; else jpeg | png | tiff | webp | jp2
    suffix: str = ""  # appended to each output's stem
    shard: tuple[int, int] | None = None  # (K, N), 1-based K

    def __post_init__(self) -> None:
        if self.out_format is not None and self.out_format.lower() not in OUT_FORMATS:
            raise UsageError(
                f"unknown output format {self.out_format!r}; choose jpeg, png, tiff, webp or jp2"
            )
        if "/" in self.suffix or os.sep in self.suffix or "\0" in self.suffix:
            raise UsageError(f"--suffix may not contain a path separator (got {self.suffix!r})")
        if self.shard is not None:
            k, n = self.shard
            if n < 1 or not 1 <= k <= n:
                raise UsageError(f"shard {k}/{n} is out of range: need 1 <= K <= N")

    @classmethod
    def from_settings(cls, settings: RunSettings) -> DiscoverOptions:
        return cls(
            include=tuple(settings.include),
            exclude=tuple(settings.exclude),
            follow_symlinks=settings.follow_symlinks,
            allow_outside_root=settings.allow_outside_root,
            out_format=settings.output.format,
            suffix=settings.output.suffix,
            shard=settings.shard,
        )


# --------------------------------------------------------------------------- sniffing


def _format_of(head: bytes) -> str | None:
    return formats.raster_format(head)


def _read_head(path: str | os.PathLike[str]) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        return os.read(fd, SNIFF_BYTES)
    finally:
        os.close(fd)


def sniff_format(path: str | os.PathLike[str]) -> str | None:
    """The image format named by the file's first 16 bytes, or None; the extension is ignored.

    Raises OSError when the file cannot be opened: an unreadable file is not a non-image.
    """
    return _format_of(_read_head(path))


# --------------------------------------------------------------------------- globs


def _double_star_variants(pattern: str) -> list[str]:
    """``a/**/b`` also as ``a/b``: with fnmatch ``*`` crossing ``/``, that is all ``**`` needs."""
    i = pattern.find("**/")
    if i < 0:
        return [pattern]
    head, tails = pattern[:i], _double_star_variants(pattern[i + 3 :])
    return [head + "**/" + t for t in tails] + [head + t for t in tails]


@dataclass(frozen=True)
class _Glob:
    text: str
    regex: re.Pattern[str]
    bare: bool  # no "/" inside: also tried against the entry's own name

    def matches(self, rel: str, name: str, is_dir: bool) -> bool:
        tries = (rel, name) if self.bare else (rel,)
        if is_dir:
            tries += tuple(t + "/" for t in tries)
        return any(self.regex.match(t) for t in tries)


def _compile_glob(pattern: str) -> _Glob:
    norm = pattern
    while norm.startswith("./"):
        norm = norm[2:]
    norm = norm.lstrip("/")
    regex = "|".join(fnmatch.translate(v) for v in _double_star_variants(norm))
    return _Glob(pattern, re.compile(regex, re.IGNORECASE), "/" not in norm.rstrip("/"))


def _first_match(globs: Sequence[_Glob], rel: str, name: str, is_dir: bool) -> _Glob | None:
    return next((g for g in globs if g.matches(rel, name, is_dir)), None)


def glob_matches(pattern: str, rel: PurePosixPath | str, is_dir: bool = False) -> bool:
    """Whether an --include/--exclude pattern matches a path relative to the input root."""
    text = str(rel)
    return _compile_glob(pattern).matches(text, text.rpartition("/")[2], is_dir)


# --------------------------------------------------------------------------- sharding


def shard_of(rel: PurePosixPath | str, n: int) -> int:
    """The 1-based shard of a relative path: sha1 of its posix utf-8 text, so every machine agrees."""
    text = rel.as_posix() if isinstance(rel, PurePosixPath) else str(rel)
    digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; anything else is a UsageError that says what is expected."""
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not m:
        raise UsageError(f"--shard must look like K/N, for example 2/4 (got {text!r})")
    k, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise UsageError(f"--shard {text}: N must be at least 1")
    if not 1 <= k <= n:
        raise UsageError(f"--shard {text}: K must be between 1 and {n}")
    return k, n


# --------------------------------------------------------------------------- output folder


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def check_out_root(input_root: Path, out_root: Path, exclude: Sequence[str] = ()) -> None:
    """Refuse output folders that would mix results into the originals.

    The output may not be the input folder, nor contain it (results could land on originals),
    nor lie inside it (including through a symlink) unless the walk can never reach it: an
    ``exclude`` glob or a hidden name matches the output folder or one of its parents.
    """
    real_in = os.path.realpath(input_root)
    real_out = os.path.realpath(out_root)
    if os.path.exists(out_root) and not os.path.isdir(out_root):
        raise UsageError(f"output {out_root} exists and is not a folder")
    via_link = "" if real_out == os.path.abspath(out_root) else f" (it resolves to {real_out})"
    if real_out == real_in:
        raise UsageError(
            f"output folder {out_root} is the input folder{via_link}; "
            "originals are never overwritten: choose a folder outside the input"
        )
    if _within(real_in, real_out):
        raise UsageError(
            f"input folder {input_root} is inside the output folder {out_root}{via_link}; "
            "results could overwrite originals: choose a folder outside the input"
        )
    if not _within(real_out, real_in):
        return
    rel = os.path.relpath(real_out, real_in).replace(os.sep, "/")
    globs = [_compile_glob(p) for p in exclude]
    parts = rel.split("/")
    for i, name in enumerate(parts, start=1):
        if name.startswith(".") or _first_match(globs, "/".join(parts[:i]), name, True):
            return
    raise UsageError(
        f"output folder {out_root} is inside the input folder {input_root}{via_link}; "
        f"choose a folder outside it, or keep the walk out of it with --exclude '{rel}'"
    )


# --------------------------------------------------------------------------- walking


class _Found(NamedTuple):
    rel: str
    path: str
    fmt: str


def _rel_key(rel: str) -> tuple[str, ...]:
    return tuple(rel.split("/"))


@dataclass
class _Walk:
    """State of one walk; lives only inside discover()."""

    real_root: str
    opts: DiscoverOptions
    include: list[_Glob]
    exclude: list[_Glob]
    out_id: tuple[int, int] | None

    def __post_init__(self) -> None:
        self.found: list[_Found] = []
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

        hit = _first_match(self.exclude, rel, name, is_dir)
        if hit is not None:
            what = "folder excluded" if is_dir else "excluded"
            return self._skip(rel, path, f"{what} by --exclude '{hit.text}'")

        if is_dir:
            inc = included or _first_match(self.include, rel, name, True) is not None
            if is_link:  # walked after every real folder, so real paths win over links
                ident = (st.st_dev, st.st_ino)
                heapq.heappush(self.links, (_rel_key(rel), path, rel, inc, ident))
            else:
                st = entry.stat(follow_symlinks=False)
                self._enter(path, rel, inc, (st.st_dev, st.st_ino))
            return

        if self.include and not included and _first_match(self.include, rel, name, False) is None:
            pats = ", ".join(f"'{g.text}'" for g in self.include)
            return self._skip(rel, path, f"not matched by --include {pats}")
        if not is_file:
            return self._skip(rel, path, "not a regular file")
        if is_link and not self.opts.allow_outside_root:
            target = os.path.realpath(path)
            if not _within(target, self.real_root):
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
        if not self.opts.allow_outside_root and not _within(target, self.real_root):
            return self._skip(rel, path, f"symlink outside input root -> {target}")
        if ident == self.out_id:
            return self._skip(rel, path, "symlink to the output folder")
        if ident in self.visited:
            if _within(os.path.realpath(os.path.dirname(path)), target):
                return self._skip(rel, path, "symlink loop")
            return self._skip(rel, path, f"symlink to a folder already walked -> {target}")
        self.visited.add(ident)
        self.stack.append((path, rel + "/", included))

    def _sniff(self, path: str, rel: str, name: str) -> None:
        problem = ""
        try:
            head = _read_head(path)
        except PermissionError:
            head, problem = b"", "permission denied"
        except OSError as err:
            head, problem = b"", f"unreadable: {err.strerror}"
        ext = os.path.splitext(name)[1].lower()
        document = formats.not_a_raster(head, ext)
        fmt = None if document else _format_of(head) or _EXT_FORMAT.get(ext)
        if document:
            self._skip(rel, path, document)
        elif fmt is not None:
            self.found.append(_Found(rel, path, fmt))
        elif problem:
            self._skip(rel, path, problem)
        else:
            self._skip(rel, path, "empty file" if not head else "not an image")


# --------------------------------------------------------------------------- output names


class _Name(NamedTuple):
    parent: str  # "dir/sub/" or ""
    stem: str
    ext: str  # the input's image extension as spelled, or "" (unknown extensions stay in stem)
    out_ext: str


def _name_for(rel: str, fmt: str, out_format: str | None) -> _Name:
    parent, _, name = rel.rpartition("/")
    stem, ext = os.path.splitext(name)
    if ext.lower() not in _EXT_FORMAT:
        stem, ext = name, ""  # "scan.001" -> "scan.001.jpg", so numbered scans stay apart
    written = OUT_FORMATS[out_format.lower()] if out_format else formats.output_format(fmt)
    if out_format is None and ext and _EXT_FORMAT[ext.lower()] == written and ext.lower() not in formats.NOT_KEPT_SPELLINGS:
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
        key=lambda i: (names[i].ext.lower() != names[i].out_ext.lower(), _rel_key(found[i][0])),
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


# --------------------------------------------------------------------------- discover


def _dir_id(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def discover(input_root: Path, out_root: Path, opts: DiscoverOptions) -> tuple[list[Job], list[Skipped]]:
    """Walk ``input_root`` and return the scans to colorize and what was left alone, both sorted.

    Output names are resolved over the whole tree (see ``assign_outputs``) and only then is
    ``opts.shard`` applied, to jobs and skipped entries alike, by ``shard_of(rel)``; the union
    of all N shards is exactly the unsharded result.
    """
    root = os.path.abspath(input_root)
    if not os.path.isdir(root):
        what = "is not a folder" if os.path.exists(root) else "does not exist"
        raise UsageError(f"input folder {input_root} {what}")
    check_out_root(Path(root), Path(out_root), opts.exclude)
    out_abs = Path(os.path.abspath(out_root))

    walk = _Walk(
        real_root=os.path.realpath(root),
        opts=opts,
        include=[_compile_glob(p) for p in opts.include],
        exclude=[_compile_glob(p) for p in opts.exclude],
        out_id=_dir_id(str(out_abs)),
    )
    walk.run(root)

    found = sorted(walk.found, key=lambda f: _rel_key(f.rel))
    outputs = assign_outputs([(f.rel, f.fmt) for f in found], opts.out_format, opts.suffix)
    out_fmt = OUT_FORMATS[opts.out_format.lower()] if opts.out_format else None
    keep = (lambda rel: shard_of(rel, opts.shard[1]) == opts.shard[0]) if opts.shard else (lambda rel: True)

    jobs = [
        Job(Path(f.path), PurePosixPath(f.rel), out_abs / o, f.fmt, out_fmt or formats.output_format(f.fmt))
        for f, o in zip(found, outputs)
        if keep(f.rel)
    ]
    skipped = [
        Skipped(Path(path), PurePosixPath(rel), reason)
        for rel, path, reason in sorted(walk.skipped, key=lambda s: _rel_key(s[0]))
        if keep(rel)
    ]
    return jobs, skipped
