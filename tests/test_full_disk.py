"""A nearly full disk at every byte: no cut file is ever recorded done, for every output format.

On a real tmpfs the free space is set to levels around an output's size (page by page near the
boundary, coarsely elsewhere). At each level an output is either complete (decoded by Pillow and
ImageMagick, byte-identical to the same encode on a roomy disk) or refused with "disk full" and
no file left behind. End to end, a run that meets a full disk records only complete outputs as
done, and a rerun after space is freed redoes exactly the files that failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli.app import app
from colorize_cli.io.scanfile import WriteError, write_image
from colorize_cli.manifest import read_manifest
from colorize_cli.io.meta.source import Metadata

runner = CliRunner()
PAGE = os.sysconf("SC_PAGE_SIZE")
FORMATS = {"JPEG": "jpg", "PNG": "png", "TIFF": "tif", "WEBP": "webp"}
EXTENSIONS = {**FORMATS, "JPEG2000": "jp2"}


@dataclasses.dataclass
class Tmpfs:
    """A real tmpfs whose free space can be set to an exact number of pages."""

    path: Path
    size: int

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def leave_free(self, nbytes: int) -> None:
        """Fill the file system with a filler file so that `nbytes` (rounded down to pages) stay free."""
        filler = self.path / "filler"
        filler.unlink(missing_ok=True)
        want = (nbytes // PAGE) * PAGE
        with open(filler, "wb") as f:
            f.write(b"\0" * (self.free() - want))
        assert self.free() == want

    def release(self) -> None:
        (self.path / "filler").unlink(missing_ok=True)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Tmpfs]:
    path = tmp_path / "disk"
    path.mkdir()
    size = 4 * 1024 * 1024
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    assert mounted.returncode == 0, f"these tests need a real tmpfs (run as root, or grant CAP_SYS_ADMIN): {mounted.stderr}"
    try:
        yield Tmpfs(path, size)
    finally:
        subprocess.run(["umount", str(path)], check=True)


def noise_rgb(h: int, w: int, seed: int) -> np.ndarray:
    """Noise compresses badly: the output's size is close to its pixel count in every format."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def complete(path: Path) -> None:
    """Two independent decoders read the whole file: a cut file fails one of them. (Warnings
    about metadata profiles are not about the pixels, so they are not errors here.)"""
    with Image.open(path) as im:
        im.load()
    proc = subprocess.run(["convert", str(path), "null:"], capture_output=True, text=True)
    pixel_warnings = [line for line in proc.stderr.splitlines() if "Profile" not in line]  # e.g. "Premature end of JPEG file"
    assert proc.returncode == 0 and not pixel_warnings, f"ImageMagick rejects {path.name}: {proc.stderr}"


def temps(root: Path) -> list[Path]:
    return sorted(root.rglob(".*.tmp"))


