"""`colorize-dir --engine ray` when the cluster fails under it, as an operator would see it, on a
local two-node cluster (a head with no CPUs, and a worker node with two, each its own `ray start`
in its own temp dir, session and ports):

* every worker lost (the worker node's raylet killed): the run stops within --lost-after of the
  last progress, says how many files were not started, writes its end record, keeps the
  receipts and exits 1; a rerun on a new node finishes the rest and redoes nothing;
* the head lost (GCS and raylet killed, with the workers on the head): the same, in the run's
  own words (not Ray's "Failed to connect to GCS" 60 s later);
* a second Ctrl-C stops at once, while a file is still in flight;
* a worker stopped by Ray's memory monitor fails its file as "out of memory"; a worker killed
  from outside (--max-retries 0: no second try) fails it as "internal", which a plain rerun
  tries again.

Misbehaviour comes from tests/hooks/sitecustomize.py (a test-only hook in the cluster's Python
processes). Scans are small photo-like gray JPEGs built here (tests/sample_photos.py)."""

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

import pytest
from PIL import Image

from colorize_cli.manifest import ResumeIndex, read_manifest
from colorize_cli.run.executors.receipts import receipts_root
from sample_photos import photo_like_gray

N_SCANS = 10
LOST_AFTER = 6  # --lost-after for the runs that lose their cluster (the default is 60 s)
CLI = "import sys; from colorize_cli.cli.app import dir_main; sys.argv[0] = 'colorize-dir'; dir_main()"
RAY = Path(sys.executable).parent / "ray"
_GIB = 1 << 30


_HANDED_OUT: set[int] = set()  # a port is free again once its socket closes: never give one twice


def _free_ports(n: int) -> list[int]:
    socks: list[socket.socket] = []
    try:
        while len(socks) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in _HANDED_OUT:
                s.close()
                continue
            socks.append(s)
        ports = [s.getsockname()[1] for s in socks]
        _HANDED_OUT.update(ports)
        return ports
    finally:
        for s in socks:
            s.close()


def _memory() -> tuple[int, int]:
    """(limit, used) bytes, as Ray's memory monitor reads them: the cgroup's (v2) when it has a
    limit, else the machine's (/proc/meminfo: total, total - available)."""
    cgroup = Path("/sys/fs/cgroup")
    try:
        limit = int((cgroup / "memory.max").read_text())
        stat = dict(ln.split() for ln in (cgroup / "memory.stat").read_text().splitlines())
        return limit, int((cgroup / "memory.current").read_text()) - int(stat.get("inactive_file", 0))
    except (OSError, ValueError):
        fields = dict(ln.split(":", 1) for ln in Path("/proc/meminfo").read_text().splitlines() if ":" in ln)
        total = int(fields["MemTotal"].split()[0]) * 1024
        return total, total - int(fields["MemAvailable"].split()[0]) * 1024


