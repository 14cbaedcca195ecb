"""ICC profiles: reading a scan's tone into sRGB gray (gray profiles through their own tone
curve, RGB and CMYK through LittleCMS), and putting the sRGB result back into an RGB input's
own space on the way out. The colour maths in `color.py` is sRGB; profiles meet it only here."""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageCms

from colorize_cli import color
from colorize_cli.io.read.grayscale import luminance8
from colorize_cli.io.meta.source import icc_color_space, one_line


def describe_icc(icc: bytes | None) -> str:
    """A profile's own name, for notes ("Dot Gain 20%"); '' when it cannot be read."""
    if not icc:
        return ""
    try:
        return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except Exception:
        return ""


@functools.lru_cache(maxsize=1)
def srgb_profile() -> bytes:
    """The sRGB profile outputs are tagged with (built by LittleCMS, so no file is shipped).

    LittleCMS stamps the profile with the time it was made; a fixed date (and no profile ID,
    which covers the date) keeps outputs byte-identical from one run to the next."""
    icc = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    icc[24:36] = struct.pack(">6H", 2026, 1, 1, 0, 0, 0)  # ICC header: creation date and time
    icc[84:100] = bytes(16)  # profile ID: all zeros means "not computed"
    return bytes(icc)


def gray_to_srgb(gray: np.ndarray, profile: bytes | None, notes: list[str]) -> np.ndarray:
    """Bring gray data tagged with a gray profile (Gray Gamma 2.2, Dot Gain 20%, ...) to sRGB
    gray, through the profile's own tone curve, at the data's own precision."""
    space = icc_color_space(profile)
    if space is None:
        return gray
    name = describe_icc(profile) or "embedded"
    if space != "GRAY":
        notes.append(f"{space} ICC profile '{name}' ignored on gray pixels")
        return gray
    top = 65535 if gray.dtype == np.uint16 else 255
    trc = gray_trc(profile or b"")
    if trc is not None:
        levels = np.arange(top + 1, dtype=np.float64) / top
        lut = np.clip(np.rint(color.linear_to_srgb(trc(levels)) * top), 0, top).astype(gray.dtype)
        notes.append(f"gray ICC profile '{name}' converted to sRGB")
        return lut[gray]
    if gray.dtype == np.uint8:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(profile or b""))
            dst = ImageCms.createProfile("sRGB")
            transform = ImageCms.buildTransform(src, dst, "L", "RGB", flags=ImageCms.Flags.NOOPTIMIZE)
            rgb = ImageCms.applyTransform(Image.fromarray(gray), transform)
            notes.append(f"gray ICC profile '{name}' converted to sRGB")
            return luminance8(np.asarray(rgb))
        except Exception as err:
            notes.append(f"gray ICC profile '{name}' not applied: {one_line(err)}")
            return gray
    notes.append(f"gray ICC profile '{name}' not applied: no tone curve usable at 16 bits")
    return gray


def gray_trc(icc: bytes) -> Callable[[np.ndarray], np.ndarray] | None:
    """The gray tone curve (kTRC: 'curv' or 'para') of an ICC profile as a function from
    device gray in [0, 1] to relative luminance Y in [0, 1]; None if it has no usable one.
    With a Lab connection space the curve gives L*/100 rather than Y (ICC.1 F.2)."""
    try:
        (count,) = struct.unpack_from(">I", icc, 128)
        for i in range(count):
            sig, offset, _ = struct.unpack_from(">4sII", icc, 132 + 12 * i)
            if sig == b"kTRC":
                curve = _parse_curve(icc, offset)
                if curve is None or icc[20:24] != b"Lab ":
                    return curve
                return lambda x: color.lightness_to_luminance(100.0 * curve(x)).astype(np.float64)
    except struct.error:
        return None
    return None


