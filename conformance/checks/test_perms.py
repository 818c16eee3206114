"""Permissions seen by an unprivileged observer (a child running as the test
user): p_cansee/p_candebug visibility, vaccess modes, map's EPERM (spec 1.2, 5, 13)."""

from __future__ import annotations

import errno

import pytest

from bsdprocfs_conformance.spec import ALL_NODE_NAMES, NODE, regset_sizes

#: subject -> (pool subject, the rule that decides for the observer).  The observer
#: is the test user U (gid G, groups G and EXTRA_GID); see subjects.CREDS.
SUBJECTS = {
    "other": ("sleeping", "p_candebug uid: root's process"),
    "own": ("own", "none: all ids are the observer's, nothing changed since exec"),
    "sugid": ("sugid", "p_candebug uid (euid nobody) and P_SUGID"),
    "dropped": ("dropped", "P_SUGID alone: the observer's ids, changed without exec"),
    "fgid": ("fgid", "p_candebug gid: the observer's uid, a gid it lacks"),
    "fgroups": ("fgroups", "p_candebug group subset: one supplementary group it lacks"),
    "grouped": ("grouped", "vaccess group class: another uid, the observer's group"),
    "split": ("split", "real != effective ids, changed without exec"),
}
#: which subjects the observer may debug (p_candebug passes)
DEBUGGABLE = frozenset(("own",))
#: which subjects are P_SUGID (attr-callback nodes get mode 0)
SUGID = frozenset(("sugid", "dropped", "split"))


def _vaccess(subject: str, mode: int, s, res, want_r: bool, want_w: bool) -> bool:
    """FreeBSD vaccess for the observer: owner, else group, else other bits."""
    t = s.truth
    if res["uid"] == t["ruid"]:
        bits = mode >> 6
    elif t["rgid"] == res["gid"] or t["rgid"] in res["groups"]:
        bits = mode >> 3
    else:
        bits = mode
    return (not want_r or bool(bits & 4)) and (not want_w or bool(bits & 2))


@pytest.fixture(scope="module")
def observed(observer, pool, prof):
    """One observer run for all subjects: every node's lstat, listing and main operation
    (results are split per subject afterwards)."""
    subs = {name: pool.get(sub) for name, (sub, _) in SUBJECTS.items()}
    batches = {}
    for name, s in subs.items():
        ops: list[list] = [["listdir", str(s.pid)], ["readlink", "curproc"]]
        for node in prof.pid_nodes:
            rel = f"{s.pid}/{node}"
            n = NODE[node]
            ops.append(["lstat", rel])
            if n.kind == "link":
                ops.append(["readlink", rel])
            elif n.rd:
                off = s.truth.get("maps", {}).get("rw", [0])[0] if node == "mem" else 0
                ops.append(["read", rel, 4096, off])
            elif node == "ctl":
                ops.append(["write", rel, b"detach".hex(), 0])
                if name in ("fgid", "fgroups"):     # may open ctl, may not debug
                    ops.append(["write", rel, b"attach".hex(), 0])
            else:
                ops.append(["write", rel, b"hello".hex(), 0])
            ops.append(["open", rel, "r" if n.wr and not n.rd else "w"])
            ops.append(["open", rel, "rw"])
        batches[name] = ops
    res = observer.run([op for ops in batches.values() for op in ops])
    out = {}
    at = 0
    for name, ops in batches.items():
        part = dict(res, results=res["results"][at:at + len(ops)])
        at += len(ops)
        out[name] = (subs[name], part, ops)
    return out


def _result(obs, subject, op, rel, mode=None):
    s, res, ops = obs[subject]
    for o, r in zip(ops, res["results"], strict=True):
        if o[0] == op and o[1] == rel and (mode is None or o[2] == mode):
            return r
    raise KeyError((op, rel))


@pytest.mark.procfs("tree", "perms")
@pytest.mark.parametrize("subject", SUBJECTS)
def test_observer_listing(observed, prof, subject):
    s, res, _ = observed[subject]
    got = res["results"][0]["ok"]
    debuggable = subject in DEBUGGABLE
    want = [n for n in prof.pid_nodes if debuggable or NODE[n].vis != "candebug"]
    assert got == want


@pytest.mark.procfs("curproc", "perms")
def test_observer_curproc(observed):
    _, res, _ = observed["other"]
    assert res["uid"] != 0
    assert res["results"][1] == {"ok": str(res["pid"])}


@pytest.mark.procfs("*", "perms")
@pytest.mark.parametrize("node", ALL_NODE_NAMES)
@pytest.mark.parametrize("subject", SUBJECTS)
def test_observer_node(observed, prof, subject, node):
    if node not in prof.pid_nodes:
        pytest.skip(f"not provided by profile {prof.name}: no {node} node")
    s, res, _ = observed[subject]
    n = NODE[node]
    rel = f"{s.pid}/{node}"
    debuggable = subject in DEBUGGABLE
    st = _result(observed, subject, "lstat", rel)
    if n.vis == "candebug" and not debuggable:
        assert st == {"errno": errno.ENOENT}, "p_candebug fails: the node is invisible"
        return
    mode = 0 if (n.attr and subject in SUGID) else n.mode
    assert st["ok"] == [n.kind, mode, s.truth["ruid"], s.truth["rgid"]]
    if n.kind == "link":
        assert _result(observed, subject, "readlink", rel) == {"ok": bytes.fromhex(
            s.truth["exe"]).decode("utf-8", "surrogateescape")}
        return
    op = _result(observed, subject, "read" if n.rd else "write", rel)
    one = "r" if n.wr and not n.rd else "w"
    opened = _result(observed, subject, "open", rel, one)
    rdwr = _result(observed, subject, "open", rel, "rw")
    may_rd = _vaccess(subject, mode, s, res, True, False)
    may_wr = _vaccess(subject, mode, s, res, False, True)
    if node == "map":
        assert ("ok" in op) if debuggable else op == {"errno": errno.EPERM}, \
            "procfs_domap re-checks p_candebug"
    elif node in ("regs", "fpregs"):
        assert op == {"errno": errno.EBUSY}, "sleeping target: not stopped"
    elif node == "dbregs":
        assert len(bytes.fromhex(op["ok"])) == regset_sizes().get("dbregs", 0)
    elif node == "mem":
        pat = bytes.fromhex(s.truth["maps"]["pattern"])
        assert bytes.fromhex(op["ok"]) == (pat * (4096 // len(pat) + 1))[:4096]
    elif node in ("note", "notepg"):
        assert op == {"errno": errno.EOPNOTSUPP}
    elif node == "ctl":
        # vaccess decides the open; detach of an untraced process is a no-op that
        # needs no p_candebug (procfs_control)
        assert op == ({"ok": 6} if may_wr else {"errno": errno.EACCES}), SUBJECTS[subject][1]
        if subject in ("fgid", "fgroups"):
            attach = [r for o, r in zip(observed[subject][2], res["results"], strict=True)
                      if o[:2] == ["write", rel] and o[2] == b"attach".hex()]
            assert attach == [{"errno": errno.EPERM}], "attach needs p_candebug"
    else:
        assert ("ok" in op) == may_rd, op
    # each open answers what vaccess of the (possibly zeroed) mode grants this observer
    want = one == "r"
    ok = may_rd if want else may_wr
    assert opened == ({"ok": "opened"} if ok else {"errno": errno.EACCES}), f"open {one}"
    ok = may_rd and may_wr
    assert rdwr == ({"ok": "opened"} if ok else {"errno": errno.EACCES}), "open O_RDWR"
