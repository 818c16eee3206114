"""``bsdprocfs conformance``: run the shipped conformance suite (pytest plugin
``bsdprocfs_conformance``) against a mounted procfs or the API, print the
node x check-category matrix, exit 0 only if nothing failed."""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from typing import Any

from .common import parser


def _profiles(text: str) -> str:
    from ..profiles import PROFILES
    names = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in names if p not in PROFILES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            f"unknown profile {', '.join(bad) or text!r}; choose from {', '.join(PROFILES)}")
    return ",".join(names)


def build_args(args: argparse.Namespace, ini: str) -> list[str]:
    # located, not imported: pytest must import the checks itself to rewrite asserts
    spec = importlib.util.find_spec("bsdprocfs_conformance.checks")
    assert spec is not None and spec.submodule_search_locations is not None
    rootdir = list(spec.submodule_search_locations)[0]
    out = ["-c", ini, "--rootdir", rootdir, "-p", "no:cacheprovider",
           "--pyargs", "bsdprocfs_conformance.checks", "-r", "fE", "--no-header"]
    out += (["--procfs-api"] if args.api else ["--procfs-fuse"] if args.fuse
            else ["--procfs-root", args.root])
    if args.profile:
        out += ["--procfs-profile", args.profile]
    if args.impl:
        out += ["--procfs-impl", args.impl]
    if args.factory:
        out += ["--procfs-api-factory", args.factory]
    if args.junit:
        out += ["--junitxml", args.junit]
    if args.report:
        out += ["--procfs-report-md", args.report]
    if args.json:
        out += ["--procfs-report-json", args.json]
    if args.n:
        out += ["-n", str(args.n)]
    if args.k:
        out += ["-k", args.k]
    if importlib.util.find_spec("pytest_timeout"):
        out += ["--timeout", "300"]
    out += args.pytest_args or []
    return out


def cmd_conformance(args: argparse.Namespace) -> int:
    if not args.root and not args.api and not args.fuse:
        print("bsdprocfs conformance: give --root PATH (a mounted procfs: native FreeBSD /proc "
              "or a bsdprocfs FUSE mount), --api (the in-process bsdprocfs API) or --fuse "
              "(the bsdprocfs FUSE shim, mounted by the suite once per profile)",
              file=sys.stderr)
        return 2
    if args.root and not os.path.isdir(args.root):
        print(f"bsdprocfs conformance: --root {args.root}: not a directory", file=sys.stderr)
        return 2
    if args.n and not importlib.util.find_spec("xdist"):
        print("bsdprocfs conformance: -n needs pytest-xdist (pip install pytest-xdist)",
              file=sys.stderr)
        return 2
    import tempfile

    import pytest
    with tempfile.TemporaryDirectory(prefix="bsdpfs-conf-cli-") as d:
        ini = os.path.join(d, "pytest.ini")
        with open(ini, "w") as f:
            f.write("[pytest]\n")
        t0 = time.monotonic()
        rc = int(pytest.main(build_args(args, ini)))
        print(f"bsdprocfs conformance: {time.monotonic() - t0:.1f} s, exit {rc}"
              + (" (failures above)" if rc else ""))
    return 0 if rc == 0 else 1


def register(sub: Any) -> None:
    p = parser(sub, "conformance", "judge a procfs implementation with the conformance suite",
               "Run the conformance suite against a procfs: a mounted one (--root: a "
               "native FreeBSD /proc, a bsdprocfs FUSE mount, anyone's) or the "
               "in-process API (--api). Prints the matrix of node x check category, the "
               "reason of every skip and expected divergence, and exits 0 only if no "
               "check failed. Run as root for the unprivileged-observer checks.",
               """
bsdprocfs conformance --api
bsdprocfs conformance --root /mnt/bsdproc -n 2
bsdprocfs conformance --root /proc --report matrix.md     (on FreeBSD)
""")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--root", metavar="PATH",
                   help="a mounted procfs (a FreeBSD /proc, a FUSE mount)")
    g.add_argument("--api", action="store_true", help="the in-process bsdprocfs API")
    g.add_argument("--fuse", action="store_true",
                   help="the bsdprocfs FUSE shim, mounted by the suite once per judged "
                   "profile (root)")
    from ..profiles import PROFILES
    p.add_argument("--profile", metavar="P[,P...]", type=_profiles,
                   help="judge only these release profiles (default: every profile the "
                   f"target serves: all of {', '.join(PROFILES)} for --api and --fuse; the "
                   "detected one on native FreeBSD; the mounted one for a bsdprocfs mount)")
    p.add_argument("--impl", metavar="NAME",
                   help="the implementation whose declared divergences apply: "
                   "native-freebsd, bsdprocfs-api, bsdprocfs-fuse or other (default: detected)")
    p.add_argument("--factory", metavar="MODULE:CALLABLE",
                   help="with --api: build the API object with CALLABLE(profile)")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML to FILE")
    p.add_argument("--report", metavar="FILE.md", help="also write the matrix as Markdown")
    p.add_argument("--json", metavar="FILE",
                   help="also write the matrix and every check as JSON")
    p.add_argument("-n", type=int, default=0, metavar="N",
                   help="run the checks in N parallel workers (pytest-xdist)")
    p.add_argument("-k", metavar="EXPR", help="only the checks matching EXPR (pytest -k)")
    p.add_argument("pytest_args", nargs="*", metavar="-- PYTEST_ARGS",
                   help="extra pytest arguments")
    p.set_defaults(func=cmd_conformance)
