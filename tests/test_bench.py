"""``bsdprocfs bench``: the command's contract (rows, JSON shape, clean-up), never its speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from bsdprocfs import bench

ROW_NAMES = [name for name, _ in bench.ROWS]


def _marked_pids(marker: str) -> list[int]:
    """Live processes whose environment carries ``marker`` (i.e. the bench's helpers)."""
    out = []
    needle = f"BSDPROCFS_BENCH_TEST={marker}".encode()
    for n in os.listdir("/proc"):
        if not n.isdigit():
            continue
        try:
            with open(f"/proc/{n}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            out.append(int(n))
    return out


def _mounts_under(path: str) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [ln.split()[1] for ln in f if ln.split()[1].startswith(path)]


@pytest.mark.timeout(420)
def test_quick_bench_json_shape_and_cleanup():
    marker = uuid.uuid4().hex
    with tempfile.TemporaryDirectory(prefix="bsdprocfs-benchtest-") as tmp:
        private_tmp = os.path.join(tmp, "tmp")
        os.mkdir(private_tmp)
        out_json = os.path.join(tmp, "bench.json")
        env = dict(os.environ, TMPDIR=private_tmp, BSDPROCFS_BENCH_TEST=marker)
        r = subprocess.run([sys.executable, "-m", "bsdprocfs", "bench", "--quick",
                            "--json", out_json], capture_output=True, env=env, timeout=400)
        assert r.returncode == 0, r.stderr.decode(errors="replace")
        table = r.stdout.decode()
        with open(out_json, encoding="utf-8") as f:
            data = json.load(f)
        # leaves nothing behind: no helper process, no mount, no temp file
        assert _marked_pids(marker) == []
        assert _mounts_under(private_tmp) == []
        assert os.listdir(private_tmp) == []

    assert list(data) == ROW_NAMES
    for name in ROW_NAMES:
        row = data[name]
        assert name in table
        assert {"ratio", "goal", "met", "a", "b", "direction"} <= set(row), name
        # one convention for every row: time(ours) / time(reference), lower is better
        assert row["direction"] == "lower is better", name
        goal = bench.GOALS[name]
        assert row["goal"] == goal and row["goal_op"] == (None if goal is None else "<=")
        if row["ratio"] is None:
            # skipped: says why, claims nothing
            assert isinstance(row["skipped"], str) and row["skipped"], name
            assert row["met"] is None and row["a"] is None and row["b"] is None
            assert "skipped" in table.split(name, 1)[1].splitlines()[0]
            assert f"{name}: skipped: {row['skipped']}" in " ".join(table.split())
            continue
        assert isinstance(row["ratio"], float) and row["ratio"] > 0, name
        assert isinstance(row["a"], float) and isinstance(row["b"], float), name
        assert row["a"] > 0 and row["b"] > 0 and row["unit"], name
        if goal is None:
            assert row["met"] is None
        else:
            assert row["met"] is (row["ratio"] <= goal)
    # the table fits an 80-column terminal (COLUMNS is unset: not a terminal -> 80)
    assert max(len(ln) for ln in table.splitlines()) <= 80
    # rows that only need /proc are never skipped on Linux
    if sys.platform.startswith("linux"):
        for name in ("status_all_vs_floor", "status_all_vs_psutil", "map_vs_smaps",
                     "etype_osrel_vs_header_read"):
            assert data[name]["ratio"] is not None, data[name]


def _sleeper() -> subprocess.Popen[bytes]:
    p = subprocess.Popen(["sleep", "60"])
    for _ in range(500):
        with open(f"/proc/{p.pid}/stat", "rb") as f:
            st = f.read()
        if st[st.rindex(b")") + 2:][:1] == b"S":
            break
        time.sleep(0.01)
    return p


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc floor")
def test_floor_plan_is_what_the_backend_reads():
    """The status floor replays the backend's own file operations, once per file."""
    from bsdprocfs import ProcFS
    fs = ProcFS(backend="linux")
    p = _sleeper()
    try:
        plan = bench.record_plan(fs, [p.pid])
        base = f"/proc/{p.pid}"
        reads = [op[1] for op in plan if op[0] == "read"]
        # stat (+ fstat for the owner), status, and wchan of a sleeper
        for f in ("stat", "status", "wchan"):
            assert f"{base}/{f}" in reads, (f, plan)
        # its run time from its CPU-time clock, its session leader (the test's
        # own session, not it) by getsid and a pidfd
        assert ("clock", ((~p.pid) << 3) | 2) in plan, plan
        if os.getsid(0) != 0:
            assert ("getsid", os.getsid(0)) in plan and ("pidfd", os.getsid(0)) in plan, plan
        stat_op = next(op for op in plan if op[0] == "read" and op[1] == f"{base}/stat")
        assert stat_op[3][0] > 0
        assert len(reads) == len(set(reads))          # deduplicated
        # the jail check looks at the UTS namespace
        assert ("readlink", f"{base}/ns/uts") in plan
        # replaying the plan performs without error and touches nothing else
        bench._floor_fn(fs.backend.root, plan)()
    finally:
        p.kill()
        p.wait()
    # the logged modules and the backend's facts are restored after recording
    from bsdprocfs.backends import _linuxparse, linux
    assert _linuxparse.os is os and _linuxparse.time is time and linux.os is os
    assert linux.facts is linux._load_facts()


def test_interleave_rotates_order_and_ratio_is_median():
    calls: list[str] = []
    times = bench._interleave([lambda: calls.append("a"), lambda: calls.append("b")], 4)
    assert calls[:2] == ["a", "b"]                     # warm-up
    assert calls[2:] == ["a", "b", "b", "a", "a", "b", "b", "a"]
    assert [len(t) for t in times] == [4, 4]
    assert bench._ratio([2.0, 4.0, 9.0], [1.0, 1.0, 1.0]) == 4.0


def test_result_met_follows_the_one_direction():
    """Every goal is an upper bound on time(ours) / time(reference)."""
    assert bench.Result("status_all_vs_floor", ratio=1.2).met is True
    assert bench.Result("status_all_vs_floor", ratio=1.4).met is False
    assert bench.Result("status_all_vs_psutil", ratio=0.35).met is True     # 2.9x faster
    assert bench.Result("status_all_vs_psutil", ratio=0.5).met is False     # 2x faster
    assert bench.Result("step_vs_c_loop", ratio=1.5).met is True
    assert bench.Result("step_vs_c_loop", ratio=2.0).met is False
    assert bench.Result("fuse_status_vs_kernel", ratio=50.0).met is None
    assert bench.skipped("step_vs_raw", "no ptrace").as_json()["met"] is None
    assert all(goal is None or goal > 0 for _, goal in bench.ROWS)
    j = bench.Result("map_vs_smaps", ratio=1.1, a=2.2, b=2.0).as_json()
    assert j["direction"] == "lower is better" and j["goal_op"] == "<=" and j["met"] is True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux smaps")
def test_fast_smaps_parser_agrees_with_the_per_line_parser():
    """The columnar smaps parse (the map hot path) must take effect and give the very
    same entries as the per-line parser, on a live process with many mappings."""
    from bsdprocfs.backends import _linuxparse as pure
    from bsdprocfs.backends import linux as linux_mod
    code = bench._MAP_HELPER.format(n=300)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE)
    try:
        bench._wait_ready(p)
        be = linux_mod.LinuxBackend()
        lp = be.lookup(p.pid)
        data = linux_mod._read_all(f"/proc/{p.pid}/smaps")
        who = (p.pid, lp.ident.start_ticks, lp.ident.creds.ruid, linux_mod.PAGE_SIZE)
        fast = pure._smaps_strided(data, *who)
        assert fast is not None, "the columnar parser fell back on a kernel's own smaps"
        # the per-line parser, forced by breaking the uniform layout in a harmless way
        slow = pure.map_entries(data + b"\n", *who, False)
        assert pure._smaps_strided(data + b"\n", *who) is None
        assert len(fast) >= 300
        assert fast == slow
        assert sum(e[11] == "swap" for e in fast) >= 150        # the touched pages
    finally:
        p.kill()
        p.wait()


def test_map_entry_field_order_matches_the_positional_hot_path():
    """backends.linux builds MapEntry positionally (measured cheaper); a reordered
    record must fail here rather than silently swap fields."""
    import dataclasses

    from bsdprocfs.records import MapEntry
    assert [f.name for f in dataclasses.fields(MapEntry)][:15] == [
        "start", "end", "resident", "private_resident", "obj", "prot", "ref_count",
        "shadow_count", "flags", "cow", "needs_copy", "type", "path", "charged",
        "charged_uid"]


def test_unavailable_fuse_and_ptrace_rows_are_skipped_with_their_reason(monkeypatch):
    from bsdprocfs.bench import fuse as bfuse
    from bsdprocfs.bench import step as bstep
    monkeypatch.setattr(bfuse, "_fuse_unavailable", lambda: "/dev/fuse is missing")
    monkeypatch.setattr(bstep, "_ptrace_unavailable", lambda: "ptrace disabled here")
    settings = bench.Settings.for_mode(True)
    helpers = bench.Helpers()
    try:
        rows = [*bench.bench_fuse(settings, helpers), *bench.bench_step(settings, helpers)]
    finally:
        helpers.close()
    assert helpers.procs == []                  # nothing was started for skipped rows
    assert [r.name for r in rows] == ["fuse_status_vs_trivial", "fuse_status_vs_kernel",
                                      "fuse_status_vs_c_floor", "step_vs_raw",
                                      "step_vs_c_loop"]
    text = bench.table(rows)
    flat = " ".join(text.split())
    for r in rows:
        j = r.as_json()
        assert j["ratio"] is None and j["met"] is None and j["skipped"]
        line = next(ln for ln in text.splitlines() if ln.startswith(r.name))
        assert "skipped" in line
        assert f"{r.name}: skipped: {j['skipped']}" in flat


def test_floors_without_gcc_are_skipped_with_their_reason(monkeypatch):
    """No compiler: the C rows say so; the rows that need no C still run."""
    import shutil
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda n, *a, **k: None if n in ("gcc", "cc")
                        else real(n, *a, **k))
    from bsdprocfs.bench import fuse as bfuse
    assert bfuse._floor_unavailable() == "no C compiler (gcc) to build the libfuse3 floor"
    with pytest.raises(RuntimeError, match="no C compiler"):
        bench.core.compile_c("int main(void){return 0;}", "x", "/nonexistent")
