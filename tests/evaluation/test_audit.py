"""Leakage audit and similarity groups on sets with planted near-duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from rdm.evaluation.audit import audit_split, colour_stats, near_pairs, shortcut_baselines, similarity_groups
from rdm.errors import RdmError
from rdm.prep.split import grouped_stratified_split, split_totals
from rdm.data.sets import SetReader, SetWriter, make_provenance

SHAPE = (1, 12, 12)


def _planted(n: int = 150, pairs: int = 20, seed: int = 0):
    """Random images (nearest RMS distance ≈ 0.4) with ``pairs`` near-copies (RMS ≈ 0.006)."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, *SHAPE), dtype=np.float32)
    y = rng.integers(0, 2, n)
    src = rng.choice(n - pairs, pairs, replace=False)
    dst = np.arange(n - pairs, n)
    x[dst] = np.clip(x[src] + rng.uniform(-0.01, 0.01, (pairs, *SHAPE)), 0, 1)
    y[dst] = y[src]
    return x, y, list(zip(src.tolist(), dst.tolist()))


def _chains(patients: int = 6, slices: int = 8, seed: int = 0):
    """``patients`` runs of ``slices`` images, each a small step (RMS ≈ .03) from the one before (one
    patient's neighbouring slices), the runs joined end to end by the same small step: one chain that
    transitive grouping at τ = .05 joins into a single group. Patient k has class k % 2."""
    rng = np.random.default_rng(seed)
    cur = rng.random(SHAPE, dtype=np.float32) * 0.5 + 0.25
    x, y, pid = [], [], []
    for p in range(patients):
        for _ in range(slices):
            cur = np.clip(cur + rng.choice([-0.03, 0.03], SHAPE).astype(np.float32), 0, 1)
            x.append(cur.copy())
            y.append(p % 2)
            pid.append(p)
    return np.stack(x), np.asarray(y), np.asarray(pid)


def test_capped_grouping_stops_the_chain_that_plain_grouping_follows_through_every_patient():
    x, y, pid = _chains()
    assert len(set(similarity_groups(x, 0.05))) == 1             # plain: one group of all 48 images
    g = similarity_groups(x, 0.05, cap=8, labels=y)
    sizes = np.unique(g, return_counts=True)[1]
    assert sizes.max() <= 8 and sizes.sum() == len(x)
    for k in set(g):                                             # never across classes, so never across
        assert len(set(y[g == k])) == 1 and len(set(pid[g == k])) == 1   # the chain's patient boundaries
    assert len(set(g)) <= 2 * len(set(pid))                      # and not a group per image either
    assert list(g) == list(similarity_groups(x, 0.05, cap=8, labels=y))  # deterministic
    # given groups are kept whole whatever their size, and capped merges build on them
    given = [f"p{p // 3}" for p in pid]                          # 3 patients per given group: 24 images
    h = similarity_groups(x, 0.05, given, cap=8, labels=y)
    for p in set(given):
        rows = [i for i, q in enumerate(given) if q == p]
        assert len({h[i] for i in rows}) == 1
    with pytest.raises(RdmError, match="cap must be ≥ 1"):
        similarity_groups(x, 0.05, cap=0)


def test_near_pairs_finds_exactly_the_planted_pairs():
    x, _, planted = _planted()
    found = {tuple(p) for p in near_pairs(x, 0.02).tolist()}
    assert found == {tuple(sorted(p)) for p in planted}


def test_similarity_groups_keep_planted_pairs_in_one_split_and_the_ratios():
    x, y, planted = _planted(n=300, pairs=30)
    groups = similarity_groups(x, 0.02)
    assert len(set(groups)) == 300 - 30
    for a, b in planted:
        assert groups[a] == groups[b]
    split = grouped_stratified_split(y, groups, {"train": 0.7, "val": 0.1, "test": 0.2}, 2, seed=0)
    for a, b in planted:
        assert split[a] == split[b]
    target = split_totals(300, {"train": 0.7, "val": 0.1, "test": 0.2})
    assert np.abs(np.bincount(split, minlength=3) - target).max() <= 2


def test_similarity_groups_join_existing_groups_transitively():
    x, _, planted = _planted(n=40, pairs=1)
    a, b = planted[0]
    patient = [f"p{i}" for i in range(40)]
    other = next(i for i in range(40) if i not in (a, b))
    patient[other] = patient[a]                      # `other` shares a patient with `a`, `b` is near `a`
    g = similarity_groups(x, 0.02, patient)
    assert g[other] == g[a] == g[b]
    assert len(set(g)) == 38
    # labels are stable: the same images give the same labels
    assert list(g) == list(similarity_groups(x, 0.02, patient))


