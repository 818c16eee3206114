"""The CLI is a public contract: exact bytes, exit codes and diagnostics."""

from __future__ import annotations

import json
import os
import re
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


# ------------------------------------------------------------- as a person meets it
COMMANDS = ["cat", "ls", "parse", "show", "profiles", "fidelity", "mount", "umount", "exec",
            "ps", "w", "bench", "conformance", "ctl"]


def run80(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True,
                          env=dict(os.environ, COLUMNS="80"))


def test_help_is_for_people_no_markup_and_fits_80_columns():
    import re
    top = run80("--help")
    assert top.returncode == 0
    text = top.stdout.decode()
    assert "argument parsing only" not in text and "examples:" in text
    for cmd in COMMANDS:
        assert re.search(rf"^\s+{cmd}\s+\S", text, re.M) or f"    {cmd}\n" in text, cmd
    for cmd in ["", *COMMANDS]:
        p = run80(*([cmd] if cmd else []), "--help")
        out = p.stdout.decode()
        assert p.returncode == 0, (cmd, p.stderr)
        assert "``" not in out and not re.search(r":(mod|class|func|meth):", out), cmd
        assert "examples:" in out, cmd
        assert max(len(ln) for ln in out.splitlines()) <= 80, (cmd, out)


def test_node_argument_lists_every_node_with_its_meaning():
    from bsdprocfs.cli.common import NODE_NAMES, PID_NODES
    from bsdprocfs.nodes import FORMATS
    from bsdprocfs.tree import PID_NODES as TREE_NODES
    assert tuple(n.name for n in TREE_NODES) == NODE_NAMES
    out = run80("cat", "--help").stdout.decode()
    for name, meaning in PID_NODES:
        assert re.search(rf"^  {name} +{re.escape(meaning)}$", out, re.M), name
    parse_help = run80("parse", "--help").stdout.decode()
    for name in FORMATS:
        assert re.search(rf"^  {name} ", parse_help, re.M), name
    p = run("cat", "curproc", "bogus")
    assert p.returncode == 2 and b"invalid choice: 'bogus'" in p.stderr


def _into_closed_pipe(*args: str) -> subprocess.CompletedProcess:
    """Run with stdout a pipe whose reader has already gone (``| head`` that quit)."""
    r, w = os.pipe()
    os.close(r)
    try:
        p = subprocess.run([*CLI, *args], stdout=w, stderr=subprocess.PIPE, timeout=60)
    finally:
        os.close(w)
    return p


def test_show_into_a_pipe_that_head_closes_midway():
    """``bsdprocfs show curproc | head -1``: the reader leaves while show is blocked
    writing map; show ends by SIGPIPE, silently (it used to print
    'bsdprocfs: curproc/map: Broken pipe')."""
    import fcntl
    import signal
    import time
    r, w = os.pipe()
    fcntl.fcntl(w, 1031, 4096)              # F_SETPIPE_SZ: map (> 4 KiB) must block
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}   # a user's shell
    p = subprocess.Popen([*CLI, "show", "curproc"], stdout=w, stderr=subprocess.PIPE, env=env)
    os.close(w)
    try:
        first = os.read(r, 29)
        assert first == b"==> /proc/curproc/status <==\n"[:len(first)]
        deadline = time.monotonic() + 30
        while True:                         # until show is blocked writing into the pipe
            with open(f"/proc/{p.pid}/wchan") as f:
                if f.read() in ("pipe_write", "anon_pipe_write"):   # 6.14+ renamed it
                    break
            assert time.monotonic() < deadline, "show never blocked on the pipe"
            time.sleep(0.005)
    finally:
        os.close(r)
    _, err = p.communicate(timeout=60)
    assert err == b""
    assert p.returncode == -signal.SIGPIPE


def test_closed_pipe_ends_quietly_as_sigpipe():
    import signal
    for args in (["show", "curproc"], ["cat", "curproc", "map"], ["ps", "ax"],
                 ["fidelity"]):
        p = _into_closed_pipe(*args)
        assert p.stderr == b"", (args, p.stderr)
        assert p.returncode == -signal.SIGPIPE, (args, p.returncode)
    # what the user types: the pipeline succeeds and prints nothing on stderr
    sh = subprocess.run(["sh", "-c", f"{sys.executable} -m bsdprocfs show curproc | head -1"],
                        capture_output=True)
    assert sh.returncode == 0 and sh.stderr == b""
    assert sh.stdout == b"==> /proc/curproc/status <==\n"


def test_tables_fit_80_columns_and_markdown_is_kept():
    for cmd in ("fidelity", "profiles"):
        p = run80(cmd, "--format", "table")
        lines = p.stdout.decode().splitlines()
        assert p.returncode == 0 and len(lines) > 5, cmd
        assert max(len(ln) for ln in lines) <= 80, cmd
        assert not any(ln.startswith("|") for ln in lines), cmd
        md = run80(cmd, "--format", "md").stdout.decode()
        assert "|---|" in md, cmd
    # every fidelity fact is in the table's last column, wrapped but whole
    from bsdprocfs.fidelity import FIDELITY
    lines = run80("fidelity", "--format", "table").stdout.decode().splitlines()
    col = lines[0].index("source and bound")
    last = " ".join(" ".join(ln[col:] for ln in lines[2:]).split())
    for _, _, _, why in FIDELITY:
        assert " ".join(why.split()) in last
    prof = run80("profiles", "--format", "table").stdout.decode()
    assert "UNVERIFIED" in prof and "freebsd-10" in prof


