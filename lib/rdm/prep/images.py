"""Decode and resize one image to the preset's C×H×W float32 in [0, 1].

Pillow, strict: a truncated file raises (``ImageFile.LOAD_TRUNCATED_IMAGES`` is
kept False and every image is fully decoded with ``.load()``). Resizing is Pillow's
antialiased LANCZOS filter, applied to every image, whatever its size (the one
50×47 lung patch is stretched to 52×52 like the others). Grey images are
replicated to three channels where the preset has three; colour images are
converted to grey (Pillow's ``L``: ITU-R 601-2 luma) where it has one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
import warnings

import numpy as np
from PIL import Image, ImageFile

from rdm.errors import RdmError

RESAMPLE = Image.Resampling.LANCZOS
ImageFile.LOAD_TRUNCATED_IMAGES = False


def display_name(path: os.PathLike | str) -> str:
    """A file name as text, whatever its bytes: undecodable bytes become ``\\xNN``."""
    return os.fsencode(os.fspath(path)).decode("utf-8", "backslashreplace")


class BadInput(RdmError):
    """One input file that cannot be used; ``--skip-bad`` skips these."""

    def __init__(self, file: str, problem: str):
        super().__init__(f"{file}: {problem}")
        self.file = str(file)
        self.problem = problem


def read_input(path) -> bytes:
    """The bytes of one input file, or :class:`BadInput` naming it."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise BadInput(display_name(path), f"cannot read ({e.strerror or e})") from None


def decode_image(data: bytes, name: str, shape: tuple[int, int, int]) -> np.ndarray:
    """Bytes of an image file -> C×H×W float32 in [0, 1]; :class:`BadInput` if unusable."""
    c, h, w = shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            im.load()
    except Image.UnidentifiedImageError:
        raise BadInput(name, "not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise BadInput(name, f"cannot decode image ({_short(e)})") from None
    if im.width < 1 or im.height < 1:
        raise BadInput(name, f"image has size {im.width}x{im.height}")
    return pil_to_array(im, shape)


def pil_to_array(im: Image.Image, shape: tuple[int, int, int]) -> np.ndarray:
    c, h, w = shape
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # high bit depth grey: scale its own range to [0, 1], resize as float
        a = np.asarray(im, dtype=np.float32)
        return float_to_array(a, shape, lo=float(a.min()), hi=float(a.max()))
    if im.mode in ("RGBA", "LA", "P", "PA"):  # transparency: composite over black
        im = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im)
    target_mode = "L" if c == 1 else ("L" if im.mode in ("L", "1") else "RGB")
    im = im.convert(target_mode)
    if im.size != (w, h):
        im = im.resize((w, h), RESAMPLE)
    a = np.asarray(im, dtype=np.float32) / 255.0
    if a.ndim == 2:
        a = np.broadcast_to(a[None], (c, h, w))
    else:
        a = a.transpose(2, 0, 1)
    return np.ascontiguousarray(a, dtype=np.float32)


def float_to_array(a: np.ndarray, shape: tuple[int, int, int], lo: float, hi: float) -> np.ndarray:
    """A 2-D float array -> C×H×W float32 in [0, 1]: scale [lo, hi] to [0, 1], resize, clip."""
    c, h, w = shape
    a = np.asarray(a, dtype=np.float32)
    a = (np.clip(a, lo, hi) - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    if a.shape != (h, w):
        a = np.asarray(Image.fromarray(a).resize((w, h), RESAMPLE), dtype=np.float32)
    a = np.clip(a, 0.0, 1.0)
    return np.ascontiguousarray(np.broadcast_to(a[None], (c, h, w)), dtype=np.float32)


def _short(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return s[0] if s else type(e).__name__
