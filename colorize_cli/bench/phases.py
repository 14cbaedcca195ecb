"""The phases by name, and running one: in a child process of its own (so its peak memory is its own
and it inherits no heap, caches or thread pools), or here; `cli` is `colorize-dir` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from colorize_cli.bench.floor import io_floor, io_floor_serial
from colorize_cli.bench.model import end_to_end, network, stages
from colorize_cli.bench.scans import scans_in
from colorize_cli.bench.spec import BenchError, peak_rss_mib

PHASES = ("io_floor_serial", "io_floor", "network", "end_to_end")


def _cli_argv(spec: dict) -> list[str]:
    """`colorize-dir` on the staged folder with the benchmark's settings (the rest at their defaults)."""
    c, o, rt = spec["color"], spec["output"], spec["runtime"]
    argv = [sys.executable, "-c", "from colorize_cli.cli.app import dir_main; dir_main()", spec["input_root"],
            "--out", spec["out_root"], "--quiet", "--device", rt["device"], "--batch-size", str(rt["batch_size"]),
            "--upsample", c["upsample"], "--quality", str(o["quality"]), "--tiff-compression", o["tiff_compression"],
            "--allow-outside-root"]  # the staged links
    if spec.get("weights"):
        argv += ["--weights", spec["weights"]]
    if c["render_size"]:
        argv += ["--render-size", str(c["render_size"])]
    if c.get("tta"):
        argv += ["--tta"]
    if o["format"]:
        argv += ["--format", o["format"]]
    return argv


def _phase_cli(spec: dict) -> dict:
    """The whole command in a process of its own: interpreter start, imports, model load and all."""
    import resource  # noqa: PLC0415 - POSIX; the phase is timed from outside the child

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(_cli_argv(spec), env=_child_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError(f"colorize-dir failed: {_last_line(proc)}")
    files = sum(1 for p in Path(spec["input_root"]).iterdir())
    written = len(scans_in(Path(spec["out_root"])))
    if written != files:
        raise BenchError(f"colorize-dir wrote {written} of {files} outputs")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": seconds, "cpu_seconds": round(cpu, 4), "files": files}


PHASE_FUNCS: dict[str, Callable[[dict], dict]] = {
    "io_floor_serial": io_floor_serial,
    "io_floor": io_floor,
    "network": network,
    "end_to_end": end_to_end,
    "stages": stages,
    "cli": _phase_cli,
}


def run_phase(phase: str, spec: dict, isolate: bool) -> dict:
    if phase == "cli":  # it starts its own process; its memory is not measured
        return {**_phase_cli(spec), "peak_rss_mib": None}
    if not isolate:
        out = PHASE_FUNCS[phase](spec)
        out["peak_rss_mib"] = peak_rss_mib()
        return out
    return _run_child(phase, spec)


def _run_child(phase: str, spec: dict) -> dict:
    """Run one phase in a fresh interpreter; its peak RSS is measured in the child itself."""
    with tempfile.TemporaryDirectory(prefix="colorize-bench-child-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({"phase": phase, "spec": spec, "result": str(result_path)}))
        proc = subprocess.run([sys.executable, "-c", "from colorize_cli.bench.phases import child_main; child_main()",
                               str(spec_path)], env=_child_env(), capture_output=True, text=True)
        if proc.returncode != 0 or not result_path.exists():
            raise BenchError(f"phase {phase} failed: {_last_line(proc)}")
        return json.loads(result_path.read_text())


def child_main() -> None:
    """A child's entry point: the phase named in the spec file, its result written beside it."""
    job = json.loads(Path(sys.argv[1]).read_text())
    out = PHASE_FUNCS[job["phase"]](job["spec"])
    out["peak_rss_mib"] = peak_rss_mib()
    Path(job["result"]).write_text(json.dumps(out))


def _child_env() -> dict[str, str]:
    """This environment, with this very colorize_cli first on the path of the child."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return env


def _last_line(proc: subprocess.CompletedProcess) -> str:
    """The line a failed child ended on (its error), or its exit status."""
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:]
    return tail[0] if tail else f"exit status {proc.returncode}"
