"""Test-only, injected by the Ray tests (PYTHONPATH of their cluster): a worker dies with
os._exit(3) on the input whose absolute path is written in the file $COLORIZE_TEST_CRASH_FILE,
standing in for a scan that crashes its worker (a decoder segfault). The product knows nothing
of it; the file is empty (no crash) unless a test writes a path there."""

import importlib.abc
import importlib.machinery
import os
import sys

_FLAG = os.environ.get("COLORIZE_TEST_CRASH_FILE")
_TARGET = "colorize_cli.run.processor"


def _patch(module) -> None:
    real = module.FileProcessor.process

    def process(self, job, why):
        try:
            with open(_FLAG) as f:
                victim = f.read().strip()
        except OSError:
            victim = ""
        if victim and victim == str(job.input):
            os._exit(3)
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
