"""Presets: the paper's modalities as editable TOML files (``lib/rdm/data/presets/*.toml``).

``--preset brain`` names a built-in preset; ``--preset my/brain.toml`` reads a user's copy.
Every key, its type, default and meaning is in :data:`KEYS` (and ``docs/presets.md``); a file is
checked as a whole and all its problems are listed in one error line. ``rdm-prep`` embeds the
full preset in every set (:data:`PRESET_ATTR`), so later commands need no preset file.
"""

from __future__ import annotations

import json
import math
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


# --------------------------------------------------------------------------- the schema
@dataclass(frozen=True)
class Key:
    """One preset key: its place (``table.key`` or ``key``), type, default and meaning."""

    path: str
    type: str                 # str, int, float, bool, list[str], list[int], [int, int], [float, float], table
    default: Any              # REQUIRED: must be given
    meaning: str


REQUIRED = object()
KEYS: tuple[Key, ...] = (
    Key("name", "str", REQUIRED, "the preset's name; sets record it in their `preset` attribute"),
    Key("modality", "str", "", "imaging modality (MRI, CT, Microscopic, ...), recorded in every set"),
    Key("description", "str", "", "one line for people"),
    Key("classes", "list[str]", REQUIRED, "class names in label order; two or more, distinct"),
    Key("channels", "int", REQUIRED, "1 (grey) or 3 (RGB); grey images are replicated to 3 channels, "
                                     "colour ones converted to grey (ITU-R 601-2 luma) for 1"),
    Key("size", "[int, int]", REQUIRED, "image height and width in pixels, each 1 to 8192"),
    Key("split", "table", REQUIRED, "train, val and test fractions (each in [0, 1]) summing to 1"),
    Key("group_col", "str", "", "manifest column whose rows must share a split (patient id); "
                                "`--group-col` overrides it"),
    Key("intensity.unit", "str", "", "the physical unit of the window (HU for CT); needs `window`"),
    Key("intensity.window", "[float, float]", None, "[lo, hi] with lo < hi: 16-bit, float, DICOM and NIfTI "
                                                   "values in this range map linearly to [0, 1] (clipped); "
                                                   "ε on [0, 1] is ε·(hi − lo) in `unit`"),
    Key("model.hidden", "list[int]", [128], "widths of the CNN head's hidden dense layers (each ≥ 1)"),
    Key("model.dropout", "float", 0.0, "dropout before the output layer, in [0, 1) (0: none)"),
    Key("model.binary", "bool", False, "one logit (sigmoid) instead of one per class; needs exactly 2 classes"),
    Key("train.epochs", "int", 20, "training epochs (≥ 1); `--epochs` overrides"),
    Key("train.batch_size", "int", 64, "batch size (≥ 1); `--batch-size` overrides"),
    Key("train.lr", "float", 1e-3, "Adam learning rate (> 0); `--lr` overrides"),
    Key("train.patience", "int", 0, "epochs without a better validation score before stopping (0: never); "
                                    "`--patience` overrides"),
    Key("train.weight_decay", "float", 0.0, "Adam weight decay (≥ 0)"),
)
TABLES = ("intensity", "model", "train")


def _check_type(v: Any, typ: str) -> bool:
    num = (int, float)
    if typ == "str":
        return isinstance(v, str)
    if typ == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if typ == "float":
        return isinstance(v, num) and not isinstance(v, bool) and math.isfinite(v)
    if typ == "bool":
        return isinstance(v, bool)
    if typ == "list[str]":
        return isinstance(v, list) and all(isinstance(e, str) for e in v)
    if typ == "list[int]":
        return isinstance(v, list) and all(isinstance(e, int) and not isinstance(e, bool) for e in v)
    if typ == "[int, int]":
        return isinstance(v, list) and len(v) == 2 and all(isinstance(e, int) and not isinstance(e, bool) for e in v)
    if typ == "[float, float]":
        return (isinstance(v, list) and len(v) == 2
                and all(isinstance(e, num) and not isinstance(e, bool) and math.isfinite(e) for e in v))
    if typ == "table":
        return isinstance(v, dict)
    raise AssertionError(typ)


def preset_problems(data: Any) -> list[str]:
    """Every problem of a preset's data at once (empty: valid): unknown, missing and mistyped keys
    and the rules between keys."""
    if not isinstance(data, dict):
        return ["a preset is a TOML table of keys"]
    problems: list[str] = []
    known = {k.path for k in KEYS}
    for top, v in data.items():
        if top in TABLES:
            if not isinstance(v, dict):
                problems.append(f"[{top}] must be a table")
                continue
            problems += [f"unknown key '{top}.{k}'" for k in v if f"{top}.{k}" not in known]
        elif top not in known:
            problems.append(f"unknown key '{top}'")
    ok: dict[str, Any] = {}
    for k in KEYS:
        head, _, tail = k.path.partition(".")
        table = data.get(head) if tail else data
        v = table.get(tail or head, _MISSING) if isinstance(table, dict) else _MISSING
        if v is _MISSING:
            if k.default is REQUIRED:
                problems.append(f"missing key '{k.path}' ({k.type})")
        elif not _check_type(v, k.type):
            problems.append(f"'{k.path}' must be {k.type}, got {v!r}")
        else:
            ok[k.path] = v
    return problems + _rules(ok)


