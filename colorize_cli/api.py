"""The library's public API; the CLI is a thin layer over these four calls.

    model = load_model()                                  # shipped weights, verified
    rgb = colorize_image(Image.open("scan.tif"), model)  # one image, in memory
    plan = plan_run(settings)                             # what a folder run would do, and why
    result = run(settings, model)                         # do it
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from colorize_cli.inference.colorizer import Colorizer, from_module, load_model
from colorize_cli.run.engine import run
from colorize_cli.io import scanfile as imaging
from colorize_cli.inference.predict import colorize_gray
from colorize_cli.models.raw import predict_raw_ab
from colorize_cli.run.plan import model_ref, plan_run
from colorize_cli.settings import ColorSettings, resolve_render_size

__all__ = ["Colorizer", "from_module", "load_model", "colorize_image", "plan_run", "run", "model_ref", "predict_raw_ab"]


def colorize_image(image: Image.Image, model: Colorizer, settings: ColorSettings = ColorSettings(), batch_size: int = 8) -> Image.Image:
    """Colorize one image in memory; returns RGB (or RGBA when the input had alpha), same size.
    EXIF orientation is applied; metadata is not carried (that is the file writer's job)."""
    scan = imaging.scan_from_image(image)
    dtype = np.uint16 if scan.bit_depth == 16 else np.uint8
    rgb = colorize_gray(scan.gray, model.predictor, settings, resolve_render_size(settings.render_size, model.render_size), batch_size, dtype)
    if dtype == np.uint16:  # Pillow has no 16-bit RGB image mode: hand back 8 bits
        rgb = imaging.to_8bit(rgb)
    out = Image.fromarray(rgb, "RGB")
    if scan.alpha is not None:
        alpha = scan.alpha if scan.alpha.dtype == np.uint8 else imaging.to_8bit(scan.alpha)
        out.putalpha(Image.fromarray(alpha, "L"))
    return out
