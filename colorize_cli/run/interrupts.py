"""SIGINT and SIGTERM, told the truth at every moment of a run.

A run passes through three phases, and a signal means something different in each:

* starting  (importing torch, loading the model, taking the lock, planning): there is nothing
            to finish, so the first signal stops at once with :class:`Interrupted` (exit 130).
* running   (files in flight): the first signal stops new files from starting and lets those
            in flight finish; a second one stops at once (outputs are atomic and every record
            is flushed, so nothing is left half-written).
* finished  (the end record is written): the work's real result stands; a first signal is
            noted and ignored, a second one stops what is left (the report) at once.

Torch-free, so the CLI can install it before the heavy imports.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

Phase = Literal["starting", "running", "finished"]
SIGNAL_NAMES: tuple[str, ...] = ("SIGINT", "SIGTERM")


class Interrupted(KeyboardInterrupt):
    """Raised by the handler where a signal must stop the run at once; says which and when."""

    def __init__(self, signal_name: str, phase: Phase) -> None:
        super().__init__(signal_name)
        self.signal = signal_name
        self.phase = phase


class StopFlag:
    """Set by SIGINT/SIGTERM or a full disk; readers stop picking up new files when it is set."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.phase: Phase = "starting"
        self.late_signal = ""  # a signal that arrived after the work had finished

    def set(self, reason: str) -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    def __bool__(self) -> bool:
        return self._event.is_set()

    @property
    def by_signal(self) -> bool:
        return self._event.is_set() and self.reason in SIGNAL_NAMES

    def on_signal(self, signum: int, _frame: object = None) -> None:
        """The handler: what a signal does depends on the phase (see the module docstring)."""
        name = signal.Signals(signum).name
        if self.phase == "starting":
            raise Interrupted(name, "starting")
        if self.phase == "finished":
            if self.late_signal:
                raise Interrupted(name, "finished")
            self.late_signal = name
            return
        if self:
            raise Interrupted(name, "running")
        self.set(name)


@contextmanager
def handle_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """Route SIGINT and SIGTERM to ``flag`` for the duration; the previous handlers come back
    after. Outside the main thread (where Python allows no handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = {s: signal.signal(s, flag.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
