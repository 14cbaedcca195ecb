"""Frozen settings passed down the pipeline; no globals, no hidden state."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ColorSettings:
    """How a scan is colorized. Every field here changes the output pixels."""

    render_size: int = 0  # long side the network sees, px; 0 = the model's own default
    tile_size: int = 512  # working images larger than this are tiled, px
    tile_overlap: int = 64  # px of overlap between neighbouring tiles
    saturation: float = 1.0  # scale applied to predicted chroma
    upsample: str = "guided"  # "bilinear" or "guided" (edge-aware, guided by L*)
    tta: bool = False  # also run the mirrored image and average the two a*b* (twice the network time)


def resolve_render_size(asked: int, model_default: int) -> int:
    """The long side the network sees: --render-size when given (above 0), else the model's own
    default. The one place this is decided (a run resolves it once, in run/context.py)."""
    return asked if asked > 0 else model_default


@dataclass(frozen=True)
class OutputSettings:
    """How results are written. Every field here changes the output file."""

    format: str | None = None  # None: same as input; else jpeg|png|tiff|webp
    quality: int = 92  # JPEG/WebP quality
    suffix: str = ""  # appended to the output file's stem
    bit_depth: str = "same"  # "8", "16" or "same"
    keep_times: bool = False  # copy the input's mtime to the output
    tiff_compression: str = "lzw"  # "lzw", "deflate" (zlib level 1) or "none"; lossless, predictor 2 when compressed


@dataclass(frozen=True)
class RuntimeSettings:
    """How the work is scheduled. Nothing here may change output pixels beyond float noise."""

    device: str = "auto"  # auto|cpu|cuda|mps
    batch_size: int = 8
    fp32: bool = False  # disable autocast on CUDA
    max_pixels: int = 250_000_000  # larger images are refused (decompression bombs)


@dataclass(frozen=True)
class RaySettings:
    """Where and how `--engine ray` runs. Nothing here may change output pixels."""

    address: str | None = None  # None: start a local cluster; "auto" or host:port: join a running one
    workers: tuple[int, int] | None = None  # (least, most) workers; None: as many as the cluster fits
    cpus_per_worker: float = 1.0  # also the worker's torch threads (rounded, at least 1)
    gpus_per_worker: float = 0.0  # fractions let several workers share one GPU
    max_retries: int = 2  # times a file is retried after its worker died while processing it
    lost_after: float = 60.0  # s with no answer from any worker (no record, none ready, no ping) before the run stops as lost


@dataclass(frozen=True)
class RunSettings:
    """Everything one `colorize-dir` run needs."""

    input_root: Path
    out_root: Path
    weights: Path | None = None  # None: the shipped default model
    model_family: str | None = None  # force the checkpoint's family (--model); None: detected from its keys
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = True
    allow_outside_root: bool = False
    color: ColorSettings = field(default_factory=ColorSettings)
    output: OutputSettings = field(default_factory=OutputSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    manifest: Path | None = None  # None: <out>/manifest.jsonl (or manifest.K-of-N.jsonl)
    overwrite: bool = False
    retry_failed: bool = False
    only: frozenset[str] | None = None  # --only-from: the inputs (relative paths) to redo, forced; None: all
    shard: tuple[int, int] | None = None  # (K, N), 1-based K
    dry_run: bool = False
    report: bool = False
    quiet: bool = False
    engine: str = "local"  # "local" (this machine) or "ray" (a Ray cluster, see ray_engine)
    ray: RaySettings = field(default_factory=RaySettings)

    def output_affecting(self) -> dict:
        """The settings a resume decision compares: change any of these and files are redone."""
        out = asdict(self.output)
        out.pop("keep_times")
        out.pop("tiff_compression")  # the same pixels either way: a file written before is not redone
        color = asdict(self.color)
        if not color["tta"]:
            color.pop("tta")  # off, as before the option existed: files done before it came are not redone
        return {"color": color, "output": out}
