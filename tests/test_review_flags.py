"""The review sheet's flags on real results: old photographs (``../shared/data/bw``) colorized by
the shipped model (the one the labels judged: their ``model_sha256``), measured as a run measures
them (report.measures on the review thumbnails), and checked against labels made by eye
(``tests/data/bw-review-labels.json``: names and labels only).

Cheap on purpose: the scans are read at 512 px (the network sees 256 px either way) and a fixed
subset is used (every 'yes' of blotch and gray, every other 'yes' of cast, every third file with no
problem), about 60 photographs. On all 177, with `colorize-dir ../shared/data/bw --report`, the flags
scored: cast 29 of 41 hits, 7 false alarms of 119; blotch 7 of 8, 3 of 164; nearly gray 2 of 2, 0
of 168; seams (measured where a 2 x 2 tiling would meet) 0 false alarms of 177. The bounds
below leave room for the subset and for float noise across machines.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorize_cli.report.measures import look_flags, review_measures, tile_borders
from colorize_cli.report.thumbnails import shrink

LABELS = Path(__file__).parent / "data" / "bw-review-labels.json"
PHOTOS = Path(os.environ.get("COLORIZE_BW_PHOTOS", Path(__file__).resolve().parents[2] / "shared" / "data" / "bw"))
READ_SIDE = 512
PSEUDO_TILES = ([(0.5, 0.06)], [(0.5, 0.06)])  # where a 2 x 2 tiling would meet: the seam measure's false alarms


def _subset(labels: dict) -> tuple[list[str], dict]:
    every = {name for p in labels.values() for part in ("yes", "maybe") for name in p[part]}
    clean = sorted(n.name for n in PHOTOS.glob("*.jpg") if n.name not in every)
    chosen = set(labels["blotch"]["yes"]) | set(labels["gray"]["yes"]) | set(labels["cast"]["yes"][::2]) | set(clean[::3])
    return sorted(chosen), labels


@pytest.fixture(scope="module")
def measured() -> dict[str, dict]:
    """{name: review measures} of the subset's real results."""
    if not PHOTOS.is_dir():
        pytest.fail(f"the old photographs are missing: {PHOTOS} (set COLORIZE_BW_PHOTOS to their folder)")
    import torch

    from colorize_cli.inference.colorizer import load_model
    from colorize_cli.inference.predict import predict_scans, working_lightness, working_shape
    from colorize_cli.merge.full_res import colorize_full_res
    from colorize_cli.settings import ColorSettings

    doc = json.loads(LABELS.read_text("utf-8"))
    names, _ = _subset(doc["labels"])
    torch.manual_seed(0)
    model = load_model(device="cpu")
    if model.info.sha256 != doc["model_sha256"]:
        pytest.fail(f"the labels judge the results of {doc['model']} ({doc['model_sha256'][:12]}), not of the shipped "
                    f"model ({model.info.sha256[:12]}): label its results again (tests/data/bw-review-labels.json)")
    color = ColorSettings()
    grays, smalls = [], []
    for name in names:
        with Image.open(PHOTOS / name) as im:
            im.draft("L", (READ_SIDE, READ_SIDE))  # JPEG: decoded at 1/2, 1/4 ... straight away
            im = im.convert("L")
            im.thumbnail((READ_SIDE, READ_SIDE), Image.Resampling.LANCZOS)
            gray = np.asarray(im)
        grays.append(gray)
        smalls.append(working_lightness(gray, working_shape(*gray.shape, model.render_size)))
    abs_ = predict_scans(model.predictor, smalls, color, batch_size=8)
    out = {}
    for name, gray, small, ab in zip(names, grays, smalls, abs_):
        assert not isinstance(ab, Exception), (name, ab)
        rgb = colorize_full_res(gray, ab, color.saturation, upsample=color.upsample, lightness_small=small)
        out[name] = review_measures(shrink(gray), shrink(rgb), PSEUDO_TILES)
    return out


