"""Resume after any interruption, end to end: rerunning finishes only what is left; kill -9 at
any moment leaves no partial output and no corrupt manifest; Ctrl-C / SIGTERM stop cleanly with
exit 130; a second run on the same folder is refused; shards cover every input exactly once and
merge into one manifest; and planning over a finished tree costs about a stat per file."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli import terminal
from colorize_cli.cli.app import app
from colorize_cli.inference import colorizer
from colorize_cli.run.executors import local
from colorize_cli.run.session import remove_stale_temps
from colorize_cli.manifest import FileRecord, ManifestWriter, read_manifest, settings_key, sha256_file
from colorize_cli.run.plan import ModelRef, plan_run
from colorize_cli.settings import ColorSettings, RunSettings

REPO = Path(__file__).resolve().parents[1]
N_FILES = 12
runner = CliRunner()

# The CLI in a child process, with one torch thread (the test machine's two cores are shared with
# other work; two spinning torch threads on them cost ten times the run, and change no pixel).
# A delay > 0 holds every finished PNG in its temp file for that long before it is renamed, so
# a signal or a kill lands while outputs are being written.
DRIVER = """
import dataclasses, sys, time
from colorize_cli.run.executors import local
from colorize_cli.io.write import png as write_png
from colorize_cli.cli.app import main
real = local.default_engine_settings
local.default_engine_settings = lambda b, d: dataclasses.replace(real(b, d), torch_threads=1)
delay = float(sys.argv[1])
encode = write_png.encode_png
def slow_encode(fp, *args, **kwargs):
    encode(fp, *args, **kwargs)
    time.sleep(delay)
if delay:
    write_png.encode_png = slow_encode
sys.argv = ["colorize", *sys.argv[2:]]
main()
"""


@pytest.fixture(scope="module")
def fast_cli():
    """In-process runs as in DRIVER (one torch thread), and each weights file loaded once per
    module rather than once per invocation (load_model is pure: same file, same model)."""
    with pytest.MonkeyPatch.context() as mp:
        real_settings, real_load = local.default_engine_settings, colorizer.load_model
        mp.setattr(local, "default_engine_settings", lambda b, d: dataclasses.replace(real_settings(b, d), torch_threads=1))
        cache: dict[tuple, colorizer.Colorizer] = {}

        def load(weights, device="auto", fp32=False, family=None):
            key = (str(weights), device, fp32, family)
            if key not in cache:
                cache[key] = real_load(weights, device, fp32, family)
            return cache[key]

        mp.setattr(colorizer, "load_model", load)
        yield


def texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.clip(120 + 70 * np.sin(x / 23.0 + y / 37.0 + seed) + rng.normal(0, 10, (h, w)), 0, 255).astype(np.uint8)


def make_scans(root: Path, n: int, size: tuple[int, int] = (200, 150)) -> list[str]:
    rels = [f"box{i % 2 + 1}/scan{i:02d}.png" for i in range(n)]
    for i, rel in enumerate(rels):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(texture(size[1], size[0], i), "L").save(root / rel)
    return sorted(rels)


def cli_args(src: Path, out: Path, weights: Path) -> list[str]:
    return ["dir", str(src), "--out", str(out), "--weights", str(weights), "--render-size", "64",
            "--device", "cpu", "--batch-size", "4"]


def outputs(out: Path) -> dict[str, bytes]:
    """Every finished output (final names only; hidden temp files are not outputs)."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png") if not p.name.startswith(".")}


def content(png: bytes) -> tuple:
    """An output's pixels, mode, size and metadata, decoded in full (so a partial file fails),
    with the embedded sRGB profile's creation time (ICC header bytes 24-35) blanked: LittleCMS
    stamps the clock into it, so two processes write it one second apart. All else must match."""
    with Image.open(io.BytesIO(png)) as im:
        pixels = np.asarray(im).tobytes()
        info = dict(im.info)
        icc = info.pop("icc_profile", b"")
        return pixels, im.mode, im.size, sorted(info.items()), icc[:24] + bytes(12) + icc[36:]


