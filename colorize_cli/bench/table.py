"""What `colorize bench` prints: the table of phases and the sentences under it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

_LABELS = {
    "io_floor": "I/O floor",
    "io_floor_serial": "I/O floor, 1 thread",
    "network": "network alone",
    "end_to_end": "end to end",
}
_CAPTION = ("I/O floor: decode + gray-as-RGB encode of the same files, same format and quality, with the engine's "
            "reader/writer threads. End to end: colorize-dir's engine. CPU s: all threads' CPU time.")


def bench_table(result: dict) -> Table:
    """A rich Table of a run_bench result."""
    from rich.table import Table  # noqa: PLC0415

    r = result
    title = (f"colorize bench: {r['files']} scans, {r['megapixels']:.1f} MP, {r['input_mib']:.1f} MiB in, "
             f"{r['cpu_count']} CPUs, model: {r['model']['name']}")
    table = Table(title=title, caption=_CAPTION)
    for col in ("phase", "seconds", "images/s", "MP/s", "x I/O floor", "CPU s", "peak RSS MiB"):
        table.add_column(col, justify="left" if col == "phase" else "right")
    floor = r["phases"].get("io_floor", {}).get("seconds")
    for phase, p in r["phases"].items():
        if phase == "stages":
            continue
        ratio = f"{p['seconds'] / floor:.2f}" if floor else "-"
        rss = f"{p['peak_rss_mib']:.0f}" if p.get("peak_rss_mib") is not None else "-"
        table.add_row(_LABELS[phase], f"{p['seconds']:.2f}", f"{p['images_per_s']:.2f}", f"{p['megapixels_per_s']:.1f}", ratio,
                      f"{p['cpu_seconds']:.2f}", rss)
    stages = r["phases"].get("stages")
    if stages:
        table.add_row("steps, one file at a time:", "", "", "", "", "", "")
        for step, secs in stages["steps"].items():
            table.add_row(f"  {step}", f"{secs:.2f}", "", "", f"{secs / floor:.2f}" if floor else "-", "", "")
    return table


_SHARES = {"decode": ("decode", "working L*"), "network": ("network",), "merge": ("merge",), "encode": ("encode", "sha256")}


def time_shares(stages: dict) -> dict[str, float]:
    """Share of one-file-at-a-time time in decode / network / merge / encode (the merge not used left out)."""
    steps = {k: v for k, v in stages["steps"].items() if "not used" not in k}
    total = max(sum(steps.values()), 1e-9)
    return {group: round(sum(v for k, v in steps.items() if k.startswith(prefixes)) / total, 3)
            for group, prefixes in _SHARES.items()}


def summary_lines(result: dict) -> list[str]:
    """The few numbers a reader wants from a run, as sentences (printed under the table)."""
    lines = []
    ratio = result["ratios"].get("end_to_end/io_floor")
    if ratio is not None:
        peak = f"; peak resident memory {result['peak_rss_mib']:.0f} MiB" if result["peak_rss_mib"] else ""
        lines.append(f"end to end takes {ratio:.2f}x the I/O floor{peak}")
    e2e = result["phases"].get("end_to_end", {})
    if "gpu_peak_mib" in e2e:
        lines.append(f"GPU: {e2e['images_per_s']:.2f} images/s end to end, GPU memory peak {e2e['gpu_peak_mib']:.0f} MiB "
                     f"allocated, {e2e['gpu_reserved_mib']:.0f} MiB reserved")
    if "stages" in result["phases"]:
        shares = time_shares(result["phases"]["stages"])
        lines.append("time shares, one file at a time: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    st = result.get("steady_state")
    if st:
        n, m = st["lengths"]
        lines.append(f"colorize-dir steady state: {st['per_scan_s'] * 1e3:.0f} ms per scan against a one-thread floor of "
                     f"{st['floor_per_scan_s'] * 1e3:.0f} ms: {st['steady_ratio']:.2f}x (from runs of {n} and {m} scans; "
                     f"in CPU time {st['steady_cpu_ratio']:.2f}x)")
        lines.append(f"colorize-dir whole run of {m} scans: {st['cli_seconds'][str(m)]:.1f} s, {st['whole_run_ratio']:.2f}x the "
                     f"one-thread floor of the same files ({st['floor_seconds'][str(m)]:.1f} s); start-up {st['start_up_s']:.1f} s")
    return lines
