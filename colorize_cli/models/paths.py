"""Where the shipped model lives (torch-free, so planning and --dry-run stay instant)."""

from pathlib import Path

# The shipped model lives in the repository's weights/ folder, beside its model card.
DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "weights" / "chromanet-v1.safetensors"