def same_outputs(got: dict[str, bytes], expected: dict[str, bytes]) -> bool:
    return sorted(got) == sorted(expected) and all(content(got[k]) == content(expected[k]) for k in got)


def temps(out: Path) -> list[Path]:
    return sorted(out.rglob(".*.tmp"))


def fresh_temp(out: Path, younger_than: float) -> bool:
    """A temp file begun less than `younger_than` s ago: with DRIVER's delay longer than that,
    a kill sent now lands while it is still being written."""
    now = time.time()
    for p in temps(out):
        try:
            if now - p.stat().st_mtime < younger_than:
                return True
        except FileNotFoundError:  # renamed under us
            pass
    return False


def runs_of(manifest: Path) -> list[dict]:
    """The manifest split by run: [{"header", "files", "end"}], in order."""
    runs: list[dict] = []
    for rec in read_manifest(manifest):
        if rec["type"] == "run":
            runs.append({"header": rec, "files": [], "end": None})
        elif rec["type"] == "file":
            runs[-1]["files"].append(rec)
        elif rec["type"] == "end":
            runs[-1]["end"] = rec
    return runs


def done_inputs(manifest: Path) -> set[str]:
    return {r["input"] for r in read_manifest(manifest) if r["type"] == "file" and r["status"] == "done"}


def start(args: list[str], delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(delay), *args], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the run ended (code {proc.returncode}) before the test could interrupt it:\n{proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("the run made no progress")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, random_weights: Path, fast_cli) -> tuple[Path, list[str], dict[str, bytes]]:
    """The scans and the outputs of one uninterrupted run over them."""
    root = tmp_path_factory.mktemp("reference")
    src, out = root / "scans", root / "color"
    rels = make_scans(src, N_FILES)
    result = runner.invoke(app, [*cli_args(src, out, random_weights), "--quiet"])
    assert result.exit_code == 0, result.output
    made = outputs(out)
    assert sorted(made) == rels
    return src, rels, made


# ----------------------------------------------------------------------------- resume rules


def test_rerun_redoes_only_what_changed(tmp_path: Path, random_weights: Path, fast_cli) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    rels = make_scans(src, 5, size=(64, 48))
    args = cli_args(src, out, random_weights)
    first = runner.invoke(app, [*args, "--json"])
    assert first.exit_code == 0 and json.loads(first.stdout)["counts"]["done"] == 5, first.output
    before = outputs(out)

    again = runner.invoke(app, [*args, "--json"])  # nothing is left: nothing is done
    assert json.loads(again.stdout)["counts"] == {"done": 0, "failed": 0, "skipped": 5}
    assert runs_of(out / "manifest.jsonl")[-1]["files"] == []
    assert outputs(out) == before

    changed, missing, touched = rels[:3]
    Image.fromarray(255 - texture(48, 64, 99), "L").save(src / changed)  # re-scanned
    (out / missing).unlink()  # output deleted by hand
    st = (src / touched).stat()  # same bytes, new mtime (copied back from a backup): hashed, still done
    os.utime(src / touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))

    def plan(*extra: str) -> dict[str, tuple[str, str]]:
        result = runner.invoke(app, [*args, "--dry-run", "--json", *extra])
        return {f["input"]: (f["action"], f["why"]) for f in json.loads(result.stdout)["files"]}

    assert plan() == {changed: ("do", "input changed"), missing: ("do", "output missing"),
                      **{r: ("skip", "already done") for r in rels if r not in (changed, missing)}}
    assert set(plan("--saturation", "0.5").values()) == {("do", "settings changed")}
    assert set(plan("--format", "jpeg").values()) == {("do", "settings changed")}
    assert plan("--batch-size", "1") == plan()  # scheduling only: no new decisions
    assert set(plan("--overwrite").values()) == {("do", "overwrite requested")}

    rerun = runner.invoke(app, [*args, "--json"])
    assert rerun.exit_code == 0 and json.loads(rerun.stdout)["counts"]["done"] == 2
    assert sorted(r["input"] for r in runs_of(out / "manifest.jsonl")[-1]["files"]) == sorted([changed, missing])
    after = outputs(out)
    assert after[missing] == before[missing]  # the same input and settings give the same bytes
    assert after[changed] != before[changed]
    assert all(after[r] == before[r] for r in rels if r not in (changed, missing))


