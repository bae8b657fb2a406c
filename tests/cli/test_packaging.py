"""Packaging: `pip install .` with no extras gives working commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TORCH_PIN = os.environ.get("RDM_TORCH_SPEC", "torch==2.13.0")   # an unpinned torch pulls a CUDA build


def test_every_package_is_listed_and_scikit_image_is_core():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = {"rdm." + ".".join(p.parent.relative_to(ROOT / "lib" / "rdm").parts)
             for p in (ROOT / "lib" / "rdm").rglob("__init__.py")}
    found = {f.rstrip(".") for f in found} | {"rdm.data.presets", "rdm_tools"}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    assert any(d.startswith("scikit-image") for d in cfg["project"]["dependencies"])


def _torch_closure() -> list:
    """This interpreter's torch and the distributions it requires, when its torch is the pinned one
    (else [], and the fresh venv installs torch itself)."""
    import importlib.metadata as md

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    try:
        if not Requirement(TORCH_PIN).specifier.contains(md.version("torch"), prereleases=True):
            return []
    except md.PackageNotFoundError:
        return []
    seen, todo, dists = set(), ["torch"], []
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        dist = md.distribution(name)
        dists.append(dist)
        for r in dist.requires or []:
            req = Requirement(r)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return dists


def _lend_torch(site: Path, to: Path) -> bool:
    """Make this interpreter's torch and its requirements (and nothing else) importable in the venv
    whose site-packages is ``to``: symbolic links in ``site``, named by a .pth file. pip sees them as
    installed, so `pip install` does not unpack and byte-compile torch again (most of this test's time);
    everything rdm itself requires is still installed fresh. They lie outside the venv, so pip would
    never uninstall them; setuptools is the venv's own (pip upgrades it to what torch requires)."""
    dists = [d for d in _torch_closure() if d.metadata["Name"].lower() != "setuptools"]
    if not dists:
        return False
    site.mkdir()
    for d in dists:
        root = Path(d.locate_file(""))
        for top in {f.parts[0] for f in d.files or []} - {"..", "__pycache__"}:
            if not top.endswith(".pth") and (root / top).exists():
                (site / top).symlink_to(root / top)
    (to / "_rdm_test_torch.pth").write_text(f"{site}\n")
    return True


@pytest.mark.slow
def test_fresh_venv_pip_install_runs_the_pipeline(tmp_path):
    """A fresh venv, `pip install .` (torch pinned) and nothing else: prep, train, attack, eval. The
    venv borrows this interpreter's torch when it is the pinned one (see _lend_torch)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    _lend_torch(tmp_path / "torch-site", Path(purelib))
    r = subprocess.run([str(py), "-m", "pip", "install", "-v", TORCH_PIN, str(ROOT)], capture_output=True,
                       text=True, timeout=1500)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert "SetuptoolsDeprecationWarning" not in log and "BuildBackendWarning" not in log, \
        [ln for ln in log.splitlines() if "Warning" in ln][:5]
    assert "is absent from the `packages` configuration" not in log
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(RDM_THREADS="1", RDM_NO_PBAR="1")
    b = venv / "bin"
    w = tmp_path / "w"

    def run(*args):
        res = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
        assert res.returncode == 0, (args[0], res.stderr[-3000:])
        return res.stdout

    from helpers import TOOLS

    for tool in TOOLS:
        assert "(rdm)" in run(b / tool, "--version")
    run(b / "rdm-prep", "synthetic", "--preset", "lung", "--n", "60", "-q", "-o", w)
    run(b / "rdm-train-cnn", w / "train.h5", "--val", w / "val.h5", "--epochs", "1", "-q", "-o", w / "m.ckpt")
    run(b / "rdm-attack", w / "m.ckpt", w / "test.h5", "--attack", "fgsm", "--eps", "0.01", "-q", "-o", w / "adv.h5")
    report = json.loads(run(b / "rdm-eval", w / "m.ckpt", w / "test.h5", w / "adv.h5", "--json", "-q"))
    adv = [x for x in report["results"] if x["protocol"] != "clean"]
    assert adv and 0 < adv[0]["metrics"]["adversarial"]["ssim_mean"] <= 1      # SSIM without any extra


@pytest.mark.parametrize("setting,aligned", [(None, True), ("0", False)])
def test_commands_allocate_large_tensors_on_huge_pages_unless_turned_off(setting, aligned):
    """`import rdm` (every command's first import) turns on PyTorch's huge-page allocation before torch
    loads: PyTorch then page-aligns and madvises its large CPU tensors (glibc's default mmap chunk starts
    64 bytes into a page), so they fault in as huge pages; THP_MEM_ALLOC_ENABLE=0 keeps the default."""
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    if setting is not None:
        env["THP_MEM_ALLOC_ENABLE"] = setting
    code = ("import rdm_tools.eval, torch, os; "
            "ptrs = [torch.empty(40 << 20, dtype=torch.uint8).data_ptr() % 4096 for _ in range(3)]; "
            "print(os.environ['THP_MEM_ALLOC_ENABLE'], max(ptrs))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    flag, offset = out.stdout.split()
    assert flag == (setting or "1")
    assert (int(offset) == 0) is aligned
