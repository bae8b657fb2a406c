"""Presets: every key documented, a file checked as a whole with every problem in one line, and a
set and a checkpoint that disagree on what the pixels mean are refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rdm.data.presets import BUILTIN, KEYS, load_preset, preset_from_json, preset_json
from rdm.errors import RdmError
from rdm.prep.api import prepare
from rdm_tools.eval import app as eval_app
from rdm_tools.train_cnn import app as cnn_app

from helpers import CT_PRESET

DOCS = Path(__file__).resolve().parents[2] / "docs" / "presets.md"
CT = CT_PRESET + """[train]
epochs = 1
batch_size = 8
"""


def test_docs_list_every_key_with_type_and_default():
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `([a-z_.]+)` \| ([^|]+) \|", DOCS.read_text(), re.M)}
    assert set(rows) == {k.path for k in KEYS}
    for k in KEYS:
        assert rows[k.path].strip() == k.type


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_presets_are_valid_and_round_trip_through_json(name):
    p = load_preset(name)
    q = preset_from_json(preset_json(p), "x.h5")
    assert q.as_dict() == p.as_dict()


def test_every_problem_is_listed_in_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\nclasses = ["a", "b", "c"]\nchannels = 2\nsplit = { train = 0.5, val = 0.5, '
                   'test = 0.5 }\n[model]\nbinary = true\n[train]\nepoch = 5\nlr = "fast"\n')
    with pytest.raises(RdmError) as e:
        load_preset(str(bad))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{bad}: 6 problems: ")
    for needle in ("unknown key 'train.epoch'", "missing key 'size'", "'train.lr' must be float",
                   "'channels' must be 1 or 3", "'split' must give", "'model.binary'"):
        assert needle in msg, needle


def write_png_tree(src: Path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (src / c).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(src / c / f"{c}{i}.png")


def one_error(r) -> str:
    assert r.exit_code == 1, (r.exit_code, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    return lines[0]


def test_a_set_and_a_checkpoint_of_other_windows_are_refused(tmp_path):
    src = tmp_path / "src"
    write_png_tree(src)
    ct, wide = tmp_path / "ct.toml", tmp_path / "wide.toml"
    ct.write_text(CT)
    wide.write_text(CT.replace('name = "ct"', 'name = "wide"').replace("[-1000, 400]", "[-1200, 600]"))
    prepare([src], load_preset(str(ct)), tmp_path / "a")
    prepare([src], load_preset(str(wide)), tmp_path / "b")
    m = tmp_path / "m.ckpt"
    r = CliRunner().invoke(cnn_app, [str(tmp_path / "a" / "train.h5"), "--device", "cpu", "-q", "-o", str(m)])
    assert r.exit_code == 0, r.stderr
    err = one_error(CliRunner().invoke(eval_app, [str(m), str(tmp_path / "b" / "test.h5"), "--device", "cpu", "-q"]))
    assert "intensity" in err and "'wide'" in err and "'ct'" in err
    # the same preset under another name, with other training settings, is the same data
    same = tmp_path / "same.toml"
    same.write_text(CT.replace('name = "ct"', 'name = "ct2"').replace("epochs = 1", "epochs = 2"))
    prepare([src], load_preset(str(same)), tmp_path / "c")
    r = CliRunner().invoke(eval_app, [str(m), str(tmp_path / "c" / "test.h5"), "--device", "cpu", "-q", "--json"])
    assert r.exit_code == 0, r.stderr
    # --preset on a training command is checked against the set too
    err = one_error(CliRunner().invoke(cnn_app, [str(tmp_path / "a" / "train.h5"), "--preset", str(wide),
                                                 "--device", "cpu", "-q", "-o", str(tmp_path / "w.ckpt")]))
    assert "was prepared with preset 'ct'" in err
