"""Choose ChromaNet's decoding (regression/bins mix, softmax temperature, chroma gain) on held-out photos,
and write the calibrated weights.

Each candidate decoding is scored on the full pipeline's output (``inference.colorize_gray``
through a ``Predictor``: working size, tiles, network, upsampling, merge), as users get it. The
network itself runs once per photo: :class:`_Decodings` keeps its raw outputs and only decodes
them again per candidate. The rule: among decodings whose colourfulness is at least `min_ratio`
of the truth's, take the one with the best PSNR; colour that is vivid but wrong loses, and so
does colour so timid it is nearly gray. A second floor, `min_vivid_ratio`, can hold the
colourful photos among them (truth colourfulness at least `vivid_at`) to their own ratio, since
a model that is colourful enough on average may still be timid exactly where colour is vivid.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from colorize_cli.settings import resolve_render_size
from colorize_cli.io.read.grayscale import luminance8
from colorize_cli.inference.predict import Predictor, colorize_gray
from colorize_cli.models import arch_spec
from colorize_cli.models.weights import load_model, save_weights
from colorize_cli.settings import ColorSettings
from colorize_cli.training.evaluate import colourful_flags
from colorize_cli.training.metrics import ImageScores, score, summarise

MIXES = (0.0, 0.25, 0.5, 0.75, 1.0)
TEMPERATURES = (0.38, 0.6, 1.0)
GAINS = (1.0, 1.1, 1.2, 1.3)
VIVID_AT = 30.0  # Hasler-Suesstrunk colourfulness from which a photo counts as colourful


@dataclass(frozen=True)
class Choice:
    mix: float
    temperature: float
    gain: float
    psnr: float
    ciede2000: float
    colourfulness_ratio: float
    vivid_ratio: float  # the ratio over the colourful photos alone (NaN: none is that colourful)


def meets_floors(ratio: float, vivid_ratio: float, min_ratio: float, min_vivid_ratio: float) -> bool:
    """Whether a decoding is colourful enough to be chosen: its colourfulness ratio reaches
    ``min_ratio`` and, when ``min_vivid_ratio`` is above 0, the colourful photos' ratio reaches it."""
    return ratio >= min_ratio and (min_vivid_ratio <= 0 or vivid_ratio >= min_vivid_ratio)


def vivid_ratio(scores: list[ImageScores], colourful: list[bool]) -> float:
    """The colourfulness ratio over the photos flagged colourful alone (NaN: none is)."""
    vivid = [s for s, flag in zip(scores, colourful) if flag]
    return summarise(vivid)["colourfulness_ratio"] if vivid else math.nan


class _Decodings:
    """ChromaNet seen through the model interface, with the decoding set per candidate and the
    network's raw outputs (regression, bin logits) kept per input, so scoring 13 decodings costs
    one network pass per photo."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.stride = model.stride
        self.output_scale = model.output_scale
        self.default_render_size = model.default_render_size
        self.mix, self.temperature, self.gain = 0.0, 1.0, 1.0
        self._raw: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        key = hashlib.sha1(lightness.cpu().contiguous().numpy().tobytes()).hexdigest() + str(tuple(lightness.shape))
        if key not in self._raw:
            self._raw[key] = self.model(lightness)
        return self.model.decode(*self._raw[key], self.mix, self.temperature, self.gain)


def calibrate(
    model: torch.nn.Module, photos: list[tuple[Path, np.ndarray]], render_size: int, min_ratio: float = 0.75,
    tta: bool = False, min_vivid_ratio: float = 0.0, vivid_at: float = VIVID_AT,
) -> tuple[Choice, list[Choice]]:
    """The chosen decoding and every candidate's scores; ``photos`` are (path, 8-bit RGB truth).
    ``tta``: scored with flip averaging, as `colorize-dir --tta` colours (it mutes colour a little)."""
    flags = colourful_flags(photos, vivid_at)
    if min_vivid_ratio > 0 and not any(flags):
        raise ValueError(f"no photo has colourfulness {vivid_at:g} or more, so none can be held to a colourful floor")
    decodings = _Decodings(model.eval())
    predictor = Predictor(decodings, torch.device("cpu"), None)
    color = ColorSettings(render_size=render_size, tta=tta)
    grays = [(luminance8(truth), truth) for _, truth in photos]
    results = []
    for mix in MIXES:
        for t in TEMPERATURES if mix > 0 else (1.0,):
            for gain in GAINS:
                decodings.mix, decodings.temperature, decodings.gain = mix, t, gain
                scores = [score(colorize_gray(gray, predictor, color, render_size), truth) for gray, truth in grays]
                s = summarise(scores)
                results.append(Choice(mix, t, gain, s["psnr"], s["ciede2000"], s["colourfulness_ratio"], vivid_ratio(scores, flags)))
    ok = [c for c in results if meets_floors(c.colourfulness_ratio, c.vivid_ratio, min_ratio, min_vivid_ratio)]
    best = max(ok, key=lambda c: c.psnr) if ok else max(results, key=lambda c: c.colourfulness_ratio)
    return best, results


@dataclass(frozen=True)
class Calibrated:
    """What `calibrate_weights` chose and wrote."""

    chosen: Choice
    table: list[Choice]
    weights: Path
    sha256: str
    meta: dict


def calibrate_weights(
    weights: Path, photos: list[tuple[Path, np.ndarray]], out: Path, render_size: int = 0,
    min_ratio: float = 0.75, source: str = "", tta: bool = False, min_vivid_ratio: float = 0.0,
) -> Calibrated:
    """Calibrate a ChromaNet weights file on held-out photos and save the result to ``out``:
    the chosen mix and temperature go into the model's buffers and, with the scores, into the
    file's metadata (``calibration``). ``source`` names the photos in that record."""
    model, info = load_model(weights)
    if not arch_spec(info.arch).calibrated_decoding:
        raise ValueError(f"{weights}: a {info.arch!r} model has no decoding to calibrate (ChromaNet has)")
    render = resolve_render_size(render_size, int(model.default_render_size))
    best, table = calibrate(model, photos, render, min_ratio, tta, min_vivid_ratio)
    with torch.no_grad():
        model.mix.fill_(best.mix)
        model.temperature.fill_(best.temperature)
        model.gain.fill_(best.gain)
    record = {**asdict(best), "photos": source, "render_size": render, "min_ratio": min_ratio, "tta": tta}
    if min_vivid_ratio > 0:
        record["min_vivid_ratio"] = min_vivid_ratio
    if math.isnan(best.vivid_ratio):
        record["vivid_ratio"] = None  # strict JSON has no NaN
    meta = {**info.meta, "calibration": record}
    digest = save_weights(model, info.arch, out, meta=meta)
    return Calibrated(best, table, out, digest, meta)
