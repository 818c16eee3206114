"""Subject processes with known truth, started and reaped by the suite."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helper.py")
#: comm of the rich subject: a space, a backslash and a high byte need octal escapes.
COMM = b"bpc s\\x\xe9"
#: comm of every other subject: one space, the only byte that needs an escape
#: (19 bytes: FreeBSD's MAXCOMLEN, beyond Linux's 15-byte TASK_COMM_LEN cut)
PLAIN_COMM = b"bsdpfs conf-subject"
ARGV_EXTRA = ["arg with space", "", "tab\there", "\u00fcml"]
TEST_USER = "bsdpfs_conf"
EXTRA_GID = 54321
FREEBSD = sys.platform.startswith("freebsd")
LINUX = sys.platform.startswith("linux")


NOBODY = 65534
#: Credential subjects, each built so that ONE rule decides what the unprivileged
#: observer (uid U, gid G, groups G and EXTRA_GID) may do with it:
#:   dropped  all ids equal to the observer's, changed without exec: P_SUGID decides
#:   fgid     the observer's uid, a gid it lacks (since exec): the gid rule decides
#:   fgroups  the observer's ids plus a supplementary group it lacks: the subset rule
#:   grouped  another uid, the observer's EXTRA_GID as its group: vaccess's group class
#:   split    ruid U but euid/suid nobody, rgid G but egid nogroup (without exec):
#:            every status credential field differs from its neighbours
CREDS: dict[str, dict[str, Any]] = {
    "dropped": {"setids": lambda u, g: {"uid": [u, u, u], "gid": [g, g, g],
                                        "groups": [g, EXTRA_GID]}},
    "fgid": {"exec": lambda u, g: {"creds": (u, NOBODY, [NOBODY])}},
    "fgroups": {"exec": lambda u, g: {"creds": (u, g, [g, NOBODY])}},
    "grouped": {"exec": lambda u, g: {"creds": (NOBODY, EXTRA_GID, [EXTRA_GID])}},
    "split": {"setids": lambda u, g: {"uid": [u, NOBODY, u], "gid": [g, NOBODY, g],
                                      "groups": [EXTRA_GID]}},
}


def ensure_user(name: str = TEST_USER) -> tuple[int, int]:
    """The unprivileged test user (created when missing; needs root)."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        cmd = (["pw", "useradd", name, "-d", "/nonexistent", "-s", "/usr/sbin/nologin"]
               if FREEBSD else ["useradd", "--system", "--no-create-home", "--user-group",
                                "--shell", "/usr/sbin/nologin", name])
        r = subprocess.run(cmd, capture_output=True)
        try:                          # another xdist worker may have created it meanwhile
            pw = pwd.getpwnam(name)
        except KeyError:
            raise RuntimeError(f"cannot create the test user {name}: "
                               f"{r.stderr.decode(errors='replace').strip()}") from None
    return pw.pw_uid, pw.pw_gid