def _write(path, x, y, groups=None):
    cols = ["group"] if groups is not None else []
    with SetWriter(path, shape=x.shape[1:], classes=["a", "b"], modality="test", preset="test",
                   provenance=make_provenance(command="test", seed=0), columns=cols) as w:
        w.append(x, y, **({"group": groups} if groups is not None else {}))
    return path


def test_audit_counts_test_rows_with_a_training_twin(tmp_path):
    rng = np.random.default_rng(1)
    tr_x = rng.random((80, *SHAPE), dtype=np.float32)
    tr_y = rng.integers(0, 2, 80)
    te_x = rng.random((30, *SHAPE), dtype=np.float32)
    te_y = rng.integers(0, 2, 30)
    twins = [3, 7, 11, 20]
    te_x[twins] = np.clip(tr_x[[0, 1, 2, 3]] + 0.03, 0, 1)    # RMS ≤ 0.03 from a training image
    te_y[twins] = tr_y[[0, 1, 2, 3]]
    tr_g = np.array([f"g{i}" for i in range(80)], dtype=object)
    te_g = np.array([f"g{i}" for i in range(100, 130)], dtype=object)
    te_g[0] = "g5"                                             # one patient on both sides
    a = audit_split(_write(tmp_path / "train.h5", tr_x, tr_y, tr_g), _write(tmp_path / "test.h5", te_x, te_y, te_g),
                    taus=(0.02, 0.05, 0.2))
    assert a.near_train == {"0.02": 0, "0.05": 4, "0.2": 4}
    assert a.shared_groups == 1 and (a.groups_train, a.groups_test) == (80, 30)
    assert a.per_image_groups and "n/a (no patient ids" in a.lines()[0]    # one image per group here
    assert a.nearest_rms_quantiles["min"] <= 0.03 + 1e-6
    assert a.to_dict()["baselines"]["knn1_pixels"] == a.baselines["knn1_pixels"]


def test_audit_says_shared_patient_groups_only_where_the_set_has_them(tmp_path):
    """Brain's shared copy has no patient ids: every image is its own group, so "0 groups in both
    splits" says nothing and reads n/a; with real groups (several images each) the count stands."""
    rng = np.random.default_rng(4)
    x, y = rng.random((40, *SHAPE), dtype=np.float32), rng.integers(0, 2, 40)
    own = np.array([f"img{i}" for i in range(40)], dtype=object)
    a = audit_split(_write(tmp_path / "tr.h5", x[:30], y[:30], own[:30]), _write(tmp_path / "te.h5", x[30:], y[30:], own[30:]))
    assert a.shared_groups == 0 and a.per_image_groups
    assert "groups in both train and test: n/a (no patient ids" in a.lines()[0]
    pat = np.array([f"p{i // 5}" for i in range(40)], dtype=object)       # 5 images per patient
    b = audit_split(_write(tmp_path / "tr2.h5", x[:30], y[:30], pat[:30]), _write(tmp_path / "te2.h5", x[30:], y[30:], pat[30:]))
    assert (b.shared_groups, b.groups_train, b.groups_test) == (0, 6, 2) and not b.per_image_groups
    assert a.lines()[0] != b.lines()[0] and b.lines()[0].endswith("groups in both train and test: 0")


def test_shortcut_baselines_match_a_direct_computation():
    rng = np.random.default_rng(2)
    n, m = 120, 60
    y_tr, y_te = rng.integers(0, 3, n), rng.integers(0, 3, m)
    # the classes differ in brightness and contrast only: the colour statistics carry the label
    def imgs(y):
        base = rng.random((len(y), 3, 8, 8), dtype=np.float32)
        return np.clip(0.2 + 0.25 * y[:, None, None, None] + (0.05 + 0.1 * y[:, None, None, None]) * (base - 0.5), 0, 1)
    x_tr, x_te = imgs(y_tr), imgs(y_te)
    got = shortcut_baselines(x_tr, y_tr, x_te, y_te)

    # 1-NN by brute force in numpy
    d = ((x_te.reshape(m, -1)[:, None, :] - x_tr.reshape(n, -1)[None, :, :]) ** 2).sum(-1)
    assert got["knn1_pixels"] == pytest.approx(np.mean(y_tr[d.argmin(1)] == y_te))
    # logistic regression on per-channel mean and std, features computed here
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def feats(x):
        return np.concatenate([x.mean((2, 3)), x.std((2, 3))], 1)
    sc = StandardScaler().fit(feats(x_tr))
    lr = LogisticRegression(max_iter=2000, random_state=0).fit(sc.transform(feats(x_tr)), y_tr)
    assert got["colour_logreg"] == pytest.approx(np.mean(lr.predict(sc.transform(feats(x_te))) == y_te))
    assert got["colour_logreg"] > 0.9                    # the shortcut is there and is found
    assert got["majority"] == pytest.approx(np.mean(y_te == np.bincount(y_tr).argmax()))
    assert colour_stats(x_te).shape == (m, 6)


