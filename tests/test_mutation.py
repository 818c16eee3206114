"""The mutation harness (tests/mutants/) in CI: its catalogue is current and broad,
a stale snippet stops it loudly, and the conformance suite kills at least 95% of it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "mutants"))

import catalogue  # noqa: E402
import run  # noqa: E402

MIN_RATE = 95.0


def test_catalogue_is_current():
    """Every snippet occurs exactly once in its file (run.validate raises otherwise)."""
    run.validate(catalogue.MUTANTS)
    assert len(catalogue.MUTANTS) >= 80


def test_catalogue_covers_the_package():
    """Mutants in every node, every ctl word, the tree rules, access, profiles, both
    Linux twins and the FUSE adapter."""
    files = Counter(m.file for m in catalogue.MUTANTS)
    for f in ("nodes/status.py", "nodes/cmdline.py", "nodes/rlimit.py", "nodes/map.py",
              "nodes/etype.py", "nodes/osrel.py", "nodes/ctl.py", "tree.py", "access.py",
              "profiles.py", "backends/_linuxparse.py", "backends/_linuxfacts.c", "fuse.py",
              "backends/linux.py"):
        assert files[f] >= 1, f"no mutant in {f}"
    cats = Counter(m.category for m in catalogue.MUTANTS)
    for c in ("status", "cmdline", "rlimit", "map", "etype", "osrel", "tree", "access",
              "profiles", "linuxparse.py", "linuxfacts.c", "fuse", "ctl", "debug"):
        assert cats[c] >= 1, f"no mutant of category {c}"
    text = " ".join(m.desc + m.orig for m in catalogue.MUTANTS if m.category == "ctl")
    for word in ("attach", "detach", "step", "run", "wait", "urg"):
        assert word in text, f"no mutant of the ctl word {word}"
    assert sum(m.target == "fuse" for m in catalogue.MUTANTS) >= 3


def test_stale_snippet_fails_loudly(monkeypatch):
    """A snippet that no longer matches is an error naming the mutant, never a skip."""
    m = catalogue.MUTANTS[0]
    stale = catalogue.Mutant(m.id, m.category, m.file, m.desc, m.orig + "#gone", m.repl)
    with pytest.raises(run.CatalogueError, match=m.id):
        run.validate([stale])
    twice = catalogue.Mutant("twice", "tree", "tree.py", "ambiguous", "return", "return 1")
    with pytest.raises(run.CatalogueError, match="occurs"):
        run.validate([twice])


@pytest.mark.mutation
@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.skipif(os.geteuid() != 0, reason="the credential subjects and the unprivileged "
                    "observer need root")
@pytest.mark.skipif(not shutil.which("gcc"), reason="the compiled twin's mutants need gcc")
@pytest.mark.skipif(not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"),
                    reason="the FUSE adapter's mutants need /dev/fuse and fuse3")
def test_kill_rate(tmp_path):
    """The whole catalogue against the conformance suite: killed >= 95%."""
    out = tmp_path / "mutants.json"
    p = subprocess.run([sys.executable, os.path.join(HERE, "mutants", "run.py"), "-j", "2",
                        "--min", str(MIN_RATE), "--json", str(out)],
                       capture_output=True, text=True, timeout=3500)
    report = p.stdout[-6000:] + p.stderr[-3000:]
    assert out.exists(), report
    data = json.loads(out.read_text())
    assert not [r for r in data["results"] if r["outcome"] == "error"], report
    assert data["percent"] >= MIN_RATE, report
    assert p.returncode == 0, report
