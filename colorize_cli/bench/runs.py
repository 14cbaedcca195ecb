"""`run_bench`: every phase on the same scans, interleaved over the repeats, and the ratios against
the I/O floor; `steady_state`: colorize-dir's per-scan cost once running, from two run lengths."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from colorize_cli.bench.floor import out_dtypes
from colorize_cli.bench.phases import PHASE_FUNCS, PHASES, run_phase
from colorize_cli.bench.scans import stage_inputs
from colorize_cli.bench.spec import BenchError, BenchSettings, engine_settings, run_settings


def _random_weights(folder: Path) -> Path:
    """A seeded random ChromaNet: the shipped architecture, hence the shipped cost, without the weights."""
    import torch  # noqa: PLC0415

    from colorize_cli.models import build  # noqa: PLC0415
    from colorize_cli.models.weights import save_weights  # noqa: PLC0415

    torch.manual_seed(0)
    path = folder / "random-chromanet.safetensors"
    save_weights(build("chromanet").eval(), "chromanet", path)
    return path


def _model_fields(weights: Path, random: bool) -> dict:
    from colorize_cli.run.plan import model_ref  # noqa: PLC0415

    ref = model_ref(weights)
    return {"name": "random ChromaNet (shipped weights not found; same cost)" if random else ref.name,
            "weights": None if random else str(weights), "sha256": ref.sha256, "random": random}


def _with_rates(result: dict, files: int, megapixels: float) -> dict:
    """The rates follow from the seconds as reported (to the microsecond), so the figures of a
    phase of a few milliseconds agree with each other."""
    secs = round(result["seconds"], 6)
    per = max(secs, 1e-6)
    return {**result, "seconds": secs, "images_per_s": round(files / per, 3), "megapixels_per_s": round(megapixels / per, 3)}


def run_bench(
    scans: Sequence[Path],
    settings: BenchSettings = BenchSettings(),
    repeats: int = 1,
    phases: Sequence[str] = PHASES,
    stages: bool = False,
    isolate: bool = True,
    workdir: Path | None = None,
    lengths: Sequence[int] = (),
) -> dict:
    """Measure the phases on these scans in one run; returns a JSON-ready dict (see the package doc, bench/__init__.py).

    `lengths` (two run lengths n < m, at most the number of scans) adds the steady-state and
    whole-run ratios of `colorize-dir` against the one-thread I/O floor ("steady_state").

    `isolate` runs each phase in a child process (clean per-phase peak memory); without it the
    peaks are the whole process's so far. `workdir` is where inputs are staged and outputs written
    (default: the system temp folder): put it on the disk the real run will write to."""
    from colorize_cli.models.paths import DEFAULT_WEIGHTS  # noqa: PLC0415

    scans = [Path(p) for p in scans]
    if not scans:
        raise BenchError("no scans to benchmark")
    missing = [p for p in scans if not p.is_file()]
    if missing:
        raise BenchError(f"scan not found: {missing[0]}")
    unknown = [p for p in phases if p not in PHASE_FUNCS]
    if unknown or repeats < 1:
        raise BenchError(f"unknown phase {unknown[0]!r}; choose from {', '.join(PHASE_FUNCS)}" if unknown else "repeats must be >= 1")
    order = [p for p in PHASES if p in phases] + (["stages"] if stages or "stages" in phases else [])
    lengths = sorted(set(lengths))
    if lengths and (len(lengths) != 2 or lengths[0] < 1 or lengths[1] > len(scans)):
        raise BenchError(f"run lengths must be two different counts between 1 and the {len(scans)} scans, got {lengths}")

    with tempfile.TemporaryDirectory(prefix="colorize-bench-", dir=workdir) as tmp:
        root = Path(tmp)
        staged = stage_inputs(scans, root / "input")
        random = settings.weights is None and not DEFAULT_WEIGHTS.is_file()
        weights = _random_weights(root) if random else Path(settings.weights or DEFAULT_WEIGHTS)
        base = {"input_root": str(root / "input"), "weights": str(weights), "color": asdict(settings.color),
                "output": asdict(settings.output), "runtime": asdict(settings.runtime)}
        base["engine"] = asdict(engine_settings(run_settings({**base, "out_root": str(root / "out")})))
        base["out_dtypes"] = out_dtypes(settings.output.bit_depth)
        runs: dict[str, list[dict]] = {p: [] for p in order}
        for r in range(repeats):
            for phase in order:
                out_root = root / f"out-{phase}-{r}"
                runs[phase].append(run_phase(phase, {**base, "out_root": str(out_root)}, isolate))
                shutil.rmtree(out_root, ignore_errors=True)
        by_length: dict[int, dict[str, list[dict]]] = {n: {"io_floor_serial": [], "cli": []} for n in lengths}
        subsets = {n: root / f"input-{n}" for n in lengths}
        for n, folder in subsets.items():
            stage_inputs(scans[:n], folder)
        for r in range(repeats):
            for n in lengths:
                for phase in ("io_floor_serial", "cli"):
                    out_root = root / f"out-{phase}-{n}-{r}"
                    spec = {**base, "input_root": str(subsets[n]), "out_root": str(out_root)}
                    by_length[n][phase].append(run_phase(phase, spec, isolate))
                    shutil.rmtree(out_root, ignore_errors=True)

    floors = [x for v in by_length.values() for x in v["io_floor_serial"]]
    megapixels = max([x["megapixels"] for results in runs.values() for x in results] + [x["megapixels"] for x in floors],
                     default=0.0)  # every phase decodes every scan
    phase_results = {}
    for phase, results in runs.items():
        best = min(results, key=lambda x: x["seconds"])
        peak = [x["peak_rss_mib"] for x in results if x.get("peak_rss_mib") is not None]
        phase_results[phase] = {**_with_rates(best, len(staged), megapixels), "peak_rss_mib": max(peak) if peak else None,
                                "all_seconds": [round(x["seconds"], 4) for x in results]}
    ratios = {}
    if "io_floor" in phase_results:
        floor = phase_results["io_floor"]
        for phase in ("end_to_end", "network", "io_floor_serial"):
            if phase in phase_results:
                ratios[f"{phase}/io_floor"] = round(phase_results[phase]["seconds"] / max(floor["seconds"], 1e-9), 3)
        for phase in ("end_to_end", "network"):  # the same in CPU time: steadier when the machine is shared
            if phase in phase_results:
                ratios[f"{phase}/io_floor (cpu)"] = round(phase_results[phase]["cpu_seconds"] / max(floor["cpu_seconds"], 1e-9), 3)
    peaks = [v["peak_rss_mib"] for v in phase_results.values() if v.get("peak_rss_mib") is not None]
    return {
        "files": len(staged),
        "megapixels": round(megapixels, 3),
        "input_mib": round(sum(p.stat().st_size for p in scans) / (1 << 20), 2),
        "cpu_count": os.cpu_count(),
        "model": _model_fields(weights, random),
        "settings": {"color": asdict(settings.color), "output": asdict(settings.output), "runtime": asdict(settings.runtime),
                     "engine": base["engine"]},
        "repeats": repeats,
        "isolated": isolate,
        "phases": phase_results,
        "ratios": ratios,
        "peak_rss_mib": max(peaks) if peaks else None,
        "steady_state": steady_state(by_length) if lengths else None,
    }


def steady_state(by_length: dict[int, dict[str, list[dict]]]) -> dict:
    """Per-scan cost of colorize-dir once running, from two run lengths (the fastest of the repeats of
    each): start-up, model load and pipeline fill cancel out. The floor's per-scan cost is its time
    on the m files over m (the floor has no start-up to cancel, and this is steadier)."""
    n, m = sorted(by_length)
    best = {k: {ph: min(x["seconds"] for x in v) for ph, v in runs.items()} for k, runs in by_length.items()}
    per_scan = (best[m]["cli"] - best[n]["cli"]) / (m - n)
    floor_per_scan = max(best[m]["io_floor_serial"] / m, 1e-9)  # no start-up in it: its clock starts after imports
    cpu = {k: {ph: min(x["cpu_seconds"] for x in v) for ph, v in runs.items()} for k, runs in by_length.items()}
    cpu_per_scan = (cpu[m]["cli"] - cpu[n]["cli"]) / (m - n)
    floor_cpu_per_scan = max(cpu[m]["io_floor_serial"] / m, 1e-9)
    return {
        "lengths": [n, m],
        "cli_seconds": {str(k): round(best[k]["cli"], 6) for k in (n, m)},
        "floor_seconds": {str(k): round(best[k]["io_floor_serial"], 6) for k in (n, m)},
        "cli_cpu_seconds": {str(k): cpu[k]["cli"] for k in (n, m)},
        "floor_cpu_seconds": {str(k): cpu[k]["io_floor_serial"] for k in (n, m)},
        "per_scan_s": per_scan,
        "floor_per_scan_s": floor_per_scan,
        "start_up_s": round(best[n]["cli"] - n * per_scan, 3),
        "steady_ratio": round(per_scan / floor_per_scan, 3),
        "steady_cpu_ratio": round(cpu_per_scan / floor_cpu_per_scan, 3),  # CPU time: steadier on a shared machine
        "whole_run_ratio": round(best[m]["cli"] / max(best[m]["io_floor_serial"], 1e-9), 3),
    }
