"""pytest plugin (entry point ``bsdprocfs_conformance``): options, fixtures and
the matrix.  Inert unless ``--procfs-root`` or ``--procfs-api`` is given: it
then only registers options and a marker, and touches no other test."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import pytest

from . import divergences
from .matrix import NOT_PROVIDED, Matrix
from .spec import PROFILES, ProfileSpec, profile_for_osreldate
from .subjects import EXTRA_GID
from .util import copy_readable

PKG = "bsdprocfs_conformance."
CHECKS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "checks")


def _is_check(item: pytest.Item) -> bool:
    """A check of this suite, whatever name pytest imported its module under."""
    return os.path.dirname(os.path.abspath(str(getattr(item, "path", "")))) == CHECKS_DIR


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("bsdprocfs-conformance", "procfs conformance suite")
    g.addoption("--procfs-root", default=None, metavar="PATH",
                help="judge the procfs mounted at PATH (native FreeBSD /proc, a FUSE mount)")
    g.addoption("--procfs-api", action="store_true", default=False,
                help="judge the in-process bsdprocfs API")
    g.addoption("--procfs-fuse", action="store_true", default=False,
                help="judge the bsdprocfs FUSE shim, mounted once per judged profile "
                     "(root, /dev/fuse, fuse3)")
    g.addoption("--procfs-api-factory", default=None, metavar="MODULE:CALLABLE",
                help="build the API object with CALLABLE(profile) instead of ProcFS")
    g.addoption("--procfs-profile", default=None, metavar="P[,P...]",
                help="FreeBSD release profile(s) to judge (default: every profile the "
                     "target serves: all for the API, the detected one on native FreeBSD)")
    g.addoption("--procfs-impl", default=None,
                help="implementation whose declared divergences apply "
                     f"({', '.join(divergences.IMPLS)})")
    g.addoption("--procfs-report-md", default=None, metavar="FILE")
    g.addoption("--procfs-report-json", default=None, metavar="FILE")


@dataclass
class Settings:
    root: str | None
    api: bool
    factory: str | None
    profiles: tuple[str, ...]       # judged, in the target's order; one matrix column
    impl: str
    mount: bool = False             # --procfs-fuse: the suite mounts each profile itself

    @property
    def profile(self) -> str:
        """The first judged profile (for what needs one: the pool's ctl target)."""
        return self.profiles[0]


def served_profiles() -> tuple[str, ...]:
    """The release profiles the bsdprocfs package on sys.path serves, in its order
    (compat/bsdprocfs/profiles.py: the target's own list, not a copy of it here)."""
    try:
        from bsdprocfs.profiles import PROFILES as served
    except ImportError:
        return ("compat",)
    return tuple(served)


def _pick_profiles(given: str | None, default: tuple[str, ...],
                   served: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip() for p in given.split(",") if p.strip())) \
        if given else default
    bad = [p for p in names if p not in served]
    if bad or not names:
        raise pytest.UsageError(f"--procfs-profile {given!r}: the target serves "
                                f"{', '.join(served)}")
    nospec = [p for p in names if p not in PROFILES]
    if nospec:
        raise pytest.UsageError(
            f"profile(s) {', '.join(nospec)}: bsdprocfs_conformance.spec has no expectations "
            "for them (add a ProfileSpec written from FreeBSD's source)")
    return names


def _bsdprocfs_fuse(root: str) -> bool:
    """Is ``root`` a bsdprocfs FUSE mount (per /proc/self/mountinfo)?"""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return False
    real = os.path.realpath(root)
    for ln in lines:
        left, _, right = ln.partition(" - ")
        fields = left.split()
        r = right.split()
        mnt = fields[4].replace("\\040", " ") if len(fields) > 4 else ""
        if mnt == real and r and r[0].startswith("fuse"):
            return "bsdprocfs" in right
    return False


