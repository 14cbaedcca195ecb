"""The network's part: devices, loaded models, tiling and batched prediction of a*b*."""
