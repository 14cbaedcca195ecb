"""Other families' checkpoints (colorize_cli.models.checkpoints, raw, zhang, ddcolor, spec).

Checkpoints in each upstream layout are made here once per session with random weights (the
real ones are hundreds of MB and nothing is downloaded): ECCV'16 and SIGGRAPH'17 from our own
modules' state dicts, DDColor-tiny from spandrel_extra_arches' own DDColor class. Each is saved
as a torch.save pickle and as safetensors, detected, loaded and run; the numbers are checked
against computations made apart from the adapters (upstream's formulas written out below,
spandrel's own loader and model). With COLORIZE_TEST_WEIGHTS=<folder>, every real checkpoint in
that folder is loaded and run as well.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from colorize_cli.color import gray_to_lightness
from colorize_cli.models import build, check_model
from colorize_cli.models.checkpoints import (
    INSTALL_MODELS,
    CheckpointError,
    MissingExtraError,
    UnknownCheckpointError,
    UnsafeCheckpointError,
    detect_family,
    families,
    load_checkpoint,
    read_state_dict,
    refresh_families,
    register_family,
    unregister_family,
)
from colorize_cli.models.raw import predict_raw_ab
from colorize_cli.models.spec import ModelSpec, chromanet_spec, model_spec
from colorize_cli.errors import WeightsError
from colorize_cli.models.zhang import ECCV16, SIGGRAPH17

SIZE = 64  # test images: 64 x 64, a multiple of every stride here; DDColor works at 64 too

# --- upstream's layouts, written out from richzhang/colorization's colorizers/*.py -------------
# Each block: (name, [(index, kind, cin, cout, kernel, stride, dilation)], BatchNorm index or None).
# kinds: "c" conv, "t" transposed conv (4x4, stride 2, pad 1), "c1" 1x1 conv, "c1nb" 1x1 no bias.


def _convs(chans: list[int], last_stride: int = 1, dil: int = 1, lead_relu: bool = False):
    layers, i = [], 1 if lead_relu else 0
    for n, (cin, cout) in enumerate(zip(chans, chans[1:])):
        layers.append((i, "c", cin, cout, 3, last_stride if n == len(chans) - 2 else 1, dil))
        i += 2
    return layers, i  # i: the BatchNorm's index


def _eccv16_layout():
    out = []
    for name, chans, stride, dil in [("model1", [1, 64, 64], 2, 1), ("model2", [64, 128, 128], 2, 1),
                                     ("model3", [128, 256, 256, 256], 2, 1), ("model4", [256, 512, 512, 512], 1, 1),
                                     ("model5", [512] * 4, 1, 2), ("model6", [512] * 4, 1, 2), ("model7", [512] * 4, 1, 1)]:
        layers, bn = _convs(chans, stride, dil)
        out.append((name, layers, bn))
    out.append(("model8", [(0, "t", 512, 256, 4, 2, 1), (2, "c", 256, 256, 3, 1, 1), (4, "c", 256, 256, 3, 1, 1),
                           (6, "c1", 256, 313, 1, 1, 1)], None))
    out.append(("model_out", [(None, "c1nb", 313, 2, 1, 1, 1)], None))
    return out


def _siggraph17_layout():
    out = []
    for name, chans, dil in [("model1", [4, 64, 64], 1), ("model2", [64, 128, 128], 1), ("model3", [128, 256, 256, 256], 1),
                             ("model4", [256, 512, 512, 512], 1), ("model5", [512] * 4, 2), ("model6", [512] * 4, 2),
                             ("model7", [512] * 4, 1)]:
        layers, bn = _convs(chans, 1, dil)
        out.append((name, layers, bn))
    out.append(("model8up", [(0, "t", 512, 256, 4, 2, 1)], None))
    out.append(("model8", *_convs([256, 256, 256], lead_relu=True)))
    out.append(("model9up", [(0, "t", 256, 128, 4, 2, 1)], None))
    out.append(("model9", *_convs([128, 128], lead_relu=True)))
    out.append(("model10up", [(0, "t", 128, 128, 4, 2, 1)], None))
    out.append(("model10", [(1, "c", 128, 128, 3, 1, 1)], None))
    out.append(("model3short8", [(0, "c", 256, 256, 3, 1, 1)], None))
    out.append(("model2short9", [(0, "c", 128, 128, 3, 1, 1)], None))
    out.append(("model1short10", [(0, "c", 64, 128, 3, 1, 1)], None))
    out.append(("model_class", [(0, "c1", 256, 529, 1, 1, 1)], None))
    out.append(("model_out", [(0, "c1", 128, 2, 1, 1, 1)], None))
    return out


LAYOUTS = {"eccv16": _eccv16_layout(), "siggraph17": _siggraph17_layout()}


def _expected_keys(layout) -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {}
    for name, layers, bn in layout:
        for i, kind, cin, cout, k, _, _ in layers:
            p = name if i is None else f"{name}.{i}"
            keys[f"{p}.weight"] = (cin, cout, k, k) if kind == "t" else (cout, cin, k, k)
            if kind != "c1nb":
                keys[f"{p}.bias"] = (cout,)
        if bn is not None:
            c = layers[-1][3]
            for suffix in ("weight", "bias", "running_mean", "running_var"):
                keys[f"{name}.{bn}.{suffix}"] = (c,)
            keys[f"{name}.{bn}.num_batches_tracked"] = ()
    return keys


NO_ACTIVATION = ("model_out", "model_class", "model8up", "model9up", "model10up")


def _reference(layout, state, x: torch.Tensor, family: str) -> torch.Tensor:
    """Upstream's forward, written from its formulas with functional ops on the state dict."""
    blocks = {name: (layers, bn) for name, layers, bn in layout}

    def run(name, x, lead_relu=False, last_act=F.relu):
        layers, bn = blocks[name]
        if lead_relu:
            x = F.relu(x)
        for n, (i, kind, _, _, k, stride, dil) in enumerate(layers):
            p = name if i is None else f"{name}.{i}"
            w, b = state[f"{p}.weight"], state.get(f"{p}.bias")
            if kind == "t":
                x = F.conv_transpose2d(x, w, b, stride=2, padding=1)
            else:
                x = F.conv2d(x, w, b, stride=stride, padding=0 if k == 1 else dil, dilation=dil)
            if name in NO_ACTIVATION or "short" in name:
                continue  # heads, transposed convolutions and skips have no activation of their own
            if name == "model8" and family == "eccv16" and n == len(layers) - 1:
                continue  # the 313-bin logits
            x = last_act(x) if (name == "model10" and n == len(layers) - 1) else F.relu(x)
        if bn is not None:
            p = f"{name}.{bn}"
            x = F.batch_norm(x, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"],
                             state[f"{p}.bias"], training=False, eps=1e-5)
        return x

    if family == "eccv16":
        x = (x - 50.0) / 100.0
        for name in ("model1", "model2", "model3", "model4", "model5", "model6", "model7", "model8"):
            x = run(name, x)
        return run("model_out", torch.softmax(x, dim=1)) * 110.0  # before upstream's upsample4
    zeros = torch.zeros_like(x)
    c1 = run("model1", torch.cat([(x - 50.0) / 100.0, zeros, zeros, zeros], dim=1))
    c2 = run("model2", c1[:, :, ::2, ::2])
    c3 = run("model3", c2[:, :, ::2, ::2])
    c4 = run("model4", c3[:, :, ::2, ::2])
    c7 = run("model7", run("model6", run("model5", c4)))
    c8 = run("model8", run("model8up", c7) + run("model3short8", c3), lead_relu=True)
    c9 = run("model9", run("model9up", c8) + run("model2short9", c2), lead_relu=True)
    c10 = run("model10", run("model10up", c9) + run("model1short10", c1), lead_relu=True,
              last_act=lambda t: F.leaky_relu(t, 0.2))
    return torch.tanh(run("model_out", c10)) * 110.0


