"""`colorize-dir` end to end: a tree of mixed formats, sizes and modes, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli.app import app
from colorize_cli.color import gray_to_lightness, rgb_to_lab

runner = CliRunner()


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 120 + 70 * np.sin(x / 41.0 + y / 67.0) + rng.normal(0, 8, (h, w))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_tree(root: Path) -> dict[str, tuple[int, int]]:
    """Mixed formats, modes and sizes (up to an 8000 px panorama); returns rel -> (w, h)."""
    (root / "a" / "b").mkdir(parents=True)
    g = texture(120, 180)
    Image.fromarray(g, "L").save(root / "gray.jpg", quality=90)
    Image.fromarray(g, "L").save(root / "a" / "gray.png")
    Image.fromarray(g.astype(np.uint16) * 257).save(root / "a" / "deep16.png")
    Image.fromarray(g, "L").save(root / "a" / "b" / "scan.tif")
    Image.fromarray(g, "L").convert("RGB").save(root / "a" / "b" / "old.bmp")
    Image.fromarray(g, "L").save(root / "a" / "web.webp", lossless=True)
    sepia = np.dstack([g, (g * 0.85).astype(np.uint8), (g * 0.6).astype(np.uint8)])
    Image.fromarray(sepia, "RGB").save(root / "sepia.jpg", quality=92)
    Image.fromarray(np.dstack([g, g, g, np.full_like(g, 200)]), "RGBA").save(root / "alpha.png")
    Image.fromarray(g, "L").convert("P").save(root / "palette.png")
    Image.fromarray(g, "L").convert("CMYK").save(root / "cmyk.jpg")
    Image.fromarray(texture(300, 8000, 1), "L").save(root / "panorama.png")
    Image.fromarray(texture(2000, 1500, 2), "L").save(root / "a" / "big.jpg", quality=85)
    (root / "notes.txt").write_text("not an image")
    sizes = {}
    for p in root.rglob("*"):
        if p.is_file() and p.suffix != ".txt":
            with Image.open(p) as im:
                sizes[p.relative_to(root).as_posix()] = im.size
    return sizes


def lightness_of(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return rgb_to_lab(rgb)[..., 0]


def test_tree_of_mixed_scans(tmp_path: Path, random_weights: Path) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    sizes = make_tree(src)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["dir", str(src), "--out", str(out), "--weights", str(random_weights),
                                 "--render-size", "128", "--device", "cpu", "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"done": len(sizes), "failed": 0, "skipped": 1}  # notes.txt
    for rel, size in sizes.items():
        made = out / (rel[: -len(".bmp")] + ".png" if rel.endswith(".bmp") else rel)  # BMP -> PNG fallback
        assert made.is_file(), rel
        with Image.open(made) as im:
            assert im.size == size, rel
    # originals untouched, byte for byte
    assert all(p.read_bytes() == data for p, data in before.items())
    # luminance kept: the output's L* is the input's L*, up to 8-bit rounding (lossless outputs)
    for rel in ("a/gray.png", "panorama.png", "a/b/scan.tif"):
        with Image.open(src / rel) as im:
            expected = gray_to_lightness(np.asarray(im, dtype=np.float32) / 255.0)
        assert np.abs(lightness_of(out / rel) - expected).max() < 0.6, rel
    header = (out / "a" / "deep16.png").read_bytes()[:26]  # PNG IHDR: bit depth at 24, colour type at 25
    assert header[24] == 16 and header[25] in (2, 6), "16-bit gray in must give 16-bit RGB out"
    rgba = Image.open(out / "alpha.png")
    assert rgba.mode == "RGBA" and np.asarray(rgba)[..., 3].min() == 200


def test_dry_run_lists_without_loading_torch(tmp_path: Path, random_weights: Path) -> None:
    src = tmp_path / "scans"
    src.mkdir()
    Image.fromarray(texture(40, 50), "L").save(src / "one.png")
    (src / "readme.txt").write_text("x")
    code = (
        "import sys; from colorize_cli.cli.app import main; sys.argv=['colorize','dir',%r,'--out',%r,'--dry-run'];"
        "\ntry: main()\nexcept SystemExit: pass\nprint('TORCH', 'torch' in sys.modules)" % (str(src), str(tmp_path / "out"))
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "do    one.png  (new)" in proc.stdout
    assert "skip  readme.txt" in proc.stdout
    assert "TORCH False" in proc.stdout
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_missing_and_damaged_weights_are_clear_errors(tmp_path: Path, random_weights: Path) -> None:
    src = tmp_path / "scans"
    src.mkdir()
    Image.fromarray(texture(40, 50), "L").save(src / "one.png")
    missing = runner.invoke(app, ["dir", str(src), "--out", str(tmp_path / "o"), "--weights", str(tmp_path / "none.safetensors")])
    assert missing.exit_code == 2 and "weights file not found" in missing.output
    damaged = tmp_path / "damaged.safetensors"
    data = bytearray(random_weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (tmp_path / "damaged.safetensors.sha256").write_text(Path(str(random_weights) + ".sha256").read_text())
    bad = runner.invoke(app, ["dir", str(src), "--out", str(tmp_path / "o"), "--weights", str(damaged)])
    assert bad.exit_code == 2 and "weights file is damaged" in bad.output
    assert not (tmp_path / "o").exists()  # nothing was started


def test_output_inside_input_is_refused(tmp_path: Path, random_weights: Path) -> None:
    src = tmp_path / "scans"
    src.mkdir()
    Image.fromarray(texture(40, 50), "L").save(src / "one.png")
    result = runner.invoke(app, ["dir", str(src), "--out", str(src / "color"), "--weights", str(random_weights)])
    assert result.exit_code == 2
    assert "inside the input folder" in result.output
    assert not (src / "color").exists()


def test_format_suffix_and_collisions(tmp_path: Path, random_weights: Path) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    src.mkdir()
    Image.fromarray(texture(60, 80), "L").save(src / "a.png")
    Image.fromarray(texture(60, 80, 3), "L").save(src / "a.jpg")
    result = runner.invoke(app, ["dir", str(src), "--out", str(out), "--weights", str(random_weights), "--render-size", "64",
                                 "--format", "png", "--suffix", "_color", "--quiet"])
    assert result.exit_code == 0, result.output
    made = sorted(p.name for p in out.glob("*.png"))
    assert len(made) == 2 and all(n.endswith(".png") for n in made) and all("_color" in n for n in made)


def test_help_is_instant_and_torch_free() -> None:
    code = (
        "import sys; from colorize_cli.cli.app import dir_main; sys.argv=['colorize-dir','--help']\n"
        "try: dir_main()\nexcept SystemExit: pass\nprint('TORCH', 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "--render-size" in proc.stdout and "--shard" in proc.stdout
    assert "TORCH False" in proc.stdout


def test_help_groups_the_options_into_panels() -> None:
    """`colorize-dir --help` shows its options in five panels, each option in the right one."""
    env = {"COLUMNS": "160", "TERM": "dumb"}
    proc = subprocess.run([sys.executable, "-c", "from colorize_cli.cli.app import dir_main; dir_main()", "--help"],
                          capture_output=True, text=True, timeout=60, env={**__import__("os").environ, **env})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    panels = ["What to read", "How to colour", "What to write", "Resume and runs", "Performance"]
    titles = {i: next(p for p in panels if p in line) for i, line in enumerate(lines) if any(f"─ {p} ─" in line for p in panels)}
    assert sorted(titles.values()) == sorted(panels), proc.stdout

    def panel_of(option: str) -> str:
        row = next(i for i, line in enumerate(lines) if f" {option} " in line or f" {option}\n" in line + "\n")
        return titles[max(i for i in titles if i < row)]

    expected = {"--include": "What to read", "--max-pixels": "What to read", "--render-size": "How to colour",
                "--upsample": "How to colour", "--format": "What to write", "--report": "What to write",
                "--shard": "Resume and runs", "--dry-run": "Resume and runs", "--device": "Performance",
                "--batch-size": "Performance"}  # fmt: skip
    assert {o: panel_of(o) for o in expected} == expected
    start = next(i for i, line in enumerate(lines) if "─ Options ─" in line)
    box = lines[start + 1 : next(i for i in range(start, len(lines)) if lines[i].startswith("╰"))]
    assert sorted(line.split()[1] for line in box if line.startswith("│ -")) == ["--help", "--version"]
