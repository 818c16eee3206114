"""The tree: root listing and order, curproc/self, node sets, stat attributes,
set-id modes, pid-name lookup (spec sections 1 and 13)."""

from __future__ import annotations

import errno
import os

import pytest

from bsdprocfs_conformance.spec import ALL_NODE_NAMES, NODE
from bsdprocfs_conformance.targets import read, write
from bsdprocfs_conformance.util import dirents, expect_errno, need_node, parse_status

tree = pytest.mark.procfs("tree", "tree")


@tree
def test_root_stat(target):
    st = target.lstat("")
    assert (st.kind, st.mode, st.uid, st.gid) == ("dir", 0o555, 0, 0)
    assert (st.size, st.nlink) == (0, 1)


@pytest.mark.procfs("tree", "ino")
def test_root_ino(target):
    assert target.lstat("").ino == 2


@tree
def test_root_listing_order(target, prof):
    names = target.listdir("")
    n = len(prof.root_nodes)
    if prof.prepend:         # pfs_add_node at the head: pids, then the static nodes
        assert tuple(names[-n:]) == prof.root_nodes, "cite: pfs.readdir.prepend"
        rest = names[:-n]
    else:                    # cite: pfs.readdir.append
        assert tuple(names[:n]) == prof.root_nodes
        rest = names[n:]
    assert rest and all(x.isdigit() and (x == "0" or not x.startswith("0")) for x in rest), rest
    assert len(set(rest)) == len(rest), "duplicate pid directories"


@tree
def test_root_listing_has_subjects(target, pool):
    subs = [pool.get(n) for n in ("sleeping", "running", "stopped")]
    names = set(target.listdir(""))
    for s in subs:
        assert str(s.pid) in names, f"{s.name} subject {s.pid} missing from the root listing"
    assert str(pool.get("zombie").pid) not in names, "a zombie must not be listed"


@tree
def test_root_listing_newest_first(target, pool):
    a, b = pool.spawn("order-a"), pool.spawn("order-b")
    try:
        if b.pid < a.pid:
            pytest.skip("pids wrapped between the two subjects")
        names = target.listdir("")
        assert names.index(str(b.pid)) < names.index(str(a.pid)), "allproc order: newest first"
    finally:
        a.kill()
        b.kill()


@pytest.mark.procfs("curproc", "tree")
@pytest.mark.parametrize("node", ["curproc", "self"])
def test_root_link_readlink(target, prof, node):
    if node == "self" and not prof.has_self_exe:
        expect_errno(errno.ENOENT, target.lstat, "self")
        return
    assert target.readlink(node) == str(os.getpid())


@pytest.mark.procfs("curproc", "tree")
@pytest.mark.parametrize("node", ["curproc", "self"])
def test_root_link_stat(target, prof, node):
    need_node(prof, node)
    st = target.lstat(node)
    assert (st.kind, st.mode, st.uid, st.gid, st.nlink) == ("link", 0o444, 0, 0, 1)


@pytest.mark.procfs("curproc", "tree")
def test_curproc_is_my_directory(target, prof):
    st = target.stat("curproc")
    assert (st.kind, st.mode, st.uid, st.gid) == ("dir", 0o555, os.getuid(), os.getgid())
    assert tuple(target.listdir("curproc")) == prof.pid_nodes
    s = parse_status(read(target, "curproc/status"))
    assert s.pid == os.getpid()


@tree
@pytest.mark.parametrize("subject", ["rich", "sleeping", "running", "stopped"])
def test_pid_dir_listing(target, prof, pool, subject):
    s = pool.get(subject)
    assert tuple(target.listdir(str(s.pid))) == prof.pid_nodes


CRED_SUBJECTS = ("sugid", "dropped", "split", "fgid", "fgroups", "grouped")
#: P_SUGID subjects: credentials changed since exec (set-id, or setuid without exec)
SUGID = ("sugid", "dropped", "split")


@tree
@pytest.mark.parametrize("subject", ["rich", "sleeping", *CRED_SUBJECTS])
def test_pid_dir_stat(target, pool, subject):
    if subject in CRED_SUBJECTS and not pool.root:
        pytest.skip("set-id subject needs root")
    s = pool.get(subject)
    st = target.lstat(str(s.pid))
    assert (st.kind, st.mode, st.size, st.nlink) == ("dir", 0o555, 0, 1)
    assert (st.uid, st.gid) == (s.truth["ruid"], s.truth["rgid"]), "owner = real uid/gid"


