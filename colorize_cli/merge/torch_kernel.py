"""The merge's torch kernel: the maths of `merge_cpu`, as tensor operations on any torch device.

On a GPU the network's device does the merge too: the gray goes up and the RGB comes down through
pinned host memory with non-blocking copies, and the CPU cores are left to decoding and encoding.
On the CPU this path is slower than the numba kernel (it makes a pass over memory per operation);
it runs there only to test it against that kernel.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from colorize_cli.merge.inputs import FINV_KNEE, FINV_SLOPE, GAMUT_TINY, MergeInputs

_STRIP_PIXELS = 1 << 22  # rows per strip: about 4 MP, so a 100 MP scan's temporaries stay small


def _as_torch(a: np.ndarray) -> torch.Tensor:
    """A tensor sharing a numpy array's memory; uint16 travels as int16 (same bits), which every
    torch version indexes and copies."""
    return torch.from_numpy(a.view(np.int16) if a.dtype == np.uint16 else a)


@lru_cache(maxsize=16)
def _device_tables(levels: int, table_key: str, device: torch.device) -> tuple[torch.Tensor, ...]:
    """fy, Y and encode tables on the device, uploaded once per (levels, output) and device."""
    from colorize_cli.merge.inputs import encode_table, gray_code_tables  # noqa: PLC0415

    fy, y = gray_code_tables(levels)
    tables = [torch.from_numpy(fy.copy()).to(device), torch.from_numpy(y.copy()).to(device)]
    if table_key != "float32":
        table, _ = encode_table(levels, table_key)
        tables.append(_as_torch(table.copy()).to(device))
    return tuple(tables)


def _finv(t: torch.Tensor) -> torch.Tensor:
    m = t.clamp_min(float(FINV_KNEE))
    return (m * m - float(FINV_SLOPE)) * m + t * float(FINV_SLOPE)


def _srgb(lin: torch.Tensor) -> torch.Tensor:
    lin = lin.clamp(0.0, 1.0)
    return torch.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055)


def merge_on_device(
    gray: np.ndarray, m: MergeInputs, out_dtype: np.dtype, device: str | torch.device, strip_rows: int | None
) -> np.ndarray:
    """Run the merge on a torch device; returns (H, W, 3) numpy of out_dtype, like merge_cpu.merge."""
    dev = torch.device(device)
    pinned = dev.type == "cuda"
    H, W = gray.shape
    rows = min(H, strip_rows or max(1, _STRIP_PIXELS // W))

    bits = gray.view(np.int16) if gray.dtype == np.uint16 else gray
    if pinned:  # a page-locked copy, so the upload is a DMA that overlaps the work queued after it
        staged = torch.empty(gray.shape, dtype=_as_torch(bits[:0, :0].copy()).dtype, pin_memory=True)
        staged.numpy()[...] = bits
        g_dev = staged.to(dev, non_blocking=True)
    else:  # torch wants writable memory: a read-only array (Pillow's) is copied
        g_dev = torch.from_numpy(np.array(bits, copy=not bits.flags.writeable)).to(dev)

    levels = np.iinfo(gray.dtype).max + 1
    tables = _device_tables(levels, out_dtype.name, dev)
    fy_t, y_t = tables[0], tables[1]
    small = m.small if m.has_a else np.concatenate([np.ones_like(m.small), m.small])  # a = 1: fx = fy + b
    small_t = torch.from_numpy(small).to(dev)
    ylo, yhi = torch.from_numpy(m.ylo).to(dev), torch.from_numpy(m.yhi).to(dev)
    yfrac = torch.from_numpy(m.yfrac).to(dev)
    xlo, xhi = torch.from_numpy(m.xlo).to(dev), torch.from_numpy(m.xhi).to(dev)
    xfrac = torch.from_numpy(m.xfrac).to(dev)
    cx, cz = torch.from_numpy(m.cx).to(dev), torch.from_numpy(m.cz).to(dev)
    scale = float(m.scale)

    # the maps' horizontal pass once, at map height (as merge_cpu.widen)
    left = small_t.index_select(2, xlo)
    wide = left + (small_t.index_select(2, xhi) - left) * xfrac

    host_dtype = torch.float32 if out_dtype == np.float32 else _as_torch(np.empty(0, out_dtype)).dtype
    out = torch.empty((H, W, 3), dtype=host_dtype, pin_memory=pinned)
    for y0 in range(0, H, rows):
        y1 = min(y0 + rows, H)
        gi = g_dev[y0:y1].long()
        if gray.dtype == np.uint16:
            gi &= 0xFFFF  # int16 bits back to the code value
        fy = fy_t[gi]
        ys = y_t[gi] * scale
        top = wide.index_select(1, ylo[y0:y1])
        maps = top + yfrac[y0:y1, None] * (wide.index_select(1, yhi[y0:y1]) - top)  # (4, n, W)
        fx = maps[0] * fy + maps[2]
        fz = maps[1] * fy + maps[3]
        ey = _finv(fy)
        ex = (_finv(fx) - ey)[..., None]  # exactly 0 for zero chroma
        ez = (_finv(fz) - ey)[..., None]
        d = cx * ex + cz * ez  # (n, W, 3)
        dmax = d.amax(dim=2, keepdim=True).clamp_min(float(GAMUT_TINY))
        dmin = d.amin(dim=2, keepdim=True).clamp_max(-float(GAMUT_TINY))
        ys = ys[..., None]
        neg_s = torch.maximum((ys - scale) / dmax, ys / dmin).clamp_min(-1.0)
        lin = ys - neg_s * d
        if len(tables) == 2:
            strip = _srgb(lin)
        else:
            strip = tables[2][lin.long().clamp_(0, tables[2].numel() - 1)]
        out[y0:y1].copy_(strip, non_blocking=pinned)
    if pinned:
        torch.cuda.current_stream(dev).synchronize()  # the RGB has landed in host memory
    result = out.numpy()
    return result.view(np.uint16) if out_dtype == np.uint16 else result
