"""Through a real FUSE mount: pseudofs attributes, readdir order, errnos,
vanished processes, curproc for threads, and churn under concurrent reads."""

from __future__ import annotations

import errno
import os
import random
import stat
import subprocess
import threading
import time

import pytest
from test_fuse_common import errname, kill, needs_fuse, spawn_sleeper, wait_for

import bsdprocfs
from bsdprocfs.fuse import mounted
from bsdprocfs.tree import PID_NODES

pytestmark = [needs_fuse, pytest.mark.fuse, pytest.mark.timeout(180)]

FILES = {n.name: n for n in PID_NODES}


@pytest.fixture(scope="module")
def mnt():
    with mounted(profile="compat") as m:
        yield m
        assert m.proc.poll() is None, "daemon died:\n" + m.log_text()
        assert "Traceback" not in m.log_text(), m.log_text()


@pytest.fixture
def child():
    p = spawn_sleeper()
    yield p
    kill(p)


def test_root_attributes(mnt):
    before = time.time()
    st = os.stat(mnt.path)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o555
    assert (st.st_uid, st.st_gid, st.st_size, st.st_nlink, st.st_ino) == (0, 0, 0, 1, 2)
    assert abs(st.st_mtime - before) < 5 and st.st_atime == st.st_mtime == st.st_ctime
    for name, ino in (("curproc", 3), ("self", 4)):
        lst = os.lstat(f"{mnt.path}/{name}")
        assert stat.S_ISLNK(lst.st_mode) and stat.S_IMODE(lst.st_mode) == 0o444
        assert (lst.st_uid, lst.st_gid, lst.st_size, lst.st_nlink, lst.st_ino) == (0, 0, 0, 1, ino)
        assert os.readlink(f"{mnt.path}/{name}") == str(os.getpid())
    vfs = os.statvfs(mnt.path)
    assert (vfs.f_bsize, vfs.f_blocks, vfs.f_bfree, vfs.f_files) == (os.sysconf("SC_PAGE_SIZE"),
                                                                    2, 2, 0)
    with open("/proc/self/mountinfo") as f:
        line = next(ln for ln in f if f" {mnt.path} " in ln)
    assert " - fuse.bsdprocfs procfs " in line
    assert "default_permissions" in line and "allow_other" in line


def test_every_pid_node_attributes(mnt, child):
    pid = child.pid
    with open(f"/proc/{pid}/status") as f:
        uids = next(ln for ln in f if ln.startswith("Uid:")).split()
    d = os.stat(f"{mnt.path}/{pid}")
    assert stat.S_IMODE(d.st_mode) == 0o555 and d.st_nlink == 1 and d.st_size == 0
    assert d.st_ino == 5 * 100000 + pid and d.st_uid == int(uids[1])
    names = os.listdir(f"{mnt.path}/{pid}")
    assert names == [n.name for n in PID_NODES]            # compat: every node, table order
    for name in names:
        node = FILES[name]
        st = os.lstat(f"{mnt.path}/{pid}/{name}")
        kind = {"file": stat.S_ISREG, "link": stat.S_ISLNK}[node.kind]
        assert kind(st.st_mode), name
        assert stat.S_IMODE(st.st_mode) == node.mode, name
        assert (st.st_size, st.st_nlink, st.st_uid, st.st_gid) == (0, 1, 0, 0), name
        assert st.st_ino == node.fileno * 100000 + pid, name
        assert abs(st.st_mtime - time.time()) < 5, name


def test_readdir_order_with_dot_entries(mnt, child):
    # ls -f: directory order, no sorting, with . and ..
    root = subprocess.run(["ls", "-f", "-a", mnt.path], capture_output=True, text=True,
                          check=True).stdout.split()
    assert root[:4] == [".", "..", "curproc", "self"]
    pids = [int(x) for x in root[4:]]
    assert pids == sorted(pids, reverse=True) and child.pid in pids   # newest first
    assert all(x.isdigit() for x in root[4:])
    sub = subprocess.run(["ls", "-f", "-a", f"{mnt.path}/{child.pid}"], capture_output=True,
                         text=True, check=True).stdout.split()
    assert sub == [".", ".."] + [n.name for n in PID_NODES]


