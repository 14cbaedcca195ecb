"""`colorize bench`: synthetic scans that compress like real ones, and phase timings that add up."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from colorize_cli.bench import BenchError, BenchSettings, bench_main, make_scans, out_dtypes, run_bench, summary_lines, time_shares
from colorize_cli.run.executors.local import default_engine_settings
from colorize_cli.run.processor import out_dtype
from colorize_cli.settings import ColorSettings, RuntimeSettings

import torch


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_make_scans_are_gray_jpegs_that_compress_like_photographs(tmp_path: Path) -> None:
    paths = make_scans(tmp_path / "a", 3, megapixels=0.5, seed=1)
    assert [p.name for p in paths] == ["scan-0000.jpg", "scan-0001.jpg", "scan-0002.jpg"]
    reference = tmp_path / "q90.jpg"
    Image.new("L", (16, 16)).save(reference, "JPEG", quality=90)
    for p in paths:
        with Image.open(p) as im, Image.open(reference) as ref:
            assert (im.format, im.mode) == ("JPEG", "L")
            assert im.quantization == ref.quantization  # encoded at quality 90
            w, h = im.size
            pixels = np.asarray(im, dtype=np.float32)
        assert abs(w * h - 0.5e6) < 0.01 * 0.5e6 and abs(w / h - 1.5) < 0.01
        # A flat or smooth picture would be far below 1 bit per pixel and make the I/O floor cheap.
        bits_per_pixel = p.stat().st_size * 8 / (w * h)
        assert 1.0 < bits_per_pixel < 4.0, bits_per_pixel
        assert pixels.std() > 20 and pixels.min() < 60 and pixels.max() > 190

    again = make_scans(tmp_path / "b", 3, megapixels=0.5, seed=1)
    assert [_digest(p) for p in again] == [_digest(p) for p in paths]
    assert len({_digest(p) for p in paths}) == 3
    assert _digest(make_scans(tmp_path / "c", 1, megapixels=0.5, seed=2)[0]) != _digest(paths[0])


def test_make_scans_refuses_an_empty_set(tmp_path: Path) -> None:
    with pytest.raises(BenchError, match="at least one scan"):
        make_scans(tmp_path, 0, megapixels=6.0)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "TIFF", "WEBP", "BMP"])
def test_floor_writes_the_bit_depth_the_engine_writes(fmt: str) -> None:
    """The floor's children get the engine's rule as a table (they must not import torch)."""
    for depth in (8, 16):
        for bit_depth in ("8", "16", "same"):
            floor = np.dtype(out_dtypes(bit_depth)[fmt][str(depth)])
            assert floor == out_dtype(SimpleNamespace(bit_depth=depth), fmt, bit_depth)
            sixteen = fmt in ("PNG", "TIFF") and (bit_depth == "16" or (bit_depth == "same" and depth == 16))
            assert floor == (np.uint16 if sixteen else np.uint8)


def test_run_bench_measures_every_phase_on_the_same_files(tmp_path: Path, random_weights: Path) -> None:
    scans = make_scans(tmp_path / "scans", 3, megapixels=0.1, seed=0)
    before = [(_digest(p), p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in scans]
    work = tmp_path / "work"
    work.mkdir()
    settings = BenchSettings(weights=random_weights, color=ColorSettings(render_size=64), runtime=RuntimeSettings(device="cpu"))
    r = run_bench(scans, settings, stages=True, isolate=False, workdir=work)

    assert [(_digest(p), p.stat().st_mtime_ns, p.stat().st_ctime_ns) for p in scans] == before  # originals untouched
    assert list(work.iterdir()) == []  # staged inputs and outputs cleaned up
    assert r["files"] == 3 and r["model"]["name"] == random_weights.stem and not r["model"]["random"]
    sizes = [Image.open(p).size for p in scans]
    assert r["megapixels"] == pytest.approx(sum(w * h for w, h in sizes) / 1e6, abs=1e-3)
    assert set(r["phases"]) == {"io_floor_serial", "io_floor", "network", "end_to_end", "stages"}
    for name, p in r["phases"].items():
        assert p["files"] == 3 and p["seconds"] > 0 and p["cpu_seconds"] >= 0, name
        assert p["images_per_s"] == pytest.approx(3 / p["seconds"], rel=1e-2)
        assert p["megapixels_per_s"] == pytest.approx(r["megapixels"] / p["seconds"], rel=1e-2)
        assert p["megapixels"] == pytest.approx(r["megapixels"], abs=1e-3)  # every phase saw every pixel
    floor = r["phases"]["io_floor"]["seconds"]
    assert r["ratios"]["end_to_end/io_floor"] == pytest.approx(r["phases"]["end_to_end"]["seconds"] / floor, rel=1e-2)
    assert r["ratios"]["network/io_floor"] == pytest.approx(r["phases"]["network"]["seconds"] / floor, rel=1e-2)
    es = default_engine_settings(8, torch.device("cpu"))
    assert r["phases"]["io_floor"]["threads"] == {"readers": es.readers, "writers": es.writers}
    assert r["phases"]["end_to_end"]["threads"]["writers"] == es.writers
    steps = r["phases"]["stages"]["steps"]
    assert {"decode (read_scan)", "network (batch of 1)", "merge (guided)", "encode + write"} <= set(steps)
    used = sum(v for k, v in steps.items() if "not used" not in k)
    assert r["phases"]["stages"]["seconds"] == pytest.approx(used, abs=1e-3)


def test_a_scan_that_cannot_be_read_is_named(tmp_path: Path, random_weights: Path) -> None:
    scans = make_scans(tmp_path, 1, megapixels=0.05)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(BenchError, match=r"broken\.jpg: not an image"):
        run_bench(scans + [bad], BenchSettings(weights=random_weights), phases=("io_floor",), isolate=False)
    with pytest.raises(BenchError, match="no scans"):
        run_bench([], BenchSettings(weights=random_weights))
    with pytest.raises(BenchError, match="unknown phase 'warp'"):
        run_bench(scans, BenchSettings(weights=random_weights), phases=("warp",))


def test_bench_main_prints_json_with_each_phase_s_own_peak_memory(tmp_path: Path, random_weights: Path, capsys) -> None:
    """Phases run in child processes. The floor never loads torch or the model, so its peak is far
    below the run's; measured in one shared process the two would read the same."""
    folder = tmp_path / "mine"
    make_scans(folder / "sub", 2, megapixels=0.05, seed=4)
    code = bench_main(scans=folder, weights=random_weights, device="cpu", render_size=64, json_out=True,
                      phases=("io_floor", "end_to_end"), max_ratio=1e-6)
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # no run takes a millionth of its I/O floor
    assert out["files"] == 2 and out["isolated"] and out["ratios"]["end_to_end/io_floor"] > 1e-6
    floor, run = out["phases"]["io_floor"]["peak_rss_mib"], out["phases"]["end_to_end"]["peak_rss_mib"]
    print(f"peak RSS: I/O floor {floor} MiB, end to end {run} MiB")
    assert 0 < floor < 150 and run > floor + 100 and out["peak_rss_mib"] == run

    assert bench_main(scans=folder, weights=random_weights, device="cpu", phases=("io_floor",)) == 0
    assert "I/O floor" in capsys.readouterr().out
    assert bench_main(scans=tmp_path / "nowhere") == 2
    assert "colorize bench: error:" in capsys.readouterr().err


