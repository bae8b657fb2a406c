"""The first example of docs/api.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_api_docs_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    scope: dict = {}
    exec(compile(code, str(DOC), "exec"), scope)
    ev, adv, cert = scope["ev"], scope["adv"], scope["cert"]
    assert ev.robust.attack["name"] == "pgd" and ev.robust.accuracy.value <= ev.clean.accuracy.value
    assert adv.adversarial.shape == (32, 3, 16, 16) and cert.radius.shape == (4,)
    assert '"environment"' in scope["report"]
    assert "%" in capsys.readouterr().out