def resolve_settings(config: pytest.Config) -> Settings | None:
    root = config.getoption("procfs_root")
    api = bool(config.getoption("procfs_api"))
    mount = bool(config.getoption("procfs_fuse"))
    if not root and not api and not mount:
        return None
    if sum((bool(root), api, mount)) > 1:
        raise pytest.UsageError("give one of --procfs-root, --procfs-api, --procfs-fuse")
    if mount:                   # the shim serves every profile of its package: one mount each
        served = served_profiles()
        impl = config.getoption("procfs_impl") or "bsdprocfs-fuse"
        return Settings(None, False, None, _pick_profiles(
            config.getoption("procfs_profile"), served, served), impl, mount=True)
    given = config.getoption("procfs_profile")
    impl = config.getoption("procfs_impl")
    native = bool(root) and sys.platform.startswith("freebsd")
    fuse = bool(root) and not native and _bsdprocfs_fuse(root)
    if api:                     # the API serves every profile of its package
        served = served_profiles()
        profiles = _pick_profiles(given, served, served)
    elif native and not given:
        out = subprocess.run(["sysctl", "-n", "kern.osreldate"], capture_output=True,
                             text=True, check=True).stdout
        profiles = (profile_for_osreldate(int(out)),)
    elif fuse and not given:    # a mount serves the one profile it was mounted with
        profiles = ("compat",)
    elif given:
        profiles = _pick_profiles(given, (), tuple(PROFILES))
    else:
        raise pytest.UsageError(
            f"--procfs-profile is required for {root} (choose {', '.join(PROFILES)}); "
            "it is auto-detected only on native FreeBSD")
    if not impl:
        impl = ("bsdprocfs-api" if api else "native-freebsd" if native
                else "bsdprocfs-fuse" if fuse else "other")
    if impl not in divergences.IMPLS:
        raise pytest.UsageError(f"--procfs-impl {impl!r}: choose {', '.join(divergences.IMPLS)}")
    return Settings(root, api, config.getoption("procfs_api_factory"), profiles, impl)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "procfs(node, category): conformance check cell")
    s = resolve_settings(config)
    if s is None:
        return
    config._procfs_settings = s  # type: ignore[attr-defined]
    m = Matrix()
    m.profile_order = list(s.profiles)
    m.meta = {"target": f"root {s.root}" if s.root else "bsdprocfs FUSE mount per profile"
              if s.mount else "bsdprocfs API" + (
        f" ({s.factory})" if s.factory else ""), "profiles": list(s.profiles), "impl": s.impl,
        "platform": sys.platform, "uid": os.geteuid()}
    config._procfs_matrix = m  # type: ignore[attr-defined]
    config._procfs_final = {}  # type: ignore[attr-defined]


def _strip_profile(name: str, profile: str | None) -> str:
    """The test name without its profile id (divergences match on the rest)."""
    if profile is None or "[" not in name:
        return name
    head, _, inner = name.partition("[")
    inner = inner[:-1]
    if inner == profile:
        return head
    if inner.startswith(profile + "-"):
        inner = inner[len(profile) + 1:]
    elif inner.endswith("-" + profile):
        inner = inner[: -len(profile) - 1]
    else:
        inner = inner.replace(f"-{profile}-", "-", 1)
    return f"{head}[{inner}]"


def _check_id(item: pytest.Item) -> str:
    mod = os.path.splitext(os.path.basename(str(item.path)))[0]
    prof = getattr(getattr(item, "callspec", None), "params", {}).get("procfs_profile")
    return f"{mod.removeprefix('test_')}::{_strip_profile(item.name, prof)}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every check runs once per judged profile (a session-scoped parameter, so the
    subjects are shared and each profile's target is built once)."""
    s: Settings | None = getattr(metafunc.config, "_procfs_settings", None)
    if s is None or "procfs_profile" not in metafunc.fixturenames:
        return
    if os.path.dirname(os.path.abspath(str(metafunc.definition.path))) != CHECKS_DIR:
        return
    metafunc.parametrize("procfs_profile", list(s.profiles), indirect=True, scope="session",
                         ids=list(s.profiles))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    s: Settings | None = getattr(config, "_procfs_settings", None)
    for item in items:
        if not _is_check(item):
            continue
        mk = item.get_closest_marker("procfs")
        node, cat = (mk.args[0], mk.args[1]) if mk else ("*", "misc")
        params = getattr(getattr(item, "callspec", None), "params", {})
        node = params.get("node", node)
        cid = _check_id(item)
        profile = params.get("procfs_profile", s.profile if s else "")
        item.user_properties += [("procfs_node", node), ("procfs_category", cat),
                                 ("procfs_check", cid), ("procfs_profile", profile)]
        if s is None:
            item.add_marker(pytest.mark.skip(
                reason="no procfs target: give --procfs-root PATH or --procfs-api"))
            continue
        d = divergences.match(s.impl, cid, profile)
        if d:
            item.add_marker(pytest.mark.xfail(reason=f"{s.impl}: {d.reason}", strict=True))


def _reason(report: pytest.TestReport) -> str:
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:
        return str(lr[2]).removeprefix("Skipped: ")
    return str(getattr(report, "wasxfail", "") or lr or "")[-2000:]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    if "procfs_node" not in props:
        return
    cfg = _CONFIG.get("config")
    final = getattr(cfg, "_procfs_final", None)
    if final is None:
        return
    key = report.nodeid
    prev = final.get(key)
    if report.failed:
        outcome = "failed"
    elif report.skipped and hasattr(report, "wasxfail"):
        outcome = "divergence"
    elif report.skipped:
        outcome = "not_provided" if _reason(report).startswith(NOT_PROVIDED) else "skipped"
    elif report.when == "call":
        outcome = "passed"
    else:
        return
    if prev and prev[0] == "failed":
        return
    final[key] = (outcome, props["procfs_node"], props["procfs_category"],
                  props["procfs_check"], _reason(report) if outcome != "passed" else "",
                  props.get("procfs_profile", ""))


_CONFIG: dict[str, Any] = {}


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG["config"] = session.config