def test_run_lengths_give_colorize_dir_s_steady_state_and_whole_run_ratios(tmp_path: Path, random_weights: Path, capsys) -> None:
    """colorize-dir itself runs on the first 1 and the first 3 scans, beside the one-thread floor of
    the same files; its per-scan cost is the difference over the 2 extra scans, the floor's its
    time on the 3 scans over 3."""
    scans = make_scans(tmp_path / "scans", 3, megapixels=0.05, seed=2)
    settings = BenchSettings(weights=random_weights, color=ColorSettings(render_size=64), runtime=RuntimeSettings(device="cpu"))
    r = run_bench(scans, settings, phases=(), isolate=False, lengths=(3, 1))
    st = r["steady_state"]
    assert st["lengths"] == [1, 3]
    cli, floor = st["cli_seconds"], st["floor_seconds"]
    assert st["per_scan_s"] == pytest.approx((cli["3"] - cli["1"]) / 2, abs=2e-3)
    assert st["floor_per_scan_s"] == pytest.approx(floor["3"] / 3, abs=2e-3)
    assert st["steady_ratio"] == pytest.approx(st["per_scan_s"] / st["floor_per_scan_s"], rel=0.01, abs=2e-3)
    assert st["whole_run_ratio"] == pytest.approx(cli["3"] / floor["3"], rel=0.01)
    assert cli["1"] > 1.0 and cli["3"] > floor["3"]  # the whole command: interpreter, imports, model load
    assert st["start_up_s"] > 0.5
    assert st["cli_cpu_seconds"]["3"] > st["floor_cpu_seconds"]["3"]

    lines = summary_lines(r)
    assert any(line.startswith("colorize-dir steady state:") and f"{st['steady_ratio']:.2f}x" in line for line in lines)
    assert any(line.startswith("colorize-dir whole run of 3 scans:") for line in lines)

    with pytest.raises(BenchError, match=r"run lengths must be two different counts between 1 and the 3 scans, got \[1, 4\]"):
        run_bench(scans, settings, phases=(), isolate=False, lengths=(1, 4))


def test_time_shares_add_up_and_leave_out_the_merge_not_used() -> None:
    stages = {"steps": {"decode (read_scan)": 2.0, "working L* (resize)": 1.0, "network (batch of 1)": 3.0,
                        "merge (guided)": 2.0, "merge (bilinear, not used)": 50.0, "encode + write": 1.5,
                        "sha256 input + output": 0.5}}
    assert time_shares(stages) == {"decode": 0.3, "network": 0.3, "merge": 0.2, "encode": 0.2}


def test_bench_times_colorize_dir_with_the_same_colour_settings() -> None:
    """`colorize bench --tta` must time `colorize-dir --tta`, not the default."""
    from dataclasses import asdict

    from colorize_cli.bench.phases import _cli_argv
    from colorize_cli.settings import OutputSettings

    def argv(color: ColorSettings) -> list[str]:
        return _cli_argv({"input_root": "in", "out_root": "out", "weights": None, "color": asdict(color),
                          "output": asdict(OutputSettings()), "runtime": asdict(RuntimeSettings(device="cpu"))})

    assert "--tta" in argv(ColorSettings(tta=True)) and "--tta" not in argv(ColorSettings())
    assert argv(ColorSettings(render_size=192))[-2:] == ["--render-size", "192"]