def labels_of(problem: str) -> list[str]:
    return json.loads(LABELS.read_text("utf-8"))["labels"][problem]["yes"]


def _score(measured: dict[str, dict], labels: dict, problem: str) -> tuple[int, int, int, int]:
    """(hits, labelled yes, false alarms, labelled no) of one flag over the measured files."""
    yes, maybe = set(labels[problem]["yes"]), set(labels[problem]["maybe"])
    flagged = {n for n, m in measured.items() if problem in {f.kind for f in look_flags(m)}}
    no = set(measured) - yes - maybe
    return len(flagged & yes), len(yes & set(measured)), len(flagged & no), len(no)


def test_labels_file_holds_names_only_and_every_name_is_a_photo() -> None:
    doc = json.loads(LABELS.read_text("utf-8"))
    assert set(doc["labels"]) == {"cast", "blotch", "seam", "gray"}
    names = [n for p in doc["labels"].values() for part in ("yes", "maybe") for n in p[part]]
    assert all(isinstance(n, str) and "/" not in n and n.endswith(".jpg") for n in names)
    assert LABELS.stat().st_size < 20_000  # names and labels, never pixels
    if PHOTOS.is_dir():
        assert not set(names) - {p.name for p in PHOTOS.glob("*.jpg")}


def test_flags_catch_what_the_eye_labelled_on_old_photographs(measured: dict[str, dict]) -> None:
    labels = json.loads(LABELS.read_text("utf-8"))["labels"]
    scores = {p: _score(measured, labels, p) for p in ("cast", "blotch", "gray", "seam")}
    print("\n" + "\n".join(f"{p:7s} hits {h}/{y}  false alarms {f}/{n}" for p, (h, y, f, n) in scores.items()))
    hits, yes, false, no = scores["cast"]  # the sepia look: most caught, few photographs in colour flagged
    assert hits >= 0.55 * yes and false <= 0.15 * no, scores["cast"]
    hits, yes, false, no = scores["blotch"]
    assert hits >= 5 and false <= 3, scores["blotch"]
    hits, yes, false, no = scores["gray"]
    assert hits >= 1 and false <= 1, scores["gray"]
    assert scores["seam"][2] <= 2, scores["seam"]  # where 2 x 2 tiles would meet, an untiled photograph rarely steps


def test_a_chroma_step_along_a_tile_border_is_flagged_on_real_results(measured: dict[str, dict]) -> None:
    """The same real result, with the right-hand tile's colour story moved by 8 C*ab (what a tile
    that chose another colour gives), is flagged as a seam there; untouched, it is not."""
    from colorize_cli.color import lab_to_rgb, rgb_to_lab

    names = labels_of("blotch")[:4]  # skies and walls: flat rows for the step to show on
    borders = tile_borders((256, 1200), 512, 64)  # a wide working image: two column borders
    assert borders is not None and len(borders[0]) == 2 and borders[1] == []
    for name in names:
        with Image.open(PHOTOS / name) as im:
            im.draft("L", (READ_SIDE, READ_SIDE))
            gray = shrink(np.asarray(im.convert("L")))
        lab = rgb_to_lab(np.stack([gray] * 3, axis=-1).astype(np.float32) / 255.0)
        lab[..., 1:] += (6.0, 14.0)  # a plausible warm result ...
        x = int(round(borders[0][0][0] * gray.shape[1]))
        stepped = lab.copy()
        stepped[:, x:, 1:] += (5.0, -10.0)  # ... whose second tile went cooler
        plain = (lab_to_rgb(lab) * 255).round().astype(np.uint8)
        seamed = (lab_to_rgb(stepped) * 255).round().astype(np.uint8)
        assert "seam" not in {f.kind for f in look_flags(review_measures(gray, plain, borders))}, name
        assert "seam" in {f.kind for f in look_flags(review_measures(gray, seamed, borders))}, name
