"""Test-only, injected by the Ray tests (PYTHONPATH of their cluster): a worker misbehaves on the
inputs named in the file $COLORIZE_TEST_CRASH_FILE, standing in for what a scan or an operator
can do to it. One input a line, its absolute path, optionally after an action:

    crash PATH   (or PATH alone) the worker dies with os._exit(3), as on a decoder's segfault
    hog=MB PATH  the worker takes memory, up to MB MiB (and never the machine's last GiB), until
                 something stops it (Ray's memory monitor); then it holds it 30 s and goes on
    sleep PATH   the worker writes its pid to $COLORIZE_TEST_CRASH_FILE.pid and waits while the
                 line is there (at most 120 s), then goes on: a file that takes long, to be
                 interrupted or killed from outside by the test

The product knows nothing of it; the file is empty (nothing happens) unless a test writes there."""

import importlib.abc
import importlib.machinery
import os
import sys
import time

_FLAG = os.environ.get("COLORIZE_TEST_CRASH_FILE")
_TARGET = "colorize_cli.run.processor"


def _actions() -> dict:
    try:
        with open(_FLAG) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return {}
    found = {}
    for line in lines:
        action, _, path = line.partition(" ")
        if not path:
            action, path = "crash", action
        found[path] = action
    return found


def _misbehave(path: str) -> None:
    action = _actions().get(path)
    if action == "crash":
        os._exit(3)
    if action and action.startswith("hog="):
        held = []
        for _ in range(int(action[4:]) // 128):
            if _available() < (1 << 30):
                break
            block = bytearray(128 << 20)
            block[::4096] = b"\1" * len(block[::4096])  # touch every page
            held.append(block)
            time.sleep(0.02)
        time.sleep(30)
    if action == "sleep":
        with open(_FLAG + ".pid", "w") as f:
            f.write(str(os.getpid()))
        deadline = time.monotonic() + 120
        while _actions().get(path) == "sleep" and time.monotonic() < deadline:
            time.sleep(0.1)


def _available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def _patch(module) -> None:
    real = module.FileProcessor.process

    def process(self, job, why):
        _misbehave(str(job.input))
        return real(self, job, why)

    module.FileProcessor.process = process


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return None
        loader = spec.loader
        run = loader.exec_module

        def exec_module(module):
            run(module)
            _patch(module)

        loader.exec_module = exec_module
        return spec


if _FLAG:
    sys.meta_path.insert(0, _Finder())
