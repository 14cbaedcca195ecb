"""Models behind one interface (ColorModel), checked where they are built, and the one
architecture registry that loading, training and calibration read."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from colorize_cli.api import from_module
from colorize_cli.models import ARCHS, ColorModel, arch_spec, build, check_model
from colorize_cli.models.weights import ModelInfo
from colorize_cli.training.data import CropSettings, make_batch
from colorize_cli.training.loop import TrainConfig, _param_groups
from colorize_cli.training.objectives import OBJECTIVES, make_objective


@pytest.mark.parametrize("arch", sorted(a for a, spec in ARCHS.items() if spec.trainable))
def test_every_trainable_architecture_builds_with_the_interface_and_trains_one_step(arch: str) -> None:
    torch.manual_seed(0)
    model = build(arch)
    assert isinstance(model, ColorModel)
    x = torch.full((1, 1, 64, 64), 50.0)
    with torch.no_grad():
        ab = model.eval().predict_ab(x)
    assert ab.shape == (1, 2, 64 // model.output_scale, 64 // model.output_scale)

    spec = arch_spec(arch)
    assert spec.loss in OBJECTIVES
    if spec.pretrained:  # the submodule that takes ImageNet weights exists
        assert isinstance(getattr(model, spec.pretrained), nn.Module)
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (80, 96, 3), dtype=np.uint8) for _ in range(3)]
    objective = make_objective(arch, model, photos, torch.device("cpu"), seed=0)
    lightness, lab, rgb = (torch.from_numpy(a) for a in make_batch(photos, rng, 2, CropSettings(size=64, damage=0.0)))
    loss, _ = objective(model.train()(lightness), lab, rgb)
    assert math.isfinite(float(loss.detach())) and float(loss.detach()) > 0


def test_pretrained_parts_are_trained_as_the_registry_says() -> None:
    cfg = TrainConfig(data=(), out="", lr=1e-3, encoder_lr=1e-4)
    chroma = build("chromanet")
    groups = _param_groups(chroma, cfg)
    encoder = {id(p) for p in chroma.encoder.parameters()}
    assert [g["base"] for g in groups] == [1e-3, 1e-4]
    assert {id(p) for p in groups[1]["params"]} == encoder  # fine-tuned at the encoder's rate

    koala = build("koala")
    (group,) = _param_groups(koala, TrainConfig(data=(), out="", arch="koala"))
    trained = {id(p) for p in group["params"]}
    assert not any(p.requires_grad for p in koala.classifier.parameters())  # the ImageNet classifier is fixed
    assert {id(p) for p in koala.encoder.parameters()} <= trained  # its own encoder learns
    assert all(p.requires_grad for p in koala.encoder.parameters())

    for arch in ("chromanet", "chromanet-lite2"):
        model = build(arch)
        assert [g["base"] for g in _param_groups(model, TrainConfig(data=(), out="", arch=arch))] == [1e-3, 1e-4]
        # frozen for the whole budget, the encoder takes no gradient at all (no backward pass through it)
        (group,) = _param_groups(model, TrainConfig(data=(), out="", arch=arch, freeze_fraction=1.0))
        assert not any(p.requires_grad for p in model.encoder.parameters())
        assert {id(p) for p in group["params"]} == {id(p) for n, p in model.named_parameters() if not n.startswith("encoder.")}


class NoStride(nn.Module):
    output_scale = 1
    default_render_size = 64

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        return torch.zeros(lightness.shape[0], 2, *lightness.shape[2:])


def test_a_model_without_the_interface_is_refused_where_it_enters() -> None:
    with pytest.raises(TypeError, match="NoStride is not a colorization model: stride missing"):
        check_model(NoStride())
    with pytest.raises(TypeError, match="stride missing"):
        from_module(NoStride(), ModelInfo("x", "test", "0" * 64, {}), device="cpu")

    class NoPredict(nn.Module):
        stride = 1
        output_scale = 1
        default_render_size = 0

    with pytest.raises(TypeError, match="default_render_size, predict_ab missing"):
        check_model(NoPredict())
    with pytest.raises(ValueError, match="unknown architecture 'unet3'; choose one of chromanet, chromanet-lite2, seed-unet"):
        build("unet3")


def test_average_weights_is_the_tensor_by_tensor_mix_and_refuses_two_architectures(tmp_path) -> None:
    """tools/average_weights.py: every float tensor (weights, batch-norm statistics) is
    start + alpha * (tuned - start) for two files and the plain mean for three; the result loads,
    digest checked; --alpha with three files and two architectures are refused."""
    import subprocess
    import sys
    from pathlib import Path

    from colorize_cli.models.weights import load_model, save_weights

    tool = Path(__file__).resolve().parents[1] / "tools" / "average_weights.py"
    files = {}
    for seed, arch in ((0, "chromanet"), (1, "chromanet"), (2, "seed-unet")):
        torch.manual_seed(seed)
        model = build(arch).eval()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # statistics unlike a fresh layer's, so averaging them shows
                m.running_mean.uniform_(-1, 1)
        files[seed] = tmp_path / f"{arch}-{seed}.safetensors"
        save_weights(model, arch, files[seed])
    out = tmp_path / "avg.safetensors"
    done = subprocess.run([sys.executable, str(tool), str(files[0]), str(files[1]), "--alpha", "0.25", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (start, _), (tuned, _), (avg, info) = (load_model(files[0]), load_model(files[1]), load_model(out))
    a, b, m = start.state_dict(), tuned.state_dict(), avg.state_dict()
    for key in ("encoder.features.0.0.weight", "fuse.1.running_mean", "classify.weight"):
        assert not torch.equal(a[key], b[key])
        torch.testing.assert_close(m[key], a[key] + 0.25 * (b[key] - a[key]), rtol=2e-3, atol=1e-3)  # saved as fp16
    assert info.meta["average"]["shares"] == [0.75, 0.25]

    soup = tmp_path / "soup.safetensors"
    third = tmp_path / "chromanet-3.safetensors"
    torch.manual_seed(3)
    save_weights(build("chromanet").eval(), "chromanet", third)
    done = subprocess.run([sys.executable, str(tool), str(files[0]), str(files[1]), str(third), "--out", str(soup)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    c, (s, soup_info) = load_model(third)[0].state_dict(), load_model(soup)
    for key in ("encoder.features.0.0.weight", "fuse.1.running_mean", "classify.weight"):
        torch.testing.assert_close(s.state_dict()[key], (a[key] + b[key] + c[key]) / 3, rtol=2e-3, atol=1e-3)
    assert soup_info.meta["average"]["members"] == [load_model(f)[1].sha256 for f in (files[0], files[1], third)]
    alpha3 = subprocess.run([sys.executable, str(tool), str(files[0]), str(files[1]), str(third), "--alpha", "0.3",
                             "--out", str(tmp_path / "no.safetensors")], capture_output=True, text=True)
    assert alpha3.returncode != 0 and "--alpha mixes two networks; 3 are averaged uniformly" in alpha3.stderr
    assert not (tmp_path / "no.safetensors").exists()

    other = tmp_path / "mixed.safetensors"
    refused = subprocess.run([sys.executable, str(tool), str(files[0]), str(files[2]), "--out", str(other)],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "not one architecture: chromanet and seed-unet" in refused.stderr
    assert not other.exists()


def test_pair_weights_averages_two_networks_heads_and_refuses_training_or_the_wrong_pair(tmp_path) -> None:
    """tools/pair_weights.py: the pair's regression is the members' mean, its bins the normalised
    geometric mean of theirs; each member's own decoding plays no part; the tool refuses members
    in the wrong places and `colorize train` refuses the pair."""
    import subprocess
    import sys
    from pathlib import Path

    from colorize_cli.models.weights import load_model, save_weights

    tool = Path(__file__).resolve().parents[1] / "tools" / "pair_weights.py"
    files = {}
    for seed, arch in ((0, "chromanet"), (1, "chromanet-lite2")):
        torch.manual_seed(seed)
        model = build(arch).eval()
        with torch.no_grad():
            model.mix.fill_(1.0)  # a member's own decoding, which the pair must not use
            model.gain.fill_(1.3)
        files[arch] = tmp_path / f"{arch}.safetensors"
        save_weights(model, arch, files[arch], half=False)
    out = tmp_path / "pair.safetensors"
    done = subprocess.run([sys.executable, str(tool), str(files["chromanet"]), str(files["chromanet-lite2"]), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (first, _), (second, _), (pair, info) = (load_model(files["chromanet"]), load_model(files["chromanet-lite2"]), load_model(out))
    assert info.arch == "chromanet-pair" and [m["arch"] for m in info.meta["members"]] == ["chromanet", "chromanet-lite2"]
    x = torch.linspace(0, 100, 64 * 96).view(1, 1, 64, 96)
    with torch.no_grad():
        (r1, l1), (r2, l2), (r, logp) = first(x), second(x), pair(x)
        assert not torch.allclose(r1, r2, atol=1e-2)
        torch.testing.assert_close(r, (r1 + r2) / 2, rtol=1e-3, atol=1e-2)
        geometric = torch.sqrt(torch.softmax(l1, 1) * torch.softmax(l2, 1))
        torch.testing.assert_close(torch.softmax(logp, 1), geometric / geometric.sum(1, keepdim=True), rtol=1e-3, atol=1e-5)
        assert float(pair.mix) == 0.0 and float(pair.gain) == 1.0  # the regression alone until calibrated
        torch.testing.assert_close(pair.predict_ab(x), r)
        pair.mix.fill_(1.0)
        pair.temperature.fill_(1.0)
        expected = torch.einsum("nqhw,qc->nchw", torch.softmax(logp, 1), first.bin_centres)
        torch.testing.assert_close(pair.predict_ab(x), expected)

    swapped = tmp_path / "swapped.safetensors"
    refused = subprocess.run([sys.executable, str(tool), str(files["chromanet-lite2"]), str(files["chromanet"]), "--out", str(swapped)],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "chromanet-lite2 is a 'chromanet-lite2' network; this place takes a 'chromanet' one" in refused.stderr
    assert not swapped.exists()
    with pytest.raises(ValueError, match="'chromanet-pair' is not trained as one network: tools/pair_weights.py assembles it"):
        TrainConfig(data=(), out="", arch="chromanet-pair")
