"""Where the shipped model lives (torch-free, so planning and --dry-run stay instant).

The weights are package data of `colorize_cli.weights` (the build maps the repository's
top-level `weights/` folder there), so a wheel, `pip install .` and an editable install all find
them the same way.
"""

from importlib.resources import files
from pathlib import Path

DEFAULT_MODEL = "chromanet-v1.safetensors"


def shipped_weights(name: str = DEFAULT_MODEL) -> Path:
    """Path of a weights file shipped with the package (it may not exist in a broken install)."""
    return Path(str(files("colorize_cli.weights").joinpath(name)))


DEFAULT_WEIGHTS = shipped_weights()
