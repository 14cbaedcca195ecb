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
        self.at_once: Interrupted | None = None  # the signal that must stop at once, once one came

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
            self._at_once(name, "starting")
        if self.phase == "finished":
            if self.late_signal:
                self._at_once(name, "finished")
            self.late_signal = name
            return
        if self:
            self._at_once(name, "running")
        self.set(name)

    def _at_once(self, name: str, phase: Phase) -> None:
        """Raise Interrupted, and remember it: a blocking call may swallow the exception (Ray's
        ray.wait and ray.get catch KeyboardInterrupt in their own signal checks and go on), so
        loops around such calls ask :meth:`check` after each one."""
        self.at_once = Interrupted(name, phase)
        raise self.at_once

    def check(self) -> None:
        """Raise again a stop-at-once signal whose exception a blocking call swallowed (once)."""
        if self.at_once is not None:
            came, self.at_once = self.at_once, None
            raise Interrupted(came.signal, came.phase)


@contextmanager
def handle_signals(flag: StopFlag) -> Iterator[StopFlag]:
    """Route SIGINT and SIGTERM to ``flag`` for the duration; the previous handlers come back
    after. Outside the main thread (where Python allows no handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    global _ACTIVE
    old = {s: signal.signal(s, flag.on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    outer, _ACTIVE = _ACTIVE, flag
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _ACTIVE = outer


_ACTIVE: StopFlag | None = None  # the flag the process's SIGINT/SIGTERM handlers report to (there is one per process)


def check_signals() -> None:
    """For code that is not handed the run's StopFlag (an executor starting up): raise again a
    stop-at-once signal that a blocking call swallowed. Does nothing outside handle_signals."""
    if _ACTIVE is not None:
        _ACTIVE.check()
