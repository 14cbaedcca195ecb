"""The command line: one module per command group; options are parsed and checked before torch loads."""
