"""Find the scans to colorize: walk the input folder, then name each scan's output.

Discovery decides *what* a run does before a single pixel is decoded, so it has to be cheap
(one ``scandir`` per folder, one 16-byte read per file), deterministic (sorted, with a shard
hash that is the same on every machine, so ``--shard K/N`` runs agree on who does what and on
every output name) and safe (it never loops, never leaves the input root unless asked, and
never walks into its own output folder).

The steps live in their own modules: :mod:`.walk` (the rules for each folder entry),
:mod:`.formats` (sniffing), :mod:`.globs` (``--include``/``--exclude``), :mod:`.outnames`
(output names and collisions) and :mod:`.shards` (``--shard K/N``). ``Skipped`` may name
folders (excluded, unreadable, loop, outside root, the output folder); their reason says
"folder" or "symlink", and they are never counted as scans.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from colorize_cli.errors import UsageError
from colorize_cli.discover.formats import OUT_FORMATS, output_format
from colorize_cli.discover.globs import compile_globs, first_match
from colorize_cli.discover.outnames import assign_outputs
from colorize_cli.discover.relpath import rel_key, within
from colorize_cli.discover.shards import check_shard, shard_of
from colorize_cli.discover.walk import Walk

if TYPE_CHECKING:
    from colorize_cli.settings import RunSettings


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
            check_shard(*self.shard)

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


# --------------------------------------------------------------------------- output folder


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
    if within(real_in, real_out):
        raise UsageError(
            f"input folder {input_root} is inside the output folder {out_root}{via_link}; "
            "results could overwrite originals: choose a folder outside the input"
        )
    if not within(real_out, real_in):
        return
    rel = os.path.relpath(real_out, real_in).replace(os.sep, "/")
    globs = compile_globs(exclude)
    parts = rel.split("/")
    for i, name in enumerate(parts, start=1):
        if name.startswith(".") or first_match(globs, "/".join(parts[:i]), name, True):
            return
    raise UsageError(
        f"output folder {out_root} is inside the input folder {input_root}{via_link}; "
        f"choose a folder outside it, or keep the walk out of it with --exclude '{rel}'"
    )


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

    walk = Walk(
        real_root=os.path.realpath(root),
        opts=opts,
        include=compile_globs(opts.include),
        exclude=compile_globs(opts.exclude),
        out_id=_dir_id(str(out_abs)),
    )
    walk.run(root)

    found = sorted(walk.found, key=lambda f: rel_key(f.rel))
    outputs = assign_outputs([(f.rel, f.fmt) for f in found], opts.out_format, opts.suffix)
    out_fmt = OUT_FORMATS[opts.out_format.lower()] if opts.out_format else None
    keep = (lambda rel: shard_of(rel, opts.shard[1]) == opts.shard[0]) if opts.shard else (lambda rel: True)

    jobs = [
        Job(Path(f.path), PurePosixPath(f.rel), out_abs / o, f.fmt, out_fmt or output_format(f.fmt))
        for f, o in zip(found, outputs)
        if keep(f.rel)
    ]
    skipped = [
        Skipped(Path(path), PurePosixPath(rel), reason)
        for rel, path, reason in sorted(walk.skipped, key=lambda s: rel_key(s[0]))
        if keep(rel)
    ]
    return jobs, skipped