def test_matrix_text_fits_the_width_and_gives_every_reason():
    from bsdprocfs_conformance.matrix import Matrix
    m = Matrix()
    cats = [f"category{i}" for i in range(14)]
    for n in ("tree", "status", "map", "regs"):
        for c in cats:
            m.add(f"mod::{n}_{c}", n, c, "passed")
    m.add("mod::skipped_one", "status", "values", "skipped", "needs ptrace rights")
    m.add("mod::diverges", "map", "values", "divergence", "impl x: Linux has no SIGEMT")
    text = m.text(80)
    lines = text.splitlines()
    assert max(len(ln) for ln in lines) <= 80
    assert sum(ln.startswith("profile ") for ln in lines) >= 2      # split into blocks
    for c in [*cats, "values"]:
        assert c in text
    flat = " ".join(text.split())
    assert "S skipped: needs ptrace rights mod::skipped_one" in flat
    assert "X divergence: impl x: Linux has no SIGEMT mod::diverges" in flat
    assert "configfile" not in text


def test_conformance_header_shows_no_temporary_config_path():
    import argparse

    from bsdprocfs.cli.conformance import build_args
    ns = argparse.Namespace(api=True, root=None, profile=None, impl=None, factory=None,
                            junit=None, report=None, json=None, n=0, k=None, pytest_args=[])
    assert "--no-header" in build_args(ns, "/tmp/x/pytest.ini")


def test_short_commands_import_only_what_they_use():
    code = ("import sys, bsdprocfs.cli as c; c.build_parser('cat');"
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('bsdprocfs'))))")
    mods = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout.split()
    assert "bsdprocfs.api" not in mods and "bsdprocfs.tree" not in mods, mods
    assert not [m for m in mods if m.startswith(("bsdprocfs.bench", "bsdprocfs.fuse"))], mods
    code = "import sys, bsdprocfs; print('bsdprocfs.api' in sys.modules); bsdprocfs.ProcFS"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True).stdout == "False\n"


def test_readme_use_lines_run_as_written():
    """After the set-up, the Use block activates the venv and every bsdprocfs line in it
    is a valid command line."""
    import shlex
    from pathlib import Path

    from bsdprocfs.cli import build_parser
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    use = readme.split("## Use\n", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    lines = [ln for ln in use.splitlines() if ln.strip()]
    assert lines[0] == ". .venv/bin/activate"
    n = 0
    for ln in lines[1:]:
        lex = shlex.shlex(ln, posix=True, punctuation_chars=";|&<>")
        lex.whitespace_split = True
        commands: list[list[str]] = [[]]
        for tok in lex:                     # shlex drops the '# ...' comment
            if tok and set(tok) <= set(";|&<>"):
                commands.append([])
            else:
                commands[-1].append(tok)
        for words in commands:
            if not words or words[0] != "bsdprocfs":
                continue
            n += 1
            words = [w.replace("$!", "1") for w in words[1:]]
            if words == ["--version"]:
                continue
            try:
                build_parser().parse_args(words)
            except SystemExit as e:
                raise AssertionError(f"README line does not parse: {ln}") from e
    assert n >= 14


def test_shell_completion_offers_commands_and_nodes(tmp_path):
    """argcomplete completion, built only when the shell asks (_ARGCOMPLETE set)."""
    import importlib.util
    import shutil
    if importlib.util.find_spec("argcomplete") is None:
        import pytest
        pytest.skip("argcomplete is not installed (pip install 'bsdprocfs[completion]')")
    script = shutil.which("bsdprocfs", path=os.path.dirname(sys.executable))
    assert script, "the bsdprocfs console script is not installed next to the interpreter"

    def complete(line: str) -> list[str]:
        out = tmp_path / "out"
        env = dict(os.environ, _ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)),
                   _ARGCOMPLETE_STDOUT_FILENAME=str(out))
        p = subprocess.run([script], env=env, capture_output=True)
        assert p.returncode == 0, p.stderr
        return out.read_text().replace("\x0b", " ").split()

    assert complete("bsdprocfs pro") == ["profiles"]
    assert complete("bsdprocfs cat curproc st") == ["status"]
    assert set(complete("bsdprocfs cat --profile freebsd-1")) == {
        "freebsd-10", "freebsd-11", "freebsd-12", "freebsd-13", "freebsd-14", "freebsd-15"}


def test_command_table_is_what_the_modules_register():
    from bsdprocfs import cli
    ap = cli.build_parser()
    sub = next(a for a in ap._actions if a.dest == "command")
    assert list(sub.choices) == list(cli.COMMANDS) == COMMANDS
    for name in COMMANDS:                    # a command built alone is the only one
        one = cli.build_parser(name)
        assert list(next(a for a in one._actions if a.dest == "command").choices) == [name]
