"""`python -m colorize_cli`: the `colorize` command."""

from colorize_cli.cli.app import main

main()
