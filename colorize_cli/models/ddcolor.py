"""DDColor (Kang et al., ICCV 2023) through spandrel and spandrel_extra_arches.

spandrel_extra_arches carries DDColor's architecture and spandrel detects every published variant
from the state dict alone (ConvNeXt-T "tiny" or ConvNeXt-L; ``ddcolor_paper``,
``ddcolor_modelscope``, ``ddcolor_artistic``, ``ddcolor_paper_tiny``: the same code with other
sizes and weights). We do not use spandrel's call API (it feeds the network at the
``input_size`` its loader guesses, 256, and returns RGB); :class:`DDColor` calls
``descriptor.model`` itself with upstream's pre-processing (piddnad/DDColor,
``ddcolor/pipeline.py``):

1. the scan as RGB in [0, 1] (a gray scan: its gray value in all three channels);
2. bilinear resize to ``input_size`` x ``input_size`` (512 in upstream's inference scripts,
   for every published model; the aspect ratio is not kept; ``--render-size`` sets it here, as
   upstream's ``--input_size`` does there);
3. L* of that, a*=b*=0, back to RGB: for a gray picture that is the resized gray itself;
4. the network (which subtracts ImageNet's mean and divides by its std inside) returns a*b* in
   Lab units at ``input_size``; upstream resizes them to the original size and puts the
   original L* under them, which our pipeline does with its own upsampling.

spandrel imports torchvision at import time (its LaMa and RestoreFormer architectures use a
torchvision function each); DDColor needs none of it. Where torchvision is installed but cannot
be imported beside this torch (PyPI's CUDA build of torchvision next to a +cpu torch fails with
"operator torchvision::nms does not exist"), :func:`import_spandrel` lets spandrel import against
a stand-in module that exists only for the duration of that import; calling LaMa or
RestoreFormer through it would raise. A working torchvision is used as it is.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import importlib.util
import sys
import threading
import types
import warnings
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorize_cli.color import EPSILON, KAPPA
from colorize_cli.models.errors import INSTALL_MODELS, MissingExtraError
from colorize_cli.models.skipinit import all_tensors_loaded, skip_random_init
from colorize_cli.models.spec import ModelSpec

UPSTREAM_INPUT_SIZE = 512  # piddnad/DDColor inference: --input_size default, all published models
DDCOLOR_LICENCE = ("DDColor code and published weights: Apache-2.0 (piddnad/DDColor); loaded with spandrel (MIT) "
                   "and spandrel_extra_arches (MIT; its architectures keep their own licences)")  # fmt: skip

# Keys whose presence says "DDColor" even when spandrel is not installed to ask.
DDCOLOR_KEYS = ("refine_net.0.0.weight_orig", "encoder.arch.downsample_layers.0.0.weight", "encoder.arch.norm.weight")

_import_lock = threading.Lock()
_spandrel: tuple[Any, Any] | None = None
_TORCHVISION_STAND_IN = "__colorize_cli_stand_in__"


def looks_like_ddcolor(state: dict) -> bool:
    """True when a state dict has DDColor's own key names (no spandrel needed to tell)."""
    return all(k in state for k in DDCOLOR_KEYS)


def _torchvision_problem() -> str | None:
    """None when torchvision imports (or already did); else why not, with its half-imported
    modules removed from sys.modules so nothing later picks them up."""
    module = sys.modules.get("torchvision")
    if module is not None and not getattr(module, _TORCHVISION_STAND_IN, False):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importlib.import_module("torchvision")
        return None
    except Exception as e:  # ImportError, or RuntimeError "operator torchvision::nms does not exist"
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]
        return f"{type(e).__name__}: {e}"


