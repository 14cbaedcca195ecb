"""Where the shipped model lives, and its digest sidecar (torch-free, so planning and --dry-run
stay instant)."""

from __future__ import annotations

from pathlib import Path

# The shipped model lives in the repository's weights/ folder, beside its model card.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "chromanet-v1.safetensors"


def sidecar_path(weights: Path) -> Path:
    """``<file>.sha256`` beside a weights file: its digest, written when the weights are saved."""
    return weights.with_name(weights.name + ".sha256")


def recorded_digest(weights: Path) -> str | None:
    """The digest a weights file's sidecar records (first word, as ``sha256sum`` writes it), or
    None when there is no sidecar or it is empty. Reading it is not verifying it: loading does that."""
    sidecar = sidecar_path(weights)
    words = sidecar.read_text().split() if sidecar.is_file() else []
    return words[0] if words else None