def test_reads_regenerate_and_parse(mnt, child):
    pid = child.pid
    path = f"{mnt.path}/{pid}/status"
    data = read1(path)
    rec = bsdprocfs.parse("status", data)
    assert rec.pid == pid and rec.comm.startswith(b"python")
    # every read regenerates: offsets slice a fresh rendering, EOF past the end
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.pread(fd, 5, 0) == data[:5]
        assert os.pread(fd, 4096, 10000) == b""
        assert bsdprocfs.parse("status", os.pread(fd, 65536, 0)).pid == pid
    finally:
        os.close(fd)
    for node in ("cmdline", "rlimit", "map", "etype", "osrel"):
        bsdprocfs.parse(node, read1(f"{mnt.path}/{pid}/{node}"))           # strict: raises on any malformed byte
    assert os.readlink(f"{mnt.path}/{pid}/file") == os.readlink(f"/proc/{pid}/exe")


def read1(path: str) -> bytes:
    """One read(2) of up to 1 MiB: a whole record.  (Python's f.read() issues a
    second read at the end offset, which regenerates the node: if the content
    grew meanwhile it returns the new tail, a splice FreeBSD also produces.)"""
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 1 << 20)
    finally:
        os.close(fd)


def _errno_of(fn) -> str:
    try:
        fn()
    except OSError as e:
        return errname(e)
    return "ok"


def test_misuse_errnos(mnt, child):
    p = f"{mnt.path}/{child.pid}"
    fd = os.open(f"{p}/ctl", os.O_RDONLY)           # root: vaccess passes, the node has no RD
    try:
        assert _errno_of(lambda: os.read(fd, 16)) == "EBADF"
    finally:
        os.close(fd)
    fd = os.open(f"{p}/status", os.O_WRONLY)
    try:
        assert _errno_of(lambda: os.write(fd, b"x")) == "EBADF"
    finally:
        os.close(fd)
    fd = os.open(f"{p}/note", os.O_WRONLY)
    try:
        assert _errno_of(lambda: os.write(fd, b"x")) == "EOPNOTSUPP"
    finally:
        os.close(fd)
    assert _errno_of(lambda: os.open(f"{p}/newfile", os.O_CREAT | os.O_WRONLY)) == "EOPNOTSUPP"
    assert _errno_of(lambda: os.open(f"{mnt.path}/newfile", os.O_CREAT | os.O_WRONLY)) \
        == "EOPNOTSUPP"
    assert _errno_of(lambda: os.mkdir(f"{p}/dir")) == "EOPNOTSUPP"
    assert _errno_of(lambda: os.unlink(f"{p}/status")) == "EOPNOTSUPP"
    assert _errno_of(lambda: os.rmdir(p)) == "EOPNOTSUPP"
    assert _errno_of(lambda: os.rename(f"{p}/status", f"{p}/x")) == "EOPNOTSUPP"
    assert _errno_of(lambda: os.symlink("x", f"{p}/x")) == "EOPNOTSUPP"
    assert _errno_of(lambda: os.readlink(f"{p}/status")) == "EINVAL"
    assert _errno_of(lambda: os.getxattr(f"{p}/status", "user.x")) == "EOPNOTSUPP"
    # setattr is accepted and ignored
    os.chmod(f"{p}/status", 0o777)
    os.chown(f"{p}/status", 1, 1)
    os.utime(f"{p}/status")
    os.truncate(f"{p}/status", 0)
    st = os.stat(f"{p}/status")
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_size) == (0o444, 0, 0)
    assert _errno_of(lambda: os.stat(f"{mnt.path}/{child.pid}/nosuch")) == "ENOENT"
    assert _errno_of(lambda: os.stat(f"{mnt.path}/abc")) == "ENOENT"
    assert _errno_of(lambda: os.stat(f"{mnt.path}/{'9' * 130}")) in ("ENOENT", "ENAMETOOLONG")
    # leading zeros are accepted on lookup
    assert os.stat(f"{mnt.path}/000{child.pid}").st_ino == 5 * 100000 + child.pid


def test_vanished_process_enoent_then_eio(mnt):
    p = spawn_sleeper()
    path = f"{mnt.path}/{p.pid}"
    fd = os.open(f"{path}/status", os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 0)
        p.kill()
        # a zombie is already invisible (not yet reaped)
        wait_for(lambda: _errno_of(lambda: os.stat(path)) == "ENOENT")
        assert str(p.pid) not in os.listdir(mnt.path)
        assert _errno_of(lambda: os.pread(fd, 4096, 0)) == "EIO"
        p.wait()
        assert _errno_of(lambda: os.stat(path)) == "ENOENT"
        assert _errno_of(lambda: os.stat(f"{path}/status")) == "ENOENT"
        assert _errno_of(lambda: os.close(os.open(f"{path}/status", os.O_RDONLY))) == "ENOENT"
        assert _errno_of(lambda: os.pread(fd, 4096, 0)) == "EIO"
    finally:
        os.close(fd)
        kill(p)