@contextlib.contextmanager
def _torchvision_stand_in(reason: str) -> Iterator[None]:
    """``torchvision.transforms.functional`` with the names spandrel imports, each raising when
    called, in sys.modules for the duration of the block only."""

    def unavailable(*_: object, **__: object) -> None:
        raise RuntimeError(f"torchvision is not usable beside this torch ({reason}); "
                           "install a torchvision built for it to run this spandrel architecture")  # fmt: skip

    class InterpolationMode(enum.Enum):
        NEAREST = "nearest"
        NEAREST_EXACT = "nearest-exact"
        BILINEAR = "bilinear"
        BICUBIC = "bicubic"
        BOX = "box"
        HAMMING = "hamming"
        LANCZOS = "lanczos"

    names = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
    modules = {name: types.ModuleType(name) for name in names}
    functional = modules["torchvision.transforms.functional"]
    for attr in ("normalize", "rotate", "resize", "to_tensor", "to_pil_image"):
        setattr(functional, attr, unavailable)
    functional.InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    modules["torchvision.transforms"].functional = functional  # type: ignore[attr-defined]
    modules["torchvision.transforms"].InterpolationMode = InterpolationMode  # type: ignore[attr-defined]
    modules["torchvision"].transforms = modules["torchvision.transforms"]  # type: ignore[attr-defined]
    for module in modules.values():
        setattr(module, _TORCHVISION_STAND_IN, True)
        module.__file__ = __file__
    added = [name for name in names if name not in sys.modules]
    sys.modules.update({name: modules[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            if sys.modules.get(name) is modules[name]:
                del sys.modules[name]


def import_spandrel() -> tuple[Any, Any]:
    """(spandrel, spandrel_extra_arches), the extra architectures added to spandrel's
    MAIN_REGISTRY; a MissingExtraError naming the install command when they are not installed."""
    global _spandrel
    with _import_lock:
        if _spandrel is None:
            missing = [n for n in ("spandrel", "spandrel_extra_arches") if importlib.util.find_spec(n) is None]
            if missing:
                raise MissingExtraError(f"DDColor is read through {' and '.join(missing)}, not installed: {INSTALL_MODELS}")
            problem = _torchvision_problem()
            stand_in = _torchvision_stand_in(problem) if problem else contextlib.nullcontext()
            try:
                with stand_in, warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script in some architectures
                    spandrel = importlib.import_module("spandrel")
                    extra = importlib.import_module("spandrel_extra_arches")
            except ImportError as e:  # one of their own dependencies (einops, ...) is missing
                raise MissingExtraError(f"spandrel could not be imported ({e}): {INSTALL_MODELS}") from e
            extra.install(ignore_duplicates=True)
            _spandrel = (spandrel, extra)
        return _spandrel


def lightness_to_gray(lightness: torch.Tensor) -> torch.Tensor:
    """L* in [0, 100] -> display-encoded (sRGB) gray in [0, 1]: the gray whose L* it is."""
    f = (lightness.float() + 16.0) / 116.0
    y = torch.where(f**3 > EPSILON, f**3, (116.0 * f - 16.0) / KAPPA).clamp(0.0, 1.0)
    return torch.where(y <= 0.0031308, y * 12.92, 1.055 * y.clamp(min=0.0031308) ** (1.0 / 2.4) - 0.055)


class DDColor(nn.Module):
    """A DDColor network (any published variant) behind the ColorModel interface.

    ``predict_ab`` takes L* like every model here and returns a*b* at the square it ran at
    (the input's own square when its side is a multiple of 32, which is how the pipeline calls
    it at --render-size, else ``input_size``); the pipeline resizes them back to the scan;
    ``predict_ab_from_gray`` takes the gray image in [0, 1] directly, as upstream does."""

    family = "ddcolor"
    output_scale = 1  # a*b* at the size the network sees

    def __init__(self, descriptor: Any, input_size: int = UPSTREAM_INPUT_SIZE) -> None:
        super().__init__()
        if getattr(descriptor.model, "num_output_channels", 2) != 2:
            raise ValueError("this DDColor network predicts RGB, not a*b* (num_output_channels != 2)")
        self.net = descriptor.model
        self.tags = tuple(getattr(descriptor, "tags", ()))
        self.stride = 32  # ConvNeXt's total downsampling; the working size is a multiple of it
        cuda = [d for d, ok in (("bfloat16", descriptor.supports_bfloat16), ("float16", descriptor.supports_half)) if ok]
        self._cuda_dtypes = (*cuda, "float32")
        self.set_input_size(input_size)

    def set_input_size(self, size: int) -> None:
        """Work at ``size`` x ``size`` instead of upstream's 512 (a multiple of 32; smaller is
        faster and coarser: DDColor was trained on 256 x 256 crops)."""
        size = int(size)
        if size < self.stride or size % self.stride:
            raise ValueError(f"DDColor's input size must be a multiple of {self.stride}, not {size}")
        self.input_size = size
        self.default_render_size = size
        self.spec = ModelSpec(
            family="ddcolor",
            input_kind="gray_rgb",
            fixed_size=size,
            multiple_of=self.stride,
            output_scale=1,
            tileable=False,  # the colour queries attend over the whole picture
            dtypes={"cpu": ("float32",), "cuda": self._cuda_dtypes, "mps": ("float32",)},
            thread_safe=False,  # the encoder's hooks keep the last call's features on the instance
            default_render_size=size,
            licence=DDCOLOR_LICENCE,
        )

    def gray_rgb(self, gray: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) gray in [0, 1] -> (N,3,S,S) what the network takes. A square whose side is a
        multiple of 32 is taken at its own size (the pipeline chose it: --render-size); anything
        else is resized to input_size."""
        h, w = gray.shape[-2:]
        size = (h, w) if h == w and h % self.stride == 0 else (self.input_size, self.input_size)
        if tuple(gray.shape[-2:]) != size:
            gray = F.interpolate(gray, size=size, mode="bilinear", align_corners=False)
        return gray.clamp(0.0, 1.0).repeat(1, 3, 1, 1)

    def predict_ab_from_gray(self, gray: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) display gray in [0, 1] -> (N,2,S,S) a*b* in Lab units."""
        return self.net(self.gray_rgb(gray))

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) L* in [0, 100] -> (N,2,S,S) a*b* in Lab units, S as in gray_rgb."""
        return self.predict_ab_from_gray(lightness_to_gray(lightness))

    def forward(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.predict_ab(lightness)


def _load_descriptor(support: Any, state: dict) -> Any:
    """spandrel's descriptor for the state dict, built without random init when every tensor of
    the network is one the file sets (no buffer outside the state dict), else the plain way."""
    try:
        with skip_random_init():
            descriptor = support.architecture.load(dict(state))
        if all_tensors_loaded(descriptor.model):
            return descriptor
    except Exception:  # noqa: S110 - any surprise from a newer spandrel: build it the slow, plain way
        pass
    return support.architecture.load(dict(state))


def load_ddcolor(state: dict, input_size: int = UPSTREAM_INPUT_SIZE) -> DDColor:
    """A DDColor adapter from a state dict (already unwrapped), through spandrel's detection."""
    spandrel, _ = import_spandrel()
    state = spandrel.canonicalize_state_dict(dict(state))
    support = spandrel.MAIN_REGISTRY.get("DDColor")
    if support is None or not support.detect(state):
        raise ValueError("not a DDColor state dict spandrel recognises (keys " + ", ".join(list(state)[:5]) + ")")
    descriptor = _load_descriptor(support, {k: v.float() for k, v in state.items()})
    descriptor.model.eval()
    return DDColor(descriptor, input_size=input_size).eval()


__all__ = ["DDColor", "import_spandrel", "load_ddcolor", "looks_like_ddcolor", "lightness_to_gray", "UPSTREAM_INPUT_SIZE"]
