"""rdm-certify --merge checks the per-row values of its parts: a NaN radius counts as certified
nowhere and an inf one everywhere, so either (and any value certify_set cannot write) is refused."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from helpers import error_line, make_ckpt, phantoms, tiny_preset
from rdm_tools.certify import app

runner = CliRunner()


@pytest.fixture(scope="module")
def part(tmp_path_factory):
    d = tmp_path_factory.mktemp("cert")
    pre = tiny_preset(d)
    s = phantoms(d / "s.h5", pre, 8, seed=0)
    ck = make_ckpt(d / "m.ckpt", preset=str(pre), size=(24, 24))
    out = d / "part.json"
    res = runner.invoke(app, [str(ck), str(s), "--sigma", "0.1", "--n", "40", "--n0", "8", "--batch-size", "40",
                              "--shard", "0/1", "--device", "cpu", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.stderr
    return out


def test_an_untouched_part_merges(part, tmp_path):
    res = runner.invoke(app, [str(part), "--merge", "-q", "-o", str(tmp_path / "m.json")])
    assert res.exit_code == 0, res.stderr


@pytest.mark.parametrize("key, value, words", [
    ("radius", float("nan"), "radius"), ("radius", float("inf"), "radius"), ("radius", -1.0, "radius"),
    ("radius", "0.5", "radius"), ("p_lower", 1.5, "p_lower"), ("pred", 0.5, "prediction"),
])
def test_a_tampered_row_is_refused(part, tmp_path, key, value, words):
    rep = json.loads(part.read_text())
    rep["per_row"][key][0] = value
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(rep))
    line = error_line(runner.invoke(app, [str(bad), "--merge", "-q", "-o", str(tmp_path / "m.json")]), 1)
    assert words in line and "row 0" in line and not (tmp_path / "m.json").exists()