def test_curproc_is_the_callers_process_even_from_a_thread(mnt):
    got: list[object] = []
    ready = threading.Event()
    stop = threading.Event()
    tids: list[int] = []

    def worker() -> None:
        tids.append(threading.get_native_id())
        got.append(os.readlink(f"{mnt.path}/curproc"))
        got.append(bsdprocfs.parse("status", read1(f"{mnt.path}/curproc/status")).pid)
        ready.set()
        stop.wait(10)

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert ready.wait(10)
        assert got == [str(os.getpid()), os.getpid()]
        assert tids[0] != os.getpid()
        # a thread id is not a process directory
        assert _errno_of(lambda: os.stat(f"{mnt.path}/{tids[0]}")) == "ENOENT"
    finally:
        stop.set()
        t.join()
    out = subprocess.run(["dd", "if=" + f"{mnt.path}/curproc/status", "bs=65536", "count=1", "status=none"], capture_output=True,
                         check=True).stdout
    rec = bsdprocfs.parse("status", out)
    assert rec.comm == b"dd" and rec.ppid == os.getpid()


def test_setid_process_gets_mode_zero_on_attr_nodes(mnt):
    from test_fuse_common import ensure_user
    uid, gid = ensure_user()
    p = spawn_sleeper(uid=uid, gid=gid, setid=True)
    try:
        for node in PID_NODES:
            st = os.lstat(f"{mnt.path}/{p.pid}/{node.name}")
            want = 0 if node.attr else node.mode
            assert stat.S_IMODE(st.st_mode) == want, node.name
            assert st.st_uid == uid, node.name       # owner: the real uid
    finally:
        kill(p)


def test_bench_node_is_off_by_default(mnt):
    assert _errno_of(lambda: os.stat(f"{mnt.path}/bench")) == "ENOENT"


@pytest.mark.timeout(170)
def test_concurrent_reads_while_1000_processes_come_and_go(mnt):
    """0 malformed records: each read is a whole parseable record, or ENOENT/EIO."""
    stop = threading.Event()
    stats = {"ok": 0, "gone": 0}
    bad: list[str] = []
    nodes = ("status", "cmdline", "rlimit", "etype", "osrel", "status", "status", "map")
    lock = threading.Lock()

    def reader(seed: int) -> None:
        rnd = random.Random(seed)
        while not stop.is_set():
            try:
                # pid 1 here is the sandbox's init, whose exe/maps the kernel
                # denies even to root (EACCES/EPERM): not one of our churn targets
                pids = [n for n in os.listdir(mnt.path) if n.isdigit() and n != "1"]
            except OSError as e:
                bad.append(f"listdir: {e}")
                return
            rnd.shuffle(pids)
            for pid in pids[:40]:
                node = rnd.choice(nodes)
                try:
                    # one read(2): a whole record (chunked reads may splice two
                    # snapshots, as on FreeBSD, when the process execs in between)
                    fd = os.open(f"{mnt.path}/{pid}/{node}", os.O_RDONLY)
                    try:
                        data = os.read(fd, 1 << 20)
                    finally:
                        os.close(fd)
                except OSError as e:
                    if e.errno in (errno.ENOENT, errno.EIO):
                        with lock:
                            stats["gone"] += 1
                        continue
                    bad.append(f"{pid}/{node}: {errname(e)}")
                    continue
                try:
                    bsdprocfs.parse(node, data)
                    with lock:
                        stats["ok"] += 1
                except ValueError as e:
                    bad.append(f"{pid}/{node}: malformed {data[:120]!r}: {e}")

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        # 1,000 short-lived processes, 20 at a time, each living a few ms
        script = "for i in $(seq 50); do for j in $(seq 20); do sleep 0.0$j & done; wait; done"
        subprocess.run(["sh", "-c", script], check=True, timeout=150)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert not bad, bad[:10]
    assert stats["ok"] > 100, stats
    assert mnt.proc.poll() is None


def test_profile_switches_the_node_table():
    from bsdprocfs.profiles import get_profile
    prof = get_profile("freebsd-13")
    with mounted(profile="freebsd-13") as m:
        root = os.listdir(m.path)
        assert root[0] == "curproc" and "self" not in root
        assert _errno_of(lambda: os.lstat(f"{m.path}/self")) == "ENOENT"
        names = os.listdir(f"{m.path}/curproc")
        assert names == [n.name for n in PID_NODES if n.present(prof)]
        assert "ctl" not in names and "exe" not in names
        assert _errno_of(lambda: os.stat(f"{m.path}/curproc/ctl")) == "ENOENT"
