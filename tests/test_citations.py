"""The citation table (conformance/citations.toml) and the code agree: every id the code
names exists, every citation is named somewhere, and every UNVERIFIED mark is either
kept with what is missing or listed in the table (settled by a citation, or missing)."""

from __future__ import annotations

import os
import re
from collections import Counter

import pytest
import tomllib

from bsdprocfs.profiles import PROFILES

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
TABLE = os.path.join(REPO, "conformance", "citations.toml")
RELEASES = {"10", "11", "12", "13", "14", "15"}
ID = r"[a-z0-9_]+(?:\.[a-z0-9_]+)+"
#: "cite: a, b" in code and comments; "citation a" / "citations a, b" in docstrings
REF = re.compile(rf"\b(?:cite|citations?):?\s+({ID}(?:,\s*{ID})*)")
MARK = re.compile(r"UNVERIFIED")
KEPT = re.compile(r"UNVERIFIED \(missing: [^)]+\)")


def _table():
    with open(TABLE, "rb") as f:
        return tomllib.load(f)


def _sources():
    for top in ("compat", "conformance", "tests"):
        for d, _dirs, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(d, name)
                    with open(path, encoding="utf-8") as f:
                        yield os.path.relpath(path, REPO), f.read()


def _joined(text: str) -> str:
    """Comment and string continuations joined, so a list of ids may wrap lines."""
    return re.sub(r"[\"']?\s*\n\s*(?:#:?|[\"'])?\s*", " ", text)


def _refs() -> Counter[str]:
    refs: Counter[str] = Counter()
    for _path, text in _sources():
        for m in REF.finditer(_joined(text)):
            for ident in re.split(r",\s*", m.group(1)):
                refs[ident] += 1
    for p in PROFILES.values():
        refs.update(p.cites)
    return refs


def test_table_is_well_formed():
    t = _table()
    ids = [c["id"] for c in t["citation"]] + [u["id"] for u in t["unverified"]]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for c in t["citation"]:
        assert re.fullmatch(ID, c["id"]), c["id"]
        assert c["file"].startswith("sys/") and c["quote"].strip(), c["id"]
        assert "@" in c["read"] or c["read"].startswith("index file "), c["id"]
        assert c["read_release"], c["id"]
        assert c["releases"] and set(c["releases"]) <= RELEASES, c["id"]
    for u in t["unverified"]:
        assert u.get("missing") or u.get("settled_by"), u["id"]


def test_every_referenced_id_exists():
    t = _table()
    known = {c["id"] for c in t["citation"]} | {u["id"] for u in t["unverified"]}
    unknown = sorted(set(_refs()) - known)
    assert not unknown, f"code names citations the table lacks: {unknown}"


def test_every_citation_is_referenced():
    refs = _refs()
    unused = sorted(c["id"] for c in _table()["citation"] if not refs[c["id"]])
    assert not unused, f"citations no code names: {unused}"
    for u in _table()["unverified"]:
        if "/" not in u["id"]:
            assert refs[u["id"]], f"unverified entry {u['id']} is named nowhere"


def test_unverified_marks_are_kept_with_what_is_missing():
    t = _table()
    listed = {u["id"]: u for u in t["unverified"] if "/" in u["id"]}
    cited = {c["id"] for c in t["citation"]}
    bare: list[str] = []
    seen_files = set()
    for path, text in _sources():
        if path.startswith("tests/"):
            continue
        for i, line in enumerate(text.splitlines(), 1):
            if not MARK.search(line) or KEPT.search(_joined(line + "\n" + _next(text, i))):
                continue
            if path in listed:
                seen_files.add(path)
                continue
            bare.append(f"{path}:{i}: {line.strip()}")
    assert not bare, "UNVERIFIED without what is missing:\n" + "\n".join(bare)
    for path, u in listed.items():
        assert path in seen_files, f"{path} is listed as unverified but has no bare mark"
        if u.get("settled_by"):
            assert u["settled_by"] in cited, u


def _next(text: str, lineno: int) -> str:
    lines = text.splitlines()
    return lines[lineno] if lineno < len(lines) else ""


def test_profiles_name_their_boundaries():
    t = _table()
    cited = {c["id"] for c in t["citation"]} | {u["id"] for u in t["unverified"]}
    for p in PROFILES.values():
        assert set(p.cites) <= cited, p.name


def release_counts() -> dict[str, int]:
    """Citations per release line (the report's figure)."""
    counts = Counter(r for c in _table()["citation"] for r in c["releases"])
    return {r: counts[r] for r in sorted(RELEASES, key=int)}


@pytest.mark.parametrize("release", sorted(RELEASES, key=int))
def test_every_release_line_is_cited(release):
    assert release_counts()[release] >= 40, release_counts()
