"""Decode and resize one image to the preset's C×H×W float32 in [0, 1].

Pillow, strict: a truncated file raises (``ImageFile.LOAD_TRUNCATED_IMAGES`` is
kept False and every image is fully decoded with ``.load()``). Resizing is Pillow's
antialiased LANCZOS filter, applied to every image whose size differs from the preset's
(the one 50×47 lung patch is stretched to 52×52 like the others), and counted, so the
command can say how many it resized; :class:`Decode` refuses instead when resizing is off.
Intensities: see :class:`Decode`. Grey images are
replicated to three channels where the preset has three; colour images are
converted to grey (Pillow's ``L``: ITU-R 601-2 luma) where it has one.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
import warnings
from collections import Counter

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


class Decode:
    """Decodes images to the preset's C×H×W float32 in [0, 1] and records what it did.

    - 8-bit images (L, RGB, palette, …): value / 255.
    - 16-bit and float images, and DICOM/NIfTI slices: the preset's intensity window
      ``[lo, hi]`` (``[intensity] window``, in ``unit``, HU for CT) maps linearly to [0, 1],
      clipped: ``x = clip((v - lo) / (hi - lo), 0, 1)``. Without a window, 16-bit images are
      divided by 65535 (their type's range) and float images must already lie in [0, 1].
      Never per-image min–max: that would give one value a different meaning in each image.
    - An image whose size differs from the preset's is resized (LANCZOS) unless ``resize`` is
      False, when it is a bad input; ``resized`` counts the sizes met, for the command to say.
    - A float image with NaN or inf pixels is a bad input (named; ``--skip-bad`` skips it).

    ``counts`` tallies the mapping used per kind of image; :meth:`record` is what a set stores
    in its ``intensity`` attribute.
    """

    def __init__(self, shape: tuple[int, int, int], intensity: dict | None = None, resize: bool = True):
        self.shape = tuple(shape)
        inten = dict(intensity or {})
        w = inten.get("window")
        self.window: tuple[float, float] | None = (float(w[0]), float(w[1])) if w else None
        self.unit = str(inten.get("unit", "")) if w else ""
        self.resize = resize
        self.resized: Counter = Counter()     # (width, height) -> images of that size resized
        self.counts: Counter = Counter()      # "8-bit", "16-bit", "float", "dicom", ... -> images

    # ------------------------------------------------------------------ entry points
    def image(self, data: bytes, name: str) -> np.ndarray:
        """Bytes of an image file Pillow reads -> C×H×W float32 in [0, 1]; BadInput if unusable."""
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
        return self.pil(im, name)

    def pil(self, im: Image.Image, name: str) -> np.ndarray:
        c, h, w = self.shape
        if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
            a = np.asarray(im, dtype=np.float64 if im.mode in ("I", "F") else np.float32)
            kind = "float" if im.mode == "F" else "16-bit"
            return self.values(a, name, kind)
        self.check_size(im.width, im.height, name)
        if im.mode in ("RGBA", "LA", "P", "PA"):  # transparency: composite over black
            im = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", im.size, (0, 0, 0, 255)), im)
        target_mode = "L" if c == 1 else ("L" if im.mode in ("L", "1") else "RGB")
        im = im.convert(target_mode)
        if im.size != (w, h):
            im = im.resize((w, h), RESAMPLE)
        self.counts["8-bit"] += 1
        a = np.asarray(im, dtype=np.float32) / 255.0
        if a.ndim == 2:
            a = np.broadcast_to(a[None], (c, h, w))
        else:
            a = a.transpose(2, 0, 1)
        return np.ascontiguousarray(a, dtype=np.float32)

    def values(self, a: np.ndarray, name: str, kind: str) -> np.ndarray:
        """A 2-D array of 16-bit, float or physical (HU) values -> the preset's window."""
        a = np.asarray(a)
        bad = int(np.count_nonzero(~np.isfinite(a))) if a.dtype.kind == "f" else 0
        if bad:
            raise BadInput(name, f"{bad} pixel(s) are NaN or inf")
        if self.window is not None:
            lo, hi = self.window
        elif kind == "16-bit" and a.size and a.min() >= 0 and a.max() <= 65535:
            lo, hi = 0.0, 65535.0
        elif kind == "float" and a.size and a.min() >= 0 and a.max() <= 1:
            lo, hi = 0.0, 1.0
        else:
            rng = f"{float(a.min()):.6g}..{float(a.max()):.6g}" if a.size else "empty"
            raise BadInput(name, f"{kind} image (values {rng}) but the preset has no [intensity] window to "
                                 "map it to [0, 1]")
        self.counts[kind] += 1
        return self.floats(a, name, lo, hi)

    def floats(self, a: np.ndarray, name: str, lo: float, hi: float) -> np.ndarray:
        """Scale [lo, hi] to [0, 1] (clipped), resize if allowed, replicate to the channels."""
        c, h, w = self.shape
        if a.ndim != 2:
            raise BadInput(name, f"expected a 2-D image, got shape {tuple(a.shape)}")
        self.check_size(a.shape[1], a.shape[0], name)
        return float_to_array(a, self.shape, lo, hi)

    def check_size(self, width: int, height: int, name: str) -> None:
        _, h, w = self.shape
        if (width, height) == (w, h):
            return
        if not self.resize:
            raise BadInput(name, f"is {width}x{height}, the preset's size is {w}x{h} (resizing is off)")
        self.resized[(width, height)] += 1

    # ------------------------------------------------------------------ what happened
    def record(self) -> dict:
        """The mapping, as the set's ``intensity`` attribute records it: the window and, per kind of
        image met, how many there were and how their values became [0, 1]."""
        lo_hi = "clip((value - lo) / (hi - lo), 0, 1)"
        rules = {"8-bit": "value / 255", "16-bit": lo_hi if self.window else "value / 65535",
                 "float": lo_hi if self.window else "value (in [0, 1])", "dicom": f"HU = value * RescaleSlope + "
                 f"RescaleIntercept; {lo_hi}", "nifti": f"value * scl_slope + scl_inter; {lo_hi}",
                 "CT patch, HU window": lo_hi,
                 "MRI slice, own min..max": "(value - min) / (max - min) of each slice (no physical unit)"}
        out: dict = {"unit": self.unit, "window": list(self.window) if self.window else None}
        out["kinds"] = {k: {"images": n, "mapping": rules.get(k, "")} for k, n in sorted(self.counts.items())}
        return out

    def resize_note(self) -> str | None:
        """One line: how many images were resized and from which sizes (None: none were)."""
        n = sum(self.resized.values())
        if not n:
            return None
        _, h, w = self.shape
        sizes = sorted(self.resized.items(), key=lambda kv: (-kv[1], kv[0]))
        shown = ", ".join(f"{k[0]}x{k[1]} ({v})" for k, v in sizes[:5])
        more = f" and {len(sizes) - 5} more sizes" if len(sizes) > 5 else ""
        return f"resized {n} image(s) to {w}x{h} from {shown}{more} (--no-resize refuses instead)"


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
