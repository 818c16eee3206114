"""``bsdprocfs mount``, ``umount`` and ``exec``: argument handling and process plumbing.

The filesystem itself is :mod:`bsdprocfs.fuse`; this module daemonizes it,
keeps its pid and log files, and builds the private mount namespace of ``exec``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import time
from typing import Any

from .common import add_profile, parser

CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_BIND = 0x1000
PR_SET_PDEATHSIG = 1


def _die(msg: str, code: int = 1) -> int:
    print(f"bsdprocfs: {msg}", file=sys.stderr)
    return code


def state_dir() -> str:
    import tempfile
    if os.geteuid() == 0:
        return "/run/bsdprocfs"
    return os.path.join(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(),
                        f"bsdprocfs-{os.geteuid()}")


def _state_file(mountpoint: str, suffix: str) -> str:
    name = os.path.realpath(mountpoint).strip("/").replace("/", "_") or "root"
    return os.path.join(state_dir(), name + suffix)


def preflight(mountpoint: str) -> str | None:
    """Why a mount cannot work here, or None: checked before daemonizing so the
    user gets a clear message and a non-zero exit instead of a log line."""
    if not os.path.exists("/dev/fuse"):
        return ("/dev/fuse is missing (load the fuse module, or give the container "
                "--device /dev/fuse)")
    try:
        os.close(os.open("/dev/fuse", os.O_RDWR))
    except OSError as e:
        return f"cannot open /dev/fuse: {e.strerror}"
    if os.geteuid() != 0:
        return ("mounting needs root: the mount uses allow_other and default_permissions and "
                "evaluates every caller's credentials itself")
    if not os.path.isdir(mountpoint):
        return f"{mountpoint}: not a directory"
    from ..fuse import is_mounted
    if is_mounted(mountpoint):
        return f"{mountpoint}: a procfs is already mounted there"
    try:
        from ..fuse import load_libfuse3
        load_libfuse3()
    except (OSError, RuntimeError, AttributeError) as e:
        return f"libfuse3 unavailable: {e}"
    return None


def _setup_logging(logfile: str | None) -> None:
    import logging
    handler: logging.Handler
    handler = logging.FileHandler(logfile) if logfile else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("fuse").setLevel(logging.WARNING)    # mfusepy's per-request debug


def _write_pidfile(path: str) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\n")


def cmd_mount(args: argparse.Namespace) -> int:
    import subprocess
    mnt = os.path.realpath(args.mountpoint)
    why = preflight(mnt)
    if why:
        return _die(why)
    bench = args.bench_node
    if bench is not None and (not bench or bench.isdigit() or "/" in bench
                              or bench in ("curproc", "self", ".", "..")):
        return _die(f"--bench-node {bench!r}: must be a plain name, not a pid or curproc/self")
    pidfile = args.pidfile or _state_file(mnt, ".pid")
    logfile = args.logfile or _state_file(mnt, ".log")
    if args.foreground:
        return _serve(args, mnt, pidfile, logfile if args.logfile else None)
    # Daemonize by re-running ourselves in the foreground in a new session: the
    # daemon starts libfuse's threads in a fresh interpreter (no fork after threads).
    os.makedirs(os.path.dirname(logfile) or ".", exist_ok=True)
    cmd = [sys.executable, "-m", "bsdprocfs", "mount", "--foreground", "--profile", args.profile,
           "--pidfile", pidfile, "--logfile", logfile,
           *(["--bench-node", bench] if bench else []), mnt]
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(cmd, stdin=devnull, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
    from ..fuse import is_mounted
    deadline = time.monotonic() + 20
    while not is_mounted(mnt):
        if proc.poll() is not None:
            tail = _tail(logfile)
            return _die(f"mount daemon exited with status {proc.returncode}; "
                        f"log {logfile}:\n{tail}")
        if time.monotonic() > deadline:
            proc.terminate()
            return _die(f"mount not live after 20 s; log {logfile}")
        time.sleep(0.02)
    print(f"bsdprocfs: mounted on {mnt} (daemon pid {proc.pid}, log {logfile})")
    return 0


def _tail(path: str, n: int = 20) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _serve(args: argparse.Namespace, mnt: str, pidfile: str, logfile: str | None) -> int:
    import logging
    _setup_logging(logfile)
    _write_pidfile(pidfile)
    from ..fuse import serve
    try:
        return serve(mnt, args.profile, args.bench_node)
    except Exception as e:
        logging.getLogger("bsdprocfs.fuse").exception("mount failed")
        return _die(f"mount {mnt}: {e}")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(pidfile)


def _pid_alive(pid: int) -> bool:
    if not os.path.isdir("/proc/self/task"):      # no Linux /proc (FreeBSD): ask kill(2)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
        return st[st.rindex(b")") + 2:][:1] not in (b"Z", b"X")
    except (OSError, ValueError):
        return False


def cmd_umount(args: argparse.Namespace) -> int:
    from ..fuse import fusermount_u, is_mounted
    mnt = os.path.realpath(args.mountpoint)
    pidfile = args.pidfile or _state_file(mnt, ".pid")
    pid = None
    with contextlib.suppress(OSError, ValueError), open(pidfile) as f:
        pid = int(f.read().split()[0])
    was_mounted = is_mounted(mnt)
    if pid and _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)          # clean: unmount and detach every tracee
        deadline = time.monotonic() + 15
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    if is_mounted(mnt):
        fusermount_u(mnt)                     # dead daemon: "transport endpoint not connected"
    with contextlib.suppress(OSError):
        os.unlink(pidfile)
    if is_mounted(mnt):
        return _die(f"{mnt}: still mounted")
    if not was_mounted and not pid:
        return _die(f"{mnt}: not mounted")
    return 0


# -------------------------------------------------------------------- exec
def _libc() -> Any:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                           ctypes.c_void_p]
    return libc


def _check(rc: int, what: str) -> None:
    import ctypes
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def private_namespace() -> None:
    """unshare(CLONE_NEWNS) + make every mount private: nothing we mount from now
    on propagates to the host, and it all vanishes with the namespace."""
    libc = _libc()
    _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "mount --make-rprivate /")


def _child_setup(fusedir: str) -> Any:
    """preexec for CMD: a second private namespace where the FUSE tree is /proc.

    The daemon stays in the outer namespace and keeps reading the kernel's /proc.
    """
    src = fusedir.encode()

    def setup() -> None:
        private_namespace()
        libc = _libc()
        _check(libc.mount(src, b"/proc", None, MS_BIND, None), "mount --bind FUSE /proc")

    return setup


def cmd_exec(args: argparse.Namespace) -> int:
    import ctypes
    import subprocess
    import tempfile
    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        return _die("exec: no command given (bsdprocfs exec [--profile P] -- CMD ARGS...)", 2)
    if os.geteuid() != 0:
        return _die("exec needs root (a private mount namespace and a FUSE mount)")
    try:
        private_namespace()
    except OSError as e:
        return _die(f"exec: {e.strerror}")
    mnt = tempfile.mkdtemp(prefix="bsdprocfs-exec-")
    why = preflight(mnt)
    if why:
        os.rmdir(mnt)
        return _die(why)
    logfile = args.logfile or os.devnull
    pidfile = mnt + ".pid"
    cmd = [sys.executable, "-m", "bsdprocfs", "mount", "--foreground", "--profile", args.profile,
           "--pidfile", pidfile, "--logfile", logfile, mnt]

    def pdeath() -> None:     # the daemon unmounts if we die
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    from ..fuse import is_mounted
    # CMD decides what a SIGTERM/SIGHUP/SIGQUIT means and we clean up once it exits.
    # The handler is in place before CMD starts: one arriving before CMD exists is
    # held and forwarded as soon as it does (or, before its start, ends exec).
    started: list[subprocess.Popen[bytes]] = []
    held: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if not started:
            held.append(signum)
            return
        with contextlib.suppress(ProcessLookupError):
            started[0].send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    daemon = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, preexec_fn=pdeath)
    try:
        deadline = time.monotonic() + 20
        while not is_mounted(mnt):
            if held:
                return 128 + held[0]
            if daemon.poll() is not None or time.monotonic() > deadline:
                return _die(f"exec: the procfs daemon did not come up (log: {logfile})")
            time.sleep(0.02)
        if held:
            return 128 + held[0]
        try:
            child = subprocess.Popen(argv, preexec_fn=_child_setup(mnt))
        except (OSError, subprocess.SubprocessError) as e:
            return _die(f"exec: {argv[0]}: {getattr(e, 'strerror', None) or e}", 127)
        started.append(child)
        for signum in held:               # arrived while CMD was being started
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)
        while True:
            try:
                rc = child.wait()
                break
            except KeyboardInterrupt:
                continue                  # the child got the SIGINT too; wait for it
        return rc if rc >= 0 else 128 - rc
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(15)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        if is_mounted(mnt):
            from ..fuse import fusermount_u
            fusermount_u(mnt)
        with contextlib.suppress(OSError):
            os.rmdir(mnt)


def register(sub: Any) -> None:
    p = parser(sub, "mount", "mount the FreeBSD procfs tree with FUSE",
               "Mount the FreeBSD procfs tree on MOUNTPOINT: a daemon serves it with "
               "FUSE, checking every caller's own credentials. Needs root, /dev/fuse "
               "and fuse3. The daemon's pid and log files go to /run/bsdprocfs/.",
               """
