"""ChromaNet, the model we ship: an ImageNet MobileNetV2 encoder, a global context vector and a
small U-Net decoder that predicts a*b* at a quarter of the input resolution. `ChromaNetLite2` is
the same on EfficientNet-Lite2's features.

It has two heads on the same features: a regression of a*b* (safe, but dull on its own) and a
classification over quantised a*b* bins (vivid, but wrong when unsure). `predict_ab` mixes the
regression with the annealed mean of the bins; the mix and the temperature are buffers, chosen
on held-out photos after training and stored with the weights. `ChromaNetPair` runs one network
of each kind and decodes their averaged heads the same way.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.color import lab_to_linear_rgb
from colorize_cli.models.efficientnet_lite import EfficientNetLite2Features
from colorize_cli.models.mobilenet import MobileNetV2Features

AB_STEP = 10.0
AB_RANGE = 110.0


def ab_bin_centres(step: float = AB_STEP, limit: float = AB_RANGE) -> np.ndarray:
    """Centres of the a*b* grid cells that hold at least one sRGB colour (about 300 bins)."""
    grid = np.arange(-limit, limit + 1e-6, step, dtype=np.float32)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    ab = np.stack([a.ravel(), b.ravel()], axis=-1)
    lightness = np.arange(2.5, 100.0, 2.5, dtype=np.float32)
    lab = np.concatenate(
        [np.repeat(lightness, len(ab))[:, None], np.tile(ab, (len(lightness), 1))], axis=-1
    )
    rgb = lab_to_linear_rgb(lab).reshape(len(lightness), len(ab), 3)
    inside = ((rgb >= -1e-4) & (rgb <= 1 + 1e-4)).all(axis=-1).any(axis=0)
    return ab[inside]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Up(nn.Module):
    """Upsample x2, concatenate the encoder's skip, two convolutions."""

    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.conv = _block(cin + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(torch.cat([x, skip], dim=1))


class TwoHeads(nn.Module):
    """What decodes a regression and bin logits into a*b*: the mix, temperature and gain buffers,
    set by `colorize calibrate` and stored with the weights. ``forward`` gives the two heads."""

    stride = 32  # inputs are padded to a multiple of this
    output_scale = 4  # a*b* come out at 1/4 of the input size
    default_render_size = 256
    bin_centres: torch.Tensor

    def _register_decoding(self) -> None:
        # Decoding: ab = mix * annealed_mean(T) + (1 - mix) * regression. Tuned after training.
        self.register_buffer("mix", torch.tensor(0.0))
        self.register_buffer("temperature", torch.tensor(0.4))
        # A chroma gain after decoding, chosen with the mix and the temperature: the averaged
        # predictions of a network trained on a mean loss are greyer than photographs.
        self.register_buffer("gain", torch.tensor(1.0))
        self._register_load_state_dict_pre_hook(_default_gain)

    def decode(self, ab_reg: torch.Tensor, logits: torch.Tensor, mix: float, temperature: float, gain: float = 1.0) -> torch.Tensor:
        if mix == 0.0:
            return ab_reg * gain if gain != 1.0 else ab_reg
        p = torch.softmax(logits.float() / temperature, dim=1)
        ab_cls = torch.einsum("nqhw,qc->nchw", p, self.bin_centres.float())
        return (mix * ab_cls + (1.0 - mix) * ab_reg.float()) * gain

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        ab_reg, logits = self(lightness)
        return self.decode(ab_reg, logits, float(self.mix), float(self.temperature), float(self.gain))


class ChromaNet(TwoHeads):
    """The shipped network: MobileNetV2's ImageNet features, a context vector, a U-Net decoder."""

    def __init__(self, encoder: type[nn.Module] = MobileNetV2Features) -> None:
        """``encoder``: an ImageNet feature extractor returning maps at strides 2 to 32, whose
        class says their ``channels`` and the ``input_mean``/``input_std`` its weights expect."""
        super().__init__()
        _, c4, c8, c16, c32 = encoder.channels
        self.encoder = encoder()
        self.context = nn.Sequential(nn.Linear(c32, 256), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Conv2d(c32 + 256, 256, 1, bias=False), nn.BatchNorm2d(256), nn.ReLU(inplace=True))
        self.up16 = Up(256, c16, 128)
        self.up8 = Up(128, c8, 96)
        self.up4 = Up(96, c4, 64)
        centres = torch.from_numpy(ab_bin_centres())
        self.regress = nn.Conv2d(64, 2, 3, padding=1)
        self.classify = nn.Conv2d(64, len(centres), 1)
        self.register_buffer("bin_centres", centres)
        self.register_buffer("mean", torch.tensor(encoder.input_mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(encoder.input_std).view(1, 3, 1, 1))
        self._register_decoding()

    def features(self, lightness: torch.Tensor) -> torch.Tensor:
        x = (lightness / 100.0).expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        _, s4, s8, s16, s32 = self.encoder(x)
        g = self.context(s32.mean(dim=(2, 3)))
        g = g[:, :, None, None].expand(-1, -1, *s32.shape[-2:])
        x = self.fuse(torch.cat([s32, g], dim=1))
        return self.up4(self.up8(self.up16(x, s16), s8), s4)

    def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,1,H,W) L* in [0,100] -> (a*b* regression in Lab units, bin logits), both at H/4."""
        f = self.features(lightness)
        return self.regress(f) * 100.0, self.classify(f)


class ChromaNetLite2(ChromaNet):
    """The same decoder and heads on EfficientNet-Lite2's ImageNet features (4.8 M parameters in
    the encoder against MobileNetV2's 2.2 M): more of what colour depends on is learnt from
    ImageNet's million photos, less from the training photos."""

    def __init__(self) -> None:
        super().__init__(EfficientNetLite2Features)


class ChromaNetPair(TwoHeads):
    """A ChromaNet and a ChromaNetLite2 on the same input, their heads averaged with equal weights
    before one decoding: the regressions, and the bins' log-probabilities (a product of the two
    distributions). Two networks trained apart are partly wrong in different places, and an
    average of predictions (unlike one of weights) cancels that part. Built from two trained
    weights files by ``tools/pair_weights.py``; each member's own decoding is not used."""

    def __init__(self) -> None:
        super().__init__()
        self.first = ChromaNet()
        self.second = ChromaNetLite2()
        self._register_decoding()

    @property
    def bin_centres(self) -> torch.Tensor:  # type: ignore[override]
        return self.first.bin_centres

    def forward(self, lightness: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N,1,H,W) L* in [0,100] -> (mean a*b* regression, mean bin log-probabilities), at H/4."""
        reg1, logits1 = self.first(lightness)
        reg2, logits2 = self.second(lightness)
        logp = (torch.log_softmax(logits1.float(), dim=1) + torch.log_softmax(logits2.float(), dim=1)) / 2
        return (reg1 + reg2) / 2, logp


def _default_gain(state_dict: dict, prefix: str, *_: object) -> None:
    """Weights saved before the gain existed (chromanet-v1) decode with gain 1, as they did."""
    state_dict.setdefault(prefix + "gain", torch.tensor(1.0))
