"""Other people's colorization checkpoints: safe reading, family detection, a registry of families.

``load_checkpoint(path)`` reads a ``.safetensors`` file or a ``torch.save`` pickle (``.pth``,
``.pt``, ``.bin``, ``.ckpt``; zip or legacy format, told apart by content, not by name) without
running any code from it, unwraps a state dict nested under ``params_ema``, ``params``,
``state_dict``, ``model``, ... , tells its family from its keys and returns the family's adapter
(an ``nn.Module`` with ``predict_ab``, ``stride``, ``output_scale``, ``default_render_size`` and a
:class:`~colorize_cli.models.spec.ModelSpec` as ``spec``) and a
:class:`~colorize_cli.models.weights.ModelInfo` whose ``sha256`` is the file's own digest.

Families built in: ``chromanet`` (our safetensors files, whose metadata names their ``arch``:
delegated to :func:`colorize_cli.models.weights.load_model`, sidecar check included), ``eccv16``
and ``siggraph17`` (:mod:`.zhang`), ``ddcolor`` (:mod:`.ddcolor`, needs the ``models`` extra).
Others are added with :func:`register_family`, or by a package declaring an entry point in the
group ``colorize_cli.model_families`` (read on first need), so nobody edits this module.

Pickles are read with ``torch.load(weights_only=True)``: tensors, containers and numbers only.
A pickle that asks for anything else (a ``__reduce__`` calling ``os.system``, say) is refused
with :class:`UnsafeCheckpointError` before any of it runs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import pickle
import re
import threading
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorize_cli.models import ARCHS, check_model
from colorize_cli.models.paths import recorded_digest, sidecar_path
from colorize_cli.models.spec import model_spec
from colorize_cli.models.errors import INSTALL_MODELS, CheckpointError, MissingExtraError, UnknownCheckpointError, UnsafeCheckpointError
from colorize_cli.models.weights import ModelInfo

ENTRY_POINT_GROUP = "colorize_cli.model_families"
# Keys a training script nests the weights under (basicsr: params_ema/params; Lightning:
# state_dict; fastai and many others: model), in the order they are preferred.
WRAPPER_KEYS = ("params_ema", "params-ema", "params", "state_dict", "model_state_dict", "model", "net_g", "net")
STRIPPED_PREFIXES = ("module.", "netG.")  # DataParallel, pix2pix-style generators


@dataclass(frozen=True)
class ModelFamily:
    """How to tell a family's state dicts from others, and how to build its adapter from one.

    ``detect(state)`` gets the unwrapped state dict (str -> Tensor) and says whether it is this
    family's; it must be cheap (keys and shapes). ``load(state)`` returns an ``nn.Module`` with
    ``predict_ab(lightness)``, int ``stride``, ``output_scale``, ``default_render_size`` and a
    ``spec`` (ModelSpec); a ValueError or KeyError means the weights do not fit."""

    name: str
    detect: Callable[[Mapping[str, torch.Tensor]], bool]
    load: Callable[[dict[str, torch.Tensor]], nn.Module]
    description: str = ""


_registry: dict[str, ModelFamily] = {}
_registry_lock = threading.RLock()
_entry_points_read = False


def register_family(name: str, detect: Callable[[Mapping[str, torch.Tensor]], bool],
                    load: Callable[[dict[str, torch.Tensor]], nn.Module], *, description: str = "",
                    replace: bool = False) -> ModelFamily:
    """Add a family. Detection tries families in the order they were registered (built-ins
    first). A name already taken is a ValueError unless ``replace``."""
    if not name or not callable(detect) or not callable(load):
        raise ValueError("register_family needs a name and callable detect and load")
    family = ModelFamily(name, detect, load, description)
    with _registry_lock:
        if name in _registry and not replace:
            raise ValueError(f"model family {name!r} is already registered")
        _registry[name] = family
    return family


def unregister_family(name: str) -> None:
    with _registry_lock:
        _registry.pop(name, None)


def _read_entry_points() -> None:
    """Families other packages declare in the ``colorize_cli.model_families`` entry point group:
    each names a ModelFamily, a (detect, load) pair, or a callable returning either."""
    global _entry_points_read
    with _registry_lock:
        if _entry_points_read:
            return
        _entry_points_read = True
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _registry:
                continue  # a built-in or an explicit registration wins
            try:
                obj = ep.load()
                if callable(obj) and not isinstance(obj, ModelFamily):
                    obj = obj()
                if isinstance(obj, ModelFamily):
                    register_family(ep.name, obj.detect, obj.load, description=obj.description)
                else:
                    detect, load = obj
                    register_family(ep.name, detect, load)
            except Exception as e:  # a broken plugin must not break loading our own models
                warnings.warn(f"model family entry point {ep.name!r} ({ep.value}) could not be loaded: {e}", stacklevel=2)


def refresh_families() -> tuple[str, ...]:
    """Read the entry point group again (after installing a plugin in a running process)."""
    global _entry_points_read
    with _registry_lock:
        _entry_points_read = False
    return families()


def families() -> tuple[str, ...]:
    """Names of every family a checkpoint may be loaded as, ``chromanet`` first."""
    _read_entry_points()
    with _registry_lock:
        return ("chromanet", *_registry)


def get_family(name: str) -> ModelFamily:
    _read_entry_points()
    with _registry_lock:
        if name not in _registry:
            raise CheckpointError(f"unknown model family {name!r}; choose one of {', '.join(families())}")
        return _registry[name]


# --- built-in families -------------------------------------------------------------------------


def _detect_eccv16(state: Mapping[str, torch.Tensor]) -> bool:
    from colorize_cli.models.zhang import detect_eccv16  # noqa: PLC0415

    return detect_eccv16(state)


def _load_eccv16(state: dict[str, torch.Tensor]) -> nn.Module:
    from colorize_cli.models.zhang import load_eccv16  # noqa: PLC0415

    return load_eccv16(state)


def _detect_siggraph17(state: Mapping[str, torch.Tensor]) -> bool:
    from colorize_cli.models.zhang import detect_siggraph17  # noqa: PLC0415

    return detect_siggraph17(state)


def _load_siggraph17(state: dict[str, torch.Tensor]) -> nn.Module:
    from colorize_cli.models.zhang import load_siggraph17  # noqa: PLC0415

    return load_siggraph17(state)


def _detect_ddcolor(state: Mapping[str, torch.Tensor]) -> bool:
    from colorize_cli.models.ddcolor import looks_like_ddcolor  # noqa: PLC0415

    return looks_like_ddcolor(state)  # by its key names: no spandrel needed to say "DDColor"


def _load_ddcolor(state: dict[str, torch.Tensor]) -> nn.Module:
    from colorize_cli.models.ddcolor import load_ddcolor  # noqa: PLC0415

    return load_ddcolor(state)


register_family("eccv16", _detect_eccv16, _load_eccv16, description="Zhang et al., Colorful Image Colorization (ECCV 2016)")
register_family("siggraph17", _detect_siggraph17, _load_siggraph17,
                description="Zhang et al., Real-Time User-Guided Image Colorization (SIGGRAPH 2017), automatic mode")
register_family("ddcolor", _detect_ddcolor, _load_ddcolor, description="Kang et al., DDColor (ICCV 2023), through spandrel")


# --- reading -----------------------------------------------------------------------------------


def file_format(path: Path) -> str:
    """``"safetensors"``, ``"zip"`` (torch.save since 1.6), ``"pickle"`` (legacy torch.save or a
    bare pickle), told from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 100_000_000:
        return "safetensors"
    if head[:4] == b"PK\x03\x04":
        return "zip"
    if head[:1] == b"\x80":
        return "pickle"
    raise CheckpointError(f"{path.name}: not a safetensors file nor a torch.save pickle (starts with {head[:8]!r})")


