"""Zhang et al.'s colorization networks, laid out so their published checkpoints load as they are.

- :class:`ECCV16`: "Colorful Image Colorization" (ECCV 2016). A VGG-like stack without pooling
  (three stride-2 convolutions, dilated middle blocks), one transposed convolution back to 1/4 of
  the input, a softmax over 313 quantised a*b* bins and a fixed 1x1 convolution that turns the
  distribution into its expected a*b* (``model_out``, no bias), then a bilinear x4.
- :class:`SIGGRAPH17`: "Real-Time User-Guided Image Colorization with Learned Deep Priors"
  (SIGGRAPH 2017). A U-Net of the same trunk that takes L*, a sparse a*b* hint and its mask;
  its regression head (``model_out``, tanh) gives a*b* at full resolution. Here it always runs in
  automatic mode: zero hint, zero mask.

State-dict keys and shapes follow the authors' PyTorch release (richzhang/colorization,
``colorizers/eccv16.py`` and ``siggraph17.py``): ``model1`` ... ``model8``, ``model_out``
(and for SIGGRAPH'17 ``model8up``, ``model3short8``, ``model9up``, ``model2short9``,
``model10up``, ``model1short10``, ``model9``, ``model10``, ``model_class``), each an
``nn.Sequential`` whose indices count the parameter-free ReLUs too. The code is written anew
from those layouts; upstream's normalisation is kept: the network sees (L* - 50) / 100 and its
output times 110 is a*b* in Lab units.

Both are fully convolutional: any input whose sides are multiples of 8 works (upstream feeds
256 x 256), so a scan may be tiled for them.
"""

from __future__ import annotations

import torch
from torch import nn

from colorize_cli.models.skipinit import skip_random_init
from colorize_cli.models.spec import ModelSpec

L_CENT = 50.0  # upstream's l_cent
L_NORM = 100.0  # upstream's l_norm
AB_NORM = 110.0  # upstream's ab_norm

ZHANG_LICENCE = "code and weights: Zhang, Isola, Efros (richzhang/colorization), BSD-2-Clause"
ZHANG_DTYPES = {"cpu": ("float32",), "cuda": ("float16", "bfloat16", "float32"), "mps": ("float32",)}


def _stage(cin: int, widths: tuple[int, ...], *, last_stride: int = 1, dilation: int = 1,
           lead_relu: bool = False, norm: bool = True) -> nn.Sequential:
    """[ReLU,] (conv 3x3, ReLU) per width [, BatchNorm]: the block shape both papers use.
    Only the last convolution of a stage may be strided (ECCV'16 downsamples that way)."""
    layers: list[nn.Module] = [nn.ReLU(True)] if lead_relu else []
    for i, cout in enumerate(widths):
        stride = last_stride if i == len(widths) - 1 else 1
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=True), nn.ReLU(True)]
        cin = cout
    if norm:
        layers.append(nn.BatchNorm2d(cin))
    return nn.Sequential(*layers)