def _matrix(config: pytest.Config) -> Matrix | None:
    m: Matrix | None = getattr(config, "_procfs_matrix", None)
    if m is None or getattr(m, "_filled", False):
        return m
    for outcome, node, cat, cid, reason, prof in config._procfs_final.values():  # type: ignore
        m.add(cid, node, cat, outcome, reason, profile=prof)
    m._filled = True  # type: ignore[attr-defined]
    return m


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    if hasattr(config, "workerinput"):
        return
    m = _matrix(config)
    if m is None:
        return
    md = config.getoption("procfs_report_md")
    js = config.getoption("procfs_report_json")
    if md:
        with open(md, "w", encoding="utf-8") as f:
            f.write(m.markdown())
    if js:
        with open(js, "w", encoding="utf-8") as f:
            f.write(m.to_json())


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        return
    m = _matrix(config)
    if m is None or not m.tests:
        return
    terminalreporter.section("procfs conformance matrix (node x check category)")
    for k, v in m.meta.items():
        terminalreporter.write_line(f"{k}: {v}")
    terminalreporter.write_line(m.text())


# ---------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def procfs_settings(request: pytest.FixtureRequest) -> Settings:
    s: Settings | None = getattr(request.config, "_procfs_settings", None)
    if s is None:
        pytest.skip("no procfs target: give --procfs-root PATH or --procfs-api")
    return s


@pytest.fixture(scope="session")
def procfs_profile(request: pytest.FixtureRequest, procfs_settings: Settings) -> str:
    """The profile judged by this run of a check (parametrized per judged profile)."""
    return str(getattr(request, "param", procfs_settings.profile))


@pytest.fixture(scope="session")
def procfs_root(procfs_settings: Settings) -> Any:
    """profile -> the path judged for it: --procfs-root, or with --procfs-fuse a mount of
    that profile made on first use and unmounted at the end of the session."""
    stack = contextlib.ExitStack()
    mounts: dict[str, str] = {}

    def root(profile: str) -> str | None:
        if not procfs_settings.mount:
            return procfs_settings.root
        if profile not in mounts:
            from bsdprocfs.fuse import mounted
            mounts[profile] = stack.enter_context(mounted(profile)).path
        return mounts[profile]
    with stack:
        yield root


@pytest.fixture(scope="session")
def target(procfs_settings: Settings, procfs_profile: str, procfs_root: Any) -> Any:
    from .targets import make_target
    return make_target(procfs_root(procfs_profile), procfs_settings.api, procfs_profile,
                       procfs_settings.factory)


@pytest.fixture(scope="session")
def prof(procfs_profile: str) -> ProfileSpec:
    return PROFILES[procfs_profile]


@pytest.fixture(scope="session")
def tol(procfs_settings: Settings) -> Any:
    return lambda name: divergences.tolerance(procfs_settings.impl, name)


@pytest.fixture(scope="session")
def pool(procfs_settings: Settings, procfs_root: Any) -> Any:
    from .subjects import Pool
    p = Pool()
    try:
        yield p
    finally:
        p.close()


class Observer:
    """Runs operations as the unprivileged test user (a child with dropped ids)."""

    def __init__(self, settings: Settings, pool: Any, profile: str, root: str | None) -> None:
        from . import observer, targets
        self.settings = settings
        self.profile = profile
        self.root = root
        self.pool = pool
        self.dir = pool.dir
        for mod in (observer, targets):
            shutil.copy2(str(mod.__file__), self.dir)
        # The API target imports bsdprocfs (and python-ptrace, its register requests) as
        # the test user, who may not be able to search the checkout or venv (a clone
        # below /root, a 0700 tox dir): give it copies of those pure-Python packages
        # next to the observer.  A path target needs neither.
        for name in ("bsdprocfs", "ptrace"):
            try:
                mod = importlib.import_module(name)
            except ImportError:
                continue
            copy_readable(os.path.dirname(str(mod.__file__)), os.path.join(self.dir, name))
        self.uid, self.gid = pool.user

    def run(self, ops: list[list[Any]]) -> dict[str, Any]:
        s = self.settings
        paths = [self.dir] + [p for p in sys.path if p and os.path.isdir(p)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(paths), PYTHONDONTWRITEBYTECODE="1")
        cfg = {"root": self.root, "api": s.api, "profile": self.profile, "factory": s.factory}
        p = subprocess.run([self.pool.plain_exe, "-S", os.path.join(self.dir, "observer.py"),
                            json.dumps(cfg)], input=json.dumps(ops), capture_output=True,
                           text=True, user=self.uid, group=self.gid,
                           extra_groups=[self.gid, EXTRA_GID],
                           env=env, cwd=self.dir, timeout=60)
        if p.returncode:
            raise AssertionError(f"observer failed: {p.stderr[-2000:]}")
        out: dict[str, Any] = json.loads(p.stdout)
        return out


@pytest.fixture(scope="session")
def observer(procfs_settings: Settings, pool: Any, procfs_profile: str,
             procfs_root: Any) -> Observer:
    if os.geteuid() != 0:
        pytest.skip("the unprivileged observer needs root to drop privileges in a child")
    return Observer(procfs_settings, pool, procfs_profile, procfs_root(procfs_profile))
