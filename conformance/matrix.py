"""The node x check-category matrix: collected from test reports, rendered as
text (terminal), Markdown (--report) and JSON (--json)."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

OUTCOMES = ("passed", "failed", "divergence", "not_provided", "skipped")
LABELS = {"passed": "passed", "failed": "failed", "divergence": "expected divergence",
          "not_provided": "not provided by profile", "skipped": "skipped"}
NOT_PROVIDED = "not provided by profile"
NODE_ORDER = ("tree", "curproc", "self", "cmdline", "ctl", "dbregs", "etype", "fpregs", "map",
              "mem", "note", "notepg", "regs", "rlimit", "status", "osrel", "file", "exe", "*")


class Matrix:
    """cells: (profile, node, category) -> outcome counts; tests: one plain dict per
    check run (check, profile, node, category, outcome, reason).  Renderers read
    only these two structures."""

    def __init__(self) -> None:
        self.cells: dict[tuple[str, str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(OUTCOMES, 0))
        self.tests: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}
        self.profile_order: list[str] = []

    def add(self, check: str, node: str, category: str, outcome: str, reason: str = "",
            profile: str = "") -> None:
        self.cells[(profile, node, category)][outcome] += 1
        self.tests.append({"check": check, "profile": profile, "node": node,
                           "category": category, "outcome": outcome, "reason": reason})

    @property
    def profiles(self) -> list[str]:
        seen = {p for p, _, _ in self.cells}
        order = [p for p in self.profile_order if p in seen]
        return order + sorted(seen - set(order))

    @property
    def totals(self) -> dict[str, int]:
        t = dict.fromkeys(OUTCOMES, 0)
        for c in self.cells.values():
            for k, v in c.items():
                t[k] += v
        return t

    def _axes(self) -> tuple[list[str], list[str]]:
        nodes = sorted({n for _, n, _ in self.cells},
                       key=lambda n: (NODE_ORDER.index(n) if n in NODE_ORDER else 99, n))
        cats = sorted({c for _, _, c in self.cells})
        return nodes, cats

    def profile_totals(self, profile: str) -> dict[str, int]:
        t = dict.fromkeys(OUTCOMES, 0)
        for (p, _, _), c in self.cells.items():
            if p == profile:
                for k, v in c.items():
                    t[k] += v
        return t

    @staticmethod
    def cell_text(c: dict[str, int] | None) -> str:
        if not c or not any(c.values()):
            return ""
        parts = []
        for key, sym in (("passed", "P"), ("failed", "F"), ("divergence", "X"),
                         ("not_provided", "N"), ("skipped", "S")):
            if c[key]:
                parts.append(f"{sym}{c[key]}")
        return " ".join(parts)

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """One row per (profile, node) that has checks: profile, node, then a cell per
        category (the profile column is the matrix's third dimension)."""
        nodes, cats = self._axes()
        rows = []
        for p in self.profiles:
            for n in nodes:
                cells = [self.cell_text(self.cells.get((p, n, c))) for c in cats]
                if any(cells):
                    rows.append([p, n] + cells)
        return ["profile", "node"] + cats, rows

    def legend(self) -> str:
        return ("P passed, F failed, X expected divergence (declared), "
                "N not provided by profile, S skipped (capability missing)")

    def text(self) -> str:
        head, rows = self.rows()
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        out = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        out += [fmt.format(*r) for r in rows]
        t = self.totals
        out.append("")
        for p in self.profiles:
            pt = self.profile_totals(p)
            out.append(f"{p}: " + ", ".join(f"{pt[k]} {LABELS[k]}" for k in OUTCOMES if pt[k]))
        out.append("total: " + ", ".join(f"{t[k]} {LABELS[k]}" for k in OUTCOMES))
        out.append(self.legend())
        return "\n".join(out)

    def markdown(self) -> str:
        head, rows = self.rows()
        lines = ["# procfs conformance matrix", ""]
        for k, v in self.meta.items():
            lines.append(f"- **{k}**: {v}")
        t = self.totals
        lines += ["", "Totals: " + ", ".join(f"{t[k]} {LABELS[k]}" for k in OUTCOMES), "",
                  self.legend(), "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        div = [x for x in self.tests if x["outcome"] == "divergence"]
        if div:
            lines += ["", "## Expected divergences", "", "| profile | check | reason |",
                      "|---|---|---|"]
            lines += [f"| {x['profile']} | `{x['check']}` | {x['reason']} |" for x in div]
        bad = [x for x in self.tests if x["outcome"] == "failed"]
        if bad:
            lines += ["", "## Failures", ""]
            lines += [f"- {x['profile']} `{x['check']}`: {x['reason'][:300]}" for x in bad]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps({"meta": self.meta, "totals": self.totals,
                           "profiles": {p: self.profile_totals(p) for p in self.profiles},
                           "matrix": {f"{p}/{n}/{c}": v
                                      for (p, n, c), v in sorted(self.cells.items())},
                           "tests": self.tests}, indent=1)
