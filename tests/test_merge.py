"""The compiled merge kernels against the float reference and against each other.

merge_cpu (numba) is what a CPU run uses; merge_torch is what a GPU run uses. There is no GPU
here, so the torch kernel runs on the CPU device: the maths is the same tensor code either way.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]

from colorize_cli.color import gray_to_lightness, rgb_to_lab
from colorize_cli.merge.full_res import colorize_full_res
from reference import reference_merge
from sample_photos import photo_like_gray

CPU = torch.device("cpu")


def _random_gray(h, w, dtype, seed):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top + 1, (h, w)).astype(dtype)


def _photo_gray(seed, dtype, size=(240, 160)):
    gray = photo_like_gray(*size, seed=seed)
    if dtype == np.uint16:  # fill the low byte too, so that 16-bit codes between 8-bit ones occur
        noise = np.random.default_rng(5).integers(0, 257, gray.shape)
        return np.clip(gray.astype(np.int64) * 257 + noise - 128, 0, 65535).astype(np.uint16)
    return gray


def _chroma(h, w, spread, seed):
    """Smooth, strong a*b* (much of it out of gamut) with a few extreme values."""
    rng = np.random.default_rng(seed)
    ab = rng.normal(0, spread, (h, w, 2)).astype(np.float32)
    ab[0, 0] = (127.0, -128.0)
    return ab


def _codes(rgb_unit, dtype):
    return np.rint(rgb_unit.astype(np.float64) * np.iinfo(dtype).max)


def _images():
    for dtype in (np.uint8, np.uint16):
        yield f"random-{np.dtype(dtype).name}", _random_gray(90, 130, dtype, 3)
        for seed in (1, 2):
            yield f"photo{seed}-{np.dtype(dtype).name}", _photo_gray(seed, dtype)


IMAGES = list(_images())


@pytest.mark.parametrize("upsample", ["bilinear", "guided"])
@pytest.mark.parametrize("label,gray", IMAGES, ids=[label for label, _ in IMAGES])
def test_kernel_matches_the_float_reference_within_one_code_value(label, gray, upsample):
    ab_small = _chroma(13, 17, 45.0, seed=len(label))
    reference = reference_merge(gray, ab_small, 1.2, upsample)
    for out_dtype in (np.uint8, np.uint16):
        rgb = colorize_full_res(gray, ab_small, 1.2, upsample, out_dtype=out_dtype)
        assert rgb.dtype == out_dtype and rgb.shape == gray.shape + (3,)
        diff = np.abs(rgb.astype(np.float64) - _codes(reference, out_dtype))
        assert diff.max() <= 1, f"{label} -> {np.dtype(out_dtype).name}: off by {diff.max()} code values"
    as_float = colorize_full_res(gray, ab_small, 1.2, upsample, out_dtype=np.float32)
    np.testing.assert_allclose(as_float, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("upsample", ["bilinear", "guided"])
@pytest.mark.parametrize("label,gray", IMAGES, ids=[label for label, _ in IMAGES])
def test_torch_kernel_matches_the_cpu_kernel(label, gray, upsample):
    ab_small = _chroma(11, 14, 40.0, seed=7)
    lightness_small = gray_to_lightness(np.linspace(0, 1, 11 * 14, dtype=np.float32).reshape(11, 14))
    for out_dtype in (np.uint8, np.uint16, np.float32):
        kw = dict(out_dtype=out_dtype, lightness_small=lightness_small)
        cpu = colorize_full_res(gray, ab_small, 0.9, upsample, **kw)
        dev = colorize_full_res(gray, ab_small, 0.9, upsample, device=CPU, **kw)
        assert dev.dtype == cpu.dtype and dev.shape == cpu.shape
        tolerance = 1e-4 if out_dtype == np.float32 else 1
        assert np.abs(dev.astype(np.float64) - cpu.astype(np.float64)).max() <= tolerance


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_torch_kernel_gives_the_gray_back_exactly_for_zero_chroma(dtype):
    gray = _random_gray(70, 50, dtype, 11)
    zero = np.zeros((7, 5, 2), np.float32)
    for upsample in ("bilinear", "guided"):
        rgb = colorize_full_res(gray, zero, 1.0, upsample, device=CPU)
        np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=2))


def test_torch_kernel_strips_equal_one_strip():
    gray = _random_gray(61, 47, np.uint16, 2)
    ab_small = _chroma(6, 5, 30.0, seed=1)
    whole = colorize_full_res(gray, ab_small, 1.0, "guided", device=CPU, strip_rows=61)
    for rows in (1, 8, 60):
        np.testing.assert_array_equal(colorize_full_res(gray, ab_small, 1.0, "guided", device=CPU, strip_rows=rows), whole)


def test_kernel_keeps_lightness_on_a_photo_like_scan():
    gray = _photo_gray(1, np.uint16)
    rgb = colorize_full_res(gray, _chroma(12, 18, 60.0, seed=4), 1.5, "guided", out_dtype=np.float32)
    lab = rgb_to_lab(rgb)
    lightness = gray_to_lightness(gray.astype(np.float32) / np.float32(65535))
    assert np.abs(lab[..., 0] - lightness).max() <= 2e-3
    assert np.hypot(lab[..., 1], lab[..., 2]).mean() > 10  # and it is really coloured


def test_numba_and_torch_load_only_with_the_merge():
    """Importing the merge (as the engine does at start-up) loads neither numba nor torch;
    the first CPU merge loads numba and still not torch."""
    code = (
        "import sys, json, numpy as np\n"
        "from colorize_cli.merge.full_res import colorize_full_res\n"
        "before = {m: m in sys.modules for m in ('numba', 'torch')}\n"
        "colorize_full_res(np.zeros((4, 4), np.uint8), np.zeros((2, 2, 2), np.float32))\n"
        "after = {m: m in sys.modules for m in ('numba', 'torch')}\n"
        "print(json.dumps([before, after]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before, after = json.loads(proc.stdout.strip().splitlines()[-1])
    assert before == {"numba": False, "torch": False}
    assert after == {"numba": True, "torch": False}


def test_the_compiled_kernel_is_cached_in_the_users_cache_not_in_the_package(tmp_path: Path) -> None:
    """`pip uninstall` must not leave numba's cache in site-packages (an orphaned
    colorize_cli/__pycache__ shadows a later editable install): it goes to the user's cache."""
    import os

    import colorize_cli

    package_cache = Path(colorize_cli.__file__).parent / "merge" / "__pycache__"
    before = {p.name: p.stat().st_mtime_ns for p in package_cache.glob("cpu*.nb*")}
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    subprocess.run([sys.executable, "-c", "from colorize_cli.merge.full_res import warm_up; warm_up()"], env=env, check=True, cwd=tmp_path)
    cached = list((tmp_path / "cache" / "colorize-cli" / "numba").rglob("cpu.*.nbi"))
    assert cached, sorted(p.name for p in (tmp_path / "cache").rglob("*"))
    after = {p.name: p.stat().st_mtime_ns for p in package_cache.glob("cpu*.nb*")}
    assert after == before  # nothing written beside the module
