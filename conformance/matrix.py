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
    def __init__(self) -> None:
        self.cells: dict[tuple[str, str], dict[str, int]] = defaultdict(
            lambda: dict.fromkeys(OUTCOMES, 0))
        self.tests: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}

    def add(self, check: str, node: str, category: str, outcome: str, reason: str = "") -> None:
        self.cells[(node, category)][outcome] += 1
        self.tests.append({"check": check, "node": node, "category": category,
                           "outcome": outcome, "reason": reason})

    @property
    def totals(self) -> dict[str, int]:
        t = dict.fromkeys(OUTCOMES, 0)
        for c in self.cells.values():
            for k, v in c.items():
                t[k] += v
        return t

    def _axes(self) -> tuple[list[str], list[str]]:
        nodes = sorted({n for n, _ in self.cells},
                       key=lambda n: (NODE_ORDER.index(n) if n in NODE_ORDER else 99, n))
        cats = sorted({c for _, c in self.cells})
        return nodes, cats

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
        nodes, cats = self._axes()
        rows = [[n] + [self.cell_text(self.cells.get((n, c))) for c in cats] for n in nodes]
        return ["node"] + cats, rows

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
        out.append(", ".join(f"{t[k]} {LABELS[k]}" for k in OUTCOMES))
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
            lines += ["", "## Expected divergences", "", "| check | reason |", "|---|---|"]
            lines += [f"| `{x['check']}` | {x['reason']} |" for x in div]
        bad = [x for x in self.tests if x["outcome"] == "failed"]
        if bad:
            lines += ["", "## Failures", ""]
            lines += [f"- `{x['check']}`: {x['reason'][:300]}" for x in bad]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps({"meta": self.meta, "totals": self.totals,
                           "matrix": {f"{n}/{c}": v for (n, c), v in sorted(self.cells.items())},
                           "tests": self.tests}, indent=1)
