"""What the pipeline must know about a model to feed it correctly: :class:`ModelSpec`.

One spec per family (ChromaNet, Zhang et al.'s ECCV'16 and SIGGRAPH'17, DDColor, ...). It says
what the network takes (L* or gray RGB), at which size (free, padded to a stride, or one fixed
square), where its a*b* come out, whether a scan may be cut into tiles for it, which dtypes it
runs in on each kind of device, and whether one instance may serve several threads at once.

Torch-free, so planning and ``--dry-run`` can read a spec without importing torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from colorize_cli.models.paths import SHIPPED_WEIGHTS_LICENCE

InputKind = Literal["lightness", "gray_rgb"]
INPUT_KINDS: tuple[str, ...] = ("lightness", "gray_rgb")
DTYPES: tuple[str, ...] = ("float32", "float16", "bfloat16")


@dataclass(frozen=True)
class ModelSpec:
    """What a colorization network needs from the pipeline.

    ``input_kind``
        ``"lightness"``: one channel of CIE L* in [0, 100] (ChromaNet, ECCV'16, SIGGRAPH'17).
        ``"gray_rgb"``: the gray image replicated to three sRGB channels in [0, 1] (DDColor).
        Either way the adapter's ``predict_ab`` takes L* (N,1,H,W); the kind says what the network
        itself sees, so that a caller comparing with upstream code feeds the same numbers.
    ``fixed_size``
        None: any size (padded to ``multiple_of``). An int: the network works on one
        ``fixed_size`` x ``fixed_size`` square (DDColor: 512); the working copy is squashed to it
        and the a*b* resized back to the scan's own size, as upstream does.
    ``multiple_of``
        Padding stride of the input (free-size models); a fixed size is a multiple of it.
    ``output_scale``
        a*b* come out at 1/output_scale of the input size (ECCV'16: 4; SIGGRAPH'17, DDColor: 1).
    ``tileable``
        False when the network must see the whole picture at once (DDColor's transformer
        queries attend over the whole image): no tiling, whatever the size.
    ``dtypes``
        Per device type (``"cpu"``, ``"cuda"``, ``"mps"``), the dtypes it runs well in, the
        preferred first. A device type not listed runs in float32.
    ``thread_safe``
        False when ``predict_ab`` keeps state on the instance (DDColor's encoder hooks store the
        features of the last call): one instance per thread, or a lock.
    """

    family: str
    input_kind: InputKind = "lightness"
    fixed_size: int | None = None
    multiple_of: int = 1
    output_scale: int = 1
    tileable: bool = True
    dtypes: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"cpu": ("float32",)}, hash=False)
    thread_safe: bool = True
    default_render_size: int = 256
    licence: str = ""

    def __post_init__(self) -> None:
        problems = []
        if not self.family:
            problems.append("family is empty")
        if self.input_kind not in INPUT_KINDS:
            problems.append(f"input_kind {self.input_kind!r} is not one of {', '.join(INPUT_KINDS)}")
        for name in ("multiple_of", "output_scale", "default_render_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be an int >= 1, not {value!r}")
        if self.fixed_size is not None:
            if not isinstance(self.fixed_size, int) or self.fixed_size < 1:
                problems.append(f"fixed_size must be None or an int >= 1, not {self.fixed_size!r}")
            elif isinstance(self.multiple_of, int) and self.multiple_of >= 1 and self.fixed_size % self.multiple_of:
                problems.append(f"fixed_size {self.fixed_size} is not a multiple of {self.multiple_of}")
            elif self.tileable:
                problems.append("a fixed-size model cannot be tiled")
        dtypes = {str(k): tuple(v) for k, v in dict(self.dtypes).items()}
        for device, names in dtypes.items():
            bad = [n for n in names if n not in DTYPES]
            if not names or bad:
                problems.append(f"dtypes[{device!r}] must be a non-empty tuple of {', '.join(DTYPES)}")
        if problems:
            raise ValueError(f"invalid ModelSpec for {self.family!r}: " + "; ".join(problems))
        object.__setattr__(self, "dtypes", MappingProxyType(dtypes))

    def dtypes_for(self, device_type: str) -> tuple[str, ...]:
        """The dtypes to try on a device type ("cuda", "cpu", "mps"), the preferred first."""
        return self.dtypes.get(device_type, ("float32",))

    def preferred_dtype(self, device_type: str) -> str:
        return self.dtypes_for(device_type)[0]

    def working_size(self, height: int, width: int, render_size: int | None = None) -> tuple[int, int]:
        """(height, width) of the working copy the network should see for a scan of this size.

        A fixed-size model gets its square: ``render_size`` (rounded up to ``multiple_of``) when
        given, else ``fixed_size``. A free-size model gets the scan scaled so its
        long side is ``render_size`` (never enlarged), rounded up to ``multiple_of`` (the padding
        the engine adds; the a*b* of the padding are cropped off). The engine's own rules for
        tileable models (a very wide scan keeps its short side at half the render size and is
        tiled) come on top of this; a model that is not tileable never gets them."""
        if height < 1 or width < 1:
            raise ValueError(f"image size must be positive, not {height}x{width}")
        if self.fixed_size is not None:
            side = self.square(render_size)
            return side, side
        long_side = render_size or self.default_render_size
        scale = min(1.0, long_side / max(height, width))
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        m = self.multiple_of
        return math.ceil(h / m) * m, math.ceil(w / m) * m

    def square(self, render_size: int | None = None) -> int:
        """The side of a fixed-size model's square input: ``render_size`` (--render-size, as
        upstream DDColor's --input_size) rounded up to ``multiple_of``; ``fixed_size`` when not
        given (0 or None)."""
        if self.fixed_size is None:
            raise ValueError(f"{self.family} takes any size; it has no square")
        if not render_size:
            return self.fixed_size
        return math.ceil(render_size / self.multiple_of) * self.multiple_of

    def describe(self) -> dict:
        """A JSON-ready summary (for a manifest, ``colorize doctor`` or a ModelInfo's meta)."""
        return {
            "family": self.family,
            "input_kind": self.input_kind,
            "fixed_size": self.fixed_size,
            "multiple_of": self.multiple_of,
            "output_scale": self.output_scale,
            "tileable": self.tileable,
            "dtypes": {k: list(v) for k, v in self.dtypes.items()},
            "thread_safe": self.thread_safe,
            "default_render_size": self.default_render_size,
            "licence": self.licence,
        }


def chromanet_spec(model: object, family: str = "chromanet") -> ModelSpec:
    """The spec of one of our own networks (``chromanet``, ``chromanet-lite2``,
    ``chromanet-pair``; the seed networks with ``family="seed"``): L* in, any size, read from the
    instance's own ``stride``, ``output_scale`` and ``default_render_size``. On CUDA the engine's
    autocast runs it in bfloat16 where supported, else float16."""
    stride = int(getattr(model, "stride"))
    return ModelSpec(
        family=family,
        input_kind="lightness",
        fixed_size=None,
        multiple_of=stride,
        output_scale=int(getattr(model, "output_scale")),
        tileable=True,
        dtypes={"cpu": ("float32",), "cuda": ("bfloat16", "float16", "float32"), "mps": ("float32",)},
        thread_safe=True,
        default_render_size=int(getattr(model, "default_render_size")),
        licence=SHIPPED_WEIGHTS_LICENCE,
    )


def model_spec(model: object) -> ModelSpec:
    """The spec of any model the engine may run: its own ``spec`` attribute when it has one
    (every family adapter does), else one of our networks' read from its attributes."""
    spec = getattr(model, "spec", None)
    if isinstance(spec, ModelSpec):
        return spec
    return chromanet_spec(model)