def _refusal(path: Path, error: Exception) -> UnsafeCheckpointError:
    found = re.search(r"GLOBAL\s+([\w.]+)", str(error))  # torch names the global it refused
    what = f"asks for {found.group(1)}" if found else "asks for something other than tensors"
    return UnsafeCheckpointError(
        f"refused to load {path.name}: the pickle {what}, which a weights-only load does not allow "
        "(loading it could run code on this machine). A checkpoint needs only tensors: get a "
        ".safetensors version, or re-save its state dict only where you trust it"
    )


def _unwrap(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint: nested wrappers removed, non-tensor entries dropped,
    a prefix common to every key (``module.``) stripped."""
    for _ in range(4):
        if not isinstance(obj, Mapping) or all(isinstance(v, torch.Tensor) for v in obj.values()):
            break
        inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None and len(obj) == 1 and isinstance(next(iter(obj.values())), Mapping):
            inner = next(iter(obj.values()))
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path.name}: holds a {type(obj).__name__}, not a state dict")
    state = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise UnknownCheckpointError(f"{path.name}: holds no tensors (keys: {', '.join(map(str, list(obj)[:8]))})")
    for prefix in STRIPPED_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(state dict on the CPU, safetensors metadata or {}) of a checkpoint, read safely."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    kind = file_format(path)
    if kind == "safetensors":
        from safetensors import SafetensorError, safe_open  # noqa: PLC0415

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = dict(f.metadata() or {})
                state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {path.name}: {e}") from e
        return _unwrap(state, path), metadata
    try:
        with warnings.catch_warnings():  # torch warns before refusing a TorchScript archive
            warnings.filterwarnings("ignore", message=".*TorchScript archive", category=UserWarning)
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refusal(path, e) from None
    except Exception as e:  # truncated zip, not a pickle at all, ...
        if "TorchScript" in str(e):
            raise CheckpointError(f"{path.name} is a TorchScript archive (code as well as weights): save its "
                                  "state_dict() where it was made and load that") from None  # fmt: skip
        if "weights_only" in str(e) or "Weights only load failed" in str(e):
            raise _refusal(path, e) from None
        raise CheckpointError(f"cannot read {path.name} ({kind} format): {type(e).__name__}: {e}") from e
    return _unwrap(obj, path), {}


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(state: Mapping[str, torch.Tensor], limit: int = 6) -> str:
    keys = [f"{k} {tuple(v.shape)}" for k, v in list(state.items())[:limit]]
    more = f", ... ({len(state)} tensors)" if len(state) > limit else f" ({len(state)} tensors)"
    return ", ".join(keys) + more


def _spandrel_guess(state: Mapping[str, torch.Tensor]) -> str | None:
    """The architecture spandrel takes the state dict for, when spandrel is installed."""
    try:
        from colorize_cli.models.ddcolor import import_spandrel  # noqa: PLC0415

        spandrel, _ = import_spandrel()
        for support in spandrel.MAIN_REGISTRY.architectures("detection"):
            if support.detect(state):
                return str(support.architecture.name)
    except Exception:
        return None
    return None


def detect_family(state: Mapping[str, torch.Tensor]) -> str | None:
    """The first registered family whose ``detect`` accepts the state dict, or None."""
    _read_entry_points()
    with _registry_lock:
        candidates = list(_registry.values())
    for family in candidates:
        try:
            if family.detect(state):
                return family.name
        except Exception:  # a detector that chokes on foreign keys just says no
            continue
    return None


def _is_ours(metadata: Mapping[str, str]) -> bool:
    return metadata.get("arch", "") in ARCHS


def load_checkpoint(path: str | Path, *, family: str | None = None,
                    device: str | torch.device = "cpu") -> tuple[nn.Module, ModelInfo]:
    """Load any supported colorization checkpoint: (adapter in eval mode, float32, on
    ``device``; ModelInfo). ``family`` skips detection and loads the file as that family."""
    path = Path(path)
    if family == "chromanet" or (family is None and path.is_file() and file_format(path) == "safetensors"
                                 and _is_ours(_safetensors_metadata(path))):
        from colorize_cli.models.weights import load_model  # noqa: PLC0415

        model, info = load_model(path, device)  # our own file: its sidecar digest is checked
        return model, ModelInfo(info.name, info.arch, info.sha256,
                                {**info.meta, "family": "chromanet", "spec": model_spec(model).describe(), "verified": True})
    state, metadata = read_state_dict(path)
    digest = _file_sha256(path)  # a user's checkpoint has no sidecar: its digest is its identity
    expected = (recorded_digest(path) or "").lower() if sidecar_path(path).is_file() else None
    if expected is not None and expected != digest:
        raise CheckpointError(f"{path.name} is damaged: sha256 {digest[:12]}... does not match "
                              f"{sidecar_path(path).name} ({expected[:12]}...)")  # fmt: skip
    name = family or detect_family(state)
    if name is None:
        guess = _spandrel_guess(state)
        raise UnknownCheckpointError(
            f"{path.name} is not a checkpoint of a known colorization family ({', '.join(families())}): "
            f"it holds {_describe(state)}"
            + (f"; spandrel recognises it as {guess}, which is not a colorization network here" if guess else "")
            + "; pass family= to force one"
        )
    chosen = get_family(name)
    try:
        model = chosen.load(state)
    except MissingExtraError:
        raise
    except ImportError as e:
        raise MissingExtraError(f"{path.name} is a {name} checkpoint, whose packages are missing ({e}): {INSTALL_MODELS}") from e
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{path.name} does not load as {name}: {e}") from e
    try:
        check_model(model)
    except TypeError as e:
        raise CheckpointError(f"the {name!r} family's loader gave no usable model: {e}") from e
    spec = model_spec(model)
    model = model.float().eval().to(device)
    meta = {"family": name, "spec": spec.describe(), "verified": expected is not None, "file": path.name,
            "format": file_format(path), "source_metadata": metadata}
    if getattr(model, "tags", None):
        meta["tags"] = list(model.tags)
    return model, ModelInfo(name=path.stem, arch=name, sha256=digest, meta=json.loads(json.dumps(meta, default=str)))


def _safetensors_metadata(path: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open  # noqa: PLC0415

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read {path.name}: {e}") from e


__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "UnknownCheckpointError", "MissingExtraError", "ModelFamily",
    "register_family", "unregister_family", "families", "refresh_families", "get_family", "detect_family", "read_state_dict",
    "load_checkpoint", "file_format", "INSTALL_MODELS", "ENTRY_POINT_GROUP",
]  # fmt: skip
