"""``--shard K/N``: which machine does which file. Parsed and checked here, and nowhere else.

The hash is sha1 of the relative path's posix UTF-8 text, so every machine, whatever its OS or
Python, puts every file in the same shard and the union of all N shards is the whole tree.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from colorize_cli.errors import UsageError

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


def check_shard(k: int, n: int) -> tuple[int, int]:
    """``(K, N)`` back when 1 <= K <= N, else a UsageError that gives the rule, the pair and which
    part is wrong. The one check of a shard, for --shard and for the manifest's file names alike."""
    if not 1 <= k <= n:
        part = "N must be at least 1" if n < 1 else f"K must be between 1 and {n}"
        raise UsageError(f"shard out of range: 1 <= K <= N, got {k}-of-{n}: {part}")
    return k, n


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> ``(2, 4)``; anything else is a UsageError that says what is expected."""
    m = _SHARD.fullmatch(text)
    if not m:
        raise UsageError(f"--shard must look like K/N, for example 2/4 (got {text!r})")
    return check_shard(int(m.group(1)), int(m.group(2)))


def shard_of(rel: PurePosixPath | str, n: int) -> int:
    """The 1-based shard of a relative path: sha1 of its posix utf-8 text, so every machine agrees."""
    text = rel.as_posix() if isinstance(rel, PurePosixPath) else str(rel)
    digest = hashlib.sha1(text.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % n + 1