class Node:
    """One `ray start --block` (a head or a worker node) in its own session, temp dir and ports."""

    def __init__(self, env: dict, *args: str) -> None:
        assert RAY.exists(), f"{RAY} missing: pip install -e '.[test]' (the test extra brings Ray)"
        self.temp = Path(tempfile.mkdtemp(prefix="rf", dir="/tmp"))  # short: Ray's socket paths are length-limited
        self.log = open(self.temp / "node.log", "w+")
        ports = _free_ports(6)
        self.proc = subprocess.Popen(
            [str(RAY), "start", "--block", "--num-gpus=0", "--disable-usage-stats", f"--temp-dir={self.temp}",
             "--object-store-memory=80000000", f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
             f"--dashboard-agent-listen-port={ports[2]}", f"--dashboard-agent-grpc-port={ports[3]}",
             f"--metrics-export-port={ports[4]}", f"--runtime-env-agent-port={ports[5]}",
             # No log monitor (the CLI sets log_to_driver off) and no autoscaler on a head: two Pythons less a node
             "--include-log-monitor=False", *(["--no-monitor"] if "--head" in args else []), *args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while not self._up(head="--head" in args):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                log = (self.temp / "node.log").read_text()
                self.stop()
                pytest.fail(f"ray start did not come up:\n{log}")
            time.sleep(0.3)

    def _up(self, head: bool) -> bool:
        """`ray start` says so, and on a head its raylet is registered with its GCS: one run
        under load failed to connect a driver to a new head, cause not seen; this and ports
        never handed out twice rule out the two candidates we could name."""
        if "Ray runtime started" not in (self.temp / "node.log").read_text():
            return False
        gcs = self.temp / "session_latest" / "logs" / "gcs_server.out"
        return not head or (gcs.is_file() and "Registering new node" in gcs.read_text(errors="replace"))

    def pids(self, name: bytes) -> list[int]:
        """This node's processes whose command line starts with ``name`` (its raylet, its GCS)."""
        found = []
        for d in Path("/proc").iterdir():
            try:
                if d.name.isdigit() and os.getsid(int(d.name)) == self.proc.pid:
                    if Path(d, "cmdline").read_bytes().split(b"\0")[0].endswith(name):
                        found.append(int(d.name))
            except OSError:
                continue
        return found

    def kill(self, *names: bytes) -> None:
        victims = [pid for name in names for pid in self.pids(name)]
        assert len(victims) == len(names), f"not found: {names}"
        for pid in victims:
            os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # `ray start --block` stops its processes on SIGTERM
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever of its session is left (Ray's agents outlive a killed raylet)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    """A head with no CPUs (so workers run only on worker nodes) and one worker node with two.
    The worker node's memory monitor stops a worker once the machine uses 5 GiB more than now
    (for the out-of-memory test; nothing else comes near it; with less than 8 GiB free that
    test does without its memory hog). Ray's token authentication with a
    token of our own; the misbehaviour hook in every Python process of the cluster."""
    limit, used = _memory()
    oom = limit - used >= 8 * _GIB  # else Ray's default (95%), and no memory hog
    hook = Path(tempfile.mkdtemp(prefix="rfh", dir="/tmp")) / "misbehave"
    hook.write_text("")
    auth = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    env = {**os.environ, **auth, "COLORIZE_TEST_CRASH_FILE": str(hook),
           **({"RAY_memory_usage_threshold": f"{(used + 5 * _GIB) / limit:.4f}"} if oom else {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parent / "hooks"), os.environ.get("PYTHONPATH")]))}
    port = _free_ports(1)[0]
    nodes: list[Node] = []
    state = {"address": f"127.0.0.1:{port}", "env": auth, "hook": hook, "nodes": nodes,
             "hog_mb": 8 << 10, "oom": oom}

    def start_node(*args: str) -> Node:
        nodes.append(Node(env, *args))
        return nodes[-1]

    state["start_node"] = start_node
    try:
        start_node("--head", f"--port={port}", "--num-cpus=0", "--include-dashboard=False")
        state["node"] = start_node(f"--address={state['address']}", "--num-cpus=2")
        yield state
    finally:
        for node in reversed(nodes):
            node.stop()
        shutil.rmtree(hook.parent, ignore_errors=True)


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scans")
    for i in range(N_SCANS):
        Image.fromarray(photo_like_gray(192, 144, seed=i)).save(root / f"s{i:02d}.jpg", quality=90)
    return root


def misbehave(cluster: dict, **actions: Path) -> None:
    """Arm the hook: ``hog=path``, ``sleep=path``, ``crash=path`` (nothing: disarm)."""
    cluster["hook"].write_text("".join(f"{'hog=%d' % cluster['hog_mb'] if a == 'hog' else a} {p}\n" for a, p in actions.items()))
    Path(f"{cluster['hook']}.pid").unlink(missing_ok=True)


def ray_args(scans: Path, out: Path, weights: Path, address: str, *extra: str) -> list[str]:
    return [scans, "--out", out, "--weights", weights, "--device", "cpu", "--format", "png", "--engine", "ray",
            "--ray-address", address, "-q", "--json", *extra]


def start(args: list, cluster: dict) -> subprocess.Popen:
    """The CLI in a child process, as a user runs it."""
    return subprocess.Popen([sys.executable, "-c", CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **cluster["env"]})


def finish(run: subprocess.Popen, timeout: float = 240) -> tuple[int, dict, str]:
    stdout, stderr = run.communicate(timeout=timeout)
    return run.returncode, json.loads(stdout) if stdout.strip() else {}, stderr


def records(out: Path) -> list[dict]:
    return list(read_manifest(out / "manifest.jsonl")) if (out / "manifest.jsonl").exists() else []


def wait_for(what, run: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert run.poll() is None, f"the run ended first:\n{run.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def latest(out: Path) -> dict[str, dict]:
    return {r.input: r.to_json() for r in ResumeIndex.load(out / "manifest.jsonl").records()}


def assert_stopped_as_lost(out: Path, code: int, summary: dict, stderr: str, words: str) -> int:
    """Exit 1, the README's words, an end record, and the receipts kept; returns files left."""
    assert code == 1, stderr
    left = summary["not_started"]
    assert left > 0 and summary["counts"]["done"] + left == N_SCANS, summary
    assert f"colorize-dir: stopped: {words}" in stderr and f"{left} file(s) not started; rerun the same command" in stderr, stderr
    assert "Traceback" not in stderr and "Failed to connect to GCS" not in stderr, stderr
    end = [r for r in records(out) if r["type"] == "end"]
    assert end and end[-1]["counts"]["done"] == summary["counts"]["done"], "an end record"
    run_id = [r for r in records(out) if r["type"] == "run"][-1]["run_id"]
    assert (receipts_root(out / "manifest.jsonl") / run_id).is_dir(), "the receipts are kept for the rerun"
    return left


def finished(out: Path) -> dict[str, dict]:
    """Each input whose output was finished: done in the manifest, or in a worker's receipt that
    the driver never got (a worker may finish its file after the driver gave up on it)."""
    done = {rel: rec for rel, rec in latest(out).items() if rec["status"] == "done"}
    for receipt in sorted(receipts_root(out / "manifest.jsonl").glob("*/*.jsonl")):
        for rec in read_manifest(receipt):
            if rec["type"] == "file" and rec["status"] == "done":
                done.setdefault(rec["input"], rec)
    return done


def assert_rerun_finishes(out: Path, scans: Path, weights: Path, cluster: dict) -> None:
    """The same command on a working cluster: what was finished stays done, the rest is done (by
    one worker: a few small files)."""
    stamps = {rel: (out / rec["output"]).stat().st_mtime_ns for rel, rec in finished(out).items()}
    code, summary, stderr = finish(start(ray_args(scans, out, weights, cluster["address"], "--workers", "1"), cluster))
    assert code == 0, stderr
    assert summary["counts"] == {"done": N_SCANS - len(stamps), "failed": 0, "skipped": len(stamps)}
    now = latest(out)
    assert sorted(now) == sorted(p.name for p in scans.iterdir()) and all(r["status"] == "done" for r in now.values())
    assert {rel: (out / now[rel]["output"]).stat().st_mtime_ns for rel in stamps} == stamps, "nothing redone"
    assert not receipts_root(out / "manifest.jsonl").exists()


def test_out_of_memory_and_a_kill_from_outside_are_told_apart(cluster, scans, random_weights, tmp_path):
    """One worker, no retries: the scan whose worker Ray's memory monitor stops fails as "out of
    memory" (not "worker crashed"); the scan whose worker is SIGKILLed from outside fails as
    "internal", and a plain rerun would try it again (the memory-hungry one stays failed)."""
    out = tmp_path / "out"
    hog, killed = scans / "s03.jpg", scans / f"s{N_SCANS - 1:02d}.jpg"  # the last one: alone on its worker
    misbehave(cluster, **({"hog": hog} if cluster["oom"] else {}), sleep=killed)
    try:
        run = start(ray_args(scans, out, random_weights, cluster["address"], "--workers", "1", "--max-retries", "0"), cluster)
        pid_file = Path(f"{cluster['hook']}.pid")
        wait_for(pid_file.exists, run)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        code, summary, stderr = finish(run)
    finally:
        misbehave(cluster)
    assert code == 1, stderr
    hogs = 1 if cluster["oom"] else 0
    assert summary["counts"] == {"done": N_SCANS - 1 - hogs, "failed": 1 + hogs, "skipped": 0}
    kinds = {f["input"]: (f["kind"], f["reason"]) for f in summary["failures"]}
    assert kinds[killed.name][0] == "internal" and "killed from outside" in kinds[killed.name][1], kinds
    plan = subprocess.run([sys.executable, "-c", CLI, *map(str, ray_args(scans, out, random_weights, cluster["address"], "--dry-run"))],
                          capture_output=True, text=True, timeout=120, env={**os.environ, **cluster["env"]})
    actions = {f["input"]: f["action"] for f in json.loads(plan.stdout)["files"]}
    assert [rel for rel, a in actions.items() if a == "do"] == [killed.name], "a plain rerun tries the killed one again, only"
    if not hogs:
        pytest.skip("out of memory not tried: less than 8 GiB free (the kill from outside passed)")
    assert kinds[hog.name][0] == "out of memory" and "memory monitor" in kinds[hog.name][1], kinds


def test_a_second_signal_stops_at_once(cluster, scans, random_weights, tmp_path):
    """The first Ctrl-C lets the files in flight finish; a second one, 0.2 s later, stops at
    once although a file is still in flight (Ray's wait swallows the KeyboardInterrupt)."""
    out = tmp_path / "out"
    slow = scans / "s02.jpg"
    misbehave(cluster, sleep=slow)  # in flight for 120 s unless the run stops at once
    try:
        run = start(ray_args(scans, out, random_weights, cluster["address"], "--workers", "1"), cluster)
        wait_for(Path(f"{cluster['hook']}.pid").exists, run)
        run.send_signal(signal.SIGINT)
        time.sleep(0.2)
        run.send_signal(signal.SIGINT)
        second = time.monotonic()
        code, summary, stderr = finish(run, timeout=60)
        took = time.monotonic() - second
    finally:
        misbehave(cluster)
    assert code == 130, stderr
    assert took < 15, f"{took:.1f} s after the second signal"
    assert summary["interrupted"] and slow.name not in latest(out)
    assert [r for r in records(out) if r["type"] == "end"][-1]["interrupted"] is True


def test_losing_every_worker_ends_the_run_and_a_rerun_finishes_it(cluster, scans, random_weights, tmp_path):
    """The worker node's raylet killed after a few files: the restarts wait for room that never
    comes (the head has no CPUs). The run stops within --lost-after of its last progress. One
    worker (every worker, here): the files after the one in flight are surely not started."""
    out = tmp_path / "out"
    misbehave(cluster, sleep=scans / "s04.jpg")  # still in flight when the node goes
    try:
        run = start(ray_args(scans, out, random_weights, cluster["address"], "--workers", "1", "--lost-after", str(LOST_AFTER)), cluster)
        wait_for(Path(f"{cluster['hook']}.pid").exists, run)
        cluster["node"].kill(b"raylet")
        killed = time.monotonic()
        code, summary, stderr = finish(run, timeout=120)
    finally:
        cluster["node"].stop()  # with its orphaned workers: none finishes a file behind the rerun's back
        misbehave(cluster)
    assert time.monotonic() - killed < LOST_AFTER + 30, "stopped within --lost-after of the last progress"
    assert_stopped_as_lost(out, code, summary, stderr, "every Ray worker is lost")
    cluster["node"] = cluster["start_node"](f"--address={cluster['address']}", "--num-cpus=2")
    assert_rerun_finishes(out, scans, random_weights, cluster)


def test_losing_the_head_ends_the_run_and_a_rerun_finishes_it(cluster, scans, random_weights, tmp_path):
    """A cluster whose head runs the workers: its GCS and raylet killed after a few files. The
    run ends in its own words, well before Ray's own 60 s 'Failed to connect to GCS'; the rerun
    goes to another cluster (the module's), as an operator would after rebuilding one."""
    out = tmp_path / "out"
    port = _free_ports(1)[0]
    head = cluster["start_node"]("--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=False")
    misbehave(cluster, sleep=scans / "s04.jpg")  # still in flight when the head goes
    try:
        run = start(ray_args(scans, out, random_weights, f"127.0.0.1:{port}", "--workers", "1", "--lost-after", str(LOST_AFTER)), cluster)
        wait_for(Path(f"{cluster['hook']}.pid").exists, run)
        head.kill(b"gcs_server", b"raylet")
        killed = time.monotonic()
        code, summary, stderr = finish(run, timeout=120)
    finally:
        head.stop()  # with its orphaned workers: none finishes a file behind the rerun's back
        misbehave(cluster)
    assert time.monotonic() - killed < LOST_AFTER + 30
    assert_stopped_as_lost(out, code, summary, stderr, "the Ray cluster's head (GCS) is not answering")
    assert_rerun_finishes(out, scans, random_weights, cluster)