# --- fixtures ----------------------------------------------------------------------------------


def _random_bn_stats(model: nn.Module) -> None:
    """BatchNorm running statistics that are not the identity, so using them is checked too."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)


def _settle_spectral_norms(state: dict[str, torch.Tensor], iterations: int = 20) -> None:
    """Power iterations on every spectral-norm (u, v) pair, as training would have done: with
    random u and v, u^T W v is near zero and the normalised weights explode."""
    for key in [k for k in state if k.endswith(".weight_orig")]:
        base = key[: -len("_orig")]
        w = state[key].reshape(state[key].shape[0], -1)
        u, v = state[base + "_u"], state[base + "_v"]
        for _ in range(iterations):
            v = F.normalize(w.t() @ u, dim=0)
            u = F.normalize(w @ v, dim=0)
        state[base + "_u"], state[base + "_v"] = u.contiguous(), v.contiguous()


def _ddcolor_tiny_state() -> dict[str, torch.Tensor]:
    from colorize_cli.models.ddcolor import import_spandrel

    import_spandrel()  # spandrel imports torchvision; this works where torchvision does not
    from spandrel_extra_arches.architectures.DDColor import DDColor as UpstreamDDColor

    # The published ddcolor_paper_tiny configuration (piddnad/DDColor, build_ddcolor_model).
    net = UpstreamDDColor(encoder_name="convnext-t", decoder_name="MultiScaleColorDecoder", input_size=(SIZE, SIZE),
                          num_output_channels=2, last_norm="Spectral", do_normalize=False, num_queries=100,
                          num_scales=3, dec_layers=9)
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    _settle_spectral_norms(state)
    return state


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> Iterator[dict[str, dict]]:
    """family -> {"pth": path, "safetensors": path, "state": the state dict saved}. The .pth files
    take the forms found in the wild: ECCV'16 a bare state dict (as published), SIGGRAPH'17 a
    training checkpoint with DataParallel's "module." prefix, DDColor basicsr's {"params": ...}."""
    folder = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(7)
    made: dict[str, dict] = {}
    for family, cls in (("eccv16", ECCV16), ("siggraph17", SIGGRAPH17)):
        model = cls()
        _random_bn_stats(model)
        if family == "eccv16":  # peaked bin logits and spread bin centres, as a trained net has
            model.model8[6].weight.data *= 30
            model.model_out.weight.data.uniform_(-1, 1)
        made[family] = {"state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    made["ddcolor"] = {"state": _ddcolor_tiny_state()}
    wrappers = {
        "eccv16": lambda s: s,
        "siggraph17": lambda s: {"state_dict": {f"module.{k}": v for k, v in s.items()}, "epoch": 3},
        "ddcolor": lambda s: {"params": s, "iter": 1000},
    }
    for family, entry in made.items():
        entry["pth"] = folder / f"{family}.pth"
        torch.save(wrappers[family](entry["state"]), entry["pth"])
        entry["safetensors"] = folder / f"{family}.safetensors"
        save_file({k: v.contiguous() for k, v in entry["state"].items()}, str(entry["safetensors"]))
    yield made
    for entry in made.values():  # about 1 GB: not left for pytest's kept temporary folders
        for fmt in ("pth", "safetensors"):
            entry[fmt].unlink(missing_ok=True)


@pytest.fixture(scope="session")
def loaded(checkpoints) -> dict[tuple[str, str], tuple]:
    """(family, "pth" | "safetensors") -> (model, ModelInfo), each checkpoint loaded once."""
    out = {}
    for family, entry in checkpoints.items():
        for fmt in ("pth", "safetensors"):
            model, info = load_checkpoint(entry[fmt])
            if family == "ddcolor":
                model.set_input_size(SIZE)  # upstream's 512 works too; 64 keeps the test fast
            out[family, fmt] = (model, info)
    return out


@pytest.fixture(scope="session")
def gray() -> np.ndarray:
    """A 64 x 64 uint8 gray picture with structure at every scale (no symmetry)."""
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    ramp = (3 * x + 5 * y) / (8 * (SIZE - 1))
    noise = np.random.default_rng(5).integers(0, 24, size=(SIZE, SIZE))
    return np.clip(ramp * 230 + noise, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def raw(loaded, gray) -> dict[tuple[str, str], np.ndarray]:
    """predict_raw_ab of every loaded checkpoint on the test picture, computed once."""
    return {key: predict_raw_ab(model, gray) for key, (model, _) in loaded.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- layouts and numbers -----------------------------------------------------------------------


@pytest.mark.parametrize("family,cls", [("eccv16", ECCV16), ("siggraph17", SIGGRAPH17)])
def test_zhang_state_dicts_have_the_published_keys_and_shapes(family, cls):
    expected = _expected_keys(LAYOUTS[family])
    got = {k: tuple(v.shape) for k, v in cls().state_dict().items()}
    assert got == expected


@pytest.mark.parametrize("family", ["eccv16", "siggraph17", "ddcolor"])
@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_each_checkpoint_is_detected_and_loaded(family, fmt, checkpoints, loaded):
    model, info = loaded[family, fmt]
    path = checkpoints[family][fmt]
    assert info.arch == family and info.name == family
    assert info.sha256 == _sha256(path)  # no sidecar: the digest is the file's own
    assert info.meta["family"] == family and info.meta["verified"] is False
    assert info.meta["spec"]["family"] == family
    if family == "ddcolor":  # loaded at upstream's 512, set to 64 by the fixture
        assert info.meta["spec"]["fixed_size"] == 512 and info.meta["spec"]["tileable"] is False
    else:
        assert info.meta["spec"] == model.spec.describe()
    json.dumps(info.meta)  # a manifest can hold it
    check_model(model)  # the engine's interface
    assert isinstance(model.spec, ModelSpec) and model.spec.family == family
    assert not model.training
    state, _ = read_state_dict(path)
    assert detect_family(state) == family
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("family", ["eccv16", "siggraph17", "ddcolor"])
def test_pth_and_safetensors_give_the_same_numbers(family, raw):
    a, b = raw[family, "pth"], raw[family, "safetensors"]
    assert np.array_equal(a, b)
    assert np.isfinite(a).all() and a.std() > 0


@pytest.mark.parametrize("family", ["eccv16", "siggraph17"])
def test_zhang_output_matches_upstream_formulas(family, checkpoints, loaded, raw, gray):
    model, _ = loaded[family, "pth"]
    state = checkpoints[family]["state"]
    lightness = torch.from_numpy(gray_to_lightness(gray.astype(np.float32) / 255))[None, None]
    with torch.no_grad():
        want = _reference(LAYOUTS[family], state, lightness, family)
        upstream_forward = model(lightness)
    got = raw[family, "pth"]
    scale = model.spec.output_scale
    assert got.shape == (SIZE // scale, SIZE // scale, 2) == tuple(want[0].permute(1, 2, 0).shape)
    np.testing.assert_allclose(got, want[0].permute(1, 2, 0).numpy(), rtol=1e-5, atol=1e-4)
    assert got.std(axis=(0, 1)).min() > 0.05  # not a trivially constant output
    if family == "eccv16":  # upstream returns the 1/4 map after a bilinear x4
        full = F.interpolate(want, scale_factor=4, mode="bilinear", align_corners=False)
        torch.testing.assert_close(upstream_forward, full, rtol=1e-5, atol=1e-4)
    else:
        torch.testing.assert_close(upstream_forward, want, rtol=1e-5, atol=1e-4)


def test_lightness_conversion_is_the_cie_one(gray):
    g = gray.astype(np.float64) / 255
    lin = np.where(g <= 0.04045, g / 12.92, ((g + 0.055) / 1.055) ** 2.4)
    f = np.where(lin > 216 / 24389, np.cbrt(lin), (24389 / 27 * lin + 16) / 116)
    np.testing.assert_allclose(gray_to_lightness(g.astype(np.float32)), 116 * f - 16, atol=2e-3)


def test_ddcolor_equals_spandrels_own_model_on_the_same_input(checkpoints, loaded, raw, gray):
    from colorize_cli.models.ddcolor import import_spandrel, lightness_to_gray

    spandrel, _ = import_spandrel()
    descriptor = spandrel.ModelLoader().load_from_file(str(checkpoints["ddcolor"]["safetensors"]))
    assert descriptor.architecture.id == "DDColor" and "convnext-t" in descriptor.tags
    net = descriptor.model.eval()
    model, _ = loaded["ddcolor", "pth"]
    # upstream: the gray image in [0, 1] in all three channels, at the network's square
    gray_rgb = torch.from_numpy(np.repeat((gray.astype(np.float32) / np.float32(255))[None, None], 3, axis=1))
    with torch.no_grad():
        want = net(gray_rgb)
    got = torch.from_numpy(raw["ddcolor", "pth"]).permute(2, 0, 1)[None]
    assert torch.equal(got, want)
    assert got.abs().max() > 0 and torch.isfinite(got).all()
    # another size is squashed to the square first, by a bilinear resize, as upstream does
    wide = np.ascontiguousarray(np.concatenate([gray, gray[:, :32]], axis=1))  # 64 x 96
    got_wide = torch.from_numpy(predict_raw_ab(model, wide)).permute(2, 0, 1)[None]
    small = F.interpolate(torch.from_numpy(wide.astype(np.float32) / np.float32(255))[None, None], size=(SIZE, SIZE),
                          mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert torch.equal(got_wide, net(small.repeat(1, 3, 1, 1)))
    # and predict_ab (the engine's L* interface) feeds it the gray that L* stands for
    lightness = torch.from_numpy(gray_to_lightness(gray.astype(np.float32) / 255))[None, None]
    torch.testing.assert_close(lightness_to_gray(lightness), gray_rgb[:, :1], rtol=0, atol=2e-5)


def test_specs_say_what_the_pipeline_must_do(loaded, raw, gray):
    ddcolor = loaded["ddcolor", "pth"][0].spec
    assert (ddcolor.input_kind, ddcolor.fixed_size, ddcolor.tileable, ddcolor.thread_safe) == ("gray_rgb", SIZE, False, False)
    assert ddcolor.working_size(300, 2000) == (SIZE, SIZE)
    assert ddcolor.working_size(300, 2000, render_size=200) == (224, 224)  # --render-size, up to 32s
    assert (ddcolor.square(0), ddcolor.square(256)) == (SIZE, 256)
    assert ddcolor.dtypes_for("cpu") == ("float32",)
    assert set(ddcolor.dtypes_for("cuda")) == {"bfloat16", "float32"}  # spandrel: no float16 for DDColor
    for family in ("eccv16", "siggraph17"):
        spec = loaded[family, "pth"][0].spec
        assert (spec.input_kind, spec.fixed_size, spec.tileable, spec.multiple_of) == ("lightness", None, True, 8)
        h, w = spec.working_size(1000, 3000)
        assert w == 256 and h % 8 == 0 and h == 88  # 1000/3000*256 = 85.3 -> 85 -> 88
        assert raw[family, "pth"].shape == (SIZE // spec.output_scale, SIZE // spec.output_scale, 2)
    assert raw["ddcolor", "pth"].shape == (SIZE, SIZE, 2)
    with pytest.raises(ValueError, match="multiples of 8"):
        predict_raw_ab(loaded["eccv16", "pth"][0], gray[:60, :60])
    with pytest.raises(ValueError, match="cannot be tiled"):
        ModelSpec(family="x", fixed_size=512, multiple_of=32, tileable=True)
    with pytest.raises(ValueError, match="input_kind"):
        ModelSpec(family="x", input_kind="rgb")  # type: ignore[arg-type]


def test_chromanet_keeps_its_own_loading_and_gets_a_spec(random_weights):
    model, info = load_checkpoint(random_weights)
    assert info.arch == "chromanet" and info.meta["verified"] is True and info.meta["family"] == "chromanet"
    spec = model_spec(model)
    assert spec == chromanet_spec(model)
    assert (spec.multiple_of, spec.output_scale) == (model.stride, model.output_scale)
    assert spec.default_render_size == model.default_render_size
    assert spec.tileable and spec.fixed_size is None and spec.input_kind == "lightness"
    assert model_spec(build("seed-unet")).output_scale == 1
    # our own file keeps the sidecar check: without it, it is refused
    bare = random_weights.parent / "bare" / random_weights.name
    bare.parent.mkdir(exist_ok=True)
    bare.write_bytes(random_weights.read_bytes())
    with pytest.raises(WeightsError, match="no checksum"):
        load_checkpoint(bare)


# --- refusals and errors -----------------------------------------------------------------------


class _RunsShell:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


class _OpensFile:
    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return (open, (str(self.target), "w"))


@pytest.mark.parametrize("payload,writer", [(_RunsShell, "torch"), (_RunsShell, "pickle"), (_OpensFile, "torch")])
def test_a_malicious_pickle_is_refused_and_runs_nothing(tmp_path, payload, writer):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    if writer == "torch":  # a checkpoint with tensors and one poisoned entry
        torch.save({"model": {"w": torch.zeros(2), "x": payload(target)}}, path)
    else:  # a bare pickle, read through torch.load's legacy path
        with open(path, "wb") as f:
            pickle.dump({"x": payload(target)}, f, protocol=2)
    with pytest.raises(UnsafeCheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith("refused to load evil.pth")
    assert ("system" if payload is _RunsShell else "open") in message
    assert isinstance(caught.value, WeightsError)
    assert not target.exists()


def test_an_unknown_checkpoint_names_what_was_found(tmp_path):
    path = tmp_path / "mystery.safetensors"
    save_file({"backbone.stem.weight": torch.zeros(8, 3, 3, 3), "head.fc.bias": torch.zeros(10)}, str(path))
    with pytest.raises(UnknownCheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert "backbone.stem.weight (8, 3, 3, 3)" in message and "head.fc.bias (10,)" in message
    assert all(name in message for name in ("eccv16", "siggraph17", "ddcolor", "chromanet"))


def test_a_torchscript_archive_is_refused_without_running_it(tmp_path):
    path = tmp_path / "scripted.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.script is deprecated in recent torch
        torch.jit.save(torch.jit.script(nn.Conv2d(1, 2, 1)), str(path))
    with pytest.raises(CheckpointError, match="TorchScript archive"):
        load_checkpoint(path)


def test_an_image_model_that_is_not_a_colorizer_is_named_by_spandrel(tmp_path):
    from colorize_cli.models.ddcolor import import_spandrel

    import_spandrel()
    from spandrel.architectures.Compact import Compact

    path = tmp_path / "upscaler.pth"
    torch.save(Compact(num_feat=8, num_conv=2, upscale=2).state_dict(), path)
    with pytest.raises(UnknownCheckpointError, match="spandrel recognises it as RealESRGAN Compact"):
        load_checkpoint(path)


def test_forcing_a_family(checkpoints):
    model, info = load_checkpoint(checkpoints["eccv16"]["safetensors"], family="eccv16")
    assert info.arch == "eccv16" and type(model) is ECCV16
    want = checkpoints["eccv16"]["state"]
    assert all(torch.equal(v, want[k]) for k, v in model.state_dict().items())
    wrong_shape = r"does not load as siggraph17: .*model1\.0\.weight \(64, 1, 3, 3\) != \(64, 4, 3, 3\)"
    with pytest.raises(CheckpointError, match=wrong_shape):
        load_checkpoint(checkpoints["eccv16"]["safetensors"], family="siggraph17")
    with pytest.raises(CheckpointError, match="unknown model family 'nope'"):
        load_checkpoint(checkpoints["eccv16"]["safetensors"], family="nope")


class _Toy(nn.Module):
    stride = 1
    output_scale = 1
    default_render_size = 32
    spec = ModelSpec(family="toy")

    def __init__(self) -> None:
        super().__init__()
        self.toy = nn.Conv2d(1, 2, 1)

    def predict_ab(self, lightness: torch.Tensor) -> torch.Tensor:
        return self.toy(lightness)


def _load_toy(state):
    toy = _Toy()
    toy.load_state_dict(state)
    return toy


def test_a_third_party_family_is_registered_and_detected(tmp_path, gray):
    path = tmp_path / "toy.pt"
    torch.manual_seed(0)
    torch.save({"model": _Toy().state_dict()}, path)
    with pytest.raises(UnknownCheckpointError):
        load_checkpoint(path)
    register_family("toy", lambda s: "toy.weight" in s, _load_toy)
    try:
        assert "toy" in families()
        with pytest.raises(ValueError, match="already registered"):
            register_family("toy", lambda s: False, _load_toy)
        model, info = load_checkpoint(path)
        assert info.arch == "toy" and isinstance(model, _Toy)
        expected = model.toy.weight[:, 0, 0, 0] * torch.from_numpy(gray_to_lightness(gray / 255.0))[..., None] + model.toy.bias
        np.testing.assert_allclose(predict_raw_ab(model, gray), expected.detach().numpy(), rtol=1e-5, atol=1e-4)
        # 16-bit gray is read on its own scale: the same picture gives the same numbers
        np.testing.assert_allclose(predict_raw_ab(model, gray.astype(np.uint16) * 257), predict_raw_ab(model, gray),
                                   rtol=1e-6, atol=1e-4)
        # a sidecar beside a user's checkpoint is checked when there is one
        (tmp_path / "toy.pt.sha256").write_text("0" * 64 + "  toy.pt\n")
        with pytest.raises(CheckpointError, match="damaged"):
            load_checkpoint(path)
    finally:
        unregister_family("toy")
    assert "toy" not in families()


def test_a_family_declared_by_entry_point_is_found(tmp_path, monkeypatch, gray):
    (tmp_path / "toy_plugin.py").write_text(textwrap.dedent("""
        import torch
        from torch import nn
        from colorize_cli.models.checkpoints import ModelFamily
        from colorize_cli.models.spec import ModelSpec

        class Plug(nn.Module):
            stride, output_scale, default_render_size = 1, 1, 32
            spec = ModelSpec(family="plug")
            def __init__(self):
                super().__init__()
                self.plug = nn.Conv2d(1, 2, 1)
            def predict_ab(self, lightness):
                return self.plug(lightness)

        def _load(state):
            m = Plug()
            m.load_state_dict(state)
            return m

        FAMILY = ModelFamily("plug", lambda s: "plug.weight" in s, _load)
    """))
    dist = tmp_path / "toy_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[colorize_cli.model_families]\nplug = toy_plugin:FAMILY\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert "plug" in refresh_families()
        path = tmp_path / "plug.safetensors"
        save_file({"plug.weight": torch.ones(2, 1, 1, 1), "plug.bias": torch.zeros(2)}, str(path))
        model, info = load_checkpoint(path)
        assert info.arch == "plug" and model.spec.family == "plug"
        assert np.allclose(predict_raw_ab(model, gray)[..., 0], gray_to_lightness(gray / 255.0), atol=1e-4)
    finally:
        unregister_family("plug")


def test_without_spandrel_a_ddcolor_file_says_what_to_install(tmp_path, monkeypatch):
    import colorize_cli.models.ddcolor as ddcolor

    path = tmp_path / "ddcolor_modelscope.safetensors"
    save_file({k: torch.zeros(2) for k in ddcolor.DDCOLOR_KEYS}, str(path))  # DDColor's key names, tiny
    monkeypatch.setattr(ddcolor, "_spandrel", None)
    monkeypatch.setitem(sys.modules, "spandrel", None)  # what an environment without it looks like
    monkeypatch.setitem(sys.modules, "spandrel_extra_arches", None)
    with pytest.raises(MissingExtraError) as caught:
        load_checkpoint(path)
    assert INSTALL_MODELS == 'pip install "colorize-cli[models]"'
    assert INSTALL_MODELS in str(caught.value) and "spandrel" in str(caught.value)
    assert isinstance(caught.value, WeightsError)


def test_spandrel_imports_without_a_usable_torchvision(tmp_path):
    """spandrel imports torchvision for two architectures DDColor does not use; where torchvision
    cannot be imported (here: blocked), DDColor still loads, and no stand-in is left behind."""
    code = textwrap.dedent("""
        import sys
        sys.modules["torchvision"] = None  # as broken as PyPI's CUDA torchvision beside a +cpu torch
        from colorize_cli.models.ddcolor import import_spandrel
        spandrel, extra = import_spandrel()
        assert spandrel.MAIN_REGISTRY.get("DDColor") is not None
        assert "torchvision" not in sys.modules, sys.modules.get("torchvision")
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_no_torchvision_stand_in_is_left_in_this_process():
    from colorize_cli.models.ddcolor import import_spandrel

    import_spandrel()
    module = sys.modules.get("torchvision")
    assert module is None or not getattr(module, "__colorize_cli_stand_in__", False)


