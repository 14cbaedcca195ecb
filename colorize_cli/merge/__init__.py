"""Chroma upsampling and the full-resolution merge onto the original L* (numba CPU, torch GPU)."""
