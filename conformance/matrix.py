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

    def text(self, width: int | None = None) -> str:
        """The matrix for a terminal of ``width`` columns (default: this one's):
        category columns that do not fit go to a further block under the first,
        each with the node column again; then the totals, the legend, and the
        reason of every check that did not simply pass."""
        if width is None:
            import shutil
            width = shutil.get_terminal_size((80, 24)).columns
        head, rows = self.rows()
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        keys = 2                       # profile and node start every block
        blocks: list[list[int]] = [[]]
        base = sum(widths[:keys]) + 2 * (keys - 1)
        used = base
        for i in range(keys, len(head)):
            if blocks[-1] and used + 2 + widths[i] > width:
                blocks.append([])
                used = base
            blocks[-1].append(i)
            used += 2 + widths[i]
        out: list[str] = []
        for cols in blocks:
            idx = [*range(keys), *cols]
            if out:
                out.append("")
            out.append("  ".join(head[i].ljust(widths[i]) for i in idx).rstrip())
            out.append("  ".join("-" * widths[i] for i in idx))
            out += ["  ".join(r[i].ljust(widths[i]) for i in idx).rstrip() for r in rows]
        t = self.totals
        out.append("")
        for p in self.profiles:
            pt = self.profile_totals(p)
            out += _wrap(f"{p}: " + ", ".join(f"{pt[k]} {LABELS[k]}" for k in OUTCOMES if pt[k]),
                         width)
        out += _wrap("total: " + ", ".join(f"{t[k]} {LABELS[k]}" for k in OUTCOMES), width)
        out += _wrap(self.legend(), width)
        out += self.reasons_text(width)
        return "\n".join(out)

    def reasons(self) -> list[tuple[str, str, list[str]]]:
        """(outcome, reason, checks) for every check that did not pass, one entry per
        distinct reason, failures first."""
        groups: dict[tuple[str, str], list[str]] = {}
        for x in self.tests:
            if x["outcome"] != "passed":
                reason = " ".join(str(x["reason"]).split()) or "(no reason given)"
                groups.setdefault((x["outcome"], reason), []).append(x["check"])
        order = {"failed": 0, "divergence": 1, "skipped": 2, "not_provided": 3}
        return [(o, r, c) for (o, r), c in sorted(groups.items(),
                                                   key=lambda kv: order.get(kv[0][0], 9))]

    def reasons_text(self, width: int = 80) -> list[str]:
        out: list[str] = []
        for outcome, reason, checks in self.reasons():
            if not out:
                out += ["", "Why checks did not pass:"]
            label = {"failed": "F failed", "divergence": "X divergence", "skipped": "S skipped",
                     "not_provided": "N not provided"}.get(outcome, outcome)
            if outcome == "failed":
                reason = reason[:300]
            out += _wrap(f"{label}: {reason}", width, "  ", "    ")
            out += _wrap(", ".join(checks), width, "      ", "      ")
        return out

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
        skip = [x for x in self.tests if x["outcome"] == "skipped"]
        if skip:
            lines += ["", "## Skipped", "", "| profile | check | reason |", "|---|---|---|"]
            lines += [f"| {x['profile']} | `{x['check']}` | {x['reason']} |" for x in skip]
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


def _wrap(text: str, width: int, first: str = "", rest: str = "  ") -> list[str]:
    import textwrap
    return textwrap.wrap(text, max(20, width), initial_indent=first, subsequent_indent=rest,
                         break_long_words=False, break_on_hyphens=False) or [first]
