"""The training loop's data path: sets held in memory give the streamed batches byte for byte and
the same weights; the read-ahead thread keeps order, raises the reader's errors and stops early."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from rdm.models import build, cnn_arch
from rdm.data.prefetch import prefetch
from rdm.data.presets import load_preset
from rdm.training.loop import Batches, Classification, Reconstruction, Source, TrainConfig, fit
from rdm.api.train import Common, train_cnn
from helpers import noisy_copy, phantoms, same_weights, tiny_preset, weights, TINY


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("datapath")
    pre = tiny_preset(d, TINY.replace("size = [24, 24]", "size = [16, 16]"))
    train = phantoms(d / "train.h5", pre, 200, seed=0)
    return {"dir": d, "preset": pre, "train": train, "val": phantoms(d / "val.h5", pre, 60, seed=1),
            "adv": noisy_copy(d / "adv.h5", train)}


def _both(srcs, **kw):
    streamed = Batches(srcs, in_memory_bytes=0, **kw).prepare("cpu")
    held = Batches(srcs, **kw).prepare("cpu")
    assert not streamed.in_memory and held.in_memory
    return streamed, held


@pytest.mark.parametrize("shuffle", [True, False])
def test_in_memory_batches_equal_the_streamed_ones(data, shuffle):
    # two sources, one with a clean target set (the DCAE's input), a buffer smaller than the data
    # so that the order algorithm's carry-over between buffers is exercised
    srcs = [Source(data["train"]), Source(data["adv"], target=data["train"])]
    a, b = _both(srcs, batch_size=24, shuffle=shuffle, seed=5, with_target=True, buffer_rows=90)
    with a, b:
        for ep in (1, 2):
            sa, sb = list(a.epoch(ep)), list(b.epoch(ep))
            assert len(sa) == len(sb) == len(a)
            for p, q in zip(sa, sb):
                assert set(p) == set(q) == {"x", "y", "target"}
                for k in p:
                    assert torch.is_tensor(q[k]) and np.array_equal(p[k], q[k].numpy()), k
        assert np.array_equal(np.sort(a.epoch_order(1)), np.arange(400))


def test_in_memory_rank_slices_partition_the_global_batch(data):
    kw = dict(batch_size=20, shuffle=True, seed=1)
    with Batches([Source(data["val"])], **kw).prepare("cpu") as full, \
         Batches([Source(data["val"])], rank=0, world_size=2, **kw).prepare("cpu") as r0, \
         Batches([Source(data["val"])], rank=1, world_size=2, **kw).prepare("cpu") as r1:
        for a, b, c in zip(full.epoch(1), r0.epoch(1), r1.epoch(1)):
            assert torch.equal(a["y"][0::2], b["y"]) and torch.equal(a["y"][1::2], c["y"])


def test_training_in_memory_and_streamed_ends_with_the_same_weights(data, tmp_path, monkeypatch):
    c = dict(quiet=True, device="cpu", preset=str(data["preset"]), command="t", epochs=2)
    held = train_cnn(data["train"], output=tmp_path / "held.ckpt", val=data["val"], c=Common(**c))
    monkeypatch.setenv("RDM_IN_MEMORY_MB", "0")     # every set streamed, read ahead by a thread
    streamed = train_cnn(data["train"], output=tmp_path / "streamed.ckpt", val=data["val"], c=Common(**c))
    assert same_weights(weights(held), weights(streamed))


def test_reconstruction_in_memory_and_streamed_agree(data):
    pre = load_preset(str(data["preset"]))
    from rdm.models import dcae_arch

    srcs = [Source(data["train"]), Source(data["adv"], target=data["train"])]
    out = []
    for limit in (None, 0):
        torch.manual_seed(0)
        model = build(dcae_arch(pre))
        with Batches(srcs, 32, shuffle=True, seed=0, with_target=True, in_memory_bytes=limit) as tb, \
             Batches([Source(data["val"])], 64, shuffle=False, with_target=True, in_memory_bytes=limit) as vb:
            st = fit(model, Reconstruction(), tb, vb, TrainConfig(epochs=1, batch_size=32, lr=1e-3),
                     device=torch.device("cpu"), quiet=True)
        out.append((st.history, {k: v.clone() for k, v in model.state_dict().items()}))
    assert out[0][0][0]["train"] == out[1][0][0]["train"] and out[0][0][0]["val"] == out[1][0][0]["val"]
    assert same_weights(out[0][1], out[1][1])


def test_fit_reports_through_callbacks_only(data, capsys):
    pre = load_preset(str(data["preset"]))
    torch.manual_seed(0)
    lines: list[str] = []
    with Batches([Source(data["val"])], 32, shuffle=True, seed=0) as tb:
        fit(build(cnn_arch(pre)), Classification(), tb, None, TrainConfig(epochs=1, batch_size=32, lr=1e-3),
            device=torch.device("cpu"), log=lines.append)
    assert len(lines) == 1 and lines[0].startswith("epoch 1/1")
    assert capsys.readouterr() == ("", "")


# --------------------------------------------------------------------------- prefetch
def test_prefetch_keeps_order_and_raises_the_readers_error():
    assert list(prefetch(iter(range(50)), depth=3)) == list(range(50))
    assert list(prefetch(range(5), depth=0)) == list(range(5))

    def broken():
        yield 1
        raise ValueError("bad chunk")

    got = []
    with pytest.raises(ValueError, match="bad chunk"):
        for v in prefetch(broken(), depth=2):
            got.append(v)
    assert got == [1]


def test_prefetch_stops_its_thread_when_the_loop_ends_early():
    produced = []
    closed = threading.Event()

    def source():
        try:
            for i in range(10_000):
                produced.append(i)
                yield i
        finally:
            closed.set()

    before = threading.active_count()
    for v in prefetch(source(), depth=2):
        if v == 3:
            break
    assert closed.wait(5) and threading.active_count() == before
    assert len(produced) < 10                      # read ahead by at most a few items


def test_eval_predictions_in_channels_last_pieces_equal_one_plain_forward(data):
    from rdm.api import eval as eval_api
    from rdm.models import CPU_PREDICT_ROWS, predict
    from rdm.data.sets import SetReader

    torch.manual_seed(0)
    model = build(cnn_arch(load_preset(str(data["preset"])))).eval()
    with SetReader(data["train"]) as r:
        x = r.read(0, 150)["x"]                      # more rows than one CPU piece
    assert len(x) > CPU_PREDICT_ROWS
    with torch.no_grad():
        want = predict(model(torch.from_numpy(x))).numpy()
    model.to(memory_format=torch.channels_last)
    assert np.array_equal(eval_api._predict(model, x, torch.device("cpu")), want)
    assert eval_api._predict(model, x[:0], torch.device("cpu")).shape == (0,)
