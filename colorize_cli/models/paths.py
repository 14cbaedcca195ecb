"""Where the shipped model lives, and its digest sidecar (torch-free, so planning and --dry-run
stay instant).

The weights are package data of `colorize_cli.weights` (the build maps the repository's
top-level `weights/` folder there), so a wheel, `pip install .` and an editable install all find
them the same way.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL = "chromanet-v1.safetensors"
# The shipped weights' licence, from their training photos' licences (weights/LICENSE-weights.md);
# the code's licence (Apache-2.0) does not cover them.
SHIPPED_WEIGHTS_LICENCE = "research and non-commercial use only (its training photos' licences; see LICENSE-weights.md)"


def shipped_weights(name: str = DEFAULT_MODEL) -> Path:
    """Path of a weights file shipped with the package (it may not exist in a broken install).

    Code imported straight from a source tree (Python started in a checkout, the package
    installed elsewhere or not at all) has no `colorize_cli.weights` package: the weights are
    then the checkout's own top-level `weights/` folder, which is what the build maps."""
    try:
        return Path(str(files("colorize_cli.weights").joinpath(name)))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "weights" / name


DEFAULT_WEIGHTS = shipped_weights()


def sidecar_path(weights: Path) -> Path:
    """``<file>.sha256`` beside a weights file: its digest, written when the weights are saved."""
    return weights.with_name(weights.name + ".sha256")


def recorded_digest(weights: Path) -> str | None:
    """The digest a weights file's sidecar records (first word, as ``sha256sum`` writes it), or
    None when there is no sidecar or it is empty. Reading it is not verifying it: loading does that."""
    sidecar = sidecar_path(weights)
    words = sidecar.read_text().split() if sidecar.is_file() else []
    return words[0] if words else None
