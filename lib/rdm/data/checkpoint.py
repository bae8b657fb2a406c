"""Checkpoints: enough to rebuild the model with no other file, and never code.

A checkpoint is a ``torch.save`` of a plain dict of tensors, strings and numbers::

    {"format": "rdm-checkpoint/1",
     "meta": "<JSON>",            # kind, arch, preset, classes, input_shape, recipe,
                                  # parent, datasets (sha256), seed, history, version
     "state_dict": {...},         # model weights
     "trainer": {...}}            # optional: optimizer state, epoch, RNG, for --resume

Loading uses ``torch.load(weights_only=True)``, which refuses anything but tensors
and plain containers, so a checkpoint can never run code. In plain PyTorch::

    ck = torch.load("baseline.ckpt", weights_only=True)
    meta = json.loads(ck["meta"]); weights = ck["state_dict"]
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from rdm import __version__
from rdm.data.atomic import write_bytes
from rdm.data.guard import require_regular_file
from rdm.errors import RdmError
from rdm.models import build
from rdm.data.sets import MAX_CHANNELS, MAX_SIDE, jsonable, sha256_file

FORMAT = "rdm-checkpoint/1"
KINDS = ("cnn", "dcae", "purified")
MAX_PARAMETERS = 50_000_000      # 200 MB of float32: far above any model here, far below harm
# what a checkpoint may declare before a byte of it is inflated: the weights in float64 with an
# optimiser's two moments beside them, and a bounded number of archive entries
MAX_CHECKPOINT_BYTES = 4 * 8 * MAX_PARAMETERS + (64 << 20)
MAX_ARCHIVE_ENTRIES = 100_000
_BUILD_ERRORS = (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError,
                 ZeroDivisionError, OverflowError, AssertionError, RecursionError, NotImplementedError)


@dataclass
class Checkpoint:
    path: Path
    model: nn.Module
    meta: dict
    trainer: dict | None
    sha256: str

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes", []))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.meta["input_shape"])

    @property
    def preset_name(self) -> str:
        return self.meta.get("preset", {}).get("name", "")


def save_checkpoint(path: os.PathLike | str, model: nn.Module, meta: Mapping[str, Any],
                    trainer: Mapping[str, Any] | None = None) -> Path:
    """Write atomically. ``meta`` must hold at least kind, arch, classes, input_shape."""
    meta = dict(meta)
    for key in ("kind", "arch", "classes", "input_shape"):
        if key not in meta:
            raise ValueError(f"checkpoint meta lacks '{key}'")
    meta.setdefault("rdm_version", __version__)
    meta.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    blob: dict[str, Any] = {
        "format": FORMAT,
        "meta": json.dumps(jsonable(meta)),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    if trainer is not None:
        blob["trainer"] = dict(trainer)
    buf = io.BytesIO()        # serialised in memory, written by Python: a full disk is one clear error
    torch.save(blob, buf)
    return write_bytes(Path(path), buf.getvalue())


def read_raw(path: os.PathLike | str) -> dict:
    """The checkpoint dict, loaded safely; one-line RdmError for anything else."""
    path = require_regular_file(path, "checkpoint")     # a FIFO or a device: refused, never waited on
    with open(path, "rb") as f:
        head = f.read(2)
    if not zipfile.is_zipfile(path) and not (len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
        raise RdmError(f"{path}: not a readable checkpoint (not a PyTorch file)")   # neither zip nor pickle
    if zipfile.is_zipfile(path):
        check_archive(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights only" in str(e).lower():
            raise RdmError(f"{path}: refused: the file holds objects other than tensors "
                           "(a checkpoint must never run code)") from None
        raise RdmError(f"{path}: not a readable checkpoint (not a PyTorch file)") from None
    except Exception as e:
        if not zipfile.is_zipfile(path):
            raise RdmError(f"{path}: not a readable checkpoint (not a PyTorch file)") from None
        raise RdmError(f"{path}: not a readable checkpoint ({_short(e)})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise RdmError(f"{path}: not an rdm checkpoint (no '{FORMAT}' format tag)")
    try:
        blob["meta"] = json.loads(blob["meta"])
    except (KeyError, TypeError, ValueError):
        raise RdmError(f"{path}: checkpoint metadata is missing or corrupt") from None
    check_meta(blob["meta"], path)
    sd = blob.get("state_dict")
    if not isinstance(sd, dict) or not sd:
        raise RdmError(f"{path}: checkpoint has no weights")
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise RdmError(f"{path}: checkpoint weights are not a mapping of names to tensors")
    if blob.get("trainer") is not None and not isinstance(blob["trainer"], dict):
        raise RdmError(f"{path}: checkpoint trainer state is not a mapping")
    return blob


def check_archive(path: Path) -> None:
    """The zip archive's declared sizes against the schema's bounds, before any tensor is read.

    torch.save stores every entry uncompressed; a compressed entry could inflate a small file to
    gigabytes inside the loader, so it is refused, as is an entry whose declared size differs
    from its stored size or lies past the file's end, more than MAX_ARCHIVE_ENTRIES entries, or
    more than MAX_CHECKPOINT_BYTES in all."""
    try:
        with zipfile.ZipFile(path) as z:
            entries = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise RdmError(f"{path}: not a readable checkpoint (a damaged archive: {_short(e)})") from None
    size = path.stat().st_size
    if len(entries) > MAX_ARCHIVE_ENTRIES:
        raise RdmError(f"{path}: the archive has {len(entries):,} entries (at most {MAX_ARCHIVE_ENTRIES:,}); refused")
    total = 0
    for e in entries:
        if e.compress_type != zipfile.ZIP_STORED:
            raise RdmError(f"{path}: archive entry {e.filename[:80]!r} is compressed (PyTorch stores entries "
                           "uncompressed; a compressed one can inflate without bound); refused")
        if e.file_size != e.compress_size or e.header_offset + e.compress_size > size:
            raise RdmError(f"{path}: archive entry {e.filename[:80]!r} declares {e.file_size:,} bytes but stores "
                           f"{e.compress_size:,} (a tampered or truncated file); refused")
        total += e.file_size
    if total > MAX_CHECKPOINT_BYTES:
        raise RdmError(f"{path}: the archive declares {total:,} bytes (at most {MAX_CHECKPOINT_BYTES:,}); refused")


def check_meta(meta: Any, path: Path) -> None:
    """The metadata's schema: types, required keys, sane bounds; before anything is built."""
    def bad(what: str) -> RdmError:
        return RdmError(f"{path}: checkpoint metadata: {what}")

    if not isinstance(meta, dict):
        raise bad("not a JSON object")
    if meta.get("kind") not in KINDS:
        raise RdmError(f"{path}: unknown checkpoint kind {str(meta.get('kind'))[:40]!r}")
    if not isinstance(meta.get("arch"), dict) or not isinstance(meta["arch"].get("name"), str):
        raise bad("'arch' must be an object with a 'name'")
    shape = meta.get("input_shape")
    if (not isinstance(shape, list) or len(shape) != 3 or not all(type(v) is int for v in shape)
            or not (1 <= shape[0] <= MAX_CHANNELS and 1 <= shape[1] <= MAX_SIDE and 1 <= shape[2] <= MAX_SIDE)):
        raise bad(f"'input_shape' must be [C, H, W] with 1 ≤ C ≤ {MAX_CHANNELS}, 1 ≤ H, W ≤ {MAX_SIDE}")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or len(classes) > 100_000:
        raise bad("'classes' must be a list of names")
    if meta["kind"] != "dcae" and len(classes) < 2:
        raise bad("a classifier needs two or more 'classes'")
    for key in ("preset", "recipe", "parent"):
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise bad(f"'{key}' must be an object")
    if not isinstance(meta.get("history", []), list):
        raise bad("'history' must be a list")