# --- opt-in: real published checkpoints --------------------------------------------------------
# Defined only with COLORIZE_TEST_WEIGHTS=<folder of real .pth/.pt/.bin/.safetensors checkpoints>
# (none are public here): the default run neither collects nor skips it.


def _real_checkpoints(gray, folder: str) -> None:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix in {".pth", ".pt", ".bin", ".ckpt", ".safetensors"})
    assert files, f"no checkpoint files in {folder}"
    big = np.asarray(np.kron(gray, np.ones((4, 4), np.uint8)))  # 256 x 256, upstream Zhang's size
    for path in files:
        model, info = load_checkpoint(path)
        check_model(model)
        ab = predict_raw_ab(model, big)
        spec = model.spec if hasattr(model, "spec") else model_spec(model)
        side = spec.fixed_size or 256 // spec.output_scale
        assert ab.shape == (side, side, 2), (path.name, ab.shape)
        assert np.isfinite(ab).all() and np.abs(ab).max() < 200, path.name
        print(f"{path.name}: {info.arch}, sha256 {info.sha256[:12]}, a*b* {ab.min():.1f}..{ab.max():.1f}")


if os.environ.get("COLORIZE_TEST_WEIGHTS"):

    def test_real_checkpoints_from_COLORIZE_TEST_WEIGHTS(gray):
        _real_checkpoints(gray, os.environ["COLORIZE_TEST_WEIGHTS"])


