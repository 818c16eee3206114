"""FUSE: PID/status through the mount against a constant file on the same mount,
the kernel's own /proc, and the physical floor: a compiled libfuse3 low-level
daemon serving a constant status-sized file at the same depth, with the mount's
own timeouts and direct_io, on libfuse's multi-threaded loop."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable

from .core import Helpers, Result, Settings, _interleave, _med, _ratio, compile_c, skipped

NAMES = ("fuse_status_vs_trivial", "fuse_status_vs_kernel", "fuse_status_vs_c_floor")

#: The floor: FUSE low-level API, no work per request beyond the reply. Inodes: 1 the
#: root, 2 "bench", 3 "bench/status" (size 0 as pseudofs reports; direct_io).
FLOOR_C = r"""
#define FUSE_USE_VERSION 31
#include <fuse_lowlevel.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *body;
static size_t body_len;
static double t_entry, t_attr;

static void fill(fuse_ino_t ino, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    st->st_nlink = 1;
    st->st_mode = ino == 3 ? (S_IFREG | 0444) : (S_IFDIR | 0555);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    struct fuse_entry_param e;
    memset(&e, 0, sizeof e);
    if (parent == 1 && strcmp(name, "bench") == 0) e.ino = 2;
    else if (parent == 2 && strcmp(name, "status") == 0) e.ino = 3;
    else { fuse_reply_err(req, ENOENT); return; }
    e.attr_timeout = t_attr;
    e.entry_timeout = t_entry;
    fill(e.ino, &e.attr);
    fuse_reply_entry(req, &e);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    struct stat st;
    (void)fi;
    if (ino < 1 || ino > 3) { fuse_reply_err(req, ENOENT); return; }
    fill(ino, &st);
    fuse_reply_attr(req, &st, t_attr);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    if (ino != 3) { fuse_reply_err(req, EISDIR); return; }
    fi->direct_io = 1;
    fuse_reply_open(req, fi);
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi) {
    (void)ino; (void)fi;
    if (off < 0 || (size_t)off >= body_len) { fuse_reply_buf(req, NULL, 0); return; }
    size_t n = body_len - (size_t)off;
    fuse_reply_buf(req, body + off, n < size ? n : size);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = ll_lookup, .getattr = ll_getattr, .open = ll_open, .read = ll_read,
};

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: floor MNT BODY ENTRY_TIMEOUT ATTR_TIMEOUT\n");
        return 2;
    }
    body = argv[2];
    body_len = strlen(body);
    t_entry = atof(argv[3]);
    t_attr = atof(argv[4]);
    char *fargv[] = {argv[0], "-o", "allow_other,default_permissions,fsname=bsdprocfs-floor",
                     NULL};
    struct fuse_args args = FUSE_ARGS_INIT(3, fargv);
    struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
    if (se == NULL) return 1;
    if (fuse_set_signal_handlers(se) != 0 || fuse_session_mount(se, argv[1]) != 0) return 1;
    printf("ready\n");
    fflush(stdout);
    int rc = fuse_session_loop_mt(se, 0);
    fuse_session_unmount(se);
    fuse_remove_signal_handlers(se);
    fuse_session_destroy(se);
    return rc < 0 ? 1 : 0;
}
"""


def _fuse_unavailable() -> str | None:
    if not sys.platform.startswith("linux"):
        return "FUSE rows are measured on Linux only"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing"
    if os.geteuid() != 0:
        return "mounting with allow_other needs root"
    if shutil.which("fusermount3") is None and shutil.which("fusermount") is None:
        return "fusermount3 is not installed"
    try:
        import mfusepy  # noqa: F401
    except (ImportError, OSError) as e:
        return f"mfusepy unavailable: {e}"
    try:
        from .. import fuse  # noqa: F401
    except ImportError as e:
        return f"bsdprocfs.fuse not available: {e}"
    return None


def _floor_unavailable() -> str | None:
    """Why the compiled floor cannot be built here (None: it can)."""
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        return "no C compiler (gcc) to build the libfuse3 floor"
    if not os.path.exists("/usr/include/fuse3/fuse_lowlevel.h"):
        return "libfuse3 headers missing (apt-get install libfuse3-dev)"
    return None


def _read_loop(path: str, n: int) -> Callable[[], None]:
    o_open, o_read, o_close, flags = os.open, os.read, os.close, os.O_RDONLY

    def run() -> None:
        for _ in range(n):
            fd = o_open(path, flags)
            o_read(fd, 4096)
            o_close(fd)
    return run


@contextlib.contextmanager
def _c_floor(helpers: Helpers, body: bytes, build: str):  # type: ignore[no-untyped-def]
    """Mount the compiled floor on a fresh directory; yields its mountpoint. Always
    stops it (SIGTERM: libfuse unmounts) and removes the directory."""
    from .. import fuse
    exe = compile_c(FLOOR_C, "fuse_floor", build,
                    ("-I/usr/include/fuse3", "-lfuse3", "-lpthread"))
    mnt = tempfile.mkdtemp(prefix="bsdprocfs-floor-")
    opts = fuse.MOUNT_OPTIONS
    p = helpers.spawn([exe, mnt, body.decode("ascii", "replace").rstrip("\n") + "\n",
                       str(opts["entry_timeout"]), str(opts["attr_timeout"])],
                      stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout is not None and p.stderr is not None
        if p.stdout.readline().strip() != b"ready":
            p.wait(10)
            raise RuntimeError("the libfuse3 floor did not mount: "
                               + (p.stderr.read().decode(errors="replace").strip()
                                  or f"exit {p.returncode}"))
        yield mnt
    finally:
        if p.poll() is None:
            p.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(10)
        if fuse.is_mounted(mnt):
            fuse.fusermount_u(mnt)
        with contextlib.suppress(OSError):
            os.rmdir(mnt)


def bench_fuse(settings: Settings, helpers: Helpers) -> list[Result]:
    why = _fuse_unavailable()
    if why:
        return [skipped(n, why) for n in NAMES]
    from .. import fuse
    target = helpers.spawn(["sleep", "600"], stdin=subprocess.DEVNULL).pid
    n = settings.fuse_reads
    log_path = None
    floor_why = _floor_unavailable()
    build = tempfile.mkdtemp(prefix="bsdprocfs-bench-")
    try:
        with contextlib.ExitStack() as stack:
            m = stack.enter_context(fuse.mounted(extra=["--bench-node", "bench"]))
            log_path = m.log_path
            status = f"{m.path}/{target}/status"
            trivial = f"{m.path}/bench/{fuse.BENCH_FILE}"
            with open(status, "rb") as f:
                body = f.read()
            for p in (status, trivial):
                with open(p, "rb") as f:
                    if not f.read():
                        raise RuntimeError(f"{p} read empty")
            loops = [_read_loop(status, n), _read_loop(trivial, n),
                     _read_loop(f"/proc/{target}/status", n)]
            if floor_why is None:
                try:
                    cmnt = stack.enter_context(_c_floor(helpers, body, build))
                    with open(f"{cmnt}/bench/status", "rb") as f:
                        if f.read() != body:
                            raise RuntimeError("the libfuse3 floor served other bytes")
                    loops.append(_read_loop(f"{cmnt}/bench/status", n))
                except (RuntimeError, OSError) as e:
                    floor_why = str(e)
            t = _interleave(loops, settings.reps)
    except (RuntimeError, OSError) as e:
        reason = f"mount failed: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}"
        return [skipped(nm, reason) for nm in NAMES]
    finally:
        shutil.rmtree(build, ignore_errors=True)
        if log_path:
            with contextlib.suppress(OSError):
                os.unlink(log_path)
    us = [[s / n * 1e6 for s in ts] for ts in t]          # microseconds per read
    rate = [n / _med(ts) for ts in t]
    ours = f"open+read+close of MNT/PID/status ({rate[0]:,.0f}/s)"
    res = [
        Result(NAMES[0], _ratio(t[0], t[1]), _med(us[0]), _med(us[1]), "us/read", ours,
               f"of MNT/bench/status, a constant body at the same depth ({rate[1]:,.0f}/s)"),
        Result(NAMES[1], _ratio(t[0], t[2]), _med(us[0]), _med(us[2]), "us/read", ours,
               f"of the kernel's /proc/PID/status ({rate[2]:,.0f}/s)"),
    ]
    if floor_why is not None:
        res.append(skipped(NAMES[2], floor_why))
    else:
        res.append(Result(NAMES[2], _ratio(t[0], t[3]), _med(us[0]), _med(us[3]), "us/read",
                          ours, "of FLOOR/bench/status: a compiled libfuse3 low-level daemon, "
                          f"constant {len(body)}-byte body, same timeouts, direct_io, "
                          f"multi-threaded loop ({rate[3]:,.0f}/s)",
                          notes=[f"rate ours / floor = {rate[0] / rate[3]:.2f}x"]))
    return res