def _build_checked(meta: dict, state_dict: dict, path: Path) -> nn.Module:
    """Build the architecture on the meta device first (no memory), check its size, its weights'
    names and shapes and one forward pass at ``input_shape``; only then build it for real."""
    def bad(what: str) -> RdmError:
        return RdmError(f"{path}: {what}")

    try:
        with torch.device("meta"):
            ghost = build(meta["arch"])
    except RdmError as e:
        raise bad(str(e)) from None
    except _BUILD_ERRORS as e:
        raise bad(f"checkpoint architecture is malformed ({_short(e)})") from None
    if not isinstance(ghost, nn.Module):
        raise bad("checkpoint architecture is malformed")
    n_params = sum(t.numel() for t in ghost.state_dict().values())
    if n_params > MAX_PARAMETERS:
        raise bad(f"architecture has {n_params:,} parameters (more than {MAX_PARAMETERS:,}); refused")
    want = {k: tuple(v.shape) for k, v in ghost.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in state_dict.items()}
    if set(want) != set(got):
        miss, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        what = f"missing {miss[0]}" if miss else f"unexpected {extra[0]}"
        raise bad(f"weights do not fit the architecture ({what})")
    for k, shp in want.items():
        if got[k] != shp:
            raise bad(f"weights do not fit the architecture ({k} has shape {list(got[k])}, expected {list(shp)})")
        if state_dict[k].dtype.is_complex or (state_dict[k].dtype != ghost.state_dict()[k].dtype
                                              and not state_dict[k].dtype.is_floating_point):
            raise bad(f"weights do not fit the architecture ({k} has dtype {state_dict[k].dtype})")
    for k, v in state_dict.items():     # parameters and buffers: one NaN makes a model answer a constant
        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all()):
            raise bad(f"weight {k} has NaN or inf values; refused")
    try:
        model = build(meta["arch"])
        model.load_state_dict(state_dict, strict=True)
    except _BUILD_ERRORS as e:
        raise bad(f"weights do not fit the architecture ({_short(e)})") from None
    try:
        out = _shape_probe(model, ghost, meta["input_shape"])
    except _BUILD_ERRORS as e:
        raise bad(f"architecture does not take input_shape {meta['input_shape']} ({_short(e)})") from None
    if not isinstance(out, torch.Tensor):
        raise bad("architecture gives no tensor")
    if meta["kind"] == "dcae":
        if tuple(out.shape[1:]) != tuple(meta["input_shape"]):
            raise bad(f"the autoencoder's output {list(out.shape[1:])} differs from its input_shape")
    elif out.dim() != 2 or out.shape[1] not in (len(meta["classes"]), 1):
        raise bad(f"the classifier gives {list(out.shape[1:])} outputs for {len(meta['classes'])} classes")
    return model


