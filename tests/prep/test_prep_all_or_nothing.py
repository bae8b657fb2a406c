"""rdm-prep's three sets are one unit: a failed rename leaves the previous sets, and the training
commands refuse sets of two different preps (split id)."""

from __future__ import annotations

import os
from pathlib import Path

from typer.testing import CliRunner

import rdm.data.atomic as atomic
from rdm.data.presets import load_preset
from rdm.data.sets import SetReader
from rdm.prep.api import prepare
from rdm_tools.train_cnn import app as cnn_app
from helpers import png_tree

PRESET = """name = "two"
classes = ["a", "b"]
channels = 1
size = [8, 8]
split = { train = 0.5, val = 0.25, test = 0.25 }
[train]
epochs = 1
batch_size = 8
"""


def tree(root: Path, per_class: int = 6) -> Path:
    return png_tree(root, per_class)


def ids(out: Path) -> dict[str, set[str]]:
    got = {}
    for s in ("train", "val", "test"):
        with SetReader(out / f"{s}.h5") as r:
            got[s] = {str(v) for v in r.column("id")}
    return got


def test_a_failed_third_rename_leaves_the_previous_sets(tmp_path, monkeypatch):
    pre = tmp_path / "two.toml"
    pre.write_text(PRESET)
    preset = load_preset(str(pre))
    src, out = tree(tmp_path / "src"), tmp_path / "out"
    prepare([src], preset, out, seed=0)
    before = {p.name: p.read_bytes() for p in sorted(out.iterdir())}
    old = ids(out)

    real = os.replace

    def failing(a, b, *args, **kw):
        if Path(b).name == "test.h5" and ".tmp-" in Path(a).name:
            raise OSError(5, "Input/output error")
        return real(a, b, *args, **kw)

    monkeypatch.setattr(atomic.os, "replace", failing)
    try:
        prepare([src], preset, out, seed=1)          # another split of the same images
    except OSError:
        pass
    else:
        raise AssertionError("the failing rename did not fail")
    monkeypatch.setattr(atomic.os, "replace", real)
    assert {p.name: p.read_bytes() for p in sorted(out.iterdir())} == before   # no temp or backup left
    assert ids(out) == old


def test_training_refuses_a_val_set_of_another_prep(tmp_path):
    pre = tmp_path / "two.toml"
    pre.write_text(PRESET)
    preset = load_preset(str(pre))
    src = tree(tmp_path / "src")
    prepare([src], preset, tmp_path / "p0", seed=0)
    prepare([src], preset, tmp_path / "p1", seed=1)
    assert ids(tmp_path / "p0")["train"] & ids(tmp_path / "p1")["val"]     # the two splits overlap
    r = CliRunner().invoke(cnn_app, [str(tmp_path / "p0" / "train.h5"), "--val", str(tmp_path / "p1" / "val.h5"),
                                     "--preset", str(pre), "--device", "cpu", "-q", "-o", str(tmp_path / "m.ckpt")])
    assert r.exit_code == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "two different rdm-prep runs" in lines[0]
    assert not (tmp_path / "m.ckpt").exists()
    with SetReader(tmp_path / "p0" / "train.h5") as a, SetReader(tmp_path / "p1" / "val.h5") as b:
        assert a.info.attrs["split_id"] != b.info.attrs["split_id"]
    # the same prep's sets share one id; the same inputs and seed give the same id again
    prepare([src], preset, tmp_path / "p0b", seed=0)
    sids = set()
    for d in ("p0", "p0b"):
        for s in ("train", "val", "test"):
            with SetReader(tmp_path / d / f"{s}.h5") as rd:
                sids.add(rd.info.attrs["split_id"])
    assert len(sids) == 1


def test_a_model_refuses_another_split_of_its_training_images(tmp_path):
    from rdm_tools.attack import app as attack_app
    from rdm_tools.eval import app as eval_app

    pre = tmp_path / "two.toml"
    pre.write_text(PRESET)
    preset = load_preset(str(pre))
    src = tree(tmp_path / "src")
    other = tree(tmp_path / "other-src", per_class=5)          # other images: a fair test set
    for d, s, seed in (("p0", src, 0), ("p1", src, 1), ("q", other, 0)):
        prepare([s], preset, tmp_path / d, seed=seed)
    m = tmp_path / "m.ckpt"
    run = CliRunner().invoke
    r = run(cnn_app, [str(tmp_path / "p0" / "train.h5"), "--preset", str(pre), "--device", "cpu", "-q", "-o", str(m)])
    assert r.exit_code == 0, r.stderr
    for app, more in ((eval_app, ["--json"]), (attack_app, ["--attack", "fgsm", "--eps", "0.01", "-o",
                                                            str(tmp_path / "adv.h5")])):
        r = run(app, [str(m), str(tmp_path / "p1" / "test.h5"), "--device", "cpu", "-q", *more])
        assert r.exit_code == 1, (r.stdout, r.stderr)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "may be training rows" in lines[0], r.stderr
        for d in ("p0", "q"):
            r = run(app, [str(m), str(tmp_path / d / "test.h5"), "--device", "cpu", "-q", *more])
            assert r.exit_code == 0, r.stderr
    assert not (tmp_path / "p1" / "adv.h5").exists()


def test_a_failed_first_prep_leaves_no_set(tmp_path, monkeypatch):
    pre = tmp_path / "two.toml"
    pre.write_text(PRESET)
    src, out = tree(tmp_path / "src"), tmp_path / "out"
    out.mkdir()
    real = os.replace

    def failing(a, b, *args, **kw):
        if Path(b).name == "test.h5":
            raise OSError(28, "No space left on device", str(a), None, str(b))
        return real(a, b, *args, **kw)

    monkeypatch.setattr(atomic.os, "replace", failing)
    try:
        prepare([src], load_preset(str(pre)), out, seed=0)
    except Exception as e:
        assert "test.h5" in str(e)
    else:
        raise AssertionError("the failing rename did not fail")
    assert list(out.iterdir()) == []
