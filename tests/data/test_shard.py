"""Sharded evaluation: ``rdm-eval --shard i/n`` parts merged with ``rdm-eval --merge`` give the
metrics of one unsharded run; parts that overlap, leave gaps or come from different runs are
refused. The attack side (``rdm-attack --shard`` + ``--merge`` bit-identical to an unsharded
run) is tests/cli/test_attack_cli.py::test_shards_merge_to_the_unsharded_set; here a merged
adversarial set is also checked to evaluate exactly like the unsharded one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rdm_tools.attack import app as attack_app
from rdm_tools.eval import app as eval_app

from helpers import files, make_ckpt, one_line_error

runner = CliRunner()


def ev(*args):
    return runner.invoke(eval_app, [str(a) for a in args])


def attack(*args) -> list[Path]:
    res = runner.invoke(attack_app, [str(a) for a in args])
    assert res.exit_code == 0, res.stderr
    return [Path(p) for p in res.stdout.split()]


def same_report(a: dict, b: dict) -> None:
    """Integer counts equal exactly; float sums and derived numbers up to summation order."""
    assert a["model_sha256"] == b["model_sha256"] and len(a["results"]) == len(b["results"])
    for ra, rb in zip(a["results"], b["results"]):
        for k in ("set", "set_sha256", "protocol", "attack"):
            assert ra.get(k) == rb.get(k), k
        ca, cb = ra["counts"], rb["counts"]
        assert ca["confusion"] == cb["confusion"]
        if "adv" in ca or "adv" in cb:
            for k, v in ca["adv"].items():
                assert cb["adv"][k] == (v if isinstance(v, int) else pytest.approx(v, rel=1e-9, abs=1e-12)), k
        ma, mb = ra["metrics"], rb["metrics"]
        assert set(ma) == set(mb)
        for k in ma:
            if isinstance(ma[k], dict) and k == "adversarial":
                for kk, v in ma[k].items():
                    assert mb[k][kk] == (pytest.approx(v, rel=1e-9) if v is not None else None), kk
            else:
                assert mb[k] == ma[k], k


@pytest.fixture
def setup(tmp_path, phantom_set):
    ck = make_ckpt(tmp_path / "m.ckpt", preset="brain", seed=0)
    other = make_ckpt(tmp_path / "other.ckpt", preset="brain", seed=1)
    s = phantom_set("test.h5", preset="brain", n=20, shape=(3, 16, 16))
    adv = attack(other, s, "--attack", "fgsm", "--eps", "0.05", "-o", tmp_path / "adv.h5")[0]
    return tmp_path, ck, other, s, adv


WB = ["--attack", "pgd", "--eps", "0.03", "--eps", "0.1", "--steps", "2", "--random-start", "--seed", "5"]


def shard_parts(d: Path, ck, sets, n: int, extra=(), tag="p") -> list[Path]:
    parts = []
    for i in range(n):
        p = d / f"{tag}{i}.json"
        res = ev(ck, *sets, *extra, "--batch-size", "4", "--shard", f"{i}/{n}", "-o", p, "-q")
        assert res.exit_code == 0, res.stderr
        assert res.stdout.strip() == str(p)
        parts.append(p)
    return parts


def test_sharded_eval_merges_to_the_unsharded_metrics(setup):
    d, ck, _, s, adv = setup
    res = ev(ck, s, adv, *WB, "--batch-size", "7", "-o", d / "full.json", "-q")
    assert res.exit_code == 0, res.stderr
    full = json.loads((d / "full.json").read_text())
    assert [r["protocol"] for r in full["results"]] == ["clean", "white-box", "white-box", "transfer"]
    parts = shard_parts(d, ck, [s, adv], 3, WB)
    for i, p in enumerate(parts):
        rep = json.loads(p.read_text())
        assert rep["shard"] == {"index": i, "count": 3} and rep["seed"] == 5
        for r in rep["results"]:   # rows [⌊i·N/n⌋, ⌊(i+1)·N/n⌋)
            assert r["rows"] == {"start": i * 20 // 3, "stop": (i + 1) * 20 // 3, "of": 20}
            assert r["metrics"]["n"] == r["rows"]["stop"] - r["rows"]["start"]
    res = ev("--merge", parts[1], parts[2], parts[0], "-o", d / "merged.json")
    assert res.exit_code == 0, res.stderr
    assert res.stdout.strip() == str(d / "merged.json")
    merged = json.loads((d / "merged.json").read_text())
    assert "shard" not in merged and set(merged["merged_from"]) == {str(p) for p in parts}
    same_report(full, merged)
    assert merged["warnings"] == full["warnings"]


def test_merged_attack_set_evaluates_like_the_unsharded_one(setup):
    d, ck, other, s, _ = setup
    common = ["--attack", "pgd", "--eps", "0.05", "--steps", "2", "--random-start", "--seed", "2",
              "--batch-size", "3"]
    full = attack(other, s, *common, "-o", d / "full-adv.h5")[0]
    parts = [attack(other, s, *common, "--shard", f"{i}/3", "-o", d / f"a{i}.h5")[0] for i in range(3)]
    merged = attack("--merge", *parts, "-o", d / "merged-adv.h5")[0]
    a = ev(ck, full, "--json", "-q")
    b = ev(ck, merged, "--json", "-q")
    assert a.exit_code == 0 and b.exit_code == 0, (a.stderr, b.stderr)
    ra, rb = json.loads(a.stdout)["results"][0], json.loads(b.stdout)["results"][0]
    assert ra["set_sha256"] != rb["set_sha256"]          # different files (provenance) ...
    assert ra["counts"] == rb["counts"] and ra["metrics"] == rb["metrics"]   # ... same images, same numbers


def one_part(d: Path, ck, sets, i: int, n: int, extra, tag: str) -> Path:
    p = d / f"{tag}{i}of{n}.json"
    res = ev(ck, *sets, *extra, "--shard", f"{i}/{n}", "-o", p, "-q")
    assert res.exit_code == 0, res.stderr
    return p


def test_bad_merges_are_refused_one_line_nothing_written(setup, phantom_set):
    d, ck, other, s, adv = setup
    s2 = phantom_set("test2.h5", preset="brain", n=20, seed=9, shape=(3, 16, 16))
    parts = shard_parts(d, ck, [s], 3, WB)
    two = one_part(d, ck, [s], 1, 2, WB, "two")                          # rows 10..20 overlap 3-way parts
    seed = one_part(d, ck, [s], 1, 3, [("7" if a == "5" else a) for a in WB], "seed")
    model = one_part(d, other, [s], 1, 3, WB, "model")
    sets = one_part(d, ck, [s2], 1, 3, WB, "set")
    atk = one_part(d, ck, [s], 1, 3, ["--attack", "fgsm", "--eps", "0.03", "--eps", "0.1", "--seed", "5"], "atk")
    bad = json.loads(parts[1].read_text())                              # a tampered part: overlaps part 0
    bad["results"][0]["rows"]["start"] -= 1
    (d / "bad.json").write_text(json.dumps(bad))
    assert ev(ck, s, "-o", d / "whole.json", "-q").exit_code == 0        # not a part at all
    before = files(d)
    out = d / "m.json"
    assert "missing" in one_line_error(ev("--merge", parts[0], parts[2], "-o", out))
    assert "twice" in one_line_error(ev("--merge", *parts, parts[1], "-o", out))
    assert "shard count" in one_line_error(ev("--merge", parts[0], two, parts[2], "-o", out))
    assert "overlap or gap" in one_line_error(ev("--merge", parts[0], d / "bad.json", parts[2], "-o", out))
    for p, needle in ((seed, "seed"), (model, "model sha256"), (sets, "set sha256"), (atk, "attack spec")):
        assert needle in one_line_error(ev("--merge", parts[0], p, parts[2], "-o", out)), needle
    assert "shard part" in one_line_error(ev("--merge", d / "whole.json", "-o", out))
    assert "would overwrite" in one_line_error(ev("--merge", *parts, "-o", parts[0]), 2)
    assert "only the part files" in one_line_error(ev("--merge", *parts, "--shard", "0/3", "-o", out), 2)
    assert files(d) == before
    res = ev("--merge", *parts, "-o", out)
    assert res.exit_code == 0, res.stderr


def test_bad_shard_argument(setup):
    d, ck, _, s, _ = setup
    assert "shard" in one_line_error(ev(ck, s, "--shard", "3/3", "-o", d / "x.json"), 2)
    assert "no rows" in one_line_error(ev(ck, s, "--shard", "0/40", "-o", d / "x.json"))
    assert not (d / "x.json").exists()
