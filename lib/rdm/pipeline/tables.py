"""The table model and its renderings: Markdown, CSV, LaTeX and JSON.

A :class:`Table` has rows of :class:`Entry` (one table cell); an entry shows one or more
:class:`Part` — a number from a metrics file (its file, result index and metric kept, so
``report.json`` can be checked against the files), a number from the paper, or a difference of two
parts. An entry with no parts shows its ``na`` text: ``—`` (the grid defines no such cell), ``n/a``
(its metrics file is missing) or any words.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from rdm.pipeline.labels import pct


@dataclass
class Part:
    """One shown number: from a metrics file (``file``, ``index``, ``metric``), the paper, or a difference."""

    key: str
    value: float | None
    file: str | None = None
    index: int | None = None
    paper: bool = False
    minus: tuple["Part", "Part"] | None = None   # value = minus[0] − minus[1]
    count: bool = False                            # an integer (rows), not a rate
    metric: str | None = None                      # the key in the metrics file ("accuracy", ...)
    # a number over rows and seeds (rdm.pipeline.verdicts): its 95 % interval and what is behind it
    lo: float | None = None
    hi: float | None = None
    rows: dict[str, Any] | None = None             # n_rows, n_seeds, method, rows_id, restricted, files
    # a difference's paired test (rdm.evaluation.stats.paired_test): p and the verdict
    p: float | None = None
    verdict: str | None = None
    origin: str = "metrics"                        # what ``file`` is: an rdm-eval metrics file, or a certificate
    # a verdict between methods (rdm.evaluation.stats.method_test): adjusted p, the two one-sided tests, ...
    test: dict[str, Any] | None = None

    def text(self) -> str:
        if self.value is None:
            return "n/a"
        if self.count:
            return f"{int(self.value)}"
        if self.paper:
            return f"{100 * self.value:.0f}"
        if self.minus is not None:
            s = signed(self.value)
            if self.lo is not None and self.hi is not None:
                s += f" {bounds(self.lo, self.hi)}"
            return s + (f" {VERDICT_MARK[self.verdict]}" if self.verdict in VERDICT_MARK else "")
        if self.lo is not None and self.hi is not None:
            return f"{pct(self.value)} ± {50 * (self.hi - self.lo):.1f}"
        return pct(self.value)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {"key": self.key, "value": self.value, "text": self.text()}
        if self.lo is not None:
            d.update(lo=self.lo, hi=self.hi)
        if self.rows is not None:
            d["rows"] = self.rows
        if self.paper:
            d["source"] = "paper"
        elif self.minus is not None:
            d["source"] = "difference"
            d["of"] = [self.minus[0].to_json(), self.minus[1].to_json()]
            if self.verdict is not None:
                d.update(p=self.p, verdict=self.verdict)
            if self.test is not None:
                d["test"] = self.test
        elif self.rows is not None and (self.rows.get("n_seeds", 1) > 1 or self.rows.get("restricted")):
            # a mean over seeds, or a cell restricted to fewer rows: computed from the per-row results
            d.update(source="per-row", metric=self.metric)
        elif self.file is not None:
            d.update(source=self.origin, file=self.file, index=self.index, metric=self.metric)
        return d


def signed(v: float) -> str:
    """A difference in points with its sign, one decimal; never ``-0.0``."""
    t = f"{100 * v:+.1f}"
    return "+0.0" if t == "-0.0" else t


def bounds(lo: float, hi: float) -> str:
    """An interval of a difference, ``[-5.8, -0.04]``: a bound that one decimal would round to 0 gets
    one significant digit, so that an interval excluding 0 never reads as touching it."""
    def one(v: float) -> str:
        t = signed(v)
        return f"{100 * v:+.1g}" if float(t) == 0 and v != 0 else t
    return f"[{one(lo)}, {one(hi)}]"


#: how a difference's verdict is marked in a table (the legend is printed under it)
VERDICT_MARK = {"better": "↑", "worse": "↓", "within noise": "≈", "equivalent": "=", "cannot tell": "?"}


@dataclass
class Entry:
    """One table cell: its parts joined by `` / ``, or its ``na`` text when it has none."""

    parts: list[Part] = field(default_factory=list)
    na: str = "—"
    mark: str = ""          # appended to the text: "†" for a cell on the seeded subset's rows
    label: str | None = None       # words before the numbers (whose numbers they are)
    said: str | None = None        # the cell's text when its numbers are said in a sentence (claims)

    def text(self) -> str:
        if self.said is not None:
            return self.said
        if not self.parts:
            return self.na
        nums = " / ".join(p.text() for p in self.parts) + self.mark
        return nums if self.label is None else f"{self.label} {nums}"

    def to_json(self) -> dict[str, Any]:
        d = {"text": self.text(), "parts": [p.to_json() for p in self.parts]}
        return d if self.label is None else {**d, "label": self.label}


DASH = Entry()
NA = Entry(na="n/a")


def words(text: Any) -> Entry:
    """An entry that shows text, not a number."""
    return Entry([], na=str(text))


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[tuple[str, list[Entry]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, lab: str, entries: list[Entry]) -> None:
        if len(entries) != len(self.columns) - 1:
            raise AssertionError(f"{self.name}: row {lab!r} has {len(entries)} cells for {len(self.columns) - 1} columns")
        self.rows.append((lab, entries))

    # ----- renderings
    def markdown(self) -> str:
        head = "| " + " | ".join(self.columns) + " |"
        sep = "|" + "|".join(["---"] + ["---:"] * (len(self.columns) - 1)) + "|"
        body = ["| " + " | ".join([lab] + [c.text() for c in cells]) + " |" for lab, cells in self.rows]
        out = [f"**{self.title}**", "", head, sep, *body]
        if self.notes:
            out += [""] + [f"<sub>{n}</sub>  " for n in self.notes]
        return "\n".join(out) + "\n"

    def csv(self) -> str:
        # one CSV column per shown number: "RDMAA transfer acc", "RDMAA transfer bal", ...
        width = [max((len(cells[i].parts) for _, cells in self.rows), default=1) for i in range(len(self.columns) - 1)]
        keys = []
        for i, col in enumerate(self.columns[1:]):
            ks = next((([p.key for p in cells[i].parts]) for _, cells in self.rows if len(cells[i].parts) == width[i]), [])
            keys.append([f"{col} {k}" if width[i] > 1 else col for k in ks] or [col])
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow([self.columns[0]] + [k for ks in keys for k in ks])
        for lab, cells in self.rows:
            row = [lab]
            for i, c in enumerate(cells):
                n = len(keys[i])
                vals = ([c.said] if c.said is not None else     # a sentence: one column, as the table shows it
                        [p.text() for p in c.parts] if c.parts else [c.na] * n)
                row += (vals + [c.na] * n)[:n]
            w.writerow(row)
        return buf.getvalue()

    def latex(self) -> str:
        cols = "l" + "r" * (len(self.columns) - 1)
        lines = [f"% {self.title}", "% needs \\usepackage{booktabs}", "\\begin{tabular}{" + cols + "}", "\\toprule",
                 " & ".join(tex(c) for c in self.columns) + " \\\\", "\\midrule"]
        for lab, cells in self.rows:
            lines.append(" & ".join([tex(lab)] + [tex(c.text()) for c in cells]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"title": self.title, "columns": self.columns, "notes": self.notes,
                "rows": [{"label": lab, "cells": [c.to_json() for c in cells]} for lab, cells in self.rows]}


_TEX = [("\\", "\\textbackslash{}"), ("&", "\\&"), ("%", "\\%"), ("_", "\\_"), ("#", "\\#"),
        ("ε", "$\\varepsilon$"), ("α", "$\\alpha$"), ("×", "$\\times$"), ("—", "---"), ("→", "$\\to$"),
        ("−", "$-$"), ("±", "$\\pm$"), ("↑", "$\\uparrow$"), ("↓", "$\\downarrow$"), ("≈", "$\\approx$"),
        ("†", "$^\\dagger$"), ("≤", "$\\le$"), ("≥", "$\\ge$"), ("∞", "$\\infty$")]


def tex(s: str) -> str:
    for a, b in _TEX:
        s = s.replace(a, b)
    return s
