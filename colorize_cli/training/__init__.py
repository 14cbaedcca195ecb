"""Training and evaluation of colorization models."""
