"""Errors that more than one module raises, so each caller catches one class from one place."""

from __future__ import annotations


class UsageError(ValueError):
    """A mistake in how the tool was called; the CLI prints the message and exits with status 2."""
