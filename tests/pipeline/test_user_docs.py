"""The README is documentation for users: short, install first, the answer's place named; the user
docs narrate no history and name no path of the machine that built them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Words that narrate how the project got here (a numbered issue or work period, a note about it, what
# came before) rather than what the code does; assembled from parts so this file does not match itself.
_PERIOD = "|".join(("issue", "session", "work period"))
_PHRASES = [f"(?:{_PERIOD}) [0-9]", f"(?:this|next) (?:{_PERIOD})", "clos" + "ing note", "previous(?:ly)? run",
            "previously", "now " + "fixed"]
HISTORY = re.compile("|".join(rf"\b{p}" for p in _PHRASES), re.I)
MACHINE = re.compile(r"(?<![\w.$}])/(work|root|tmp)/")


def _tracked(*paths: str) -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", *paths], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / f for f in out.splitlines() if (REPO / f).is_file()]


def test_readme_is_short_and_opens_with_what_install_and_the_answer():
    text = (REPO / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 400
    first_screen = "\n".join(lines[:40])
    assert "results/SUMMARY.md" in first_screen and "make demo" in first_screen and "make test" in first_screen
    for heading in ("## Set-up", "## The commands", "## Getting the data", "## Your own model and data",
                    "## Results", "## Layout", "## Running on a Slurm cluster"):
        assert heading in text, heading
    assert "download.pytorch.org/whl/cpu" in text            # the CPU-only install
    for doc in ("docs/method.md", "docs/performance.md"):
        assert doc in text and (REPO / doc).is_file()


@pytest.mark.parametrize("scope", ["README.md", "docs", "experiments", "shell", "tools", "Makefile"])
def test_user_facing_files_narrate_no_history_and_name_no_build_machine(scope):
    for p in _tracked(scope):
        for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1):
            assert not HISTORY.search(line), f"{p.relative_to(REPO)}:{i}: {line.strip()}"
            assert not MACHINE.search(line), f"{p.relative_to(REPO)}:{i}: {line.strip()}"
