"""The conformance CLI and plugin plumbing: argument errors, reports (JUnit,
Markdown, JSON), the inert plugin, the collected-case count, a FUSE --root run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

BSDPROCFS = [sys.executable, "-m", "bsdprocfs"]


def test_cli_needs_a_target():
    p = subprocess.run(BSDPROCFS + ["conformance"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "--root PATH" in p.stderr and "--api" in p.stderr


def test_cli_rejects_both_targets():
    p = subprocess.run(BSDPROCFS + ["conformance", "--api", "--root", "/proc"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "not allowed with" in p.stderr


@pytest.mark.timeout(300)
def test_cli_reports(tmp_path):
    junit, md, js = tmp_path / "r.xml", tmp_path / "r.md", tmp_path / "r.json"
    p = subprocess.run(BSDPROCFS + ["conformance", "--api", "-k", "test_tree or test_etype",
                                    "--junit", str(junit), "--report", str(md),
                                    "--json", str(js)],
                       capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    assert "procfs conformance matrix" in p.stdout
    suites = ET.parse(junit).getroot()
    cases = suites.findall(".//testcase")
    assert len(cases) > 50 and not suites.findall(".//failure")
    text = md.read_text()
    assert "| tree |" in text and "**impl**: bsdprocfs-api" in text
    data = json.loads(js.read_text())
    assert data["totals"]["passed"] > 50 and data["totals"]["failed"] == 0
    from bsdprocfs.profiles import PROFILES
    assert data["meta"]["profiles"] == list(PROFILES), "the API is judged in every profile"
    assert {t["profile"] for t in data["tests"]} == set(PROFILES)
    assert set(data["profiles"]) == set(PROFILES)
    assert {t["node"] for t in data["tests"]} >= {"tree", "etype", "status", "curproc"}
    assert "| profile | node |" in text


def test_cli_exit_status_on_failure(tmp_path):
    """A failing check makes the CLI exit non-zero (a broken variant from the self-test)."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run(BSDPROCFS + ["conformance", "--api", "--factory",
                                    "test_conformance_selftest:no_trailing_newline",
                                    "-k", "test_etype"],
                       capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    assert p.returncode == 1, p.stdout[-3000:]
    assert " F" in p.stdout or "F3" in p.stdout


def test_plugin_is_inert(tmp_path):
    """Loaded into every pytest run, the plugin changes nothing without its options."""
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert True\n")
    p = subprocess.run([sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir",
                        str(tmp_path), "-p", "no:cacheprovider", "test_x.py", "-q"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0 and "1 passed" in p.stdout
    assert "procfs conformance" not in p.stdout


def test_checks_without_target_skip(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir",
                        str(tmp_path), "-p", "no:cacheprovider", "--pyargs",
                        "bsdprocfs_conformance.checks", "-q", "-k", "test_root", "-rs"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-2000:]
    assert "no procfs target" in p.stdout and " passed" not in p.stdout


def test_collected_cases(tmp_path):
    p = subprocess.run([sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir",
                        str(tmp_path), "-p", "no:cacheprovider", "--pyargs",
                        "bsdprocfs_conformance.checks", "--procfs-api", "--collect-only", "-q"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    n = sum(1 for ln in p.stdout.splitlines() if "::" in ln)
    assert n >= 1500, p.stdout[-2000:]


@pytest.mark.fuse
@pytest.mark.timeout(300)
@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse")
                    or not shutil.which("fusermount3"), reason="needs root, /dev/fuse and fuse3")
def test_cli_fuse_root(tmp_path):
    from bsdprocfs.fuse import mounted
    js = tmp_path / "fuse.json"
    with mounted("compat") as m:
        p = subprocess.run(BSDPROCFS + ["conformance", "--root", m.path, "--json", str(js),
                                        "-k", "test_status or test_etype or test_rlimit "
                                        "or test_node_stat or test_root"],
                           capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-4000:]
    data = json.loads(js.read_text())
    assert data["meta"]["impl"] == "bsdprocfs-fuse" and data["meta"]["profiles"] == ["compat"]
    assert data["totals"]["passed"] > 40


def test_cli_profile_narrows(tmp_path):
    """--profile narrows the matrix to the named profiles, in the given order."""
    js = tmp_path / "r.json"
    p = subprocess.run(BSDPROCFS + ["conformance", "--api", "--profile", "freebsd-10,compat",
                                    "-k", "test_root_stat or test_ctl_absent", "--json", str(js)],
                       capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    data = json.loads(js.read_text())
    assert data["meta"]["profiles"] == ["freebsd-10", "compat"]
    assert sorted(t["profile"] for t in data["tests"]) == ["compat"] * 2 + ["freebsd-10"] * 2


def test_cli_unknown_profile():
    p = subprocess.run(BSDPROCFS + ["conformance", "--api", "--profile", "freebsd-9"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown profile 'freebsd-9'" in p.stderr


@pytest.mark.fuse
@pytest.mark.timeout(300)
@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/dev/fuse")
                    or not shutil.which("fusermount3"), reason="needs root, /dev/fuse and fuse3")
def test_cli_fuse_every_profile(tmp_path):
    """--fuse mounts the shim once per judged profile and judges each through its mount."""
    js = tmp_path / "fuse.json"
    p = subprocess.run(BSDPROCFS + ["conformance", "--fuse", "--profile", "freebsd-13,compat",
                                    "--json", str(js), "-k", "test_ctl_absent or test_root_stat"],
                       capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    data = json.loads(js.read_text())
    assert data["meta"]["impl"] == "bsdprocfs-fuse"
    assert data["meta"]["profiles"] == ["freebsd-13", "compat"]
    got = {(t["profile"], t["check"]): t["outcome"] for t in data["tests"]}
    assert got == {(pr, c): "passed" for pr in ("freebsd-13", "compat")
                   for c in ("tree::test_root_stat", "ctl::test_ctl_absent_without_profile")}
