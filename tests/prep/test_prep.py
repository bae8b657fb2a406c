"""rdm-prep: image-folder trees, the grouped split, determinism, bad inputs and the CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rdm.errors import RdmError
from rdm.prep.api import prepare
from rdm.prep.split import class_targets, grouped_stratified_split, split_table, split_totals
from rdm.data.presets import load_preset
from rdm.data.sets import SetReader, validate_set
from rdm_tools.prep import app

LUNG = load_preset("lung")
BRAIN = load_preset("brain")
LEUK = load_preset("leukemia")


# --------------------------------------------------------------------------- helpers
def _img(rng, size=(20, 20), mode="L"):
    h, w = size
    a = rng.integers(0, 256, (h, w) if mode == "L" else (h, w, 3), dtype=np.uint8)
    return Image.fromarray(a, mode=mode)


def make_tree(root: Path, classes, per_class=6, size=(20, 20), mode="L", ext="png", seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for c in classes:
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            _img(rng, size, mode).save(d / f"{c}-{i:03d}.{ext}")
    return root


def write_manifest(root: Path, rows, extra_cols=()):
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", *extra_cols])
        w.writerows(rows)


def read_all(outdir: Path) -> dict[str, dict]:
    out = {}
    for s in ("train", "val", "test"):
        with SetReader(outdir / f"{s}.h5") as r:
            out[s] = r.read(0, r.n)
            out[s]["info"] = r.info
    return out


def run_cli(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def err_lines(res) -> list[str]:
    return [ln for ln in res.stderr.splitlines() if ln.strip()]


# --------------------------------------------------------------------------- split
@pytest.mark.parametrize("preset, n, expected", [
    (LUNG, 8106, [5187, 1297, 1622]), (BRAIN, 3064, [2481, 276, 307]), (LEUK, 3256, [2343, 261, 652]),
])
def test_split_totals_match_the_papers_table_1(preset, n, expected):
    assert split_totals(n, preset.split).tolist() == expected


def test_class_targets_sum_to_rows_and_columns():
    counts, totals = [7, 50, 13], [52, 8, 10]
    t = class_targets(counts, totals)
    assert t.sum(1).tolist() == counts and t.sum(0).tolist() == totals
    assert (np.abs(t - np.outer(counts, totals) / sum(counts)) < 1.5).all()


def test_singleton_groups_hit_the_targets_exactly():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 500)
    s = grouped_stratified_split(y, [f"g{i}" for i in range(500)], BRAIN.split, 3, seed=0)
    target = class_targets(np.bincount(y, minlength=3), split_totals(500, BRAIN.split))
    assert (split_table(y, s, 3) == target).all()


def test_groups_never_straddle_and_counts_stay_close():
    rng = np.random.default_rng(2)
    sizes = rng.integers(1, 12, 150)
    groups = np.repeat([f"p{i}" for i in range(len(sizes))], sizes)
    y = rng.integers(0, 2, len(groups))
    s = grouped_stratified_split(y, groups, LUNG.split, 2, seed=3)
    for g in np.unique(groups):
        assert len(set(s[groups == g])) == 1
    target = class_targets(np.bincount(y, minlength=2), split_totals(len(y), LUNG.split))
    assert np.abs(split_table(y, s, 2) - target).max() <= 2


def test_split_is_seeded():
    y = np.arange(300) % 3
    g = [f"g{i}" for i in range(300)]
    a = grouped_stratified_split(y, g, BRAIN.split, 3, seed=5)
    assert (a == grouped_stratified_split(y, g, BRAIN.split, 3, seed=5)).all()
    assert (a != grouped_stratified_split(y, g, BRAIN.split, 3, seed=6)).any()


# --------------------------------------------------------------------------- image folders
def test_prep_grey_folder_to_three_channels(tmp_path):
    src = make_tree(tmp_path / "src", BRAIN.classes, per_class=10, size=(30, 24))
    res = prepare([src], BRAIN, tmp_path / "out", seed=0)
    assert [p.name for p in res.paths] == ["train.h5", "val.h5", "test.h5"]
    sets = read_all(tmp_path / "out")
    ids = []
    for s, d in sets.items():
        validate_set(tmp_path / "out" / f"{s}.h5", expect_shape=BRAIN.shape, expect_classes=list(BRAIN.classes),
                     require=["group", "id"])
        x = d["x"]
        assert x.shape[1:] == (3, 64, 64)
        np.testing.assert_array_equal(x[:, 0], x[:, 1])
        np.testing.assert_array_equal(x[:, 0], x[:, 2])
        assert d["info"].attrs["split"] == s
        ids += list(d["id"])
    files = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    assert sorted(ids) == files
    assert res.table.sum() == 30 and res.table.sum(1).tolist() == [10, 10, 10]
    # each pixel equals Pillow's LANCZOS resize of the file
    d = sets["train"]
    f = src / d["id"][0]
    ref = np.asarray(Image.open(f).resize((64, 64), Image.Resampling.LANCZOS), np.float32) / 255
    np.testing.assert_allclose(d["x"][0, 0], ref, atol=1e-6)


def test_prep_colour_to_grey_and_odd_size(tmp_path):
    src = tmp_path / "src"
    make_tree(src, LUNG.classes, per_class=6, size=(50, 50), mode="RGB")
    Image.new("RGB", (47, 50), (255, 0, 0)).save(src / "nodule" / "edge.png")  # 47 wide, 50 high
    prepare([src], LUNG, tmp_path / "out", seed=0)
    sets = read_all(tmp_path / "out")
    assert all(d["x"].shape[1:] == (1, 52, 52) for d in sets.values())
    row = [(s, i) for s, d in sets.items() for i, v in enumerate(d["id"]) if v == "nodule/edge.png"]
    s, i = row[0]
    red_as_grey = Image.new("RGB", (1, 1), (255, 0, 0)).convert("L").getpixel((0, 0)) / 255
    np.testing.assert_allclose(sets[s]["x"][i], red_as_grey, atol=1e-6)


def test_manifest_groups_and_empty_cells(tmp_path):
    src = make_tree(tmp_path / "src", LUNG.classes, per_class=15)
    rows = []
    for c in LUNG.classes:
        for i in range(15):
            rows.append([f"{c}/{c}-{i:03d}.png", c, f"series{i % 5}" if i < 12 else ""])
    write_manifest(src, rows, ["seriesuid"])
    res = prepare([src], LUNG, tmp_path / "out", seed=1)
    where = {}
    for s, d in read_all(tmp_path / "out").items():
        for g, ident in zip(d["group"], d["id"]):
            assert where.setdefault(g, s) == s, f"group {g} straddles"
            if int(ident.split("-")[-1][:3]) >= 12:
                assert g == ident  # empty cell: its own group
    assert res.straddling == 0 and res.n_groups == 5 + 6


def test_group_col_option(tmp_path):
    src = make_tree(tmp_path / "src", LUNG.classes, per_class=9)
    write_manifest(src, [[f"{c}/{c}-{i:03d}.png", c, f"pt{i % 3}"] for c in LUNG.classes for i in range(9)],
                   ["patient"])
    res = prepare([src], LUNG, tmp_path / "out", group_col="patient")
    assert res.n_groups == 3
    with pytest.raises(RdmError, match="no 'nope' column"):
        prepare([src], LUNG, tmp_path / "out2", group_col="nope")
    assert not (tmp_path / "out2").exists()


def test_class_map_and_nested_original_folder(tmp_path):
    src = make_tree(tmp_path / "kaggle", ["1", "2", "3"], per_class=5)
    cmap = {"1": "meningioma", "2": "glioma", "3": "pituitary"}
    res = prepare([src], BRAIN, tmp_path / "out", class_map=cmap)
    assert res.table.sum(1).tolist() == [5, 5, 5]
    d = read_all(tmp_path / "out")
    for s in d.values():
        for y, ident in zip(s["y"], s["id"]):
            assert BRAIN.classes[y] == cmap[ident.split("/")[0]]
    leuk = make_tree(tmp_path / "dl" / "Original", LEUK.classes, per_class=5, mode="RGB", ext="jpg")
    for root in (tmp_path / "dl", leuk):
        r = prepare([root], LEUK, tmp_path / f"out-{root.name}")
        assert r.table.sum() == 20


def test_same_seed_same_sets_other_seed_other_split(tmp_path):
    src = make_tree(tmp_path / "src", LEUK.classes, per_class=12, mode="RGB", ext="jpg")
    a = read_all(Path(prepare([src], LEUK, tmp_path / "a", seed=7).paths[0]).parent)
    b = read_all(Path(prepare([src], LEUK, tmp_path / "b", seed=7).paths[0]).parent)
    c = read_all(Path(prepare([src], LEUK, tmp_path / "c", seed=8).paths[0]).parent)
    for s in a:
        np.testing.assert_array_equal(a[s]["x"], b[s]["x"])
        np.testing.assert_array_equal(a[s]["y"], b[s]["y"])
        assert list(a[s]["id"]) == list(b[s]["id"])
    assert any(set(a[s]["id"]) != set(c[s]["id"]) for s in a)


def test_provenance_hashes_follow_the_files(tmp_path):
    src = make_tree(tmp_path / "src", LUNG.classes, per_class=6)
    prepare([src], LUNG, tmp_path / "a")
    f = src / "nodule" / "nodule-000.png"
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(f)
    prepare([src], LUNG, tmp_path / "b")
    pa = read_all(tmp_path / "a")["train"]["info"].provenance
    pb = read_all(tmp_path / "b")["train"]["info"].provenance
    assert pa["seed"] == 0 and pa["preset"]["name"] == "lung" and pa["split_counts"]
    ka = [k for k in pa["inputs"] if "files" in k]
    assert ka and ka[0].startswith("12 files") and pa["inputs"][ka[0]] != pb["inputs"][ka[0]]


def test_synthetic_source(tmp_path):
    res = prepare(["synthetic"], LUNG, tmp_path / "out", n=60, seed=3)
    assert res.table.sum() == 60 and res.kind == "synthetic"
    # phantoms come in 'patients' of 4, so the split sizes are met to within a group
    assert np.abs(res.table.sum(0) - split_totals(60, LUNG.split)).max() <= 4 and res.straddling == 0
    res2 = prepare(["synthetic"], LUNG, tmp_path / "out2", n=60, seed=3)
    a, b = read_all(tmp_path / "out"), read_all(tmp_path / "out2")
    for s in a:
        np.testing.assert_array_equal(a[s]["x"], b[s]["x"])
    assert (res2.table == res.table).all()
    with pytest.raises(RdmError, match="--n only applies"):
        prepare([tmp_path], LUNG, tmp_path / "o", n=10)


# --------------------------------------------------------------------------- bad input, via the CLI
def _truncated_jpeg(path: Path):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_truncated_jpeg_really_raises_in_pillow(tmp_path):
    p = tmp_path / "t.jpg"
    _truncated_jpeg(p)
    with pytest.raises(OSError):
        Image.open(p).load()


def _bad_case(tmp_path, case):
    """A small leukemia-like tree with one bad input; returns (src, name of the bad file)."""
    src = make_tree(tmp_path / "src", LEUK.classes, per_class=6, mode="RGB", ext="jpg")
    if case == "truncated":
        bad = src / "Pre" / "Pre-000.jpg"
        _truncated_jpeg(bad)
    elif case == "not-an-image":
        bad = src / "Pro" / "notes.jpg"
        bad.write_text("not an image\n")
    elif case == "empty-file":
        bad = src / "Early" / "empty.jpg"
        bad.write_bytes(b"")
    elif case == "missing-in-manifest":
        rows = [[p.relative_to(src).as_posix(), p.parent.name] for p in sorted(src.rglob("*.jpg"))]
        rows.append(["Benign/gone.jpg", "Benign"])
        write_manifest(src, rows)
        bad = src / "Benign" / "gone.jpg"
    return src, bad


@pytest.mark.parametrize("case", ["truncated", "not-an-image", "empty-file", "missing-in-manifest"])
def test_bad_input_fails_cleanly_and_skip_bad_skips(tmp_path, case):
    src, bad = _bad_case(tmp_path, case)
    out = tmp_path / "out"
    res = run_cli([src, "--preset", "leukemia", "-o", out, "--quiet"])
    assert res.exit_code == 1
    lines = err_lines(res)
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}: "), res.stderr
    assert res.stdout == ""
    assert not out.exists()
    res = run_cli([src, "--preset", "leukemia", "-o", out, "--quiet", "--skip-bad"])
    assert res.exit_code == 0, res.stderr
    assert "skipped 1 bad input" in res.stderr and str(bad) in res.stderr
    assert res.stdout.split() == [str(out / f"{s}.h5") for s in ("train", "val", "test")]
    total = sum(SetReader(out / f"{s}.h5").n for s in ("train", "val", "test"))
    assert total == 24 - (case in ("truncated",))


def test_empty_class_folder_is_an_error(tmp_path):
    src = make_tree(tmp_path / "src", LUNG.classes, per_class=4)
    for p in (src / "nodule").iterdir():
        p.unlink()
    res = run_cli([src, "--preset", "lung", "-o", tmp_path / "out"])
    assert res.exit_code == 1 and "class folder is empty" in res.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_class_folder_needs_a_class_map(tmp_path):
    src = make_tree(tmp_path / "src", ["non-nodule", "nod"], per_class=6)
    res = run_cli([src, "--preset", "lung", "-o", tmp_path / "out"])
    assert res.exit_code == 1
    assert "unknown class folder 'nod'" in res.stderr and "--class-map nod=CLASS" in res.stderr
    assert not (tmp_path / "out").exists()
    res = run_cli([src, "--preset", "lung", "-o", tmp_path / "out", "--class-map", "nod=nodule", "-q"])
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.split()) == 3


def test_summary_table_on_stderr_only(tmp_path):
    src = make_tree(tmp_path / "src", LUNG.classes, per_class=6)
    res = run_cli([src, "--preset", "lung", "-o", tmp_path / "out"])
    assert res.exit_code == 0
    assert "non-nodule" in res.stderr and "total" in res.stderr
    assert res.stdout.split() == [str(tmp_path / "out" / f"{s}.h5") for s in ("train", "val", "test")]


@pytest.mark.parametrize("args", [
    ["--preset", "lung"],                                   # no -o
    ["-o", "OUT"],                                           # no --preset
    ["--preset", "lung", "-o", "OUT", "--class-map", "oops"],
    ["--preset", "lung", "-o", "OUT", "--bogus"],
])
def test_bad_usage_exits_2(tmp_path, args):
    src = make_tree(tmp_path / "src", LUNG.classes, per_class=3)
    args = [str(tmp_path / "o") if a == "OUT" else a for a in args]
    res = run_cli([src, *args])
    assert res.exit_code == 2
    assert not (tmp_path / "o").exists()


def test_missing_source_and_unknown_preset_exit_1(tmp_path):
    res = run_cli([tmp_path / "nope", "--preset", "lung", "-o", tmp_path / "o"])
    assert res.exit_code == 1 and "no such file or folder" in res.stderr
    res = run_cli(["synthetic", "--preset", "nosuch", "-o", tmp_path / "o"])
    assert res.exit_code == 1 and "unknown preset" in res.stderr


def test_synthetic_via_cli(tmp_path):
    res = run_cli(["synthetic", "--preset", "brain", "-o", tmp_path / "out", "--n", "30", "--seed", "2", "-q"])
    assert res.exit_code == 0, res.stderr
    assert len(res.stdout.split()) == 3
    info = validate_set(tmp_path / "out" / "train.h5", expect_shape=BRAIN.shape)
    assert info.provenance["seed"] == 2 and info.provenance["source_kind"] == "synthetic"



def test_preview_shows_each_class_and_keeps_stdout_clean(tmp_path):
    src = make_tree(tmp_path / "src", LUNG.classes, per_class=10)
    pv = tmp_path / "look" / "samples.png"
    res = run_cli([src, "--preset", "lung", "-o", tmp_path / "out", "--preview", pv, "-q"])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.split() == [str(tmp_path / "out" / f"{s}.h5") for s in ("train", "val", "test")]
    with Image.open(pv) as im:
        assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 150
    assert [q.name for q in pv.parent.iterdir()] == ["samples.png"]          # no temp file left


def test_preview_picks_seeded_rows_of_each_class():
    from rdm.evaluation.figures import pick_per_class

    y = np.array([0, 1, 0, 2, 0, 0, 1, 0, 0, 0, 0])
    picks = pick_per_class(y, 4, per_class=3, seed=1)
    assert [len(p) for p in picks] == [3, 2, 1, 0]
    assert all((y[p] == k).all() and p == sorted(p) for k, p in enumerate(picks))
    assert picks == pick_per_class(y, 4, per_class=3, seed=1)
    assert any(pick_per_class(y, 4, per_class=3, seed=s)[0] != picks[0] for s in range(2, 12))


def test_preview_with_an_unknown_format_is_refused_before_any_work(tmp_path):
    src = make_tree(tmp_path / "src", LUNG.classes, per_class=3)
    res = run_cli([src, "--preset", "lung", "-o", tmp_path / "out", "--preview", tmp_path / "p.tiff"])
    assert res.exit_code == 2 and "--preview" in res.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "p.tiff").exists()

# --------------------------------------------------------------------------- the shared data (skipped when absent)
@pytest.mark.realdata
@pytest.mark.parametrize("folder, preset, expected", [
    ("lung-nodule", LUNG, [5187, 1297, 1622]), ("leukemia", LEUK, [2343, 261, 652]),
    ("brain-mri", BRAIN, [2481, 276, 307]),
])
def test_real_manifests_split_to_table_1_without_straddling(shared_data, folder, preset, expected):
    from rdm.prep.imagefolder import ImageFolder

    sc = ImageFolder(shared_data / folder, preset.classes, {}, preset.shape, None, preset.group_col).scan()
    entries, bad, info = sc.entries, sc.bad, sc.extra
    assert not bad and not sc.notes and info["group_col"] == (preset.group_col or None)
    y = np.array([e.label for e in entries])
    groups = np.array([e.group for e in entries], dtype=object)
    s = grouped_stratified_split(y, groups, preset.split, preset.num_classes, seed=0)
    table = split_table(y, s, preset.num_classes)
    assert table.sum(0).tolist() == expected
    target = class_targets(np.bincount(y), split_totals(len(y), preset.split))
    assert np.abs(table - target).max() <= 1
    g2s: dict = {}
    for g, k in zip(groups, s):
        assert g2s.setdefault(g, k) == k
