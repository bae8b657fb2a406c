"""Presets: the paper's modalities as editable TOML files (``lib/rdm/data/presets/*.toml``).

``--preset brain`` names a built-in preset; ``--preset my/brain.toml`` reads a user's copy.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rdm.errors import RdmError
from rdm.data.guard import require_regular_file

BUILTIN = ("brain", "leukemia", "lung")


@dataclass(frozen=True)
class Preset:
    name: str
    modality: str
    classes: tuple[str, ...]
    channels: int
    size: tuple[int, int]
    split: dict[str, float]
    group_col: str = ""
    description: str = ""
    model: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    # what a pixel value in [0, 1] means physically: ``unit`` (e.g. "HU") over ``window`` [lo, hi]
    # mapped linearly to [0, 1] (empty: no physical unit beyond 8-bit grey levels)
    intensity: dict[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.size)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "modality": self.modality, "classes": list(self.classes),
            "channels": self.channels, "size": list(self.size), "split": dict(self.split),
            "group_col": self.group_col, "description": self.description,
            "model": dict(self.model), "train": dict(self.train),
            **({"intensity": dict(self.intensity)} if self.intensity else {}),
        }


def preset_path(name_or_path: str) -> Path:
    p = Path(name_or_path)
    # a built-in name is the built-in preset even where a folder of that name sits in the
    # working directory (rdm-prep -o lung makes one); a file of any name is a preset file
    if p.suffix == ".toml" or p.is_file() or (p.exists() and name_or_path not in BUILTIN):
        return p
    if name_or_path not in BUILTIN:
        raise RdmError(f"unknown preset '{name_or_path}' (built-in: {', '.join(BUILTIN)}; or a .toml path)")
    return Path(str(resources.files("rdm.data.presets") / f"{name_or_path}.toml"))


def preset_file(name_or_path: str | None) -> Path | None:
    """The user's file a ``--preset`` value reads (None for a built-in name or nothing): one of the
    inputs a command's output guard protects."""
    if not name_or_path:
        return None
    try:
        p = preset_path(name_or_path)
    except RdmError:
        return None
    return p if p.exists() and name_or_path not in BUILTIN else None


def load_preset(name_or_path: str) -> Preset:
    path = preset_path(name_or_path)
    if path.exists() and not path.is_dir():
        require_regular_file(path, "preset file")       # a FIFO: refused, never waited on
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise RdmError(f"{path}: no such preset file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as e:
        raise RdmError(f"{path}: not a readable preset file ({type(e).__name__})") from None
    except tomllib.TOMLDecodeError as e:
        raise RdmError(f"{path}: not valid TOML ({e})") from None
    return preset_from_dict(data, source=str(path))


def preset_from_dict(data: dict[str, Any], source: str = "") -> Preset:
    where = source or "preset"
    try:
        p = Preset(
            name=str(data["name"]),
            modality=str(data.get("modality", "")),
            classes=tuple(str(c) for c in data["classes"]),
            channels=int(data["channels"]),
            size=(int(data["size"][0]), int(data["size"][1])),
            split={k: float(v) for k, v in data["split"].items()},
            group_col=str(data.get("group_col", "")),
            description=str(data.get("description", "")),
            model=dict(data.get("model", {})),
            train=dict(data.get("train", {})),
            source=source,
            intensity=dict(data.get("intensity", {})),
        )
    except KeyError as e:
        raise RdmError(f"{where}: missing key {e}") from None
    except (TypeError, ValueError, IndexError) as e:
        raise RdmError(f"{where}: malformed preset ({e})") from None
    if p.channels not in (1, 3):
        raise RdmError(f"{where}: channels must be 1 or 3, got {p.channels}")
    if len(p.classes) < 2 or len(set(p.classes)) != len(p.classes):
        raise RdmError(f"{where}: needs two or more distinct classes")
    if set(p.split) != {"train", "val", "test"} or abs(sum(p.split.values()) - 1) > 1e-6:
        raise RdmError(f"{where}: split must give train, val, test fractions summing to 1")
    if p.intensity:
        w = p.intensity.get("window")
        if not (isinstance(p.intensity.get("unit"), str) and isinstance(w, list) and len(w) == 2
                and all(isinstance(v, (int, float)) for v in w) and w[1] > w[0]):
            raise RdmError(f"{where}: [intensity] needs unit = \"NAME\" and window = [lo, hi] with lo < hi")
    if p.model.get("binary") and len(p.classes) != 2:
        raise RdmError(f"{where}: a binary (single-logit) head needs exactly 2 classes")
    return p
