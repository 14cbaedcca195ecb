"""The seed reports' systems, rebuilt as reference points (see ../shared/SEEDS.md).

They regress RGB, so `predict_ab` converts their RGB to a*b* once here and the engine treats
every model alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.models.labtorch import rgb_to_ab
from colorize_cli.models.mobilenet import IMAGENET_MEAN, IMAGENET_STD, MobileNetV2Features


def _double_conv(cin: int, cout: int, bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(2):
        layers.append(nn.Conv2d(cin if i == 0 else cout, cout, 3, padding=1, bias=not bn))
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class _UNet(nn.Module):
    """Plain U-Net: two 3x3 convs a level, max-pool down, 2x2 transposed conv up, skip concat."""

    def __init__(self, widths: tuple[int, ...], bn: bool, head_kernel: int) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(_double_conv(cin, w, bn))
            cin = w
        self.ups = nn.ModuleList(nn.ConvTranspose2d(w, w // 2, 2, stride=2) for w in widths[:0:-1])
        self.up_convs = nn.ModuleList(_double_conv(w, w // 2, bn) for w in widths[:0:-1])
        self.head = nn.Conv2d(widths[0], 3, head_kernel, padding=head_kernel // 2)
        self.stride = 2 ** (len(widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for up, conv, skip in zip(self.ups, self.up_convs, reversed(skips[:-1])):
            x = conv(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class SeedUNet(_UNet):
    """U-Net paper and slides (2020): gray 0-1 in, RGB 0-255 out through a
    3x3 convolution and a ReLU, MSE loss. 7,760,355 parameters."""

    output_scale = 1
    default_render_size = 256

    def __init__(self) -> None:
        super().__init__((32, 64, 128, 256, 512), bn=False, head_kernel=3)

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        """L* in [0,100] -> RGB in [0,255]."""
        return F.relu(super().forward(lightness / 100.0))

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        return rgb_to_ab(self(lightness).clamp(0, 255) / 255.0)


class SeedBNUNet(_UNet):
    """Landscape slides: 5-level U-Net with batch norm (64..1024), 1x1 sigmoid RGB output."""

    output_scale = 1
    default_render_size = 256

    def __init__(self) -> None:
        super().__init__((64, 128, 256, 512, 1024), bn=True, head_kernel=1)

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        """L* in [0,100] -> RGB in [0,1]."""
        return torch.sigmoid(super().forward(lightness / 100.0))

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        return rgb_to_ab(self(lightness))


class Koala(nn.Module):
    """Deep Koalarization (Baldassarre et al. 2017): a conv encoder to H/8 x 512, a global
    embedding from a pretrained ImageNet classifier (here MobileNetV2's pooled 1280-d features;
    Inception-ResNet-v2 is not available offline) replicated over the grid and fused by 256 1x1
    convolutions, then a decoder to a*b* in [-1, 1] through tanh (scaled by 128)."""

    stride = 8
    output_scale = 1
    default_render_size = 256
    _ENC = ((64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 1), (256, 1))

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for cout, stride in self._ENC:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True)]
            cin = cout
        self.encoder = nn.Sequential(*layers)
        self.classifier = MobileNetV2Features()
        self.fusion = nn.Sequential(nn.Conv2d(256 + 1280, 256, 1), nn.ReLU(inplace=True))
        self.decoder = nn.Sequential(
            nn.Conv2d(256, 128, 3, padding=1), nn.ReLU(inplace=True), nn.Upsample(scale_factor=2),
            nn.Conv2d(128, 64, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(inplace=True), nn.Upsample(scale_factor=2),
            nn.Conv2d(64, 32, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(32, 2, 3, padding=1), nn.Tanh(), nn.Upsample(scale_factor=2),
        )
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        """L* in [0,100] -> a*b* / 128 in [-1, 1]."""
        x = lightness / 50.0 - 1.0
        mid = self.encoder(x)
        small = F.interpolate(lightness, size=(224, 224), mode="bilinear", align_corners=False)
        rgb = ((small / 100.0).expand(-1, 3, -1, -1) - self.mean) / self.std
        emb = self.classifier(rgb)[-1].mean(dim=(2, 3))
        emb = emb[:, :, None, None].expand(-1, -1, *mid.shape[-2:])
        return self.decoder(self.fusion(torch.cat([mid, emb], dim=1)))

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        return self(lightness) * 128.0