# --- through the archive pipeline: colorize-dir --weights <upstream checkpoint> ---------------------


def _pipeline_scans(root: Path) -> dict[str, np.ndarray]:
    """A 3:1 panorama as a 16-bit PNG, a JPEG with EXIF, a small 8-bit PNG: name -> the gray the
    file holds (16-bit for the PNG), as the reader will see it."""
    from PIL import Image

    from sample_photos import photo_like_gray

    root.mkdir()
    pano = photo_like_gray(384, 128, seed=11).astype(np.uint16) * 257
    Image.fromarray(pano).save(root / "panorama-16bit.png")
    exif = Image.Exif()
    exif[0x013B] = "A. Photographer"  # Artist
    photo = photo_like_gray(160, 120, seed=12)
    Image.fromarray(photo).save(root / "exif.jpg", quality=95, exif=exif.tobytes())
    small = photo_like_gray(96, 72, seed=13)
    Image.fromarray(small).save(root / "small.png")
    return {"panorama-16bit.png": pano, "exif.jpg": np.asarray(Image.open(root / "exif.jpg").convert("L")), "small.png": small}


def _exif_tags(path: Path) -> dict:
    out = subprocess.run(["exiftool", "-j", "-a", "-G1", "-s", str(path)], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)[0]


@pytest.mark.parametrize(("family", "fmt"), [("eccv16", "pth"), ("siggraph17", "safetensors"), ("ddcolor", "pth")])  # each format and family once; pth = safetensors numerically: test_pth_and_safetensors_give_the_same_numbers
def test_upstream_checkpoints_run_through_colorize_dir(family, fmt, checkpoints, tmp_path, monkeypatch):
    """Detected, every scan done at its own size with its own luminance, the checkpoint's sha256
    and family in each output's XMP (read by exiftool) and in the manifest, and a rerun skips.
    DDColor runs at the square --render-size asks for (upstream's --input_size)."""
    from PIL import Image
    from typer.testing import CliRunner

    from colorize_cli.cli.app import app
    from colorize_cli.color import rgb_to_lab
    from colorize_cli.manifest import read_manifest

    weights = checkpoints[family][fmt]
    src, out = tmp_path / "scans", tmp_path / "out"
    grays = _pipeline_scans(src)
    args = ["dir", str(src), "--out", str(out), "--weights", str(weights), "--device", "cpu", "-q", "--json"]
    seen: list[tuple[int, ...]] = []
    # Small renders (the panorama still tiled): what is checked here does not depend on the size,
    # and these networks cost 5 to 20 times the shipped one's CPU a pixel (research/family_speed.py)
    args += ["--render-size", "120" if family == "ddcolor" else "128"]
    if family == "ddcolor":  # its square input, 128 (120 rounded up to 32s) instead of upstream's 512
        from colorize_cli.models.ddcolor import DDColor

        real = DDColor.gray_rgb

        def gray_rgb(self, gray):
            out = real(self, gray)
            seen.append(tuple(out.shape[-2:]))
            return out

        monkeypatch.setattr(DDColor, "gray_rgb", gray_rgb)
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["counts"] == {"done": 3, "failed": 0, "skipped": 0}
    if family == "ddcolor":
        assert seen == [(128, 128)] * 3, seen
    digest = _sha256(weights)
    records = [r for r in read_manifest(out / "manifest.jsonl") if r["type"] in ("run", "file")]
    assert records[0]["model_sha256"] == digest
    for name, gray in grays.items():
        result = out / name
        rgb = np.asarray(Image.open(result)) if not name.endswith("16bit.png") else _read_png16(result)
        assert rgb.shape[:2] == gray.shape, name
        peak = 65535.0 if gray.dtype == np.uint16 else 255.0
        lightness = rgb_to_lab(rgb.astype(np.float32) / peak)[..., 0]
        want = gray_to_lightness(gray.astype(np.float32) / peak)
        bound = 1.5 if name.endswith(".jpg") else 0.05 if gray.dtype == np.uint16 else 0.25  # JPEG: re-encoding its grain; 8 bits: rounding
        assert np.abs(lightness - want).mean() < bound, name
        got = _exif_tags(result)
        assert got["XMP-colorize:ModelSHA256"] == digest and got["XMP-colorize:ModelFamily"] == family, name
    assert _exif_tags(out / "exif.jpg")["IFD0:Artist"] == "A. Photographer"
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["counts"] == {"done": 0, "failed": 0, "skipped": 3}


