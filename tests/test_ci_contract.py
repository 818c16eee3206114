"""README carries exactly two set-up commands and .ci/run runs the test one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)\n```", section, re.S)


def test_readme_has_exactly_two_setup_commands():
    cmds = setup_commands()
    assert len(cmds) == 2
    assert all("\n" not in c for c in cmds)
    main, tests = cmds
    assert "bsdprocfs conformance --api" in main
    assert "pytest" in tests and "[test]" in tests


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    cmd = [ln for ln in ci if ln and not ln.startswith("#") and "pytest" in ln]
    assert cmd == [setup_commands()[1]]
    assert "fuse3" in cmd[0] and "python3 -m venv" in cmd[0]
