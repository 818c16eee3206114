"""Credentials as FreeBSD's rules see them (kern_prot.c p_candebug, setsugid(); pseudofs
vaccess), observed by the unprivileged test user: a set-uid exec (differing ids),
credentials changed without exec (all ids the observer's, but P_SUGID), a target
sharing only a group with the observer (group permission bits grant no owner right),
and the observer's own uid whose gid the observer holds only as a supplementary group
(p_candebug's group-subset rule passes)."""

from __future__ import annotations

import errno

import pytest

from bsdprocfs_conformance.cred_subjects import CRED_SUBJECTS, NOBODY, cred_subject
from bsdprocfs_conformance.spec import ALL_NODE_NAMES, NODE
from bsdprocfs_conformance.subjects import EXTRA_GID

#: subject -> (may the observer debug it (p_candebug), P_SUGID)
RULES = {
    "setuid_exec": (False, True),          # euid/svuid 0 != the observer's uid
    "changed_nonexec": (False, True),      # ids equal, but setresuid after exec: P_SUGID
    "group_other_uid": (False, False),     # another uid
    "group_same_uid": (True, False),       # uids equal, gids a subset of the groups
}


@pytest.fixture(scope="module")
def cred_observed(observer, pool, prof):
    if not pool.root:
        pytest.skip("credential subjects need root to start under other ids")
    out = {}
    for name in CRED_SUBJECTS:
        s = cred_subject(pool, name)
        ops: list[list] = [["listdir", str(s.pid)], ["read", f"{s.pid}/status", 4096, 0]]
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
        out[name] = (s, observer.run(ops), ops)
    return out


def _result(obs, subject, op, rel):
    s, res, ops = obs[subject]
    for o, r in zip(ops, res["results"], strict=True):
        if o[0] == op and o[1] == rel:
            return r
    raise KeyError((op, rel))


@pytest.mark.procfs("status", "credentials")
@pytest.mark.parametrize("subject", CRED_SUBJECTS)
def test_credential_status(cred_observed, pool, subject):
    """status prints euid, ruid and rgid,egid,groups as the subject holds them."""
    s, res, _ = cred_observed[subject]
    uid, gid = pool.user
    f = bytes.fromhex(res["results"][1]["ok"]).split(b" ")
    want = {"setuid_exec": (0, uid, gid), "changed_nonexec": (uid, uid, gid),
            "group_other_uid": (NOBODY, NOBODY, EXTRA_GID),
            "group_same_uid": (uid, uid, EXTRA_GID)}[subject]
    assert (int(f[11]), int(f[12]), int(f[13].split(b",")[0])) == want
    assert (s.truth["euid"], s.truth["ruid"], s.truth["rgid"]) == want


@pytest.mark.procfs("tree", "credentials")
@pytest.mark.parametrize("subject", CRED_SUBJECTS)
def test_credential_listing(cred_observed, prof, subject):
    """procfs_candebug visibility: the debug nodes are listed only when p_candebug passes."""
    _, res, _ = cred_observed[subject]
    debuggable = RULES[subject][0]
    assert res["results"][0]["ok"] == [
        n for n in prof.pid_nodes if debuggable or NODE[n].vis != "candebug"]


@pytest.mark.procfs("*", "credentials")
@pytest.mark.parametrize("node", ALL_NODE_NAMES)
@pytest.mark.parametrize("subject", CRED_SUBJECTS)
def test_credential_node(cred_observed, prof, subject, node):
    if node not in prof.pid_nodes:
        pytest.skip(f"not provided by profile {prof.name}: no {node} node")
    s = cred_observed[subject][0]
    n = NODE[node]
    rel = f"{s.pid}/{node}"
    debuggable, sugid = RULES[subject]
    st = _result(cred_observed, subject, "lstat", rel)
    if n.vis == "candebug" and not debuggable:
        assert st == {"errno": errno.ENOENT}, "p_candebug fails: the node is invisible"
        return
    mode = 0 if (n.attr and sugid) else n.mode
    # the owner is the real uid and real gid (pfs_getattr), whoever the effective ids are
    assert st["ok"] == [n.kind, mode, s.truth["ruid"], s.truth["rgid"]]
    if n.kind == "link":
        assert _result(cred_observed, subject, "readlink", rel) == {"ok": bytes.fromhex(
            s.truth["exe"]).decode("utf-8", "surrogateescape")}
        return
    op = _result(cred_observed, subject, "read" if n.rd else "write", rel)
    if node == "map":
        assert ("ok" in op) if debuggable else op == {"errno": errno.EPERM}
    elif node in ("regs", "fpregs"):
        assert op == {"errno": errno.EBUSY}, "sleeping target: not stopped"
    elif node == "mem":
        pat = bytes.fromhex(s.truth["maps"]["pattern"])
        assert bytes.fromhex(op["ok"]) == (pat * (4096 // len(pat) + 1))[:4096]
    elif node in ("note", "notepg"):
        assert op == {"errno": errno.EOPNOTSUPP}
    elif node == "ctl":
        # vaccess: the owner's w bit (mode 0 once P_SUGID); a shared group gets the
        # group bits, which grant no write
        owner = s.truth["ruid"] == pool_uid(cred_observed)
        assert op == ({"ok": 6} if owner and mode & 0o200 else {"errno": errno.EACCES})
    elif node == "dbregs":
        assert "ok" in op, op
    else:
        assert "ok" in op, op


def pool_uid(obs) -> int:
    return int(next(iter(obs.values()))[1]["uid"])
