"""Memory stays bounded: a 100-megapixel 16-bit scan fits in 2.5 GiB, and the 300th file takes no
more memory than the 60th.

Each run happens in a child process of its own, so the numbers are the run's, not pytest's. The
peak is the child's VmHWM (Linux): ru_maxrss is printed beside it, but in a child started by
vfork (as subprocess does) the kernel records the parent's peak into it at exec, so it reads at
least pytest's own peak, however small the child.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
LIMIT_MIB = 2.5 * 1024

_CHILD_COMMON = r"""
import ctypes, json, resource, sys
from pathlib import Path
from colorize_cli.api import run
from colorize_cli.settings import ColorSettings, RunSettings, RuntimeSettings

def status_mib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(key + " not in /proc/self/status")

src, out, weights = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
render = int(sys.argv[4])
libc = ctypes.CDLL("libc.so.6")

def live_mib(rec):
    # RSS once glibc has handed back the pages freed so far (malloc_trim): what is still held,
    # without the batch buffers the allocator keeps for reuse.
    libc.malloc_trim(0)
    return status_mib("VmRSS")

samples = []
result = run(
    RunSettings(input_root=src, out_root=out, weights=weights, color=ColorSettings(render_size=render),
                runtime=RuntimeSettings(device="cpu"), quiet=True),
    on_file=lambda rec: samples.append(live_mib(rec)),
)
print(json.dumps({"counts": result.counts, "failures": result.failures, "rss_mib": samples,
                  "peak_mib": status_mib("VmHWM"), "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run_child(src: Path, out: Path, weights: Path, render_size: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # Idle OpenMP threads sleep rather than spin: on a shared 2-core machine spinning only slows the run.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run([sys.executable, "-c", _CHILD_COMMON, str(src), str(out), str(weights), str(render_size)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def write_gray16_tiff(path: Path, h: int, w: int, seed: int = 0, rows: int = 256) -> None:
    """An uncompressed little-endian 16-bit gray TIFF, one strip, written a band of rows at a time
    so that making a 100-megapixel scan needs a few MB, not 200. Smooth shading, hard edges and
    sensor-like noise, so the output compresses as poorly as a real scan's (a worst case for the
    writer's memory)."""
    ifd = [(256, 4, w), (257, 4, h), (258, 3, 16), (259, 3, 1), (262, 3, 1), (273, 4, 0),
           (277, 3, 1), (278, 4, h), (279, 4, h * w * 2), (284, 3, 1)]
    data_at = 8 + 2 + 12 * len(ifd) + 4
    rng = np.random.default_rng(seed)
    x = np.arange(w, dtype=np.float32)
    with open(path, "wb") as f:
        f.write(b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(ifd)))
        for tag, kind, value in ifd:
            value = data_at if tag == 273 else value
            packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            f.write(struct.pack("<HHI", tag, kind, 1) + packed)
        f.write(struct.pack("<I", 0))
        for y0 in range(0, h, rows):
            y = np.arange(y0, min(h, y0 + rows), dtype=np.float32)[:, None]
            band = 30000 + 20000 * np.sin(x / 700) * np.cos(y / 900) + 8000 * ((x // 1500 + y // 1500) % 2)
            band += 800 * rng.standard_normal(band.shape, dtype=np.float32)
            f.write(np.clip(band, 0, 65535).astype("<u2").tobytes())


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns above 89 Mpx
def test_a_100_megapixel_16_bit_scan_colorizes_in_under_2_5_gib(tmp_path: Path, random_weights: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    write_gray16_tiff(src / "scan.tif", 10_000, 10_000)
    with Image.open(src / "scan.tif") as im:
        assert (im.mode, im.size) == ("I;16", (10_000, 10_000))

    got = _run_child(src, out, random_weights, render_size=0)  # 0: the model's own render size
    print(f"100 MP 16-bit TIFF: peak RSS {got['peak_mib']:.0f} MiB (VmHWM); ru_maxrss {got['ru_maxrss_mib']:.0f} MiB")
    assert got["counts"]["done"] == 1, got["failures"]
    with Image.open(out / "scan.tif") as result:  # 16-bit RGB: Pillow reads the header only
        assert result.size == (10_000, 10_000)
    assert got["peak_mib"] < LIMIT_MIB


def test_memory_does_not_grow_with_the_number_of_files(tmp_path: Path, random_weights: Path) -> None:
    """300 small scans, default settings. Each one's working L* (256 x 256 px, the model's render
    size) is 256 KiB, so an engine that kept every scan's working copy, or anything of that size,
    would hold 40 MB more around file 240 than around file 80. RSS is read after malloc_trim (the
    pages freed so far handed back), so the allocator's reusable batch buffers do not hide or fake
    a trend; one that holds only the scans in flight stays within a few MB."""
    n = 300
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), "L").save(src / f"{i:04d}.png")

    got = _run_child(src, out, random_weights, render_size=0)
    rss = np.array(got["rss_mib"])
    assert got["counts"] == {"done": n, "failed": 0, "skipped": 0} and len(rss) == n
    early, late = float(np.median(rss[40:120])), float(np.median(rss[200:280]))
    print(f"{n} files: median live RSS {early:.0f} MiB around file 80, {late:.0f} MiB around file 240; "
          f"range {rss.min():.0f}-{rss.max():.0f}, peak {got['peak_mib']:.0f} MiB")
    assert late - early < 16, f"RSS grew {late - early:.0f} MB from file 80 to file 240"
