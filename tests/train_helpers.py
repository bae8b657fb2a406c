"""Small data for the training tests: a 3-class 1×24×24 preset and phantom sets of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from rdm.checkpoint import read_raw
from rdm.prep.synthetic import generate
from rdm.presets import load_preset
from rdm.sets import SetReader, SetWriter, make_provenance

TINY = """name = "tiny"
modality = "test"
classes = ["a", "b", "c"]
channels = 1
size = [24, 24]
split = { train = 0.6, val = 0.2, test = 0.2 }
[model]
hidden = [32]
dropout = 0.0
binary = false
[train]
epochs = 6
batch_size = 32
lr = 2e-3
patience = 3
"""


def tiny_preset(folder: Path, text: str = TINY, name: str = "tiny.toml") -> Path:
    p = Path(folder) / name
    p.write_text(text)
    return p


def phantoms(path: Path, preset: Path | str, n: int, seed: int, shape=None) -> Path:
    p = load_preset(str(preset))
    shape = shape or p.shape
    x, y, g = generate(n, p.num_classes, shape, seed=seed)
    with SetWriter(path, shape=shape, classes=p.classes, modality=p.modality, preset=p.name,
                   provenance=make_provenance(command="test", seed=seed), columns=["group"]) as w:
        w.append(x, y, group=g)
    return Path(path)


def noisy_copy(path: Path, clean: Path, eps: float = 0.05, seed: int = 0, with_source: bool = True,
               record_input: bool = True, rows: np.ndarray | None = None,
               source_index: np.ndarray | None = None) -> Path:
    """A stand-in adversarial set: clean rows + ε·sign(noise), with source_index and provenance."""
    with SetReader(clean) as r:
        idx = np.arange(r.n) if rows is None else np.asarray(rows)
        d = r.read_rows(idx, names=("x", "y"))
        info = r.info
    rng = np.random.default_rng(seed)
    x = np.clip(d["x"] + eps * np.sign(rng.standard_normal(d["x"].shape)), 0, 1).astype(np.float32)
    prov = make_provenance(command="noise", seed=seed, inputs=[clean] if record_input else [])
    with SetWriter(path, shape=info.shape, classes=info.classes, modality=info.modality, preset=info.preset,
                   provenance=prov, columns=["source_index"] if with_source else []) as w:
        src = idx if source_index is None else np.asarray(source_index)
        w.append(x, d["y"], **({"source_index": src} if with_source else {}))
    return Path(path)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return read_raw(path)["state_dict"]


def same_weights(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def accuracy(ckpt: Path, test: Path) -> float:
    from rdm.checkpoint import load_checkpoint
    from rdm.models import predict

    m = load_checkpoint(ckpt).model
    with SetReader(test) as r:
        d = r.read(0, r.n)
    with torch.no_grad():
        p = predict(m(torch.from_numpy(d["x"]))).numpy()
    return float((p == d["y"]).mean())
