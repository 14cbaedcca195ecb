"""Which device runs the network, in what precision, and what to do when its memory runs out."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from colorize_cli.errors import DeviceError


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device must exist."""
    name = name.lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if _mps_available() else torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError("--device cuda: no CUDA GPU is available here (torch sees none); use --device cpu or auto")
    if name == "mps" and not _mps_available():
        raise DeviceError("--device mps: Apple's Metal backend is not available here; use --device cpu or auto")
    if name != "cpu" and not name.startswith(("cuda", "mps")):
        raise DeviceError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return torch.device(name)


def autocast_dtype(device: torch.device, fp32: bool, allowed: tuple[str, ...] = ("bfloat16", "float16", "float32")) -> torch.dtype | None:
    """Half precision on CUDA unless --fp32, among the dtypes the model declares for the device
    (its ModelSpec), in its order: bfloat16 where the GPU has it (no overflow), float16 if the
    model allows it. None means full precision (CPU and MPS: their half paths are slower or
    unsupported here; a model that declares only float32)."""
    if fp32 or device.type != "cuda":
        return None
    for name in allowed:
        if name == "float32":
            return None
        if name == "bfloat16" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if name == "float16":
            return torch.float16
    return None


@contextlib.contextmanager
def precision(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast(device_type=device.type, dtype=dtype):
            yield




def release_cached_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
