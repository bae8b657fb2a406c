"""The report-as-a-dict form of :func:`rdm.api.notebook.evaluate`, for code that reads the
``rdm-eval`` JSON: ``evaluate(model, sets, …)`` returns the dict ``rdm-eval -o`` writes."""

from __future__ import annotations

from typing import Any

from rdm.api.notebook import module_sha256

__all__ = ["evaluate", "module_sha256"]


def evaluate(model, sets, **options: Any) -> dict[str, Any]:
    """:func:`rdm.api.notebook.evaluate` (same arguments), its ``report``."""
    from rdm.api import notebook

    return notebook.evaluate(model, sets, **options).report
