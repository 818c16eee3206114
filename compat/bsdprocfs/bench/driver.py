"""Runs every row family and prints the table (terminal width, or Markdown)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable

from .core import DIRECTION, GOALS, ROWS, Helpers, Result, Settings, skipped
from .etype import bench_etype
from .fuse import NAMES as FUSE_ROWS
from .fuse import bench_fuse
from .map import bench_map
from .startup import NAMES as STARTUP_ROWS
from .startup import bench_startup
from .status import bench_status
from .step import NAMES as STEP_ROWS
from .step import bench_step

#: stage -> the rows it fills (a stage that raises marks all of them skipped)
STAGES: tuple[tuple[str, Callable[[Settings, Helpers], Result | list[Result]],
                    tuple[str, ...]], ...] = (
    ("status", bench_status, ("status_all_vs_floor", "status_all_vs_psutil")),
    ("map", bench_map, ("map_vs_smaps",)),
    ("etype", lambda s, _h: bench_etype(s), ("etype_osrel_vs_header_read",)),
    ("fuse", bench_fuse, FUSE_ROWS),
    ("step", bench_step, STEP_ROWS),
    ("startup", lambda s, _h: bench_startup(s), STARTUP_ROWS),
)


def run(quick: bool = False, progress: Callable[[str], None] | None = None) -> list[Result]:
    settings = Settings.for_mode(quick)
    say = progress or (lambda s: None)
    results: dict[str, Result] = {}
    for stage, fn, names in STAGES:
        say(f"bench: {stage}...")
        helpers = Helpers()
        out: Result | list[Result]
        try:
            out = fn(settings, helpers)
        except Exception as e:  # noqa: BLE001 - a broken row must not lose the others
            out = [skipped(n, f"error: {type(e).__name__}: {e}") for n in names]
        finally:
            helpers.close()
        for r in out if isinstance(out, list) else [out]:
            results[r.name] = r
    return [results.get(n) or skipped(n, "not run") for n, _ in ROWS]


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}" if v < 10 else f"{v:.1f}"


HEAD = ("benchmark", "ratio", "goal", "met", "A", "B", "unit")
LEGEND = (f"ratio = time(A) / time(B), ours over the reference for the same work: "
          f"{DIRECTION}; met = ratio <= goal; A and B are medians, per unit of work.")


def _rows(results: list[Result]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in results:
        goal = GOALS[r.name]
        g = f"<= {goal:g}" if goal is not None else "report"
        if r.reason:
            rows.append((r.name, "-", g, "skipped", "-", "-", "-"))
        else:
            rows.append((r.name, f"{r.ratio:.2f}" if r.ratio is not None else "-", g,
                         {True: "yes", False: "NO", None: "-"}[r.met], _fmt(r.a), _fmt(r.b),
                         r.unit))
    return rows


def _notes(r: Result) -> str:
    if r.reason:
        return f"skipped: {r.reason}"
    return f"A = {r.a_is}; B = {r.b_is}" + "".join(f"; {n}" for n in r.notes)


def table(results: list[Result], width: int = 80) -> str:
    from ..cli import table as t
    out = [t.text(HEAD, _rows(results), width), "\n", t.paragraph(LEGEND, width), "\n"]
    out += [t.paragraph(f"{r.name}: {_notes(r)}", width) for r in results]
    return "".join(out)


def markdown(results: list[Result]) -> str:
    from ..cli import table as t
    out = ["# bsdprocfs bench\n\n", LEGEND, "\n\n", t.markdown(HEAD, _rows(results)), "\n"]
    out += [f"- **{r.name}**: {_notes(r)}\n" for r in results]
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    from ..cli.bench import add_args
    ap = argparse.ArgumentParser(prog="bsdprocfs bench", description=LEGEND)
    add_args(ap)
    return cmd_bench(ap.parse_args(argv))


def cmd_bench(args: argparse.Namespace) -> int:
    from ..cli.common import terminal_width
    t0 = time.monotonic()
    results = run(args.quick, progress=lambda s: print(s, file=sys.stderr, flush=True))
    fmt = getattr(args, "format", "table")
    sys.stdout.write(markdown(results) if fmt == "md" else table(results, terminal_width()))
    print(f"\n({'quick' if args.quick else 'full'} run, {time.monotonic() - t0:.0f} s, "
          f"load average {os.getloadavg()[0]:.2f})")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({r.name: r.as_json() for r in results}, f, indent=2)
            f.write("\n")
    return 0
