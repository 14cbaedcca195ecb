"""Why a checkpoint cannot be used: one home for the errors that loading, detection and the
family adapters raise (all are WeightsError, so a command reports each as a usage error, exit 2)."""

from __future__ import annotations

from colorize_cli.errors import WeightsError

INSTALL_MODELS = 'pip install "colorize-cli[models]"'


class CheckpointError(WeightsError):
    """A checkpoint that cannot be read or used."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that asks to run or import something a weights file has no need of: refused."""


class UnknownCheckpointError(CheckpointError):
    """A readable checkpoint of no known family."""


class MissingExtraError(CheckpointError, ImportError):
    """A family whose packages are not installed (the message says what to install)."""
