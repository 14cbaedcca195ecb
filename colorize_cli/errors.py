"""Errors that more than one module raises, so each caller catches one class from one place."""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in how the tool was called; the CLI prints the message and exits with status 2."""


class WeightsError(Exception):
    """The weights file is missing, damaged or not one of ours (models/weights.py raises it)."""


class DeviceError(ValueError):
    """A device was asked for that this machine does not have (inference/devices.py raises it).
    Here, not beside torch, so the CLI can catch both without importing torch."""
