"""The shared training loop: seeded streamed batches, determinism, resume, best-on-validation."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from rdm.data.checkpoint import load_checkpoint, read_raw
from rdm.errors import RdmError
from rdm.training.loop import Batches, Classification, Source
from rdm.api.train import Common, partial_path, train_cnn
from helpers import accuracy, noisy_copy, phantoms, same_weights, small_train_val, tiny_preset, weights


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    pre = tiny_preset(d)
    return {"dir": d, "preset": pre,
            "train": phantoms(d / "train.h5", pre, 384, seed=0),
            "val": phantoms(d / "val.h5", pre, 150, seed=1),
            "test": phantoms(d / "test.h5", pre, 150, seed=2)}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """Smaller still, for the tests that compare weights and need not learn much."""
    return small_train_val(tmp_path_factory.mktemp("small"))


def _c(data, **kw):
    kw.setdefault("quiet", True)
    kw.setdefault("device", "cpu")
    return Common(preset=str(data["preset"]), command="test", **kw)


# --------------------------------------------------------------------------- batches
def test_batches_cover_each_row_once_in_a_seeded_order(data, tmp_path):
    two = noisy_copy(tmp_path / "adv.h5", data["val"])
    srcs = [Source(data["val"]), Source(two, target=data["val"])]
    with Batches(srcs, 32, shuffle=True, seed=3, with_target=True, buffer_rows=100) as b, \
         Batches(srcs, 32, shuffle=True, seed=3, with_target=True, buffer_rows=100) as b2, \
         Batches(srcs, 32, shuffle=True, seed=4, with_target=True, buffer_rows=100) as b3:
        e1 = list(b.epoch(1))
        assert len(e1) == len(b) == int(np.ceil(300 / 32))
        assert all(len(x["y"]) == 32 for x in e1[:-1])
        xs = np.concatenate([x["x"] for x in e1])
        assert xs.shape[0] == 300
        # same (seed, epoch) -> same order; another epoch or seed -> another order
        same = np.concatenate([x["x"] for x in b2.epoch(1)])
        assert np.array_equal(xs, same)
        assert not np.array_equal(xs, np.concatenate([x["x"] for x in b.epoch(2)]))
        assert not np.array_equal(xs, np.concatenate([x["x"] for x in b3.epoch(1)]))
        # shuffled across sources, every row exactly once, targets are the clean rows
        tg = np.concatenate([x["target"] for x in e1])
        with_adv = ~np.all(xs == tg, axis=(1, 2, 3))
        assert 100 < with_adv.sum() <= 150 and with_adv[:150].sum() not in (0, 150)
        from rdm.data.sets import SetReader
        with SetReader(data["val"]) as r:
            clean = r.read(0, r.n)["x"]
        assert np.allclose(tg, xs, atol=0.05 + 1e-6)
        flat = {tuple(np.round(t.ravel()[:40], 5)) for t in clean}
        assert all(tuple(np.round(t.ravel()[:40], 5)) in flat for t in tg)


def test_batches_split_per_rank_partition_the_global_batch(data):
    with Batches([Source(data["val"])], 32, shuffle=True, seed=0) as full, \
         Batches([Source(data["val"])], 32, shuffle=True, seed=0, rank=0, world_size=2) as r0, \
         Batches([Source(data["val"])], 32, shuffle=True, seed=0, rank=1, world_size=2) as r1:
        for a, b, c in zip(full.epoch(1), r0.epoch(1), r1.epoch(1)):
            assert np.array_equal(a["y"][0::2], b["y"]) and np.array_equal(a["y"][1::2], c["y"])


# --------------------------------------------------------------------------- training
def test_trains_beats_chance_and_records_meta(data, tmp_path):
    out = train_cnn(data["train"], output=tmp_path / "m.ckpt", val=data["val"],
                    c=_c(data, history=tmp_path / "h.json"))
    acc = accuracy(out, data["test"])
    assert acc > 0.55, acc                                   # chance is 1/3
    ck = load_checkpoint(out)
    m = ck.meta
    assert m["kind"] == "cnn" and m["recipe"]["name"] == "baseline" and m["seed"] == 0
    assert set(m["datasets"]) == {str(data["train"]), str(data["val"])}
    assert len(m["history"]) == m["epochs_run"] and 1 <= m["best_epoch"] <= m["epochs_run"]
    best = m["history"][m["best_epoch"] - 1]["val"]
    assert m["val"] == best
    assert max(h["val"]["balanced_accuracy"] for h in m["history"]) == best["balanced_accuracy"]
    assert json.loads((tmp_path / "h.json").read_text()) == m["history"]
    assert not partial_path(out).exists()
    # the saved weights are the best epoch's: re-evaluating them gives the recorded metrics
    with Batches([Source(data["val"])], 64, shuffle=False) as vb:
        again = Classification().evaluate(ck.model, vb, torch.device("cpu"))
    assert again["balanced_accuracy"] == pytest.approx(best["balanced_accuracy"])


def test_same_seed_same_weights_other_seed_other_weights(small, tmp_path):
    data = small
    a = train_cnn(data["train"], output=tmp_path / "a.ckpt", val=data["val"], c=_c(data, epochs=2))
    b = train_cnn(data["train"], output=tmp_path / "b.ckpt", val=data["val"], c=_c(data, epochs=2))
    c = train_cnn(data["train"], output=tmp_path / "c.ckpt", val=data["val"], c=_c(data, epochs=2, seed=1))
    assert same_weights(weights(a), weights(b))
    assert not same_weights(weights(a), weights(c))


def _killed_in_epoch_2(monkeypatch, run) -> None:
    """Run a training that is interrupted (KeyboardInterrupt) at the second validation."""
    real, calls = Classification.evaluate, {"n": 0}

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Classification, "evaluate", dying)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(Classification, "evaluate", real)


def test_resume_after_interrupt_and_extension_match_an_uninterrupted_run(small, tmp_path, monkeypatch):
    data = small
    # dropout makes the RNG state matter on resume
    pre = tiny_preset(tmp_path, data["preset"].read_text().replace("dropout = 0.0", "dropout = 0.3")
                      .replace("patience = 3", "patience = 0"), name="drop.toml")
    c = dict(quiet=True, device="cpu", preset=str(pre), command="test")
    full = train_cnn(data["train"], output=tmp_path / "full.ckpt", val=data["val"], c=Common(epochs=3, **c))

    # 1) killed during epoch 2: the partial file holds epoch 1; --resume finishes the run
    out = tmp_path / "int.ckpt"
    _killed_in_epoch_2(monkeypatch, lambda: train_cnn(data["train"], output=out, val=data["val"],
                                                      c=Common(epochs=3, **c)))
    assert not out.exists() and partial_path(out).exists()
    assert read_raw(partial_path(out))["trainer"]["epoch"] == 1
    train_cnn(data["train"], output=out, val=data["val"], c=Common(epochs=3, resume=True, **c))
    assert same_weights(weights(full), weights(out))
    assert read_raw(out)["meta"]["history"] == [
        {**h, "time_s": h2["time_s"]} for h, h2 in zip(read_raw(full)["meta"]["history"],
                                                        read_raw(out)["meta"]["history"])]

    # 2) a finished 1-epoch run extended to 3 epochs
    ext = tmp_path / "ext.ckpt"
    train_cnn(data["train"], output=ext, val=data["val"], c=Common(epochs=1, **c))
    train_cnn(data["train"], output=ext, val=data["val"], c=Common(epochs=3, resume=True, **c))
    assert same_weights(weights(full), weights(ext))
    tr_full, tr_ext = read_raw(full)["trainer"], read_raw(ext)["trainer"]
    assert same_weights(tr_full["model"], tr_ext["model"])

    # resuming with other settings is refused
    with pytest.raises(RdmError, match="different settings"):
        train_cnn(data["train"], output=ext, val=data["val"], c=Common(epochs=5, resume=True, lr=0.01, **c))


def test_early_stopping_stops_after_patience(small, tmp_path):
    data = small
    pre = tiny_preset(tmp_path, data["preset"].read_text().replace("patience = 3", "patience = 1"), "p1.toml")
    out = train_cnn(data["train"], output=tmp_path / "s.ckpt", val=data["val"],
                    c=Common(epochs=30, lr=0.05, quiet=True, device="cpu", preset=str(pre), command="t"))
    m = read_raw(out)["meta"]
    assert m["stopped_early"] and m["epochs_run"] < 30
    assert m["epochs_run"] == m["best_epoch"] + 1


def test_resume_partial_continues_a_matching_partial_and_replaces_a_stale_one(small, tmp_path, monkeypatch, capsys):
    """What `make tables` and the Slurm scripts pass: never an error, never a stale continuation."""
    data = small
    c = dict(quiet=True, device="cpu", preset=str(data["preset"]), command="test")
    full = train_cnn(data["train"], output=tmp_path / "full.ckpt", val=data["val"], c=Common(epochs=3, **c))

    out = tmp_path / "int.ckpt"
    _killed_in_epoch_2(monkeypatch, lambda: train_cnn(data["train"], output=out, val=data["val"],
                                                      c=Common(epochs=3, **c)))
    assert read_raw(partial_path(out))["trainer"]["epoch"] == 1

    # 1) a partial made with the same settings and data: continued, same weights as one run
    epochs_seen = []
    real_eval = Classification.evaluate
    monkeypatch.setattr(Classification, "evaluate",
                        lambda self, *a, **k: (epochs_seen.append(1), real_eval(self, *a, **k))[1])
    train_cnn(data["train"], output=out, val=data["val"], c=Common(epochs=3, resume_partial=True, **c))
    assert len(epochs_seen) == 2                          # epochs 2 and 3 only
    assert same_weights(weights(full), weights(out)) and not partial_path(out).exists()

    # 2) a stale partial (other lr) or an unreadable one: a fresh run, equal to training from nothing
    fresh = train_cnn(data["train"], output=tmp_path / "fresh.ckpt", val=data["val"],
                      c=Common(epochs=2, lr=0.01, **c))
    for stale in ("other settings", "garbage"):
        o2 = tmp_path / "o2.ckpt"
        if stale == "garbage":
            partial_path(o2).write_bytes(b"not a checkpoint")
        else:
            shutil.copy(full, partial_path(o2))        # a 3-epoch state trained at the default lr
        warned: list[str] = []
        train_cnn(data["train"], output=o2, val=data["val"],
                  c=Common(epochs=2, lr=0.01, resume_partial=True, warn=warned.append, **c))
        assert same_weights(weights(fresh), weights(o2))
        assert any("starting fresh" in w for w in warned)
        assert capsys.readouterr().err == ""            # the library itself never prints
        o2.unlink()

    # 3) a finished OUTPUT is never "extended" by --resume-partial (make rebuilds it because inputs changed)
    capsys.readouterr()
    train_cnn(data["train"], output=out, val=data["val"], c=Common(epochs=2, lr=0.01, resume_partial=True, **c))
    assert same_weights(weights(fresh), weights(out))
    with pytest.raises(RdmError, match="exclude each other"):
        train_cnn(data["train"], output=out, val=data["val"], c=Common(epochs=2, resume=True, resume_partial=True, **c))
