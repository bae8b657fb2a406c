"""The in-process step runner (``python -m rdm.pipeline.grid run``, ``make demo RUNNER=pool``) on steps that
cost nothing: make's skip rule, a failed step's dependants not run while the others go on, the
state a step leaves in its worker put back, one-line usage errors. That the runner writes the files
make writes, on a real tiny grid, is checked in test_slurm.py (on the grid its tasks built)."""

from __future__ import annotations

import json
import logging
import os
import signal

import pytest
import torch

from rdm.pipeline import grid as cli
from rdm.pipeline import commands as C
from rdm.pipeline import runner as R


def _stamp(tmp_path, name: str, value: str, inputs=()) -> R.Job:
    """A step that writes VALUE to NAME (``python -m rdm.pipeline.grid stamp``, rewritten only on change)."""
    out = str(tmp_path / name)
    return R.Job(f"t/{name}", [*C.module("rdm.pipeline.grid"), *C.lit("stamp", out, value)],
                 [str(tmp_path / i) for i in inputs], [out])


def _log(tmp_path) -> list[dict]:
    p = tmp_path / "timings.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def test_a_failed_step_stops_its_dependants_only(tmp_path):
    a = _stamp(tmp_path, "a", "1")
    # not a set: `rdm.pipeline.grid subset` fails with one line, exit 1
    bad = R.Job("t/bad", [*C.module("rdm.pipeline.grid"), *C.lit("subset", str(tmp_path / "a"), "3", "-o",
                                                         str(tmp_path / "bad.h5"))], [str(tmp_path / "a")],
                [str(tmp_path / "bad.h5")])
    after_bad = _stamp(tmp_path, "c", "x", inputs=["bad.h5"])
    after_a = _stamp(tmp_path, "d", "y", inputs=["a"])
    res = R.run_jobs(R.link([a, bad, after_bad, after_a]), R.DEFAULTS, 2, tmp_path / "timings.jsonl")
    assert [j.stage for j in res.failed] == ["t/bad"] and [j.stage for j in res.blocked] == ["t/c"]
    assert sorted(j.stage for j in res.ran) == ["t/a", "t/d"]
    assert (tmp_path / "d").read_text() == "y\n" and not (tmp_path / "c").exists() and not (tmp_path / "bad.h5").exists()
    # make's $(TIMED) lines for the steps that ran, with their exit codes
    assert sorted((r["stage"], r["rc"]) for r in _log(tmp_path)) == [("t/a", 0), ("t/bad", 1), ("t/d", 0)]
    assert all(set(r) == {"stage", "seconds", "rc", "end"} for r in _log(tmp_path))
    lines = R.failures(res)
    assert lines[0] == "error: 1 step(s) failed, 1 not run because of them:" and lines[1] == "  t/bad (exit 1)"
    assert lines[2].startswith("    error: ") and str(tmp_path / "a") in lines[2]


def test_up_to_date_steps_are_skipped_as_make_skips_them(tmp_path):
    def run():
        jobs = R.link([_stamp(tmp_path, "a", "1"), _stamp(tmp_path, "b", "2", inputs=["a"])])
        return R.run_jobs(jobs, R.DEFAULTS, 2, tmp_path / "timings.jsonl")

    assert sorted(j.stage for j in run().ran) == ["t/a", "t/b"]
    res = run()                                     # everything exists and is newer than its inputs
    assert res.ran == [] and len(res.up_to_date) == 2 and len(_log(tmp_path)) == 2
    st = os.stat(tmp_path / "b")
    os.utime(tmp_path / "a", ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))   # an input newer than b
    res = run()
    assert [j.stage for j in res.ran] == ["t/b"] and [j.stage for j in res.up_to_date] == ["t/a"]
    (tmp_path / "a").unlink()                        # an input nothing makes: one line, not run
    res = R.run_jobs(R.link([_stamp(tmp_path, "b", "2", inputs=["a"])]), R.DEFAULTS, 1, tmp_path / "t2.jsonl")
    assert res.failed[0].tail == [f"no rule to make {tmp_path / 'a'}, needed by {tmp_path / 'b'}"]


def test_a_step_leaves_nothing_behind_in_its_worker():
    b = torch.backends
    before = (dict(os.environ), os.getcwd(), torch.get_num_threads(), b.cudnn.deterministic, b.cudnn.benchmark,
              torch.is_grad_enabled(), signal.getsignal(signal.SIGTERM), list(logging.getLogger().handlers))
    with R.fresh_state():
        os.environ["RDM_PROGRESS_SECONDS"] = "1"
        os.chdir("/")
        torch.set_num_threads(before[2] + 1)
        b.cudnn.deterministic, b.cudnn.benchmark = not before[3], not before[4]   # as rdm.training.loop does on CUDA
        torch.set_grad_enabled(False)
        signal.signal(signal.SIGTERM, lambda *a: None)                             # as rdm.cli.run does
        logging.getLogger().addHandler(logging.NullHandler())
    after = (dict(os.environ), os.getcwd(), torch.get_num_threads(), b.cudnn.deterministic, b.cudnn.benchmark,
             torch.is_grad_enabled(), signal.getsignal(signal.SIGTERM), list(logging.getLogger().handlers))
    assert after == before


def test_a_file_rewritten_in_place_is_read_again_in_the_next_step(tmp_path):
    """The per-process file caches (sha256, validated sets) are keyed by file identity (path, inode,
    size, mtime). A file changed in place with its size and mtime kept looks the same to them: a
    process that runs one step after another must empty them between steps (fresh_state does)."""
    from rdm.data.provenance import sha256_bytes, sha256_file

    path = tmp_path / "f.bin"
    path.write_bytes(b"aaaa")
    assert sha256_file(path) == sha256_bytes(b"aaaa")
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.write(b"bbbb")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert sha256_file(path) == sha256_bytes(b"aaaa")          # a stale hit within one process
    with R.fresh_state():
        pass
    assert sha256_file(path) == sha256_bytes(b"bbbb")


def test_run_usage_errors_are_one_line(capsys):
    assert cli.main(["run", "--mode", "demo", "--modality", "lung", "NOPE=1"]) == 2
    assert capsys.readouterr().err.startswith("error: 'NOPE=1': expected NAME=VALUE with NAME one of OUT, ")
    assert cli.main(["run", "--mode", "demo", "--modality", "lung", "--jobs", "0"]) == 2
    assert capsys.readouterr().err == "error: --jobs must be at least 1, got 0\n"