bsdprocfs mount /mnt/bsdproc
cat /mnt/bsdproc/curproc/status
bsdprocfs umount /mnt/bsdproc
""")
    add_profile(p)
    p.add_argument("--foreground", action="store_true",
                   help="serve in this process instead of starting a daemon")
    p.add_argument("--pidfile", metavar="FILE",
                   help="pid file (default: /run/bsdprocfs/<mountpoint>.pid)")
    p.add_argument("--logfile", metavar="FILE",
                   help="log file (default: /run/bsdprocfs/<mountpoint>.log; "
                   "stderr in the foreground)")
    p.add_argument("--bench-node", metavar="NAME",
                   help="also serve a constant small file NAME/status, at the depth of "
                   "PID/status (for benchmarks)")
    p.add_argument("mountpoint", metavar="MOUNTPOINT", help="an existing directory")
    p.set_defaults(func=cmd_mount)

    p = parser(sub, "umount", "unmount a bsdprocfs mount and stop its daemon",
               "Unmount a bsdprocfs FUSE mount: the daemon detaches every process it "
               "traces, unmounts and exits.",
               "bsdprocfs umount /mnt/bsdproc")
    p.add_argument("--pidfile", metavar="FILE", help="the pid file given to mount, if not "
                   "the default")
    p.add_argument("mountpoint", metavar="MOUNTPOINT")
    p.set_defaults(func=cmd_umount)

    p = parser(sub, "exec", "run a command that sees the FreeBSD tree at /proc",
               "Run CMD in a private mount namespace where /proc is the FreeBSD procfs "
               "tree (a FUSE mount that vanishes with CMD). The rest of the system keeps "
               "Linux's /proc. Needs root. Exits with CMD's status.",
               """
bsdprocfs exec -- cat /proc/curproc/status
bsdprocfs exec --profile freebsd-13 -- ./freebsd-tool
""")
    add_profile(p)
    p.add_argument("--logfile", metavar="FILE", help="the daemon's log file (default: none)")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS",
                   help="the command to run and its arguments")
    p.set_defaults(func=cmd_exec)