def wait_for(cond: Any, timeout: float = 10.0, interval: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


def host_state(pid: int) -> str:
    """The host's own view of a process state (R S T t Z), for waiting only."""
    if LINUX:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                st = f.read()
            return chr(st[st.rindex(b")") + 2])
        except OSError:
            return "?"
    out = subprocess.run(["ps", "-o", "state=", "-p", str(pid)], capture_output=True,
                         text=True).stdout.strip()
    # FreeBSD ps shows I for a process asleep longer than 20 s (MAXSLP): still asleep
    return {"I": "S"}.get(out[:1], out[:1]) or "?"


class Subject:
    def __init__(self, name: str, popen: subprocess.Popen, truth: dict | None) -> None:
        self.name = name
        self.popen = popen
        self.truth = truth or {}
        self.pid = popen.pid
        self.reaped = False
        self.traced_by: Any = None      # ctl(pid, word) of whoever attached it
        #: the suite's clock just before and just after the fork that made the subject
        self.forked: tuple[float, float] = (0.0, 0.0)

    def send(self, line: str) -> None:
        assert self.popen.stdin
        self.popen.stdin.write((line + "\n").encode())
        self.popen.stdin.flush()

    def cmd(self, line: str, timeout: float = 10.0) -> Any:
        self.send(line)
        return _readline_json(self.popen, timeout)

    def signal(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def stop(self) -> None:
        self.signal(signal.SIGSTOP)
        wait_for(lambda: host_state(self.pid) in ("T", "t"), 5)

    def cont(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.reaped:
            return
        self.signal(signal.SIGKILL)
        self.signal(signal.SIGCONT)
        for f in (self.popen.stdin, self.popen.stdout):
            with contextlib.suppress(OSError):
                if f:
                    f.close()
        with contextlib.suppress(subprocess.TimeoutExpired, ChildProcessError):
            self.popen.wait(10)
        self.reaped = True


def _readline_json(p: subprocess.Popen, timeout: float) -> Any:
    assert p.stdout
    fd = p.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError(f"subject {p.pid} did not answer")
        chunk = os.read(fd, 1)
        if not chunk:
            raise EOFError(f"subject {p.pid} closed its output (exit {p.poll()})")
        buf += chunk
    return json.loads(buf)


class Pool:
    """Starts subjects on demand (session-scoped) and kills every one at the end."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bsdpfs-conf-")
        os.chmod(self.dir, 0o755)
        real = os.path.realpath(sys.executable)
        self.exe = os.path.join(os.fsencode(self.dir), COMM)
        shutil.copy2(os.fsencode(real), self.exe)
        os.chmod(self.exe, 0o755)
        # Subjects (and the unprivileged observer) run copies of the interpreter: the
        # original may sit below a directory other users cannot search.
        self.plain_exe = os.path.join(self.dir, PLAIN_COMM.decode())
        shutil.copy2(real, self.plain_exe)
        os.chmod(self.plain_exe, 0o755)
        self.helper = os.path.join(self.dir, "helper.py")
        shutil.copy2(HELPER, self.helper)
        os.chmod(self.helper, 0o644)
        self.mapfile = os.path.join(self.dir, "conf map file.dat")
        with open(self.mapfile, "wb") as f:
            f.write(b"M" * 8192)
        os.chmod(self.mapfile, 0o644)
        self.root = os.geteuid() == 0
        self.user: tuple[int, int] | None = ensure_user() if self.root else None
        self.cache: dict[str, Subject] = {}
        self.all: list[Subject] = []

    def spawn(self, name: str, spec: dict | None = None, *, rich_exe: bool = False,
              as_user: bool = False, wait_truth: bool = True, wrap: list[str] | None = None,
              extra_args: list[str] | None = None,
              creds: tuple[int, int, list[int]] | None = None) -> Subject:
        spec = dict(spec or {})
        exe = self.exe if rich_exe else os.fsencode(self.plain_exe)
        argv: list[Any] = [exe, "-S", self.helper, json.dumps(spec)] + (extra_args or [])
        kw: dict[str, Any] = {}
        if as_user and self.user:
            uid, gid = self.user
            kw.update(user=uid, group=gid, extra_groups=[gid, EXTRA_GID])
        if creds is not None:
            kw.update(user=creds[0], group=creds[1], extra_groups=creds[2])
        if wrap:            # the last wrapper word prefixes the executable ("command=")
            argv = wrap[:-1] + [wrap[-1] + os.fsdecode(exe)] + argv[1:]
        lo = time.time()
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             close_fds=True, **kw)
        hi = time.time()            # Popen returns once the child has exec'd: forked before
        s = Subject(name, p, None)
        s.forked = (lo, hi)
        self.all.append(s)
        if wait_truth:
            try:
                s.truth = _readline_json(p, 20)
            except Exception:
                s.kill()
                raise
            s.pid = s.truth["pid"]
            if "fork" in s.truth:     # the subject is a child the helper forked itself
                s.forked = tuple(s.truth["fork"])
        return s

    def get(self, name: str) -> Subject:
        if name not in self.cache:
            self.cache[name] = getattr(self, "_make_" + name)()
        return self.cache[name]

    # ------------------------------------------------------------- the subjects
    def _make_rich(self) -> Subject:
        """Known comm, session + pty, credentials, rlimits, maps and argv; sleeping."""
        spec = {"setsid": True, "tty": True, "maps": True, "mapfile": self.mapfile,
                "setrlimit": {"nofile": [200, 300], "core": [0, -1], "fsize": [1 << 30, -1],
                              "cpu": [3600, 7200], "data": [1 << 35, -1],
                              "vmem": [1 << 40, -1]},
                "delfile": os.path.join(self._own_dir("rich"), "rich deleted.dat")}
        s = self.spawn("rich", spec, rich_exe=True, as_user=True, extra_args=ARGV_EXTRA)
        wait_for(lambda: host_state(s.pid) == "S", 5)
        return s

    def _make_sleeping(self) -> Subject:
        s = self.spawn("sleeping", {"maps": True})
        wait_for(lambda: host_state(s.pid) == "S", 5)
        return s

    def _make_running(self) -> Subject:
        return self.spawn("running", {"mode": "busy", "setsid": True, "maps": True})

    def _make_stopped(self) -> Subject:
        """Stopped (SIGSTOP) while blocked in read(2): its registers are known."""
        s = self.spawn("stopped", {"maps": True})
        wait_for(lambda: host_state(s.pid) == "S", 5)
        s.stop()
        return s

    def _make_catcher(self) -> Subject:
        s = self.spawn("catcher", {"catch": True})
        wait_for(lambda: host_state(s.pid) == "S", 5)
        return s

    def traced(self, target: Any) -> Subject:
        """Stopped under ctl attach + wait through ``target`` (the caller checks the
        profile has ctl).  One per target: a FUSE mount's daemon is the tracer, and only
        the tracer may read a tracee's registers."""
        key = f"traced@{id(target)}"
        if key not in self.cache:
            from .targets import write

            def ctl(pid: int, word: bytes) -> int:
                return write(target, f"{pid}/ctl", word)
            s = self.spawn("traced", {"maps": True})
            wait_for(lambda: host_state(s.pid) == "S", 5)
            s.traced_by = ctl
            ctl(s.pid, b"attach")
            # not ctl "wait": under the 10.x/11.x rules it sleeps while the target stays
            # stopped (procfs_ctl.c); the attach stop is seen from the host instead
            wait_for(lambda: host_state(s.pid) in ("t", "T"), 5)
            self.cache[key] = s
        return self.cache[key]

    def _make_zombie(self) -> Subject:
        s = self.spawn("zombie", {"exit": 3}, wait_truth=False)
        wait_for(lambda: host_state(s.pid) == "Z", 10)
        return s

    def _make_member(self) -> Subject:
        """In a session with a controlling terminal that it does not lead (its parent,
        the leader, waits for it)."""
        s = self.spawn("member", {"setsid": True, "tty": True, "fork": "member"})
        wait_for(lambda: host_state(s.pid) == "S", 5)
        return s

    def _make_orphan(self) -> Subject:
        """In a session whose leader has exited (a zombie until the pool reaps it)."""
        s = self.spawn("orphan", {"setsid": True, "fork": "orphan"})
        wait_for(lambda: host_state(s.pid) == "S", 5)
        return s

    def _own_dir(self, name: str) -> str:
        """A directory the subject (the test user, as root) may create and delete in."""
        d = os.path.join(self.dir, f"{name}-files")
        os.makedirs(d, mode=0o755, exist_ok=True)
        if self.user:
            os.chown(d, *self.user)
        return d

    def _make_napper(self) -> Subject:
        """Asleep in nanosleep(2) (it answers no commands)."""
        s = self.spawn("napper", {"mode": "nap"})
        wait_for(lambda: host_state(s.pid) == "S", 5)
        return s

    def _make_burner(self) -> Subject:
        """Spent 0.3 s of user time before sleeping: a user share far from the system
        share, so a cputime split or unit error moves a value beyond any bound."""
        s = self.spawn("burner", {"burn": 0.3})
        wait_for(lambda: host_state(s.pid) == "S", 5)
        return s

    def _ids(self, name: str) -> Subject:
        """Credential subjects for the permission checks (see CREDS)."""
        assert self.user
        uid, gid = self.user
        how = CREDS[name]
        spec = {"maps": True}
        kw: dict[str, Any] = {}
        if "setids" in how:             # changed without exec, started as root
            spec["setids"] = how["setids"](uid, gid)
        else:                           # started with these ids: nothing changed since exec
            kw = how["exec"](uid, gid)
        s = self.spawn(name, spec, **kw)
        wait_for(lambda: host_state(s.pid) == "S", 5)
        return s

    def _make_sugid(self) -> Subject:
        assert self.user
        uid, gid = self.user
        return self.spawn("sugid", {"setcred": [uid, 65534, gid], "maps": True})

    def _make_own(self) -> Subject:
        """Owned by the unprivileged observer's user (debuggable by it)."""
        return self.spawn("own", {"maps": True}, as_user=True)

    def _make_jailed(self) -> Subject:
        # status prints the jail's *name* on FreeBSD (prison_name) and, on the Linux
        # shim, the UTS hostname: use one unique value for both (one jail per worker)
        name = f"bsdpfs-conf-{os.getpid()}"
        # jail(8) with command= keeps our pipes: UNVERIFIED (missing: usr.sbin/jail not read)
        if FREEBSD:
            wrap = ["jail", "-c", "path=/", f"name={name}", f"host.hostname={name}",
                    "ip4=inherit", "command="]
            return self.spawn("jailed", {"uts": name}, wrap=wrap)
        return self.spawn("jailed", {"uts": name})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_make_") and name[6:] in CREDS:
            return lambda: self._ids(name[6:])
        raise AttributeError(name)

    def close(self) -> None:
        for s in self.all:
            if getattr(s, "traced_by", None) and not s.reaped:
                with contextlib.suppress(OSError):
                    s.traced_by(s.pid, b"detach")
            s.kill()
        shutil.rmtree(self.dir, ignore_errors=True)
