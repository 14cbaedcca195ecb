"""research/average_weights.py and research/pair_weights.py: weight files written by the research
scripts, checked with the library's verified loading (moved from tests/test_models.py)."""

from __future__ import annotations

import torch
from torch import nn

from colorize_cli.models import build


def test_average_weights_is_the_tensor_by_tensor_mix_and_refuses_two_architectures(tmp_path) -> None:
    """research/average_weights.py: every float tensor (weights, batch-norm statistics) is
    start + alpha * (tuned - start) for two files and the plain mean for three; the result loads,
    digest checked; --alpha with three files and two architectures are refused."""
    import subprocess
    import sys
    from pathlib import Path

    from colorize_cli.models.weights import load_model, save_weights

    tool = Path(__file__).resolve().parents[2] / "research" / "average_weights.py"
    files = {}
    for seed, arch in ((0, "chromanet"), (1, "chromanet"), (2, "seed-unet")):
        torch.manual_seed(seed)
        model = build(arch).eval()
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):  # statistics unlike a fresh layer's, so averaging them shows
                m.running_mean.uniform_(-1, 1)
        files[seed] = tmp_path / f"{arch}-{seed}.safetensors"
        save_weights(model, arch, files[seed])
    out = tmp_path / "avg.safetensors"
    done = subprocess.run([sys.executable, str(tool), str(files[0]), str(files[1]), "--alpha", "0.25", "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (start, _), (tuned, _), (avg, info) = (load_model(files[0]), load_model(files[1]), load_model(out))
    a, b, m = start.state_dict(), tuned.state_dict(), avg.state_dict()
    for key in ("encoder.features.0.0.weight", "fuse.1.running_mean", "classify.weight"):
        assert not torch.equal(a[key], b[key])
        torch.testing.assert_close(m[key], a[key] + 0.25 * (b[key] - a[key]), rtol=2e-3, atol=1e-3)  # saved as fp16
    assert info.meta["average"]["shares"] == [0.75, 0.25]

    soup = tmp_path / "soup.safetensors"
    third = tmp_path / "chromanet-3.safetensors"
    torch.manual_seed(3)
    save_weights(build("chromanet").eval(), "chromanet", third)
    done = subprocess.run([sys.executable, str(tool), str(files[0]), str(files[1]), str(third), "--out", str(soup)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    c, (s, soup_info) = load_model(third)[0].state_dict(), load_model(soup)
    for key in ("encoder.features.0.0.weight", "fuse.1.running_mean", "classify.weight"):
        torch.testing.assert_close(s.state_dict()[key], (a[key] + b[key] + c[key]) / 3, rtol=2e-3, atol=1e-3)
    assert soup_info.meta["average"]["members"] == [load_model(f)[1].sha256 for f in (files[0], files[1], third)]
    alpha3 = subprocess.run([sys.executable, str(tool), str(files[0]), str(files[1]), str(third), "--alpha", "0.3",
                             "--out", str(tmp_path / "no.safetensors")], capture_output=True, text=True)
    assert alpha3.returncode != 0 and "--alpha mixes two networks; 3 are averaged uniformly" in alpha3.stderr
    assert not (tmp_path / "no.safetensors").exists()

    other = tmp_path / "mixed.safetensors"
    refused = subprocess.run([sys.executable, str(tool), str(files[0]), str(files[2]), "--out", str(other)],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "not one architecture: chromanet and seed-unet" in refused.stderr
    assert not other.exists()


def test_pair_weights_averages_two_networks_heads_and_refuses_the_wrong_pair(tmp_path) -> None:
    """research/pair_weights.py: the pair's regression is the members' mean, its bins the normalised
    geometric mean of theirs; each member's own decoding plays no part; the tool refuses members
    in the wrong places (`colorize train` refusing the pair is checked in tests/test_models.py)."""
    import subprocess
    import sys
    from pathlib import Path

    from colorize_cli.models.weights import load_model, save_weights

    tool = Path(__file__).resolve().parents[2] / "research" / "pair_weights.py"
    files = {}
    for seed, arch in ((0, "chromanet"), (1, "chromanet-lite2")):
        torch.manual_seed(seed)
        model = build(arch).eval()
        with torch.no_grad():
            model.mix.fill_(1.0)  # a member's own decoding, which the pair must not use
            model.gain.fill_(1.3)
        files[arch] = tmp_path / f"{arch}.safetensors"
        save_weights(model, arch, files[arch], half=False)
    out = tmp_path / "pair.safetensors"
    done = subprocess.run([sys.executable, str(tool), str(files["chromanet"]), str(files["chromanet-lite2"]), "--out", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (first, _), (second, _), (pair, info) = (load_model(files["chromanet"]), load_model(files["chromanet-lite2"]), load_model(out))
    assert info.arch == "chromanet-pair" and [m["arch"] for m in info.meta["members"]] == ["chromanet", "chromanet-lite2"]
    x = torch.linspace(0, 100, 64 * 96).view(1, 1, 64, 96)
    with torch.no_grad():
        (r1, l1), (r2, l2), (r, logp) = first(x), second(x), pair(x)
        assert not torch.allclose(r1, r2, atol=1e-2)
        torch.testing.assert_close(r, (r1 + r2) / 2, rtol=1e-3, atol=1e-2)
        geometric = torch.sqrt(torch.softmax(l1, 1) * torch.softmax(l2, 1))
        torch.testing.assert_close(torch.softmax(logp, 1), geometric / geometric.sum(1, keepdim=True), rtol=1e-3, atol=1e-5)
        assert float(pair.mix) == 0.0 and float(pair.gain) == 1.0  # the regression alone until calibrated
        torch.testing.assert_close(pair.predict_ab(x), r)
        pair.mix.fill_(1.0)
        pair.temperature.fill_(1.0)
        expected = torch.einsum("nqhw,qc->nchw", torch.softmax(logp, 1), first.bin_centres)
        torch.testing.assert_close(pair.predict_ab(x), expected)

    swapped = tmp_path / "swapped.safetensors"
    refused = subprocess.run([sys.executable, str(tool), str(files["chromanet-lite2"]), str(files["chromanet"]), "--out", str(swapped)],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "chromanet-lite2 is a 'chromanet-lite2' network; this place takes a 'chromanet' one" in refused.stderr
    assert not swapped.exists()
