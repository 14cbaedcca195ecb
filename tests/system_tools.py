"""The system programs and files the tests read outputs back with, and how a test run gets them.

The README's test command must pass on a fresh Debian machine, so the first thing a test session
does is make sure these exist: as root with apt-get it installs what is missing; anywhere else it
stops with the list of packages to install. A missing tool is a setup error, never a skipped test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

# Debian package -> a path or a program on PATH that shows it is installed.
REQUIRED = {
    "chromium": "chromium",  # headless browser: the review sheet is judged by a real browser
    "icc-profiles-free": "/usr/share/color/icc/Gray.icc",  # real gray and RGB ICC profiles
    "libimage-exiftool-perl": "exiftool",  # the metadata reader archivists use
    "imagemagick": "identify",  # an independent decoder of our outputs
}


def _present(probe: str) -> bool:
    return Path(probe).exists() if probe.startswith("/") else shutil.which(probe) is not None


def missing() -> list[str]:
    return [pkg for pkg, probe in REQUIRED.items() if not _present(probe)]


def ensure() -> str | None:
    """Install missing packages when we can; return an error message when they are still missing."""
    need = missing()
    if not need:
        return None
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        print(f"\ntest setup: installing {' '.join(need)} with apt-get (once per machine)", flush=True)
        for cmd in ([apt, "update", "-qq"], [apt, "install", "-y", "-qq", "--no-install-recommends", *need]):
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if done.returncode:
                return f"`{' '.join(cmd)}` failed ({done.returncode}): {done.stderr.strip()[-500:]}"
        need = missing()
        if not need:
            return None
    return ("the tests need these system packages, which are missing: " + " ".join(need)
            + f"\ninstall them first, e.g. `sudo apt-get install -y {' '.join(need)}` (Debian/Ubuntu names)")
