"""`colorize bench`: how fast a run is, measured against what decoding and encoding alone cost.

A run can never be faster than reading its scans and writing its results, so that is the yardstick.
One invocation measures, on the same files with the same settings:

    io_floor          read_scan, the gray stacked to RGB, write_image (same format, quality, bit depth
                      and metadata as the run), with the engine's reader and writer thread counts
    io_floor_serial   the same, one file at a time on one thread
    network           the model alone on every scan's working L*, batched as the engine batches
    end_to_end        api.run on the folder: the real engine, manifest, hashing and all
    stages            (optional) one file at a time, a timer around each step of the real path
    lengths           (optional) `colorize-dir` itself, as a user runs it, on the first n and the
                      first m of the scans, beside the one-thread floor of the same files: the
                      per-scan cost once running is (t_m - t_n) / (m - n), start-up cancels out,
                      against the floor's per-scan cost (its time on the m files / m); the
                      whole-run ratio is t_m against the floor of those m files

Each phase runs in a child process of its own, so its peak resident memory is its own and no phase
inherits another's heap, caches or thread pools. Wall and CPU seconds are both reported: on a shared
machine the wall time depends on the neighbours, the CPU time much less. With `repeats` > 1 the
phases are interleaved (a b c, a b c, ...) and each one's fastest run is kept, so background load
hurts every phase alike instead of whichever happened to run during it.
"""

from colorize_cli.bench.floor import out_dtypes
from colorize_cli.bench.main import bench_main
from colorize_cli.bench.phases import PHASES
from colorize_cli.bench.runs import run_bench, steady_state
from colorize_cli.bench.scans import make_scans, scans_in, synthetic_scan
from colorize_cli.bench.spec import BenchError, BenchSettings, peak_rss_mib
from colorize_cli.bench.table import bench_table, summary_lines, time_shares

__all__ = [
    "PHASES", "BenchError", "BenchSettings", "bench_main", "bench_table", "make_scans", "out_dtypes", "peak_rss_mib",
    "run_bench", "scans_in", "steady_state", "summary_lines", "synthetic_scan", "time_shares",
]
