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


def test_the_pair_averages_its_members_heads_and_is_not_trained() -> None:
    """`chromanet-pair`: its regression is the members' mean, its bins the normalised geometric
    mean of theirs; each member's own decoding plays no part; `colorize train` refuses the pair,
    which is assembled from trained networks (the research script `research/pair_weights.py`
    writes one; its test is in research/tests)."""
    members = {}
    for seed, arch in ((0, "chromanet"), (1, "chromanet-lite2")):
        torch.manual_seed(seed)
        model = build(arch).eval()
        with torch.no_grad():
            model.mix.fill_(1.0)  # a member's own decoding, which the pair must not use
            model.gain.fill_(1.3)
        members[arch] = model
    first, second = members["chromanet"], members["chromanet-lite2"]
    pair = build("chromanet-pair").eval()
    pair.first.load_state_dict(first.state_dict())
    pair.second.load_state_dict(second.state_dict())
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
    with pytest.raises(ValueError, match="'chromanet-pair' is not trained as one network"):
        TrainConfig(data=(), out="", arch="chromanet-pair")


