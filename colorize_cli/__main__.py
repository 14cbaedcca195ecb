"""`python -m colorize_cli`: the `colorize` command."""

from .cli import main

main()