def _parse_curve(icc: bytes, at: int) -> Callable[[np.ndarray], np.ndarray] | None:
    kind = icc[at : at + 4]
    if kind == b"curv":
        (n,) = struct.unpack_from(">I", icc, at + 8)
        if n == 0:
            return lambda x: np.asarray(x, dtype=np.float64)
        if n == 1:
            gamma = struct.unpack_from(">H", icc, at + 12)[0] / 256.0
            return lambda x: np.power(np.asarray(x, dtype=np.float64), gamma)
        table = np.frombuffer(icc, dtype=">u2", count=n, offset=at + 12).astype(np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, n)
        return lambda x: np.interp(np.asarray(x, dtype=np.float64), grid, table)
    if kind == b"para":
        (function,) = struct.unpack_from(">H", icc, at + 8)
        n_params = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(function)
        if n_params is None:
            return None
        p = [v / 65536.0 for v in struct.unpack_from(f">{n_params}i", icc, at + 12)]
        g, a, b, c, d, e, f = (p + [0.0] * 7)[:7]
        if function == 1:
            d = -b / a if a else 0.0
        if function == 2:
            d, e = (-b / a if a else 0.0), c

        def curve(x: np.ndarray) -> np.ndarray:
            x = np.asarray(x, dtype=np.float64)
            if function == 0:
                return np.power(x, g)
            below = c * x + f if function == 4 else (c * x if function == 3 else np.full_like(x, e))
            above = np.power(np.clip(a * x + b, 0.0, None), g) + (e if function in (2, 4) else 0.0)
            return np.clip(np.where(x >= d, above, below), 0.0, 1.0)

        return curve
    return None


def rgb_to_srgb(img: Image.Image, profile: bytes | None, notes: list[str]) -> Image.Image:
    """RGB in another space (Adobe RGB, ProPhoto...) goes to sRGB before its luminance is
    taken: the colour maths downstream is sRGB."""
    name = describe_icc(profile) or "embedded"
    if name.lower().startswith("srgb"):
        return img
    try:
        src = ImageCms.ImageCmsProfile(io.BytesIO(profile or b""))
        rgb = ImageCms.profileToProfile(img.convert("RGB"), src, ImageCms.createProfile("sRGB"), outputMode="RGB")
    except Exception as err:
        notes.append(f"RGB ICC profile '{name}' not applied: {one_line(err)}")
        return img
    notes.append(f"RGB ICC profile '{name}' converted to sRGB")
    if img.mode == "RGBA":
        rgb.putalpha(img.getchannel("A"))
    return rgb


def cmyk_to_srgb(img: Image.Image, profile: bytes | None, notes: list[str]) -> Image.Image:
    if icc_color_space(profile) == "CMYK":
        name = describe_icc(profile) or "embedded"
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(profile or b""))
            out = ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
            notes.append(f"CMYK ICC profile '{name}' converted to sRGB")
            return out
        except Exception as err:
            notes.append(f"CMYK ICC profile '{name}' not applied: {one_line(err)}")
    return img.convert("RGB")


# ------------------------------------------------------------------------------------- writing


def into_input_rgb_space(pixels: np.ndarray, profile: bytes | None, notes: list[str]) -> tuple[np.ndarray, bytes | None]:
    """An RGB input's ICC profile is kept: the (sRGB) result is converted into that profile's
    space and tagged with it, so the output lives where the input did. A gray profile never
    reaches an RGB file (None: tag sRGB). LittleCMS converts 8-bit data only; 16-bit results
    stay sRGB, with a note."""
    if icc_color_space(profile) != "RGB":
        return pixels, None
    name = describe_icc(profile) or "embedded"
    if name.lower().startswith("srgb"):
        return pixels, profile
    if pixels.dtype != np.uint8:
        notes.append(f"RGB profile {name!r} not kept for 16-bit output: written as sRGB")
        return pixels, None
    mode = "RGBA" if pixels.shape[2] == 4 else "RGB"
    try:
        dest = ImageCms.ImageCmsProfile(io.BytesIO(profile or b""))
        img = ImageCms.profileToProfile(Image.fromarray(pixels, mode), ImageCms.createProfile("sRGB"), dest, outputMode=mode)
    except Exception as err:  # noqa: BLE001 - a profile LittleCMS cannot use: stay sRGB
        notes.append(f"RGB profile {name!r} not kept ({one_line(err)}): written as sRGB")
        return pixels, None
    return np.asarray(img), profile


