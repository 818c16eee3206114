"""The CLI is a public contract: exact bytes, exit codes and diagnostics."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import bsdprocfs

CLI = [sys.executable, "-m", "bsdprocfs"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True)


def test_cat_writes_exact_bytes(sleeper):
    p = run("cat", str(sleeper.pid), "cmdline")
    assert p.returncode == 0
    assert p.stdout == bsdprocfs.ProcFS().read(sleeper.pid, "cmdline")
    assert p.stdout.endswith(b"\0")


def test_cat_error_contract():
    p = run("cat", "99999999", "status")
    assert p.returncode == 1
    assert p.stderr.decode() == "bsdprocfs: 99999999/status: No such file or directory\n"
    assert p.stdout == b""


def test_cat_profile_switches_formats(sleeper):
    p13 = run("cat", "--profile", "freebsd-13", str(sleeper.pid), "rlimit")
    p15 = run("cat", "--profile", "freebsd-15", str(sleeper.pid), "rlimit")
    assert p13.stdout.count(b"\n") == 15 and p15.stdout.count(b"\n") == 17
    p = run("cat", "--profile", "freebsd-14", str(sleeper.pid), "ctl")
    assert p.returncode == 1 and b"No such file or directory" in p.stderr


def test_cat_json_prints_parsed_record(sleeper):
    p = run("cat", "--json", str(sleeper.pid), "status")
    rec = json.loads(p.stdout)
    assert rec["pid"] == sleeper.pid and rec["ppid"] == os.getpid()
    assert rec["extras"]["state"] == "S"


def test_ls(sleeper):
    p = run("ls", str(sleeper.pid))
    assert p.stdout.decode().split() == bsdprocfs.ProcFS().listdir(sleeper.pid)
    root = run("ls").stdout.decode().split()
    assert root[:2] == ["curproc", "self"] and str(sleeper.pid) in root


def test_parse_valid_and_malformed():
    good = b"sh 1 0 1 1 - sldr 1700000000,5 0,0 0,0 wait 0 0 0,0 -\n"
    p = run("parse", "status", stdin=good)
    assert p.returncode == 0 and json.loads(p.stdout)["sldr"] is True
    bad = good.replace(b"sldr", b"sldx")
    p = run("parse", "status", stdin=bad)
    assert p.returncode == 2
    assert b"field 'flags' at byte 13" in p.stderr


def test_parse_reads_a_file(tmp_path):
    f = tmp_path / "rl"
    f.write_bytes(b"cpu -1 -1\n")
    p = run("parse", "--profile", "freebsd-15", "rlimit", str(f))
    assert p.returncode == 2 and b"has 17 limits, found 1" in p.stderr


def test_version_and_show():
    assert run("--version").stdout.decode().strip() == f"bsdprocfs {bsdprocfs.__version__}"
    p = run("show")
    out = p.stdout.decode()
    assert p.returncode == 0
    for node in ("status", "rlimit", "map"):
        assert f"/{node} <==" in out
    assert "\ncpu " in out


def test_profiles_listing():
    out = run("profiles").stdout.decode()
    assert "freebsd-13" in out and "UNVERIFIED" in out


def test_fidelity_doc_is_generated_from_code():
    from pathlib import Path

    from bsdprocfs.fidelity import FIDELITY, markdown
    doc = Path(__file__).resolve().parent.parent / "docs" / "fidelity.md"
    assert doc.read_text() == markdown(), "run: bsdprocfs fidelity > docs/fidelity.md"
    grades = {g for _, _, g, _ in FIDELITY}
    assert grades == {"exact", "approximated", "constant"}
    assert run("fidelity").stdout.decode() == markdown()
