"""Metadata: what a scan says about itself, and what each output format carries of it."""