_MISSING = object()


def _rules(v: dict[str, Any]) -> list[str]:
    out = []
    if "channels" in v and v["channels"] not in (1, 3):
        out.append(f"'channels' must be 1 or 3, got {v['channels']}")
    if "classes" in v and (len(v["classes"]) < 2 or len(set(v["classes"])) != len(v["classes"])
                           or not all(v["classes"])):
        out.append("'classes' needs two or more distinct, non-empty names")
    if "size" in v and not all(1 <= e <= 8192 for e in v["size"]):
        out.append(f"'size' must be two sides of 1 to 8192 pixels, got {v['size']}")
    if "split" in v:
        sp = v["split"]
        if set(sp) != {"train", "val", "test"} or not all(
                isinstance(f, (int, float)) and not isinstance(f, bool) and 0 <= f <= 1 for f in sp.values()) \
                or abs(sum(sp.values()) - 1) > 1e-6:
            out.append("'split' must give train, val and test fractions in [0, 1] summing to 1")
    if "intensity.window" in v and v["intensity.window"][1] <= v["intensity.window"][0]:
        out.append(f"'intensity.window' must be [lo, hi] with lo < hi, got {v['intensity.window']}")
    if ("intensity.unit" in v) != ("intensity.window" in v):
        out.append("[intensity] needs both unit and window")
    if v.get("model.binary") and "classes" in v and len(v["classes"]) != 2:
        out.append("'model.binary' (a single-logit head) needs exactly 2 classes")
    if "model.hidden" in v and not all(e >= 1 for e in v["model.hidden"]):
        out.append("'model.hidden' widths must be 1 or more")
    if "model.dropout" in v and not 0 <= v["model.dropout"] < 1:
        out.append(f"'model.dropout' must be in [0, 1), got {v['model.dropout']}")
    for k, lo in (("train.epochs", 1), ("train.batch_size", 1), ("train.patience", 0)):
        if k in v and v[k] < lo:
            out.append(f"'{k}' must be {lo} or more, got {v[k]}")
    if "train.lr" in v and not v["train.lr"] > 0:
        out.append(f"'train.lr' must be more than 0, got {v['train.lr']}")
    if "train.weight_decay" in v and v["train.weight_decay"] < 0:
        out.append(f"'train.weight_decay' must be 0 or more, got {v['train.weight_decay']}")
    return out


def preset_from_dict(data: dict[str, Any], source: str = "") -> Preset:
    """A checked :class:`Preset`; every problem of ``data`` is listed in one error line
    (``<source>: N problems: a; b; c``)."""
    where = source or "preset"
    problems = preset_problems(data)
    if problems:
        head = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
        raise RdmError(f"{where}: {head}: " + "; ".join(problems))
    return Preset(
        name=data["name"], modality=data.get("modality", ""), classes=tuple(data["classes"]),
        channels=data["channels"], size=(data["size"][0], data["size"][1]),
        split={k: float(v) for k, v in data["split"].items()}, group_col=data.get("group_col", ""),
        description=data.get("description", ""), model=dict(data.get("model", {})),
        train=dict(data.get("train", {})), source=source, intensity=dict(data.get("intensity", {})))


# --------------------------------------------------------------------------- presets inside sets
PRESET_ATTR = "preset_json"          # a set's attribute holding its full preset as JSON
DATA_KEYS = ("classes", "channels", "size", "intensity")   # what the pixels and labels mean


def preset_json(preset: Preset) -> str:
    return json.dumps(preset.as_dict(), sort_keys=True)


def preset_from_json(text: str, source: str) -> Preset:
    """The preset a set or checkpoint carries (JSON text), checked like a file."""
    try:
        data = json.loads(text)
    except ValueError:
        raise RdmError(f"{source}: its embedded preset is not JSON") from None
    if isinstance(data, dict) and not data.get("intensity"):
        data.pop("intensity", None)
    return preset_from_dict(data, source=f"{source} (embedded preset)")


def data_mismatch(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    """The first data-defining key (classes, channels, size, intensity) on which two presets'
    dicts differ, as ``key: A vs B``; None when they agree (training settings may differ)."""
    for k in DATA_KEYS:
        va, vb = a.get(k) or None, b.get(k) or None
        if k in ("classes", "size") and va is not None and vb is not None:
            va, vb = list(va), list(vb)
        if va != vb:
            return f"{k} {va if va is not None else 'none'} vs {vb if vb is not None else 'none'}"
    return None
