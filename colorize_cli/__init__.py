"""colorize-cli: give colour to scanned black-and-white photographs, in batches, offline."""

__version__ = "0.1.0"