class ECCV16(nn.Module):
    """ECCV'16 colorizer in the authors' layout (``colorization_release_v2`` weights).

    ``forward`` is upstream's: (N,1,H,W) L* -> a*b* at H x W (after the bilinear x4).
    ``predict_ab`` gives the same a*b* before that x4, at H/4: the engine upsamples it with the
    scan's own lightness as a guide instead."""

    family = "eccv16"
    stride = 8  # three stride-2 convolutions
    output_scale = 4  # one transposed convolution back up: a*b* at 1/4 before upsample4
    default_render_size = 256  # upstream resizes every image to 256 x 256
    spec = ModelSpec(family="eccv16", input_kind="lightness", fixed_size=None, multiple_of=8, output_scale=4,
                     tileable=True, dtypes=ZHANG_DTYPES, thread_safe=True, default_render_size=256,
                     licence=ZHANG_LICENCE)  # fmt: skip

    def __init__(self, bins: int = 313) -> None:
        super().__init__()
        self.model1 = _stage(1, (64, 64), last_stride=2)
        self.model2 = _stage(64, (128, 128), last_stride=2)
        self.model3 = _stage(128, (256, 256, 256), last_stride=2)
        self.model4 = _stage(256, (512, 512, 512))
        self.model5 = _stage(512, (512, 512, 512), dilation=2)
        self.model6 = _stage(512, (512, 512, 512), dilation=2)
        self.model7 = _stage(512, (512, 512, 512))
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1, bias=True), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1, bias=True), nn.ReLU(True),
            nn.Conv2d(256, 256, 3, padding=1, bias=True), nn.ReLU(True),
            nn.Conv2d(256, bins, 1, bias=True),
        )  # fmt: skip
        self.softmax = nn.Softmax(dim=1)
        self.model_out = nn.Conv2d(bins, 2, 1, bias=False)  # bin centres as a 1x1 convolution
        self.upsample4 = nn.Upsample(scale_factor=4, mode="bilinear")

    def _ab_quarter(self, lightness: torch.Tensor) -> torch.Tensor:
        """Normalised a*b* (before x110) at 1/4 of the input."""
        x = (lightness - L_CENT) / L_NORM
        for stage in (self.model1, self.model2, self.model3, self.model4, self.model5, self.model6, self.model7, self.model8):
            x = stage(x)
        return self.model_out(self.softmax(x))

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        """Upstream's output: (N,1,H,W) L* in [0,100] -> (N,2,H,W) a*b* in Lab units."""
        return self.upsample4(self._ab_quarter(lightness)) * AB_NORM

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) L* in [0,100], H and W multiples of 8 -> (N,2,H/4,W/4) a*b* in Lab units."""
        return self._ab_quarter(lightness) * AB_NORM


class SIGGRAPH17(nn.Module):
    """SIGGRAPH'17 colorizer in the authors' layout (``siggraph17`` weights), automatic mode.

    ``forward(lightness, hint_ab=None, hint_mask=None)`` is upstream's, hints included;
    ``predict_ab`` runs it with no hints. a*b* come out at the input's own size."""

    family = "siggraph17"
    stride = 8  # three 2x subsamplings, matched by three transposed convolutions
    output_scale = 1
    default_render_size = 256
    spec = ModelSpec(family="siggraph17", input_kind="lightness", fixed_size=None, multiple_of=8, output_scale=1,
                     tileable=True, dtypes=ZHANG_DTYPES, thread_safe=True, default_render_size=256,
                     licence=ZHANG_LICENCE)  # fmt: skip

    def __init__(self, classes: int = 529) -> None:
        super().__init__()
        # Input: L*, the a*b* hint (2 channels) and its mask: 4 channels.
        self.model1 = _stage(4, (64, 64))
        self.model2 = _stage(64, (128, 128))
        self.model3 = _stage(128, (256, 256, 256))
        self.model4 = _stage(256, (512, 512, 512))
        self.model5 = _stage(512, (512, 512, 512), dilation=2)
        self.model6 = _stage(512, (512, 512, 512), dilation=2)
        self.model7 = _stage(512, (512, 512, 512))
        self.model8up = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1, bias=True))
        self.model8 = _stage(256, (256, 256), lead_relu=True)
        self.model9up = nn.Sequential(nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1, bias=True))
        self.model9 = _stage(128, (128,), lead_relu=True)
        self.model10up = nn.Sequential(nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1, bias=True))
        self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1, bias=True), nn.LeakyReLU(0.2))
        # Skip connections, each a 3x3 convolution added to the upsampled decoder features.
        self.model3short8 = nn.Sequential(nn.Conv2d(256, 256, 3, padding=1, bias=True))
        self.model2short9 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1, bias=True))
        self.model1short10 = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1, bias=True))
        # Heads: bin logits at 1/4 (used in training, not here) and the a*b* regression.
        self.model_class = nn.Sequential(nn.Conv2d(256, classes, 1, bias=True))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1, bias=True), nn.Tanh())
        self.upsample4 = nn.Sequential(nn.Upsample(scale_factor=4, mode="bilinear"))
        self.softmax = nn.Sequential(nn.Softmax(dim=1))

    def forward(self, lightness: torch.Tensor, hint_ab: torch.Tensor | None = None,
                hint_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(N,1,H,W) L* in [0,100] [, (N,2,H,W) a*b* hint, (N,1,H,W) mask] -> (N,2,H,W) a*b*."""
        if hint_ab is None:
            hint_ab = torch.zeros_like(lightness).expand(-1, 2, -1, -1)
        if hint_mask is None:
            hint_mask = torch.zeros_like(lightness)
        x = torch.cat([(lightness - L_CENT) / L_NORM, hint_ab / AB_NORM, hint_mask], dim=1)
        c1 = self.model1(x)
        c2 = self.model2(c1[:, :, ::2, ::2])
        c3 = self.model3(c2[:, :, ::2, ::2])
        c7 = self.model7(self.model6(self.model5(self.model4(c3[:, :, ::2, ::2]))))
        c8 = self.model8(self.model8up(c7) + self.model3short8(c3))
        c9 = self.model9(self.model9up(c8) + self.model2short9(c2))
        c10 = self.model10(self.model10up(c9) + self.model1short10(c1))
        return self.model_out(c10) * AB_NORM

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) L* in [0,100], H and W multiples of 8 -> (N,2,H,W) a*b* in Lab units."""
        return self(lightness)


def detect_eccv16(state: dict) -> bool:
    w = state.get("model1.0.weight")
    return (w is not None and tuple(w.shape) == (64, 1, 3, 3) and "model8.6.weight" in state
            and "model_out.weight" in state)  # fmt: skip


def detect_siggraph17(state: dict) -> bool:
    w = state.get("model1.0.weight")
    return (w is not None and tuple(w.shape) == (64, 4, 3, 3) and "model3short8.0.weight" in state
            and "model_out.0.weight" in state)  # fmt: skip


def _load(cls: type[nn.Module], state: dict, **kwargs: int) -> nn.Module:
    with skip_random_init():  # every tensor is set from the file below (checked first)
        model = cls(**kwargs)
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]  # absent from old releases
    unexpected = [k for k in state if k not in own]
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in own.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]  # fmt: skip
    if missing or unexpected or wrong:
        raise ValueError(f"weights do not fit {cls.__name__}: missing {missing[:3]}, unexpected {unexpected[:3]}, "
                         f"wrong shape {wrong[:3]}")  # fmt: skip
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    return model.eval()


def load_eccv16(state: dict) -> ECCV16:
    bins = state["model8.6.weight"].shape[0] if "model8.6.weight" in state else 313
    return _load(ECCV16, state, bins=int(bins))  # type: ignore[return-value]


def load_siggraph17(state: dict) -> SIGGRAPH17:
    classes = state["model_class.0.weight"].shape[0] if "model_class.0.weight" in state else 529
    return _load(SIGGRAPH17, state, classes=int(classes))  # type: ignore[return-value]


__all__ = ["ECCV16", "SIGGRAPH17", "detect_eccv16", "detect_siggraph17", "load_eccv16", "load_siggraph17"]
