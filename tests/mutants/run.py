"""The mutation harness: does the conformance suite see every realistic bug?

For each mutant of catalogue.py: copy the package to a temp dir, apply the one
patch (it must match exactly once, or the run stops: a stale catalogue never
skips silently), build the compiled Linux twin for C mutants (the unmutated twin
is built once and shared), then run the conformance suite against the copy with
``-x``: the API target in-process, every profile; FUSE mutants through real
mounts of the copy (--procfs-fuse: one per profile).  A mutant is killed when a check fails.

    python tests/mutants/run.py [-j 2] [--only ID[,ID]] [--min 95] [--json FILE]

Prints one line per mutant, ``killed K of N (P%)`` and the survivors; exits 1
below --min percent, 2 on a catalogue or set-up error.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PKG = os.path.join(REPO, "compat", "bsdprocfs")
sys.path.insert(0, HERE)

from catalogue import MUTANTS, Mutant  # noqa: E402

C_TWIN = "backends/_linuxfacts.c"
#: files only the pure-Python twin runs (the compiled twin renders map itself): their
#: mutants are judged with BSDPROCFS_PURE=1, the configuration of a host without gcc
PURE_FILES = frozenset(("backends/_linuxparse.py", "nodes/map.py"))
EXT = sysconfig.get_config_var("EXT_SUFFIX") or ".so"


class CatalogueError(Exception):
    pass


def validate(mutants: tuple[Mutant, ...] | list[Mutant]) -> None:
    """Every snippet occurs exactly once in its file and the replacement differs."""
    seen: set[str] = set()
    bad = []
    for m in mutants:
        if m.id in seen:
            bad.append(f"{m.id}: duplicate id")
        seen.add(m.id)
        path = os.path.join(PKG, m.file)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            bad.append(f"{m.id}: {m.file}: {e.strerror}")
            continue
        n = text.count(m.orig)
        if n != 1:
            bad.append(f"{m.id}: the original snippet occurs {n} times in {m.file} "
                       "(the code changed: update the catalogue)")
        if m.orig == m.repl:
            bad.append(f"{m.id}: the replacement equals the original")
        if m.target not in ("api", "fuse"):
            bad.append(f"{m.id}: unknown target {m.target!r}")
    if bad:
        raise CatalogueError("\n".join(bad))


def build_c(src: str, out: str) -> None:
    inc = sysconfig.get_paths()["include"]
    cmd = ["gcc", "-shared", "-fPIC", "-O1", "-Wall", "-Wno-unused-parameter",
           f"-I{inc}", src, "-o", out, "-lm"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode:
        raise CatalogueError(f"gcc failed for {src}:\n{p.stderr[-2000:]}")


def make_base(tmp: str) -> str:
    """The unmutated package with its compiled twin, built once for all mutants, and a
    snapshot of the suite (the checkout may change while the mutants run)."""
    base = os.path.join(tmp, "base", "bsdprocfs")
    shutil.copytree(PKG, base, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copytree(os.path.join(REPO, "conformance"),
                    os.path.join(tmp, "base", "bsdprocfs_conformance"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    if shutil.which("gcc"):
        build_c(os.path.join(base, C_TWIN),
                os.path.join(base, "backends", "_linuxfacts" + EXT))
    return base


@dataclass
class Result:
    mutant: Mutant
    outcome: str            # killed, survived, error
    detail: str
    seconds: float


def _env(work: str, base: str, m: Mutant) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [work, os.path.dirname(base), HERE]
        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MUTANT_FOCUS"] = ",".join(m.focus)
    if m.file in PURE_FILES:
        env["BSDPROCFS_PURE"] = "1"       # judge the pure twin itself
    else:
        env.pop("BSDPROCFS_PURE", None)
    return env


def _pytest(work: str, m: Mutant, env: dict[str, str], target: list[str],
            timeout: float) -> tuple[str, str]:
    report = os.path.join(work, "report.json")
    cmd = [sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir", work,
           "-p", "no:cacheprovider", "-p", "_mutant_order", "--pyargs",
           "bsdprocfs_conformance.checks", *target, "-x", "-q", "-n", "0",
           "--timeout", "60", "--procfs-report-json", report]
    p = _run(cmd, env, work, timeout)
    if p is None:
        return "error", f"suite timed out after {timeout:.0f} s"
    failed = []
    with contextlib.suppress(OSError, ValueError), open(report, encoding="utf-8") as f:
        failed = [f"{t['profile']} {t['check']}" for t in json.load(f)["tests"]
                  if t["outcome"] == "failed"]
    if p.returncode == 1:
        return "killed", failed[0] if failed else "a check failed"
    if p.returncode < 0:            # the mutant crashed the suite's process: seen
        return "killed", f"the suite's process died of signal {-p.returncode}"
    if p.returncode == 0:
        return "survived", "every check passed"
    return "error", f"pytest exit {p.returncode}: {(p.stdout + p.stderr)[-1500:]}"


_LIVE: set[subprocess.Popen[str]] = set()


def _run(cmd: list[str], env: dict[str, str], cwd: str,
         timeout: float) -> subprocess.CompletedProcess[str] | None:
    """subprocess.run in its own session, registered so that a signalled harness can
    end every suite it started (and their subjects) at once."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=env, cwd=cwd, start_new_session=True)
    _LIVE.add(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(p)
        p.communicate()
        return None
    finally:
        _LIVE.discard(p)
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def _kill_group(p: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGKILL)   # subjects in the group too (a stopped one)


def _on_signal(signum: int, frame: object) -> None:
    for p in list(_LIVE):
        _kill_group(p)
    raise KeyboardInterrupt


#: the unmutated copy, judged like a mutant: it must pass (else every kill is void)
BASELINES = (Mutant("baseline-api", "baseline", "", "the unmutated package, API target",
                    "", ""),
             Mutant("baseline-fuse", "baseline", "", "the unmutated package, FUSE mounts",
                    "", "", target="fuse"))


def run_one(m: Mutant, base: str, tmp: str, timeout: float) -> Result:
    t0 = time.monotonic()
    work = os.path.join(tmp, m.id)
    pkg = os.path.join(work, "bsdprocfs")
    shutil.copytree(base, pkg)
    if m.category != "baseline":
        path = os.path.join(pkg, m.file)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if text.count(m.orig) != 1:
            raise CatalogueError(f"{m.id}: snippet no longer matches {m.file}")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace(m.orig, m.repl, 1))
    env = _env(work, base, m)
    try:
        if m.file == C_TWIN and m.category != "baseline":
            build_c(path, os.path.join(pkg, "backends", "_linuxfacts" + EXT))
        if m.target == "fuse":          # the suite mounts the mutated copy per profile
            outcome, detail = _pytest(work, m, env, ["--procfs-fuse"], timeout)
        else:
            outcome, detail = _pytest(work, m, env, ["--procfs-api"], timeout)
    except (CatalogueError, RuntimeError, OSError) as e:
        outcome, detail = "error", str(e)
    shutil.rmtree(work, ignore_errors=True)
    return Result(m, outcome, detail, time.monotonic() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-j", type=int, default=2, help="mutants run in parallel (default 2)")
    ap.add_argument("--only", help="comma-separated mutant ids")
    ap.add_argument("--category", help="only mutants of this category")
    ap.add_argument("--min", type=float, default=95.0, help="kill rate to pass (percent)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per mutant")
    ap.add_argument("--json", help="write every result as JSON")
    ap.add_argument("--list", action="store_true", help="print the catalogue and exit")
    args = ap.parse_args(argv)
    mutants = list(MUTANTS)
    try:
        validate(mutants)              # the whole catalogue, whatever is selected
    except CatalogueError as e:
        print(f"mutation catalogue is stale:\n{e}", file=sys.stderr)
        return 2
    if args.only:
        want = args.only.split(",")
        unknown = set(want) - {m.id for m in mutants}
        if unknown:
            print(f"unknown mutant ids: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        mutants = [m for m in mutants if m.id in want]
    if args.category:
        mutants = [m for m in mutants if m.category == args.category]
    if args.list:
        for m in mutants:
            print(f"{m.id:32} {m.category:14} {m.file:26} {m.desc}")
        return 0
    if any(m.target == "fuse" for m in mutants) and (
            os.geteuid() != 0 or not os.path.exists("/dev/fuse")
            or not shutil.which("fusermount3")):
        print("FUSE mutants need root, /dev/fuse and fusermount3", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    with tempfile.TemporaryDirectory(prefix="bsdpfs-mutants-") as tmp:
        os.chmod(tmp, 0o755)       # the suite's observer imports the copy as another user
        try:
            base = make_base(tmp)
        except CatalogueError as e:
            print(e, file=sys.stderr)
            return 2
        results: list[Result] = []
        baselines: list[Result] = []
        todo = [b for b in BASELINES if any(m.target == b.target for m in mutants)]
        with ThreadPoolExecutor(max(1, args.j)) as ex:
            # the baselines first: a suite that fails the unmutated shim makes kills void
            for r in ex.map(lambda m: run_one(m, base, tmp, args.timeout), todo):
                baselines.append(r)
                label = "passed" if r.outcome == "survived" else "FAILED"
                print(f"{label:8} {r.seconds:5.1f}s {r.mutant.id}: {r.detail[:160]}",
                      flush=True)
            if all(r.outcome == "survived" for r in baselines):
                for r in ex.map(lambda m: run_one(m, base, tmp, args.timeout), mutants):
                    results.append(r)
                    print(f"{r.outcome:8} {r.seconds:5.1f}s {r.mutant.id}: {r.detail[:160]}",
                          flush=True)
    n = len(results)
    killed = sum(r.outcome == "killed" for r in results)
    errors = [r for r in results if r.outcome == "error"]
    survivors = [r for r in results if r.outcome == "survived"]
    pct = 100.0 * killed / n if n else 100.0
    print(f"\nkilled {killed} of {n} ({pct:.1f}%) in {time.monotonic() - t0:.0f} s")
    for r in survivors:
        print(f"  survivor {r.mutant.id} [{r.mutant.category}] {r.mutant.file}: {r.mutant.desc}")
    for r in errors:
        print(f"  ERROR {r.mutant.id}: {r.detail[:600]}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"killed": killed, "total": n, "percent": pct,
                       "results": [{"id": r.mutant.id, "category": r.mutant.category,
                                    "outcome": r.outcome, "detail": r.detail,
                                    "seconds": round(r.seconds, 1)} for r in results]},
                      f, indent=1)
    bad = [r for r in baselines if r.outcome != "survived"]
    for r in bad:
        print(f"  BASELINE FAILED {r.mutant.id}: {r.detail[:1500]}")
    if errors or bad:
        return 2
    return 0 if pct >= args.min else 1


if __name__ == "__main__":
    sys.exit(main())
