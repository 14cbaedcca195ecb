"""Shared fixtures that make test images (kept small; each test builds its files in tmp_path)."""

from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning, as the CLI sets for its own process
# (cli/common.py): the tests that call the pipeline in-process run torch in the pytest workers,
# and spinning threads there only take the cores from the other worker. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pytest

ICC_DIR = Path("/usr/share/color/icc")  # Debian package icc-profiles-free


def pytest_sessionstart(session: pytest.Session) -> None:
    """Install the system tools the tests judge outputs with (see system_tools.py), or stop with
    what to install: a missing tool is a setup error, never a skipped test."""
    import sys  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).parent))
    if hasattr(session.config, "workerinput"):  # a pytest-xdist worker: the controller installed them first
        return
    from system_tools import ensure  # noqa: PLC0415

    problem = ensure()
    if problem:
        pytest.exit(f"test setup failed: {problem}", returncode=4)


@pytest.fixture
def pattern():
    """make(h, w, dtype=np.uint8) -> a deterministic gray image with no symmetry: a diagonal
    ramp plus fine noise (so every PNG filter and strip predictor gets exercised)."""

    def make(h: int, w: int, dtype=np.uint8) -> np.ndarray:
        top = np.iinfo(dtype).max
        y, x = np.mgrid[0:h, 0:w]
        ramp = (x * 3 + y * 5) / (3 * max(w - 1, 1) + 5 * max(h - 1, 1))
        noise = np.random.default_rng(h * 1000 + w).integers(0, max(top // 64, 2), size=(h, w))
        return np.clip(np.rint(ramp * (top - top // 64)) + noise, 0, top).astype(dtype)

    return make


@pytest.fixture
def icc_profile():
    """icc_profile(name) -> bytes of /usr/share/color/icc/<name>.icc (apt: icc-profiles-free)."""

    def load(name: str) -> bytes:
        path = ICC_DIR / f"{name}.icc"
        assert path.exists(), f"{path} missing: apt-get install icc-profiles-free"
        return path.read_bytes()

    return load


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A ChromaNet weights file with seeded random weights: the shipped architecture and cost,
    without needing the trained model. Its colours are arbitrary; its geometry is not."""
    import torch

    from colorize_cli.models import build
    from colorize_cli.models.weights import save_weights

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "random-chromanet.safetensors"
    save_weights(build("chromanet").eval(), "chromanet", path)
    return path


@pytest.fixture
def fast_cli(monkeypatch):
    """One torch thread for in-process runs (the test machine's cores are shared)."""
    import dataclasses  # noqa: PLC0415

    from colorize_cli.run.executors import local  # noqa: PLC0415

    real = local.default_engine_settings
    monkeypatch.setattr(local, "default_engine_settings", lambda b, d: dataclasses.replace(real(b, d), torch_threads=1))


# The order the two workers (pytest-xdist, --dist loadfile, --no-loadscope-reorder: xdist would
# otherwise start the files with the most tests first) take the files in. Each worker starts with
# two files: one takes both Ray files, which mostly wait on clusters, while the other takes the
# heaviest CPU work; then the longest remaining files first, so that both end together.
LONGEST_FIRST = ("test_ray_faults.py", "test_memory.py", "test_ray_engine.py", "test_model_families.py", "test_install.py",
                 "test_report.py", "test_training.py", "test_integrity_round3.py", "test_resume.py", "test_calibrate.py",
                 "test_manifest.py", "test_bench.py", "test_fidelity_round3b.py", "test_fidelity.py", "test_feature_loss.py",
                 "test_review_grid.py", "test_bad_input.py", "test_integrity.py", "test_review_flags.py", "test_coherence.py")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(LONGEST_FIRST)))  # stable: the rest keep their order
