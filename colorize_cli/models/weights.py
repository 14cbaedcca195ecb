"""Safe, verified weight files.

A weights file is a safetensors file (tensors only: loading it runs no code, unlike a pickle)
whose metadata names the architecture. Beside it, `<file>.sha256` holds its digest; loading
refuses a file whose digest differs, so a truncated download or a damaged disk is a clear error
instead of a model that silently colours badly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from colorize_cli.errors import WeightsError
from colorize_cli.io.fsutil import atomic_output, sha256_file
from colorize_cli.models import build
from colorize_cli.models.paths import DEFAULT_WEIGHTS, recorded_digest, sidecar_path



@dataclass(frozen=True)
class ModelInfo:
    name: str  # file stem, e.g. "chromanet-v1"
    arch: str
    sha256: str
    meta: dict


def save_weights(model: nn.Module, arch: str, path: Path, meta: dict | None = None, half: bool = True) -> str:
    """Write model weights (fp16 by default, to keep the shipped file small) and the digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if half and v.is_floating_point() else v).contiguous()
        for k, v in model.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    with atomic_output(path) as f:
        f.write(save(state, metadata={"arch": arch, "meta": json.dumps(meta or {})}))
    digest = sha256_file(path)
    sidecar_path(path).write_text(f"{digest}  {path.name}\n")
    return digest


def load_model(path: Path | None = None, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Load and verify a weights file; the model comes back in eval mode, float32."""
    path = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    digest_file = sidecar_path(path)
    if not digest_file.is_file():
        raise WeightsError(f"no checksum beside the weights: {digest_file} is missing")
    expected = (recorded_digest(path) or "").lower()
    actual = sha256_file(path)
    if actual != expected:
        raise WeightsError(f"weights file is damaged: sha256 {actual[:12]}... does not match {digest_file.name} ({expected[:12]}...)")
    try:
        from safetensors import safe_open  # noqa: PLC0415

        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"cannot read weights {path}: {e}") from e
    arch = header.get("arch", "")
    try:
        model = build(arch)
    except ValueError as e:
        raise WeightsError(f"{path}: {e}") from e
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise WeightsError(f"{path}: weights do not fit {arch!r} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval().to(device)
    meta = json.loads(header.get("meta", "{}"))
    return model, ModelInfo(name=path.stem, arch=arch, sha256=actual, meta=meta)