@pytest.mark.procfs("*", "stat")
@pytest.mark.parametrize("node", ALL_NODE_NAMES)
def test_node_stat(target, prof, pool, node):
    need_node(prof, node)
    s = pool.get("rich")
    n = NODE[node]
    st = target.lstat(f"{s.pid}/{node}")
    assert st.kind == n.kind
    assert oct(st.mode) == oct(n.mode)
    assert (st.uid, st.gid) == (s.truth["ruid"], s.truth["rgid"])
    assert (st.size, st.nlink) == (0, 1)


@pytest.mark.procfs("*", "ino")
@pytest.mark.parametrize("node", ALL_NODE_NAMES)
def test_node_ino(target, prof, pool, node):
    need_node(prof, node)
    pid = pool.get("sleeping").pid
    assert target.lstat(f"{pid}/{node}").ino % 100000 == pid, "fileno * NO_PID + pid"


@pytest.mark.procfs("*", "sugid")
@pytest.mark.parametrize("node", ALL_NODE_NAMES)
@pytest.mark.parametrize("subject", CRED_SUBJECTS)
def test_sugid_mode(target, prof, pool, node, subject):
    """Root sees every node (no vis callback hides one from it); P_SUGID subjects'
    attr-callback nodes have mode 0, the others keep the table's mode."""
    need_node(prof, node)
    if not pool.root:
        pytest.skip("set-id subject needs root")
    s = pool.get(subject)
    n = NODE[node]
    st = target.lstat(f"{s.pid}/{node}")
    want = 0 if (n.attr and subject in SUGID) else n.mode
    assert oct(st.mode) == oct(want), "P_SUGID: attr-callback nodes get 0"
    assert (st.uid, st.gid) == (s.truth["ruid"], s.truth["rgid"]), "owner = real uid/gid"


@pytest.mark.procfs("*", "ino")
def test_readdir_ino(target, prof, pool):
    """readdir's d_ino equals stat's st_ino for every entry (a path target only: the
    API has no dirents)."""
    if target.kind != "path":
        pytest.skip("d_ino is a property of readdir(2) on a mounted tree")
    pid = str(pool.get("sleeping").pid)
    mine = {"curproc", "self", pid}            # other processes may exit meanwhile
    root = [e for e in os.scandir(target.p("")) if e.name in mine]
    assert pid in {e.name for e in root}
    for rel, entries in (("", root), (pid, list(os.scandir(target.p(pid))))):
        for e in entries:
            ino = target.lstat(f"{rel}/{e.name}" if rel else e.name).ino
            if not rel and e.name == pid:
                # pfs_readdir gives each <pid> entry of the root its template's plain
                # pn_fileno; stat(2) adds the pid (pn_fileno * NO_PID + pid)
                assert e.inode() * 100000 + int(pid) == ino, e.name
            else:
                assert e.inode() == ino, e.name


@pytest.mark.procfs("curproc", "tree")
def test_curproc_from_thread(target, prof):
    """curproc names the calling process, also when a second thread asks."""
    import threading
    out: list[object] = []

    def ask() -> None:
        try:
            out.append(target.readlink("curproc"))
        except OSError as e:
            out.append(e)
    th = threading.Thread(target=ask)
    th.start()
    th.join(10)
    assert out == [str(os.getpid())]


@pytest.mark.procfs("*", "tree")
@pytest.mark.parametrize("node", ALL_NODE_NAMES)
def test_node_presence(target, prof, pool, node):
    pid = pool.get("sleeping").pid
    if node in prof.pid_nodes:
        assert target.lstat(f"{pid}/{node}").kind == NODE[node].kind
    else:
        expect_errno(errno.ENOENT, target.lstat, f"{pid}/{node}")


@tree
@pytest.mark.parametrize("name", ["abc", "12a", "-1", "+1", "1.0", " 1", "0x10", "curproc2",
                                  "9" * 20, "1" * 130, "99999999"])
def test_bad_pid_names(target, name):
    expect_errno(errno.ENOENT, target.lstat, name)


@tree
@pytest.mark.parametrize("zeros", ["0", "000"])
def test_leading_zeros(target, pool, zeros):
    s = pool.get("sleeping")
    name = zeros + str(s.pid)
    assert target.lstat(name).kind == "dir"
    assert parse_status(read(target, f"{name}/status")).pid == s.pid


