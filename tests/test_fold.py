"""Batch norms folded into their convolutions for inference (colorize_cli/inference/fold.py):
the same numbers, fewer layers, and only where a norm directly follows a convolution."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from colorize_cli.inference.colorizer import load_model
from colorize_cli.inference.fold import fold_batch_norms
from colorize_cli.models import build


def _with_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics and affine terms far from a fresh norm's (mean 0, var 1, scale 1)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(n, generator=g) * 2 + 0.1)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(n, generator=g) - 0.5)
    return model.eval()


def test_a_folded_block_gives_the_same_numbers_and_keeps_its_layout() -> None:
    torch.manual_seed(1)
    block = _with_statistics(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                                           nn.Conv2d(8, 4, 1), nn.BatchNorm2d(4)))
    x = torch.randn(2, 3, 17, 13)
    with torch.no_grad():
        want = block(x)
        assert fold_batch_norms(block) == 2
        got = block(x)
    assert [type(m) for m in block] == [nn.Conv2d, nn.Identity, nn.ReLU, nn.Conv2d, nn.Identity]
    assert block[0].bias is not None  # the norm's shift became the convolution's bias
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_norm_that_does_not_directly_follow_a_convolution_stays() -> None:
    """ECCV'16 and SIGGRAPH'17 put their norms after a ReLU: folding there would be wrong."""
    block = _with_statistics(nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.BatchNorm2d(8)))
    assert fold_batch_norms(block) == 0
    assert [type(m) for m in block] == [nn.Conv2d, nn.ReLU, nn.BatchNorm2d]


def test_a_convolution_whose_weight_is_computed_when_it_runs_stays() -> None:
    """DDColor's spectral-normed convolutions: their weight is recomputed by a hook at every call."""
    block = _with_statistics(nn.Sequential(nn.utils.spectral_norm(nn.Conv2d(3, 8, 3)), nn.BatchNorm2d(8)))
    x = torch.randn(1, 3, 9, 9)
    with torch.no_grad():
        want = block(x)
        assert fold_batch_norms(block) == 0
        torch.testing.assert_close(block(x), want, rtol=0, atol=0)
    assert isinstance(block[1], nn.BatchNorm2d)


def test_a_model_in_training_mode_is_refused() -> None:
    block = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)).train()
    with pytest.raises(ValueError, match="only in eval mode"):
        fold_batch_norms(block)
    assert isinstance(block[1], nn.BatchNorm2d)


def test_the_shipped_architecture_folds_every_norm_and_predicts_the_same(random_weights) -> None:
    torch.manual_seed(0)
    plain = _with_statistics(build("chromanet"))
    folded = copy.deepcopy(plain)
    assert fold_batch_norms(folded) == sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(2, 1, 96, 128) * 100
    with torch.no_grad():
        torch.testing.assert_close(folded.predict_ab(x), plain.predict_ab(x), rtol=0, atol=1e-3)  # a*b* units
    # the engines' loader folds: what it runs has no norm left
    loaded = load_model(random_weights, device="cpu")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in loaded.model.modules())