@pytest.mark.parametrize("fmt", [*FORMATS, "JPEG2000"])
def test_every_free_space_level_gives_a_whole_file_or_disk_full(fmt: str, tmpfs: Tmpfs, tmp_path: Path) -> None:
    rgb = noise_rgb(96, 160, seed=1)
    reference = tmp_path / f"ref.{EXTENSIONS[fmt]}"
    write_image(reference, rgb, None, fmt, 92, Metadata())
    size = reference.stat().st_size
    pages = -(-size // PAGE)
    near = range(max(pages - 4, 0), pages + 3)  # page by page around the boundary
    coarse = (0, pages // 4, pages // 2, 2 * pages)
    outcomes: dict[int, str] = {}
    for level in sorted({*near, *coarse}):
        out = tmpfs.path / f"out.{EXTENSIONS[fmt]}"
        out.unlink(missing_ok=True)
        tmpfs.leave_free(level * PAGE)
        try:
            write_image(out, rgb, None, fmt, 92, Metadata())
        except WriteError as err:
            assert str(err) == "disk full" and err.kind.value == "disk full", (level, str(err))
            assert not out.exists() and not temps(tmpfs.path), level  # nothing cut left behind
            outcomes[level] = "disk full"
        else:
            assert out.read_bytes() == reference.read_bytes(), f"{fmt} cut at {level} free pages"
            complete(out)
            outcomes[level] = "written"
    # The sweep crossed the boundary: both outcomes happen, and more space never makes it worse.
    seen = [outcomes[level] for level in sorted(outcomes)]
    assert "disk full" in seen and "written" in seen, outcomes
    assert seen == sorted(seen), outcomes  # "disk full" < "written": one switch, at the boundary


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_run_on_a_nearly_full_disk_records_only_whole_files_and_a_rerun_redoes_the_rest(
        fmt: str, tmpfs: Tmpfs, tmp_path: Path, random_weights: Path, fast_cli) -> None:
    src, out = tmp_path / "scans", tmpfs.path / "color"
    src.mkdir()
    gray = np.random.default_rng(7).integers(0, 256, (120, 200), dtype=np.uint8)
    rels = ["a.png", "b.png"]  # the same picture twice: two outputs of the same size
    for rel in rels:
        Image.fromarray(gray, "L").save(src / rel)
    manifest = tmp_path / "manifest.jsonl"  # off the small disk, so the levels count outputs only

    def command(dest: Path, manifest: Path) -> list[str]:
        return ["dir", str(src), "--out", str(dest), "--manifest", str(manifest), "--format", fmt.lower(),
                "--weights", str(random_weights), "--render-size", "64", "--device", "cpu", "--batch-size", "1",
                "--json"]

    roomy = runner.invoke(app, command(tmp_path / "roomy", tmp_path / "roomy.jsonl"))
    assert roomy.exit_code == 0, roomy.output
    size = (tmp_path / "roomy" / f"a.{FORMATS[fmt]}").stat().st_size
    args = command(out, manifest)
    out.mkdir()
    # One page for the lock file, one output's pages, and half of the other's.
    tmpfs.leave_free(PAGE + (-(-size // PAGE)) * PAGE + size // 2)

    first = runner.invoke(app, args)
    assert first.exit_code == 1, first.output
    summary = json.loads(first.stdout)
    assert summary["disk_full"] is True
    records = {r["input"]: r for r in read_manifest(manifest) if r["type"] == "file"}
    done = {rel for rel, r in records.items() if r["status"] == "done"}
    failed = {rel: (r["reason"], r["kind"]) for rel, r in records.items() if r["status"] == "failed"}
    assert len(done) == 1 and failed == {(set(rels) - done).pop(): ("disk full", "disk full")}, records
    for rel in done:
        output = out / records[rel]["output"]
        assert output.stat().st_size == records[rel]["output_size"] == size
        complete(output)
    cut = Path(next(iter(failed))).with_suffix(f".{FORMATS[fmt]}")
    assert not (out / cut).exists() and not temps(out)
    assert not list(out.glob(".colorize*.lock"))

    tmpfs.release()  # the archivist frees space and reruns the same command
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    last_run = []
    for r in read_manifest(manifest):
        if r["type"] == "run":
            last_run = []
        elif r["type"] == "file":
            last_run.append(r["input"])
    assert last_run == sorted(set(rels) - done)  # exactly the failed file, not the done one
    for rel in rels:
        complete(out / Path(rel).with_suffix(f".{FORMATS[fmt]}"))


def test_a_disk_full_at_start_exits_1_and_leaves_no_lock(tmpfs: Tmpfs, tmp_path: Path, random_weights: Path) -> None:
    src, out = tmp_path / "scans", tmpfs.path / "color"
    src.mkdir()
    Image.fromarray(noise_rgb(40, 60, 3)[..., 0], "L").save(src / "a.png")
    out.mkdir()
    tmpfs.leave_free(0)
    result = runner.invoke(app, ["dir", str(src), "--out", str(out), "--weights", str(random_weights),
                                 "--device", "cpu", "--render-size", "64"])
    assert result.exit_code == 1, result.output
    assert "colorize-dir: error: disk full:" in result.stderr and "free space and rerun" in result.stderr
    assert list(out.iterdir()) == []  # no lock file, no empty manifest
