"""The conformance suite tests itself: deliberately broken variants of the shim
(built by the factories below, loaded with --procfs-api-factory) must each be
caught by the check named for it, while the unbroken shim passes those checks."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import pytest

from bsdprocfs import ProcFS
from bsdprocfs.errors import ProcfsError

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.geteuid() == 0


class _Wrapped:
    """An open handle whose read/write a variant may override."""

    def __init__(self, h, node, read=None, write=None):
        self.h, self.node, self._read, self._write = h, node, read, write

    def read(self, size=-1, offset=0):
        return (self._read or (lambda h, n, s, o: h.read(s, o)))(self.h, self.node, size, offset)

    def write(self, data, offset=0):
        return (self._write or (lambda h, n, d, o: h.write(d, o)))(self.h, self.node, data, offset)


def _wrap_open(fs, read=None, write=None):
    orig = fs.open

    def open_(pid, node, mode="r", reader=None):
        return _Wrapped(orig(pid, node, mode, reader), node, read, write)
    fs.open = open_
    return fs


def _wrap_render(fs, node, fix):
    orig = fs.tree._renders[node]
    fs.tree._renders[node] = lambda rec, prof: fix(orig(rec, prof))
    return fs


# ----------------------------------------------------------------- the variants
def pristine(profile):
    return ProcFS(profile=profile)


def wrong_flag_word(profile):
    """status flags printed in the wrong order."""
    return _wrap_render(ProcFS(profile=profile), "status",
                        lambda b: b.replace(b" ctty,sldr ", b" sldr,ctty "))


def no_trailing_newline(profile):
    """etype without its final newline."""
    return _wrap_render(ProcFS(profile=profile), "etype", lambda b: b.rstrip(b"\n"))


def infinity_as_number(profile):
    """rlimit prints RLIM_INFINITY as its value instead of -1."""
    return _wrap_render(ProcFS(profile=profile), "rlimit",
                        lambda b: b.replace(b" -1", b" 9223372036854775807"))


def comm_not_escaped(profile):
    """status comm printed raw (a space splits the field)."""
    import bsdprocfs.nodes.status as st
    st.escape_comm = lambda comm, signed_char=st.SIGNED_CHAR: comm or b"\0"
    return ProcFS(profile=profile)


def attach_twice_eperm(profile):
    """attaching to a traced process answers EPERM instead of EBUSY."""
    def write(h, node, data, off):
        try:
            return h.write(data, off)
        except ProcfsError as e:
            if node == "ctl" and e.errno == errno.EBUSY and data.startswith(b"attach"):
                raise ProcfsError(errno.EPERM, None, node, "broken variant") from None
            raise
    return _wrap_open(ProcFS(profile=profile), write=write)


def regs_while_running(profile):
    """regs readable (as zeros) while the target runs, instead of EBUSY."""
    def read(h, node, size, off):
        try:
            return h.read(size, off)
        except ProcfsError as e:
            if node == "regs" and e.errno == errno.EBUSY:
                return b"\0" * 176
            raise
    return _wrap_open(ProcFS(profile=profile), read=read)


def mem_eio(profile):
    """mem answers EIO for unmapped addresses (linprocfs style) instead of EFAULT."""
    def read(h, node, size, off):
        try:
            return h.read(size, off)
        except ProcfsError as e:
            if node == "mem" and e.errno == errno.EFAULT:
                raise ProcfsError(errno.EIO, None, node, "broken variant") from None
            raise
    return _wrap_open(ProcFS(profile=profile), read=read)


#: variant -> (-k expression, the check that must fail)
VARIANTS = {
    "wrong_flag_word": ("test_status_value and rich", "nodes::test_status_value[rich-flags]"),
    "no_trailing_newline": ("test_etype", "nodes::test_etype[sleeping]"),
    "infinity_as_number": ("test_rlimit_value", "nodes::test_rlimit_value[core]"),
    "comm_not_escaped": ("test_status_value and rich", "nodes::test_status_value[rich-comm]"),
    "attach_twice_eperm": ("test_ctl_word and traced", "ctl::test_ctl_word[traced-attach]"),
    "regs_while_running": ("test_regset_running", "debug::test_regset_running[regs-read]"),
    "mem_eio": ("test_mem_read_efault", "debug::test_mem_read_efault[hole]"),
}


def run_suite(factory: str, kexpr: str, tmp_path) -> tuple[int, dict[str, str], str]:
    out = tmp_path / f"{factory}.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [HERE] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    p = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir", str(tmp_path),
         "-p", "no:cacheprovider", "--pyargs", "bsdprocfs_conformance.checks",
         "--procfs-api", "--procfs-api-factory", f"test_conformance_selftest:{factory}",
         "-k", kexpr, "-q", "--procfs-report-json", str(out)],
        capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=240)
    assert out.exists(), p.stdout[-3000:] + p.stderr[-3000:]
    tests = {t["check"]: t["outcome"] for t in json.loads(out.read_text())["tests"]}
    return p.returncode, tests, p.stdout[-3000:]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_broken_variant_is_caught(variant, tmp_path):
    kexpr, check = VARIANTS[variant]
    rc, tests, out = run_suite(variant, kexpr, tmp_path)
    assert tests.get(check) == "failed", f"{variant} not caught by {check}: {tests}\n{out}"
    assert rc != 0, "a failed check must fail the run"


@pytest.mark.timeout(300)
def test_pristine_passes_the_same_checks(tmp_path):
    kexpr = " or ".join(f"({k})" for k, _ in VARIANTS.values())
    rc, tests, out = run_suite("pristine", kexpr, tmp_path)
    for variant, (_, check) in VARIANTS.items():
        assert tests.get(check) == "passed", f"{check} ({variant}) on the pristine shim: " \
            f"{tests.get(check)}\n{out}"
