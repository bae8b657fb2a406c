"""rdm-prep on hostile trees: manifest paths that leave the source or name one file twice, links,
dangling links and FIFOs in class folders, float images with NaN or inf pixels."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rdm.data.sets import SetReader
from rdm_tools.prep import app
from helpers import png_tree

PRESET = """name = "two"
classes = ["a", "b"]
channels = 1
size = [8, 8]
split = { train = 0.5, val = 0.25, test = 0.25 }
"""


def tree(root: Path, per_class: int = 4) -> Path:
    return png_tree(root, per_class)


def manifest(root: Path, rows) -> None:
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label"])
        w.writerows(rows)


def all_rows(root):
    return [(f"{c}/{c}{i}.png", c) for c in ("a", "b") for i in range(4)]


def prep(tmp_path, src, *more):
    pre = tmp_path / "two.toml"
    pre.write_text(PRESET)
    r = CliRunner().invoke(app, [str(src), "--preset", str(pre), "-o", str(tmp_path / "out"), "-q", *map(str, more)])
    return r


def one_error(r) -> str:
    assert r.exit_code == 1, (r.exit_code, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""
    return lines[0]


def ids(out: Path) -> list[str]:
    got = []
    for s in ("train", "val", "test"):
        with SetReader(out / f"{s}.h5") as rd:
            got += [str(v) for v in rd.column("id")]
    return got


# --------------------------------------------------------------------------- manifests
@pytest.mark.parametrize("spelling", ["./a/a0.png", "a//a0.png", "b/../a/a0.png"])
def test_one_file_by_two_spellings_is_refused(tmp_path, spelling):
    src = tree(tmp_path / "src")
    manifest(src, all_rows(src) + [(spelling, "a")])
    err = one_error(prep(tmp_path, src))
    assert "listed twice" in err and "a/a0.png" in err
    assert not (tmp_path / "out").exists()


def test_one_file_by_a_symlink_or_hard_link_is_refused(tmp_path):
    src = tree(tmp_path / "src")
    os.symlink("a0.png", src / "a" / "sym.png")
    manifest(src, all_rows(src) + [("a/sym.png", "a")])
    assert "listed twice" in one_error(prep(tmp_path, src))
    (src / "a" / "sym.png").unlink()
    os.link(src / "a" / "a1.png", src / "a" / "hard.png")
    manifest(src, all_rows(src) + [("a/hard.png", "a")])
    assert "same file" in one_error(prep(tmp_path, src))


@pytest.mark.parametrize("where", ["dotdot", "absolute", "link"])
def test_paths_outside_the_source_are_refused_even_with_skip_bad(tmp_path, where):
    src = tree(tmp_path / "src")
    secret = tmp_path / "secret"
    secret.mkdir()
    Image.new("L", (8, 8), 255).save(secret / "x.png")
    row = {"dotdot": "../secret/x.png", "absolute": str(secret / "x.png"), "link": "a/leak.png"}[where]
    if where == "link":
        os.symlink(secret / "x.png", src / "a" / "leak.png")
    manifest(src, all_rows(src) + [(row, "a")])
    for more in ((), ("--skip-bad",)):
        err = one_error(prep(tmp_path, src, *more))
        assert "outside the source folder" in err and row in err
        assert not (tmp_path / "out").exists()


def test_an_absolute_path_inside_the_source_is_the_same_image(tmp_path):
    src = tree(tmp_path / "src")
    rows = [(str(src / p) if p == "a/a1.png" else p, c) for p, c in all_rows(src)]
    manifest(src, rows)
    r = prep(tmp_path, src)
    assert r.exit_code == 0, r.stderr
    assert sorted(ids(tmp_path / "out")) == sorted(p for p, _ in all_rows(src))


def test_label_check_applies_to_every_spelling(tmp_path):
    src = tree(tmp_path / "src")
    rows = [r for r in all_rows(src) if r[0] != "b/b0.png"] + [("./b/b0.png", "a")]
    manifest(src, rows)
    err = one_error(prep(tmp_path, src))
    assert "class folder of 'b'" in err
    r = prep(tmp_path, src, "--label-source", "folder")
    assert r.exit_code == 0, r.stderr
    assert "b/b0.png" in ids(tmp_path / "out")          # stored under its normalised path


# --------------------------------------------------------------------------- class folders
def test_a_hard_link_inside_one_class_folder_is_one_image(tmp_path):
    src = tree(tmp_path / "src")
    os.link(src / "a" / "a0.png", src / "a" / "copy.png")
    r = prep(tmp_path, src)
    assert r.exit_code == 0, r.stderr
    got = ids(tmp_path / "out")
    assert len(got) == 8 and ("a/a0.png" in got) != ("a/copy.png" in got)
    assert "read once" in r.stderr


def test_one_file_in_two_class_folders_is_refused(tmp_path):
    src = tree(tmp_path / "src")
    os.link(src / "a" / "a0.png", src / "b" / "also-a0.png")
    err = one_error(prep(tmp_path, src))
    assert "same file" in err and "'a'" in err and "'b'" in err


def test_dangling_links_and_fifos_are_named_not_skipped_in_silence(tmp_path):
    src = tree(tmp_path / "src")
    os.symlink(tmp_path / "gone.png", src / "a" / "dangling.png")
    os.mkfifo(src / "b" / "pipe.png")
    err = one_error(prep(tmp_path, src))
    assert "dangling.png" in err and "missing file" in err
    r = prep(tmp_path, src, "--skip-bad")                 # a FIFO is never opened: no hang
    assert r.exit_code == 0, r.stderr
    assert "dangling.png" in r.stderr and "pipe.png" in r.stderr and "FIFO" in r.stderr
    assert len(ids(tmp_path / "out")) == 8


# --------------------------------------------------------------------------- non-finite pixels
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_float_images_with_nan_or_inf_are_refused_or_skipped_by_name(tmp_path, bad):
    src = tmp_path / "src"
    rng = np.random.default_rng(1)
    for c in ("a", "b"):
        (src / c).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.random((8, 8), dtype=np.float32), mode="F").save(src / c / f"{c}{i}.tif")
    a = rng.random((8, 8), dtype=np.float32)
    a[3, 4] = bad
    Image.fromarray(a, mode="F").save(src / "a" / "poison.tif")
    err = one_error(prep(tmp_path, src))
    assert "poison.tif" in err and "NaN or inf" in err
    r = prep(tmp_path, src, "--skip-bad")
    assert r.exit_code == 0, r.stderr
    assert "poison.tif" in r.stderr and "RuntimeWarning" not in r.stderr
    assert "a/poison.tif" not in ids(tmp_path / "out")
    for s in ("train", "val", "test"):
        with SetReader(tmp_path / "out" / f"{s}.h5") as rd:
            assert np.isfinite(rd.read(0, rd.n)["x"]).all()