# ----------------------------------------------------------------------------- interruptions


def test_kill_9_mid_write_then_rerun_equals_an_uninterrupted_run(tmp_path: Path, reference, random_weights: Path, fast_cli) -> None:
    src, rels, expected = reference
    out = tmp_path / "color"
    args = cli_args(src, out, random_weights)
    proc = start(args, delay=0.6)
    wait_until(proc, lambda: len(done_inputs(out / "manifest.jsonl")) >= 2)

    second = runner.invoke(app, args)  # the same command, in a second terminal, while the first runs
    assert second.exit_code == 2
    assert f"another colorize-dir run (pid {proc.pid} on host" in second.stderr
    assert "is using this output folder" in second.stderr

    wait_until(proc, lambda: fresh_temp(out, younger_than=0.3))
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    left_behind = temps(out)
    assert left_behind, "the kill should have caught an output half-way (in its temp file)"
    runs = runs_of(out / "manifest.jsonl")
    assert len(runs) == 1 and runs[0]["end"] is None  # the refused run wrote nothing; the killed one no end
    done_before = done_inputs(out / "manifest.jsonl")
    assert 2 <= len(done_before) < N_FILES
    # Whatever has its final name is complete and right; a killed write never shows under it.
    for rel, data in outputs(out).items():
        assert content(data) == content(expected[rel]), rel

    rerun = runner.invoke(app, [*args, "--json"])  # the same command again
    assert rerun.exit_code == 0, rerun.output
    summary = json.loads(rerun.stdout)
    assert summary["stale_temps_removed"] == len(left_behind)
    assert not temps(out)
    assert same_outputs(outputs(out), expected)  # exactly what an uninterrupted run writes
    runs = runs_of(out / "manifest.jsonl")
    assert len(runs) == 2 and runs[1]["end"]["interrupted"] is False
    redone = Counter(r["input"] for r in runs[1]["files"])
    assert set(redone) == set(rels) - done_before and set(redone.values()) == {1}  # nothing finished redone
    assert all(r["status"] == "done" for r in runs[1]["files"])
    assert not (out / ".colorize.lock").exists()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_cleanly_and_a_rerun_finishes(sig: signal.Signals, tmp_path: Path, reference,
                                                   random_weights: Path, fast_cli) -> None:
    src, rels, expected = reference
    out = tmp_path / "color"
    args = cli_args(src, out, random_weights)
    proc = start(args, delay=0.3)
    wait_until(proc, lambda: len(done_inputs(out / "manifest.jsonl")) >= 2)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    runs = runs_of(out / "manifest.jsonl")
    assert len(runs) == 1
    recorded = {r["input"] for r in runs[0]["files"]}
    end = runs[0]["end"]
    assert end["interrupted"] is True
    assert end["counts"] == {"done": len(recorded), "failed": 0, "skipped": 0}
    left = N_FILES - len(recorded)
    assert left > 0
    assert f"interrupted: {left} file(s) not started; rerun the same command to finish them" in stderr
    assert not temps(out)  # files in flight were finished, not left half-written
    assert not (out / ".colorize.lock").exists()
    for rel, data in outputs(out).items():
        assert content(data) == content(expected[rel]), rel

    rerun = runner.invoke(app, [*args, "--json"])
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(rerun.stdout)["counts"] == {"done": left, "failed": 0, "skipped": len(recorded)}
    assert {r["input"] for r in runs_of(out / "manifest.jsonl")[1]["files"]} == set(rels) - recorded
    assert same_outputs(outputs(out), expected)


# ----------------------------------------------------------------------------- shards