@tree
@pytest.mark.parametrize("name", ["bogus", "Status", "status2", "maps", "stat", "ctl2"])
def test_unknown_node(target, pool, name):
    expect_errno(errno.ENOENT, target.lstat, f"{pool.get('sleeping').pid}/{name}")


@pytest.mark.procfs("status", "tree")
def test_readlink_non_link(target, pool):
    expect_errno(errno.EINVAL, target.readlink, f"{pool.get('sleeping').pid}/status")


@tree
def test_read_directory(target, pool, prof):
    """pfs_read answers EINVAL for a non-regular vnode (cite: pfs.read.notreg); from 13
    the VFS refuses read(2) of a directory first with EISDIR (cite: vfs.read_dir)."""
    if target.kind != "path":
        pytest.skip("read(2) on a directory is not expressible through the API")
    expect_errno(prof.read_dir_errno, target.read_directory, str(pool.get("sleeping").pid))


@pytest.mark.procfs("*", "setattr")
@pytest.mark.parametrize("op", ["chmod", "chown", "utime"])
def test_setattr(target, prof, pool, op):
    """pfs_setattr: EOPNOTSUPP through 12.x, silently ignored later (cite: pfs.setattr);
    either way the mode does not change."""
    if target.kind != "path":
        pytest.skip("setattr is not expressible through the API")
    if os.geteuid() != 0:
        pytest.skip("chmod/chown of another user's node needs root to reach pfs_setattr")
    rel = f"{pool.get('sleeping').pid}/status"
    path = target.p(rel)
    before = target.lstat(rel)
    fn = {"chmod": lambda: os.chmod(path, 0o777),
          "chown": lambda: os.chown(path, 0, 0),
          "utime": lambda: os.utime(path, (1, 1))}[op]
    expect_errno(prof.setattr_errno, fn)
    assert target.lstat(rel).mode == before.mode, "nothing changes"


@pytest.mark.procfs("*", "errors")
@pytest.mark.parametrize("node", ["cmdline", "etype", "map", "rlimit", "status"])
def test_write_readonly_node(target, pool, node):
    """Root may open a 0444 node for writing (vaccess); the write is EBADF."""
    rel = f"{pool.get('sleeping').pid}/{node}"
    if os.geteuid() != 0:
        expect_errno(errno.EACCES, target.open, rel, "w")
        return
    expect_errno(errno.EBADF, write, target, rel, b"x")


@pytest.mark.procfs("*", "errors")
@pytest.mark.parametrize("node", ["note", "notepg", "ctl"])
def test_read_writeonly_node(target, prof, pool, node):
    need_node(prof, node)
    rel = f"{pool.get('sleeping').pid}/{node}"
    if os.geteuid() != 0:
        expect_errno(errno.EACCES, target.open, rel, "r")
        return
    expect_errno(errno.EBADF, read, target, rel, 16)


@pytest.mark.procfs("tree", "ino")
def test_readdir_filenos(target, pool):
    """pfs_readdir gives each entry pn_fileno(pn, pid) with the directory's pid (cite:
    pfs.readdir.fileno): at the root (NO_PID) every process directory shares the
    template's number, which stat(2) of /proc/<pid> adjusts; in /proc/<pid>, ".." is the
    root's fileno 2 adjusted by the pid (cite: pfs.fileno)."""
    if target.kind != "path":
        pytest.skip("d_fileno is only seen through readdir(2)")
    s = pool.get("sleeping")
    root = {e.name: e.inode() for e in os.scandir(target.p(""))}
    pids = [n for n in root if n.isdigit()]
    assert len({root[n] for n in pids}) == 1, "one d_fileno for every <pid> entry"
    assert root[str(s.pid)] != target.lstat(str(s.pid)).ino
    inner = {e.name: e.inode() for e in os.scandir(target.p(str(s.pid)))}
    want = {n: target.lstat(f"{s.pid}/{n}").ino for n in inner}
    assert inner == want, "the nodes' d_fileno equal their stat numbers"
    ents = dirents(target.p(str(s.pid)))
    if ents is None:
        return
    dots = dict(e for e in ents if e[0] in (".", ".."))
    assert dots["."] == target.lstat(str(s.pid)).ino, "\".\" is the procdir's number"
    assert dots[".."] == 2 * 100000 + s.pid, "\"..\": the root's 2, adjusted by the pid"
    rdots = dict(e for e in dirents(target.p("")) or [] if e[0] in (".", ".."))
    assert rdots == {".": 2, "..": 2}, "the root's dots are 2 (cite: pfs.fileno)"