def _read_png16(path: Path) -> np.ndarray:
    """A 16-bit RGB PNG as (h, w, 3) uint16 (Pillow has no 16-bit RGB mode): imagecodecs' decoder."""
    import imagecodecs

    return imagecodecs.png_decode(path.read_bytes())


def test_colorize_dir_refuses_a_malicious_checkpoint_and_touches_nothing(tmp_path):
    """Through the real command, in its own process: exit 2 naming the refused global, the
    payload never ran, no output written, the inputs as they were."""
    from PIL import Image

    target = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(2), "x": _RunsShell(target)}}, evil)
    src, out = tmp_path / "scans", tmp_path / "out"
    src.mkdir()
    Image.fromarray(np.full((40, 60), 120, np.uint8)).save(src / "a.png")
    before = (src / "a.png").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "colorize_cli", "dir", str(src), "--out", str(out), "--weights", str(evil),
                           "--device", "cpu", "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "refused to load evil.pth" in proc.stderr and "system" in proc.stderr
    assert not target.exists()
    assert not (out / "a.png").exists() and not any(out.rglob("*.png"))
    assert (src / "a.png").read_bytes() == before


def test_colorize_dir_names_what_an_unknown_checkpoint_holds(tmp_path):
    path = tmp_path / "mystery.safetensors"
    save_file({"backbone.stem.weight": torch.zeros(8, 3, 3, 3), "head.fc.bias": torch.zeros(10)}, str(path))
    src = tmp_path / "scans"
    src.mkdir()
    from PIL import Image

    Image.fromarray(np.full((40, 60), 120, np.uint8)).save(src / "a.png")
    proc = subprocess.run([sys.executable, "-m", "colorize_cli", "dir", str(src), "--out", str(tmp_path / "out"), "--weights", str(path),
                           "--device", "cpu", "-q"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "mystery.safetensors is not a checkpoint of a known colorization family" in proc.stderr
    assert "backbone.stem.weight" in proc.stderr