def test_shards_cover_every_input_once_and_merge(tmp_path: Path, random_weights: Path, fast_cli, capsys) -> None:
    src, out = tmp_path / "scans", tmp_path / "color"
    rels = make_scans(src, 12, size=(64, 48))
    (src / "box1" / "index.txt").write_text("box 1: 1950s\n")
    args = cli_args(src, out, random_weights)
    for k in (1, 2, 3):
        result = runner.invoke(app, [*args, "--shard", f"{k}/3", "--quiet"])
        assert result.exit_code == 0, result.output
    shard_files = sorted(out.glob("manifest.*.jsonl"))
    assert [p.name for p in shard_files] == [f"manifest.{k}-of-3.jsonl" for k in (1, 2, 3)]
    per_shard = [done_inputs(p) for p in shard_files]
    assert all(per_shard), "every shard should get some of 12 files"
    assert sum(len(s) for s in per_shard) == len(rels) and set().union(*per_shard) == set(rels)
    assert sorted(outputs(out)) == rels
    assert not (out / "manifest.jsonl").exists()

    assert terminal.merge_command(shard_files, out / "manifest.jsonl") == 0
    assert "13 file record(s) from 3 manifest(s), 6 run record(s)" in capsys.readouterr().out  # 3 headers, 3 ends
    merged = [r for r in read_manifest(out / "manifest.jsonl") if r["type"] == "file"]
    assert Counter(r["input"] for r in merged) == Counter([*rels, "box1/index.txt"])
    # An unsharded rerun trusts the merged manifest: every scan is already done.
    rerun = runner.invoke(app, [*args, "--json"])
    assert json.loads(rerun.stdout)["counts"] == {"done": 0, "failed": 0, "skipped": len(rels) + 1}


def test_merge_command_refuses_missing_manifests(tmp_path: Path, capsys) -> None:
    assert terminal.merge_command([tmp_path / "manifest.1-of-2.jsonl"], tmp_path / "manifest.jsonl") == 2
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "manifest.jsonl").exists()


# ----------------------------------------------------------------------------- speed


def test_starting_over_a_finished_tree_costs_little_per_file(tmp_path: Path) -> None:
    """Planning a rerun over N finished files (walk, sniff, resume decisions, stale-temp sweep),
    extrapolated to 100,000 files. The tiny files make it a measure of per-file overhead."""
    n = 5000
    src, out = tmp_path / "scans", tmp_path / "color"
    settings = RunSettings(input_root=src, out_root=out, color=ColorSettings(render_size=64))
    model = ModelRef(Path("rand.safetensors"), "rand", "ab" * 32)
    key = settings_key(settings.output_affecting(), model.sha256)
    buf = io.BytesIO()
    Image.fromarray(texture(4, 4, 0), "L").save(buf, "PNG")
    data = buf.getvalue()
    with ManifestWriter(out / "manifest.jsonl", fsync=False) as writer:
        for i in range(n):
            rel = f"box{i // 100:03d}/scan{i:05d}.png"
            for root in (src, out):
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
            ist, ost = (src / rel).stat(), (out / rel).stat()
            writer.write(FileRecord(input=rel, status="done", output=rel, input_size=ist.st_size, input_mtime=ist.st_mtime,
                                    input_sha256=sha256_file(src / rel), output_size=ost.st_size, output_mtime=ost.st_mtime,
                                    output_sha256=sha256_file(out / rel), settings_key=key))
    t0 = time.perf_counter()
    plan = plan_run(settings, model)
    swept = remove_stale_temps(job.output for job, _ in plan.todo + plan.skip)
    seconds = time.perf_counter() - t0
    assert plan.todo == [] and swept == 0
    assert len(plan.skip) == n and {why for _, why in plan.skip} == {"already done"}
    per_file = seconds / n
    print(f"\nplanning a rerun over {n} done files: {seconds:.2f} s, {per_file * 1e6:.0f} us/file, "
          f"~{per_file * 100_000:.1f} s for 100,000 files")
    assert per_file * 100_000 < 30.0
