"""Device selection and precision, checked on the CPU (the CUDA branches by simulating what torch reports)."""

from __future__ import annotations

import pytest
import torch

from colorize_cli.inference import devices
from colorize_cli.failures import is_out_of_memory
from colorize_cli.errors import DeviceError
from colorize_cli.inference.devices import autocast_dtype, resolve_device


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert resolve_device("auto").type == "mps"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:1") == torch.device("cuda:1")


def test_asking_for_a_missing_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(DeviceError, match="no CUDA GPU is available"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match="Metal backend is not available"):
        resolve_device("mps")
    with pytest.raises(DeviceError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_half_precision_only_on_cuda_and_not_with_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    assert autocast_dtype(torch.device("cpu"), fp32=False) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert autocast_dtype(torch.device("cuda"), fp32=False) is torch.bfloat16
    assert autocast_dtype(torch.device("cuda"), fp32=True) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert autocast_dtype(torch.device("cuda"), fp32=False) is torch.float16


def test_out_of_memory_is_recognised_and_nothing_else() -> None:
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not is_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_cli_refuses_cuda_without_a_gpu(tmp_path, random_weights, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image
    from typer.testing import CliRunner

    from colorize_cli.cli.app import app

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    src = tmp_path / "scans"
    src.mkdir()
    Image.new("L", (40, 30), 128).save(src / "a.png")
    result = CliRunner().invoke(app, ["dir", str(src), "--out", str(tmp_path / "o"), "--weights", str(random_weights), "--device", "cuda"])
    assert result.exit_code == 2
    assert "no CUDA GPU is available" in result.output
    assert not (tmp_path / "o" / "a.png").exists()
