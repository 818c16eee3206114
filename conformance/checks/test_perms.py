"""Permissions seen by an unprivileged observer (a child running as the test
user): p_cansee/p_candebug visibility, vaccess modes, map's EPERM (spec 1.2, 5, 13)."""

from __future__ import annotations

import errno

import pytest

from bsdprocfs_conformance.spec import ALL_NODE_NAMES, NODE, regset_sizes

SUBJECTS = ("other", "own", "sugid")


@pytest.fixture(scope="module")
def observed(observer, pool, prof):
    """One observer run per subject: every node's lstat, listing and main operation."""
    subs = {"other": pool.get("sleeping"), "own": pool.get("own"), "sugid": pool.get("sugid")}
    out = {}
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
            else:
                ops.append(["write", rel, b"hello".hex(), 0])
            ops.append(["open", rel, "r" if n.wr and not n.rd else "w"])
        res = observer.run(ops)
        out[name] = (s, res, ops)
    return out


def _result(obs, subject, op, rel):
    s, res, ops = obs[subject]
    for o, r in zip(ops, res["results"], strict=True):
        if o[0] == op and o[1] == rel:
            return r
    raise KeyError((op, rel))


@pytest.mark.procfs("tree", "perms")
@pytest.mark.parametrize("subject", SUBJECTS)
def test_observer_listing(observed, prof, subject):
    s, res, _ = observed[subject]
    got = res["results"][0]["ok"]
    debuggable = subject == "own"
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
    s = observed[subject][0]
    n = NODE[node]
    rel = f"{s.pid}/{node}"
    debuggable = subject == "own"
    st = _result(observed, subject, "lstat", rel)
    if n.vis == "candebug" and not debuggable:
        assert st == {"errno": errno.ENOENT}, "p_candebug fails: the node is invisible"
        return
    mode = 0 if (n.attr and subject == "sugid") else n.mode
    assert st["ok"] == [n.kind, mode, s.truth["ruid"], s.truth["rgid"]]
    if n.kind == "link":
        assert _result(observed, subject, "readlink", rel) == {"ok": bytes.fromhex(
            s.truth["exe"]).decode("utf-8", "surrogateescape")}
        return
    op = _result(observed, subject, "read" if n.rd else "write", rel)
    opened = _result(observed, subject, "open", rel)
    if node == "map":
        assert ("ok" in op) if debuggable else op == {"errno": errno.EPERM}
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
        assert op == ({"ok": 6} if debuggable else {"errno": errno.EACCES})
    else:
        assert "ok" in op, op
    # open with the access the mode does not grant: EACCES (the owner lacks it too)
    if n.rd and not n.wr:
        assert opened == {"errno": errno.EACCES}, "0444 node opened for writing"
    elif n.wr and not n.rd:
        assert opened == {"errno": errno.EACCES}, "0200 node opened for reading"
    else:
        assert opened == ({"ok": "opened"} if debuggable else {"errno": errno.EACCES})
