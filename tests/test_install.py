"""Installing as users install: the wheel carries the model, `--version` and `colorize doctor`.

The install tests build the real wheel and install it, without `-e`, into a fresh virtual
environment (its dependencies come from this interpreter's site-packages, so no network is
needed), then run the installed `colorize-dir` from outside the checkout.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from system_tools import REQUIRED, ensure

from colorize_cli.models.paths import DEFAULT_MODEL, recorded_digest, sidecar_path, SHIPPED_WEIGHTS_LICENCE

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "weights" / DEFAULT_MODEL
STEM = SHIPPED.stem


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(REPO), "-w", str(dist)],
                           capture_output=True, text=True, cwd=dist)
    assert build.returncode == 0, build.stderr
    (found,) = dist.glob("colorize_cli-*.whl")
    return found


def test_the_wheel_carries_the_model_its_digest_and_its_card(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert f"colorize_cli/weights/{DEFAULT_MODEL}" in names
        assert z.read(f"colorize_cli/weights/{DEFAULT_MODEL}") == SHIPPED.read_bytes()
        assert z.read(f"colorize_cli/weights/{DEFAULT_MODEL}.sha256") == sidecar_path(SHIPPED).read_bytes()
        assert "colorize_cli/weights/MODEL_CARD.md" in names
        assert "colorize_cli/weights/LICENSE-weights.md" in names  # the weights' research-only licence travels with them
        assert not any(n.startswith(("research/", "docs/", "tools/")) or "lab-notebook" in n for n in names)  # the lab stays out
        assert "colorize_cli/report/templates/report.html.j2" in names  # the review sheet renders from an installed wheel
        metadata = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    from colorize_cli import __version__

    assert f"\nVersion: {__version__}\n" in metadata
    assert "tqdm" not in metadata  # nothing declared that nothing uses


def test_a_non_editable_install_colorizes_the_samples(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    # --system-site-packages reaches the base interpreter's packages, not those of a virtual
    # environment the tests run in: a .pth file adds this interpreter's (dependencies only; the
    # package itself is installed from the wheel and shadows any editable install's path hook)
    venv_site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               capture_output=True, text=True, check=True).stdout.strip()
    Path(venv_site, "zz-test-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    inst = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], capture_output=True, text=True)
    assert inst.returncode == 0, inst.stderr
    where = subprocess.run([str(py), "-c", "from colorize_cli.models.paths import DEFAULT_WEIGHTS as w; print(w)"],
                           capture_output=True, text=True, cwd=tmp_path, check=True).stdout.strip()
    assert where.startswith(str(venv)) and where.endswith(f"colorize_cli/weights/{DEFAULT_MODEL}"), where
    out = tmp_path / "out"
    run = subprocess.run([str(venv / "bin" / "colorize-dir"), str(REPO / "examples" / "scans"), "--out", str(out), "--quiet", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"})
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    inputs = sorted(p.relative_to(REPO / "examples" / "scans") for p in (REPO / "examples" / "scans").rglob("*") if p.is_file())
    assert summary["counts"]["done"] == len(inputs) >= 4 and summary["exit_code"] == 0
    for rel in inputs:
        assert any(out.joinpath(rel).parent.glob(rel.stem + ".*")), f"no output for {rel}"
    header = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert header["model_sha256"] == recorded_digest(SHIPPED)


@pytest.mark.parametrize("command", ["colorize", "colorize-dir"])
def test_version_names_the_package_and_the_model_without_torch(command: str) -> None:
    code = ("import sys; from colorize_cli.cli.app import main, dir_main\n"
            f"sys.argv = [{command!r}, '--version']\n"
            "try:\n    (main if sys.argv[0] == 'colorize' else dir_main)()\nexcept SystemExit as e:\n    code = e.code\n"
            "print('torch imported' if 'torch' in sys.modules else 'torch-free', code)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    from colorize_cli import __version__

    digest = recorded_digest(SHIPPED)
    assert proc.stdout.splitlines() == [f"colorize-cli {__version__} (code: Apache-2.0), model {STEM} (sha256 {digest[:12]}; "
                                        f"weights: {SHIPPED_WEIGHTS_LICENCE})", "torch-free 0"]
    assert "non-commercial" in SHIPPED_WEIGHTS_LICENCE


def test_doctor_checks_the_install_and_the_cpu() -> None:
    proc = subprocess.run([sys.executable, "-m", "colorize_cli", "doctor", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["weights_sha256"] == recorded_digest(SHIPPED)
    assert report["model_family"] == "chromanet" and 3e6 < report["model_parameters"] < 5e6
    assert report["model_licence"] == SHIPPED_WEIGHTS_LICENCE
    assert report["problems"] == [] and report["torch"]
    cpu = report["devices"][0]
    assert cpu["device"] == "cpu" and cpu["problem"] is None and cpu["autocast"] == "none (float32)"
    assert cpu["seconds_per_test_image"] > 0 and cpu["images_per_s_6mp"] > 0


def test_doctor_reports_a_damaged_weights_file_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / DEFAULT_MODEL
    data = bytearray(SHIPPED.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    bad.with_name(bad.name + ".sha256").write_text(sidecar_path(SHIPPED).read_text())
    proc = subprocess.run([sys.executable, "-m", "colorize_cli", "doctor", "--weights", str(bad)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "weights file is damaged: sha256" in " ".join(proc.stdout.split())


def test_a_missing_system_tool_is_a_setup_error_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import system_tools

    monkeypatch.setitem(system_tools.REQUIRED, "no-such-package-xyz", "/nonexistent/tool")
    monkeypatch.setattr(system_tools.shutil, "which", lambda name: None if name == "apt-get" else "/usr/bin/" + name)
    message = ensure()
    assert message is not None and "missing: no-such-package-xyz" in message and "apt-get install -y no-such-package-xyz" in message
    assert set(REQUIRED) >= {"chromium", "icc-profiles-free", "libimage-exiftool-perl"}


def test_code_run_from_a_source_tree_finds_the_checkouts_weights() -> None:
    # -S: no site-packages, so no installed or editable copy can answer; only the checkout.
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); from colorize_cli.models.paths import DEFAULT_WEIGHTS as w; print(w)"
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(SHIPPED) and SHIPPED.is_file()