def test_bad_threshold_is_one_clear_error():
    with pytest.raises(RdmError, match="threshold"):
        near_pairs(np.zeros((3, 1, 2, 2), np.float32), -0.1)


def _tree_with_twins(root, pairs=20, per_class=40, seed=0):
    """An image-folder tree (lung classes, 20×20 grey noise) with ``pairs`` near-identical twins."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    twins = []
    for c in ("nodule", "non-nodule"):
        (root / c).mkdir(parents=True)
        imgs = [rng.integers(0, 256, (20, 20), dtype=np.uint8) for _ in range(per_class)]
        for i, a in enumerate(imgs):
            Image.fromarray(a).save(root / c / f"{c}-{i:03d}.png")
        for k in range(pairs // 2):
            b = np.clip(imgs[k].astype(int) + rng.integers(-2, 3, (20, 20)), 0, 255).astype(np.uint8)
            Image.fromarray(b).save(root / c / f"{c}-twin{k:03d}.png")
            twins.append((f"{c}/{c}-{k:03d}.png", f"{c}/{c}-twin{k:03d}.png"))
    return twins


def _split_of_ids(out):
    from rdm.data.sets import SetReader

    where = {}
    for s in ("train", "val", "test"):
        with SetReader(out / f"{s}.h5") as r:
            for i in r.column("id"):
                where[str(i)] = s
    return where


def test_rdm_prep_group_similar_and_audit(tmp_path):
    import json

    from typer.testing import CliRunner

    from rdm_tools.prep import app

    src = tmp_path / "src"
    twins = _tree_with_twins(src)
    run = CliRunner().invoke
    plain, grouped = tmp_path / "plain", tmp_path / "grouped"
    r = run(app, [str(src), "--preset", "lung", "-o", str(plain), "--audit", "-q"])
    assert r.exit_code == 0, r.stderr
    where = _split_of_ids(plain)
    straddle = sum({where[a], where[b]} == {"train", "test"} for a, b in twins)
    assert straddle >= 1                                     # a random split does leak twins
    audit = json.loads((plain / "audit.json").read_text())
    assert audit["near_train"]["0.02"] == straddle           # and the audit counts exactly those
    r = run(app, [str(src), "--preset", "lung", "-o", str(grouped), "--group-similar", "0.02", "--audit"])
    assert r.exit_code == 0, r.stderr
    assert "1-NN on pixels" in r.stderr
    where = _split_of_ids(grouped)
    assert all(where[a] == where[b] for a, b in twins)       # no twin straddles two splits
    assert json.loads((grouped / "audit.json").read_text())["near_train"]["0.02"] == 0
    r = run(app, [str(src), "--preset", "lung", "-o", str(tmp_path / "bad"), "--group-similar", "-1"])
    assert r.exit_code == 2 and not (tmp_path / "bad").exists()
    r = run(app, [str(src), "--preset", "lung", "-o", str(tmp_path / "bad"), "--group-cap", "5"])
    assert r.exit_code == 2 and "--group-cap caps the groups of --group-similar" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
    capped = tmp_path / "capped"
    r = run(app, [str(src), "--preset", "lung", "-o", str(capped), "--group-similar", "0.02", "--group-cap", "2", "-q"])
    assert r.exit_code == 0, r.stderr
    where = _split_of_ids(capped)
    assert all(where[a] == where[b] for a, b in twins)       # a twin pair is 2 images: within the cap
    with SetReader(capped / "train.h5") as sr:
        assert sr.info.provenance["group_similar"]["cap"] == 2


def test_a_folder_named_like_a_preset_does_not_shadow_it(tmp_path, monkeypatch):
    from rdm.data.presets import load_preset

    monkeypatch.chdir(tmp_path)
    (tmp_path / "brain").mkdir()                     # rdm-prep -o brain made this folder
    assert load_preset("brain").name == "brain"
    (tmp_path / "odd").mkdir()
    with pytest.raises(RdmError, match="not a readable preset file"):
        load_preset("odd")
