"""``bsdprocfs bench``: its options; the benchmarks are :mod:`bsdprocfs.bench`."""

from __future__ import annotations

import argparse
from typing import Any

from .common import parser


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="fewer repetitions (under a minute)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    p.add_argument("--format", choices=("table", "md"), default="table",
                   help="table (default): laid out for the terminal's width; md: Markdown")


def run(args: argparse.Namespace) -> int:
    from ..bench import cmd_bench
    return cmd_bench(args)


def register(sub: Any) -> None:
    p = parser(sub, "bench", "measure speed against the physical floors, side by side",
               "Time each workload against its reference in alternating repetitions and "
               "print one table of ratios, ours / reference, lower is better, each with "
               "its goal. Needs root, /dev/fuse, ptrace and gcc for every row; rows "
               "whose needs are missing say why they were skipped. Takes a few minutes "
               "(--quick: about one).",
               """
bsdprocfs bench --quick
bsdprocfs bench --json bench.json
""")
    add_args(p)
    p.set_defaults(func=run)
