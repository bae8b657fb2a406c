"""``aa-apgd``, the standard suite's gradient part (the grid's seeds after the first): APGD-CE → APGD-T
with the same steps and random starts as ``aa``, no Square; rdm-eval writes its per-row stages."""

from __future__ import annotations

import json

from helpers import make_ckpt
from typer.testing import CliRunner

from rdm.attacks.registry import FORWARD, get
from rdm_tools.eval import app as eval_app

runner = CliRunner()


def _ev(*args):
    res = runner.invoke(eval_app, [str(a) for a in args])
    assert res.exit_code == 0, res.stderr
    return json.loads(open(args[args.index("-o") + 1]).read())["results"][1]


def test_the_gradient_part_is_the_suite_without_square(tmp_path, phantom_set):
    ck = make_ckpt(tmp_path / "m.ckpt", preset="brain", seed=0)
    s = phantom_set("test.h5", preset="brain", n=16, shape=(3, 16, 16))
    flags = ["--eps", "0.03", "--steps", "5", "--seed", "3", "-q"]
    grad = _ev(ck, s, "--attack", "aa-apgd", *flags, "-o", tmp_path / "g.json")
    whole = _ev(ck, s, "--attack", "aa", "--queries", "30", *flags, "-o", tmp_path / "a.json")
    g, w = grad["per_row"]["fooled_by"], whole["per_row"]["fooled_by"]
    assert grad["attack"]["name"] == "aa-apgd" and "square" not in g
    # the same rows fall to the same gradient stage; Square can only add rows the gradient part left
    assert all(a == b for a, b in zip(g, w) if b != "square")
    assert all(a is None for a, b in zip(g, w) if b == "square")
    assert grad["metrics"]["accuracy"] >= whole["metrics"]["accuracy"]
    aa, part = get("aa").make(0.03, steps=100).attack(), get("aa-apgd").make(0.03, steps=100).attack()
    assert aa.passes(3) - part.passes(3) == 5000 * FORWARD       # Square's queries, a forward each