# One forward pass checks that the architecture takes the input shape and gives the right output. On
# the meta device it costs no memory, but the meta kernels import torch._dynamo (about 1.5 s of CPU at
# every command's start); a model whose largest activation stays under this many values runs one zero
# image for real instead (milliseconds, at most 256 MB).
PROBE_VALUES = 1 << 26


def _shape_probe(model: nn.Module, ghost: nn.Module, input_shape) -> torch.Tensor:
    """The model's output for a zero batch at ``input_shape``: the real model on one image when its
    largest activation (widest convolution × the image's pixels) is bounded, else the meta ghost."""
    c, h, w = (int(v) for v in input_shape)
    widest = max([c, *(m.out_channels for m in ghost.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))])
    if widest * h * w <= PROBE_VALUES:
        training = model.training
        try:
            with torch.no_grad():
                return model.eval()(torch.zeros(1, c, h, w))      # eval: batch norm's statistics untouched
        finally:
            model.train(training)
    return ghost.eval()(torch.empty(2, c, h, w, device="meta"))


def _short(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[0] if lines else type(e).__name__)[:160]


def load_checkpoint(path: os.PathLike | str, device: torch.device | str = "cpu",
                    expect_kind: str | tuple[str, ...] | None = None) -> Checkpoint:
    """Rebuild the model from the file alone; returned in eval mode on ``device``."""
    path = Path(path)
    blob = read_raw(path)
    meta = blob["meta"]
    if expect_kind is not None:
        kinds = (expect_kind,) if isinstance(expect_kind, str) else tuple(expect_kind)
        if meta["kind"] not in kinds:
            raise RdmError(f"{path}: is a {meta['kind']} checkpoint, expected {' or '.join(kinds)}")
    model = _build_checked(meta, blob["state_dict"], path)
    model.to(device).eval()
    return Checkpoint(path=path, model=model, meta=meta, trainer=blob.get("trainer"),
                      sha256=sha256_file(path))


def input_checks(ckpt: Checkpoint, set_info, set_label: str | None = None) -> None:
    """One-line errors when a set does not fit a model (channels, size, classes)."""
    name = ckpt.path.name
    sname = set_label or set_info.path.name
    c, h, w = ckpt.input_shape
    sc, sh, sw = set_info.shape
    if sc != c:
        raise RdmError(f"{sname} has {sc} channel{'s' if sc != 1 else ''} but {name} expects {c}")
    if (sh, sw) != (h, w):
        raise RdmError(f"{sname} has {sh}×{sw} images but {name} expects {h}×{w}")
    if ckpt.classes and list(set_info.classes) != ckpt.classes:
        raise RdmError(f"{sname} has classes {list(set_info.classes)} but {name} expects {ckpt.classes}")
    from rdm.data.presets import data_mismatch
    from rdm.data.sets import prep_conflict, set_preset

    embedded, trained = set_preset(set_info), ckpt.meta.get("preset")
    diff = data_mismatch(embedded.as_dict(), trained) if embedded is not None and isinstance(trained, dict) else None
    if diff:
        raise RdmError(f"{sname} was prepared with preset '{embedded.name}' but {name} was trained with preset "
                       f"'{trained.get('name', '?')}', which differs ({diff})")
    leak = prep_conflict(ckpt.meta.get("prep"), set_info)
    if leak:
        raise RdmError(f"{sname} has {leak}; use the sets of the run {name} was trained on")
