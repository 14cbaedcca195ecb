"""The shipped model and its card, as package data: the build maps this folder to `colorize_cli.weights`."""
