"""`colorize-dir --engine ray` on a local Ray cluster (2 CPUs, no dashboard, autoscaler, log monitor or usage stats):
the same outputs and manifest as the local engine, a bad file fails alone with its reason, a
worker killed mid-run changes nothing, a file that kills its worker every time ends failed and
the run ends, a driver's lost records are adopted from the workers' receipts, and a rerun
redoes nothing. Scans are photo-like gray JPEGs built by the test (tests/sample_photos.py)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from colorize_cli.cli.app import app
from colorize_cli.manifest import ResumeIndex, read_manifest
from colorize_cli.run.executors.ray import CRASH_REASON
from sample_photos import photo_like_gray
from colorize_cli.run.executors.receipts import receipts_root

REPO = Path(__file__).resolve().parents[1]
N_SCANS = 8
BROKEN = "z-truncated.jpg"
CLI = "import sys; from colorize_cli.cli.app import dir_main; sys.argv[0] = 'colorize-dir'; dir_main()"
# A Ray driver needs no torch (its workers load the model): an import of it fails the run here
DRIVER_WITHOUT_TORCH = "import sys; sys.modules['torch'] = None; " + CLI


@pytest.fixture(scope="module")
def cluster():
    """A Ray head on a free port, in its own temp dir (short: Ray's socket paths are length-limited)
    and process group, so the test never touches another cluster on this machine."""
    ray_cli = Path(sys.executable).parent / "ray"
    assert ray_cli.exists(), f"{ray_cli} missing: pip install -e '.[test]' (the test extra brings Ray)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))
    log = open(temp / "head.log", "w+")
    # Ray's token authentication with a token of our own: nothing read from or written to ~/.ray
    auth = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    # The crash hook (tests/hooks/sitecustomize.py) in every Python process of the cluster; armed
    # by writing an input's path to the crash file.
    crash = temp / "crash-on"
    crash.write_text("")
    hooks = {"PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent / "hooks"), os.environ.get("PYTHONPATH")])),
             "COLORIZE_TEST_CRASH_FILE": str(crash)}
    env = {**os.environ, **auth, **hooks}
    head = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=False", "--disable-usage-stats", f"--temp-dir={temp}", "--object-store-memory=100000000",
         "--no-monitor", "--include-log-monitor=False"],  # no autoscaler, no log streaming: two Pythons less
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "Ray runtime started" not in (temp / "head.log").read_text():
            assert head.poll() is None, f"ray start failed:\n{(temp / 'head.log').read_text()}"
            assert time.monotonic() < deadline, f"ray start did not come up:\n{(temp / 'head.log').read_text()}"
            time.sleep(0.5)
        yield {"address": f"127.0.0.1:{port}", "pid": head.pid, "env": auth, "crash": crash}
    finally:
        head.terminate()  # `ray start --block` drains and stops its processes on SIGTERM
        try:
            head.wait(40)
        except subprocess.TimeoutExpired:
            pass
        try:  # anything of the group still there
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait()
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    """N_SCANS photo-like JPEG scans in two folders, and one JPEG cut in half."""
    root = tmp_path_factory.mktemp("scans")
    photos = []
    for i in range(N_SCANS):
        (root / f"box{i % 2}").mkdir(exist_ok=True)
        photos.append(root / f"box{i % 2}" / f"scan{i}.jpg")
        Image.fromarray(photo_like_gray(320, 240, seed=i)).save(photos[-1], quality=90)
    data = photos[0].read_bytes()
    (root / BROKEN).write_bytes(data[: len(data) // 2])
    return root


def colorize_dir(args: list[str], env: dict | None = None, timeout: float = 240, cli: str = CLI) -> subprocess.CompletedProcess:
    """The CLI in a child process (so a worker's crash or kill can never take the test with it)."""
    return subprocess.run([sys.executable, "-c", cli, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", **(env or {})})


def ray_args(scans: Path, out: Path, weights: Path, cluster: dict, *extra: str, workers: int = 2) -> list[str]:
    """Two workers where the test needs two at once; one where one shows the same (each worker
    started costs a Python with torch and the model)."""
    return [scans, "--out", out, "--weights", weights, "--device", "cpu", "--format", "png", "--engine", "ray",
            "--ray-address", cluster["address"], "--workers", str(workers), "-q", "--json", *extra]


def file_records(out: Path) -> list[dict]:
    return [r for r in read_manifest(out / "manifest.jsonl") if r["type"] == "file"]


def latest(out: Path) -> dict[str, dict]:
    """Each input's standing record, by the manifest's rule (a later "skipped" keeps the outcome)."""
    return {r.input: r.to_json() for r in ResumeIndex.load(out / "manifest.jsonl").records()}


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:  # Pillow decodes; our code only wrote
        return np.asarray(im.convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def local_run(scans, random_weights, tmp_path_factory) -> Path:
    """The local engine's run on the same scans: the reference every Ray run is held to."""
    out = tmp_path_factory.mktemp("local") / "out"
    proc = colorize_dir([scans, "--out", out, "--weights", random_weights, "--device", "cpu", "--format", "png", "-q", "--json"])
    assert proc.returncode == 1, proc.stderr
    return out


def assert_same_as_local(out: Path, local: Path, except_: tuple[str, ...] = ()) -> None:
    mine, ref = latest(out), latest(local)
    assert set(mine) == set(ref)
    for rel, rec in ref.items():
        if rel in except_:
            continue
        assert mine[rel]["status"] == rec["status"], rel
        assert mine[rel]["reason"] == rec["reason"], rel
        assert mine[rel].get("kind") == rec.get("kind"), rel
        assert set(mine[rel]) == set(rec), "same record fields"
        assert mine[rel]["settings_key"] == rec["settings_key"]
        if rec["status"] == "done":
            a, b = pixels(out / mine[rel]["output"]), pixels(local / rec["output"])
            assert a.shape == b.shape
            assert np.abs(a - b).max() <= 1, f"{rel}: outputs differ by more than 1 code value"
            assert np.abs(a - b).mean() < 0.01, f"{rel}: more than float noise between the engines"


def _descendants(root: int) -> list[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [], [root]
    while frontier:
        kids = [p for p, pp in parent.items() if pp in frontier]
        found += kids
        frontier = kids
    return found


def _cluster_workers(cluster: dict) -> list[int]:
    """Our cluster's ColorizeWorker processes (Ray titles them ray::ColorizeWorker...)."""
    pids = []
    for pid in _descendants(cluster["pid"]):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::ColorizeWorker"):
                pids.append(pid)
        except OSError:
            continue
    return pids


def test_same_results_as_the_local_engine_from_a_driver_without_torch_though_a_worker_is_killed(
        cluster, scans, random_weights, local_run, tmp_path):
    """One Ray run holds both: its driver has no torch (an import of it would fail the run), and
    one of its two workers is SIGKILLed once a file is done; the outputs, records and summary are
    the local engine's all the same, with one record per file (none lost, none twice)."""
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-c", DRIVER_WITHOUT_TORCH, *map(str, ray_args(scans, out, random_weights, cluster))],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, **cluster["env"]})
    deadline = time.monotonic() + 180
    while not (out / "manifest.jsonl").exists() or not any(r["status"] == "done" for r in file_records(out)):
        assert run.poll() is None and time.monotonic() < deadline, "the run ended before a file was done"
        time.sleep(0.05)
    victims = _cluster_workers(cluster)
    assert victims, "no ColorizeWorker process found under the test cluster"
    os.kill(victims[0], signal.SIGKILL)
    done_at_kill = sum(r["status"] == "done" for r in file_records(out))
    assert not any(r["type"] == "end" for r in read_manifest(out / "manifest.jsonl")), "killed after the run ended"
    assert done_at_kill < N_SCANS, "killed after every file was done"
    stdout, stderr = run.communicate(timeout=240)
    assert run.returncode == 1, stderr
    summary = json.loads(stdout)
    assert summary["counts"] == {"done": N_SCANS, "failed": 1, "skipped": 0}
    assert summary["failures"] == [{"input": BROKEN, "kind": latest(local_run)[BROKEN]["kind"], "reason": latest(local_run)[BROKEN]["reason"]}]
    assert latest(out)[BROKEN]["reason"].startswith("truncated JPEG")
    assert_same_as_local(out, local_run)
    assert len(file_records(out)) == N_SCANS + 1, "one record per file: none lost, none twice"
    header = next(r for r in read_manifest(out / "manifest.jsonl") if r["type"] == "run")
    ref_header = next(r for r in read_manifest(local_run / "manifest.jsonl") if r["type"] == "run")
    assert set(header) == set(ref_header) and header["settings"] == ref_header["settings"]
    assert not receipts_root(out / "manifest.jsonl").exists(), "receipts are removed once the driver has every record"
    # A Ray rerun over a finished tree redoes nothing: test_records_a_dead_driver_never_got_are_adopted_from_receipts


def test_a_file_that_kills_its_worker_every_time_fails_and_the_run_ends(cluster, scans, random_weights, local_run, tmp_path):
    out = tmp_path / "out"
    killer = sorted((scans / "box1").glob("*.jpg"))[0]
    rel = killer.relative_to(scans).as_posix()
    cluster["crash"].write_text(str(killer))
    try:
        proc = colorize_dir(ray_args(scans, out, random_weights, cluster, "--max-retries", "1", workers=1), env=cluster["env"])
    finally:
        cluster["crash"].write_text("")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["counts"] == {"done": N_SCANS - 1, "failed": 2, "skipped": 0}
    assert {f["input"]: f["reason"] for f in summary["failures"]}[rel] == CRASH_REASON
    assert latest(out)[rel].get("kind") == "crashed"  # not retried by a plain rerun: nothing runs forever
    assert not (out / rel).with_suffix(".png").exists()
    assert any(r["type"] == "end" for r in read_manifest(out / "manifest.jsonl"))
    assert_same_as_local(out, local_run, except_=(rel,))
    # A rerun's plan leaves the known failure alone (like any failed scan) and redoes nothing
    # (a real rerun's "redoes nothing" is held in the first test of this file).
    plan = colorize_dir(ray_args(scans, out, random_weights, cluster, "--dry-run"), env=cluster["env"])
    assert plan.returncode == 0, plan.stderr
    actions = {f["input"]: (f["action"], f["why"]) for f in json.loads(plan.stdout)["files"]}
    assert actions[rel] == ("skip", "previously failed") and all(a == "skip" for a, _ in actions.values()), actions


def test_records_a_dead_driver_never_got_are_adopted_from_receipts(cluster, scans, random_weights, local_run, tmp_path):
    """As after a driver killed while its workers finished files: outputs on disk, records only
    in the workers' receipts. The rerun adopts them instead of redoing the files, and redoes
    nothing else: the finished tree (the local engine's: one settings key for both engines) is
    left as it is, the truncated file stays a known failure, and the rerun records only that."""
    out = tmp_path / "out"
    shutil.copytree(local_run, out)
    manifest = out / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    orphans = [ln for ln in lines if '"status": "done"' in ln][:3]
    manifest.write_text("".join(ln for ln in lines if ln not in orphans))
    receipt = receipts_root(manifest) / "20000101T000000Z-00000000" / "node-1.jsonl"
    receipt.parent.mkdir(parents=True)
    receipt.write_text("".join(orphans))
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    assert len(stamps) == N_SCANS

    proc = colorize_dir(ray_args(scans, out, random_weights, cluster, workers=1), env=cluster["env"])
    assert proc.returncode == 1, proc.stderr  # the truncated file is a known failure: not redone, still failed
    assert json.loads(proc.stdout)["counts"] == {"done": 0, "failed": 0, "skipped": N_SCANS + 1}
    assert json.loads(proc.stdout)["previously_failed"] == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps, "nothing redone"
    assert not receipts_root(manifest).exists()
    assert_same_as_local(out, local_run)
    rerun_id = [r for r in read_manifest(manifest) if r["type"] == "run"][-1]["run_id"]
    assert [(r["input"], r["status"], r["reason"]) for r in file_records(out) if r["run_id"] == rerun_id] == [
        (BROKEN, "skipped", "previously failed")]


def test_without_ray_a_clear_message_and_exit_2(scans, random_weights, tmp_path):
    blocked = "import sys; sys.modules['ray'] = None; " + CLI  # as if the extra were not installed
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", blocked, str(scans), "--out", str(out), "--weights", str(random_weights),
                           "--engine", "ray"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert 'pip install "colorize-cli[ray]"' in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (out / "manifest.jsonl").exists()


@pytest.mark.parametrize("args, message", [
    (["--engine", "spark"], "--engine must be local or ray"),
    (["--workers", "2"], "--workers only apply with --engine ray"),
    (["--engine", "ray", "--workers", "4-2"], "need 1 <= N <= M"),
    (["--engine", "ray", "--workers", "two"], "--workers must be N or N-M"),
    (["--engine", "ray", "--gpus-per-worker", "-1"], "--gpus-per-worker"),
])
def test_engine_options_are_checked(args, message, tmp_path):
    (tmp_path / "in").mkdir()
    result = CliRunner().invoke(app, ["dir", str(tmp_path / "in"), "--out", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "out").exists()


def test_weights_a_worker_cannot_load_stop_the_run_with_the_local_engines_words(cluster, scans, tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "missing.safetensors"
    proc = colorize_dir(ray_args(scans, out, missing, cluster, workers=1), env=cluster["env"])
    assert proc.returncode == 2
    assert f"colorize-dir: error: weights file not found: {missing}" in proc.stderr
    assert not (out / "manifest.jsonl").exists()
