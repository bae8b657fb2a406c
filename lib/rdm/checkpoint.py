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
import json
import os
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from . import __version__
from .atomic import atomic_output
from .errors import RdmError
from .models import build
from .sets import _jsonable, sha256_file

FORMAT = "rdm-checkpoint/1"
KINDS = ("cnn", "dcae", "purified")


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
        "meta": json.dumps(_jsonable(meta)),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }
    if trainer is not None:
        blob["trainer"] = dict(trainer)
    path = Path(path)
    with atomic_output(path) as tmp:
        torch.save(blob, tmp)
    return path


def read_raw(path: os.PathLike | str) -> dict:
    """The checkpoint dict, loaded safely; one-line RdmError for anything else."""
    path = Path(path)
    if not path.exists():
        raise RdmError(f"{path}: no such checkpoint")
    if path.is_dir():
        raise RdmError(f"{path}: is a directory, not a checkpoint")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise RdmError(f"{path}: refused: the file holds objects other than tensors "
                       "(a checkpoint must never run code)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError) as e:
        raise RdmError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise RdmError(f"{path}: not an rdm checkpoint (no '{FORMAT}' format tag)")
    try:
        blob["meta"] = json.loads(blob["meta"])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise RdmError(f"{path}: checkpoint metadata is missing or corrupt") from None
    if blob["meta"].get("kind") not in KINDS:
        raise RdmError(f"{path}: unknown checkpoint kind {blob['meta'].get('kind')!r}")
    if not isinstance(blob.get("state_dict"), dict):
        raise RdmError(f"{path}: checkpoint has no weights")
    return blob


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
    model = build(meta["arch"])
    try:
        model.load_state_dict(blob["state_dict"], strict=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
        raise RdmError(f"{path}: weights do not fit the architecture ({first})") from None
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
