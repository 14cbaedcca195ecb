"""Fixtures for the research scripts' tests (run them with `python -m pytest research/tests`; the
default `pytest` collects only `tests/`). `tests/` is put on the path for its photo makers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))  # sample_photos


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A ChromaNet weights file with seeded random weights (as `tests/conftest.py` makes it)."""
    import torch

    from colorize_cli.models import build
    from colorize_cli.models.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random-chromanet.safetensors"
    save_weights(build("chromanet").eval(), "chromanet", path)
    return path
