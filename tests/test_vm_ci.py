"""The VM and CI plumbing, checked as far as this machine can: the Vagrantfiles
validate, the provisioning scripts lint, the workflows match GitHub's schema, every
runner calls the one provisioning script (no drift), and the Linux lane runs end to
end here through ``vagrant/run-conformance.sh linux --local``."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
VAGRANT_DIR = ROOT / "vagrant"
PROVISION = VAGRANT_DIR / "provision" / "conformance.sh"
RUNNER = VAGRANT_DIR / "run-conformance.sh"
SCRIPTS = [PROVISION, RUNNER]
BOX_SCRIPTS = sorted((VAGRANT_DIR / "boxes").glob("*.sh"))
VAGRANTFILES = {"freebsd": VAGRANT_DIR / "freebsd" / "Vagrantfile",
                "linux": VAGRANT_DIR / "linux" / "Vagrantfile"}
WORKFLOWS = ROOT / ".github" / "workflows"
FREEBSD_RELEASES = ("13.5", "14.3", "15.0")
SCRIPT_REL = "vagrant/provision/conformance.sh"


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it with apt-get)")
    return path


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def on(wf: dict) -> dict:
    # PyYAML (YAML 1.1) reads the bare key `on` as the boolean True.
    trig = wf.get("on", wf.get(True))
    assert isinstance(trig, dict), trig
    return trig


def script_calls(text: str) -> list[list[str]]:
    """Every invocation of the provisioning script in a block of shell text, as argv
    starting at the script (GitHub ${{ }} expressions kept as opaque words)."""
    calls = []
    for line in text.splitlines():
        if "conformance.sh" not in line or line.lstrip().startswith("#"):
            continue
        words = shlex.split(re.sub(r"\$\{\{.*?\}\}", "EXPR", line))
        for i, w in enumerate(words):
            if w.endswith("provision/conformance.sh"):
                calls.append(words[i:])
    return calls


def raw_outdir(text: str) -> str:
    """OUTDIR of the script call in TEXT, ${{ }} expressions verbatim."""
    m = re.search(r"provision/conformance\.sh \w+ ((?:\$\{\{.*?\}\}|\S)+)", text)
    assert m, text
    return m.group(1)


def assert_valid_call(argv: list[str], os_name: str) -> None:
    """A call the script's own argument parser accepts, for the expected OS."""
    assert argv[0].endswith("provision/conformance.sh"), argv
    assert argv[1] == os_name, argv
    assert argv[2], argv
    rest = argv[3:]
    while rest:
        if rest[0] == "--src":
            assert len(rest) >= 2, argv
            rest = rest[2:]
        else:
            assert rest[0] == "--unit-tests", argv
            rest = rest[1:]


# ------------------------------------------------------------- provisioning scripts
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_with_posix_sh(script):
    assert script.read_text().startswith("#!/bin/sh\n")
    r = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_pass_shellcheck_as_posix_sh(script):
    shellcheck = need("shellcheck")
    r = subprocess.run([shellcheck, "-s", "sh", str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_provision_rejects_bad_usage_and_changes_nothing(tmp_path):
    out = tmp_path / "never"
    for argv in (["bogus", str(out)], ["linux"], ["linux", str(out), "--nope"]):
        r = subprocess.run(["sh", str(PROVISION), *argv], capture_output=True, text=True)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert "usage:" in r.stderr
    r = subprocess.run(["sh", str(PROVISION), "linux", str(out), "--src", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not the bsdprocfs source tree" in r.stderr
    assert not out.exists()


def test_provision_mounts_procfs_the_procfs4_way():
    """FreeBSD steps cannot run here; the exact procfs(4) lines are pinned instead."""
    text = PROVISION.read_text()
    assert r"printf 'proc\t/proc\tprocfs\trw\t0\t0\n'" in text      # the fstab line
    assert "mount -t procfs proc /proc" in text
    assert "--root /proc --impl native-freebsd" in text            # profile auto-detected
    native = next(ln for ln in text.splitlines() if "--impl native-freebsd" in ln)
    assert "--profile" not in native


def test_runner_rejects_bad_usage():
    r = subprocess.run(["sh", str(RUNNER), "bogus"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage:" in r.stderr
    r = subprocess.run(["sh", str(RUNNER), "freebsd", "--local"], capture_output=True, text=True)
    if sys.platform.startswith("linux"):
        assert r.returncode == 2 and "needs a freebsd host" in r.stderr


def test_runner_without_vagrant_explains_and_exits_69(tmp_path):
    env = dict(os.environ, VAGRANT=str(tmp_path / "no-vagrant"),
               BSDPROCFS_RESULTS=str(tmp_path / "results"))
    r = subprocess.run(["sh", str(RUNNER), "all"], capture_output=True, text=True, env=env)
    assert r.returncode == 69, r.stdout + r.stderr
    assert "vagrant is not installed" in r.stderr and "linux --local" in r.stderr
    assert not (tmp_path / "results").exists()


# ------------------------------------------------------------- Vagrantfiles
# A stand-in for Vagrant's config object that records what a Vagrantfile sets and
# calls, so the tests read the provisioner's real arguments rather than grepping.
RUBY_RECORDER = r"""
require "json"
$set = {}; $calls = []
class Rec
  def initialize(path) ; @path = path ; end
  def method_missing(name, *args, **kw, &blk)
    key = (@path + [name.to_s.chomp("=")]).join(".")
    if name.to_s.end_with?("=") then $set[key] = args[0] ; return args[0] end
    $calls << [key, args, kw] unless args.empty? && kw.empty?
    blk.call(Rec.new(@path + [name.to_s]), Rec.new(@path + [name.to_s, "override"])) if blk
    Rec.new(@path + [name.to_s])
  end
  def respond_to_missing?(*) = true
end
module Vagrant ; def self.configure(_v) = yield(Rec.new(["config"])) ; end
load ARGV[0]
puts JSON.generate({"set" => $set, "calls" => $calls})
"""


def vagrantfile_config(path: Path, **env: str) -> dict:
    ruby = need("ruby")
    r = subprocess.run([ruby, "-e", RUBY_RECORDER, str(path)], capture_output=True, text=True,
                       cwd=path.parent, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def provision_call(cfg: dict) -> tuple[dict, list[str]]:
    calls = [c for c in cfg["calls"] if c[0] == "config.vm.provision"]
    assert len(calls) == 1, calls
    _, args, kw = calls[0]
    assert args == ["conformance"] and kw["type"] == "shell" and kw["privileged"] is True
    return kw, kw["args"]


@pytest.mark.parametrize("name", sorted(VAGRANTFILES))
def test_vagrantfile_ruby_syntax(name):
    ruby = need("ruby")
    r = subprocess.run([ruby, "-c", str(VAGRANTFILES[name])], capture_output=True, text=True)
    assert r.returncode == 0 and "Syntax OK" in r.stdout, r.stderr


def _validate(name: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    vagrant = need("vagrant")
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full = dict(os.environ, HOME=str(home), VAGRANT_HOME=str(home / ".vagrant.d"),
                VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"), VAGRANT_CHECKPOINT_DISABLE="1", **env)
    run = [vagrant, "validate"]
    r = subprocess.run(run, capture_output=True, text=True, env=full,
                       cwd=VAGRANTFILES[name].parent, timeout=120)
    if "No usable default provider" in r.stderr:
        # No provider plugin (Debian's vagrant-libvirt is only a Recommends): validate
        # everything but the provider blocks.
        r = subprocess.run([*run, "--ignore-provider"], capture_output=True, text=True,
                           env=full, cwd=VAGRANTFILES[name].parent, timeout=120)
    return r


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,release", [("linux", None)]
                         + [("freebsd", r) for r in (None, *FREEBSD_RELEASES)])
def test_vagrant_validate(name, release, tmp_path):
    env = {"BSDPROCFS_FREEBSD_RELEASE": release} if release else {}
    r = _validate(name, tmp_path, **env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "validated successfully" in r.stdout


@pytest.mark.timeout(300)
def test_vagrant_validate_rejects_unknown_freebsd_release(tmp_path):
    r = _validate("freebsd", tmp_path, BSDPROCFS_FREEBSD_RELEASE="12.4")
    assert r.returncode != 0
    assert "BSDPROCFS_FREEBSD_RELEASE=12.4" in r.stdout + r.stderr


@pytest.mark.parametrize("release,box", [(None, "freebsd/FreeBSD-14.3-RELEASE"),
                                         ("13.5", "freebsd/FreeBSD-13.5-RELEASE"),
                                         ("13", "freebsd/FreeBSD-13.5-RELEASE"),
                                         ("15.0", "freebsd/FreeBSD-15.0-RELEASE")])
def test_freebsd_vagrantfile_box_by_release(release, box):
    env = {"BSDPROCFS_FREEBSD_RELEASE": release} if release else {}
    cfg = vagrantfile_config(VAGRANTFILES["freebsd"], **env)
    assert cfg["set"]["config.vm.box"] == box
    assert cfg["set"]["config.ssh.shell"] == "sh"
    assert cfg["set"]["config.vm.guest"] == "freebsd"


@pytest.mark.parametrize("name", sorted(VAGRANTFILES))
def test_vagrantfiles_run_the_one_script_with_rsync(name):
    path = VAGRANTFILES[name]
    cfg = vagrantfile_config(path)
    kw, args = provision_call(cfg)
    assert (path.parent / kw["path"]).resolve() == PROVISION
    assert_valid_call([kw["path"], *args], name)
    # the in-VM report dir is the one run-conformance.sh copies back
    vm_out = re.search(r"^VM_OUT=(\S+)", RUNNER.read_text(), re.M)
    assert vm_out and args[1] == vm_out.group(1)
    src = args[args.index("--src") + 1]
    synced = [c for c in cfg["calls"] if c[0] == "config.vm.synced_folder"]
    assert any(a[1] == src and k.get("type") == "rsync" and (path.parent / a[0]).resolve() == ROOT
               for _, a, k in synced), synced
    excluded = next(k["rsync__exclude"] for _, a, k in synced if a[1] == src)
    assert ".venv/" in excluded and "vagrant/results/" in excluded


# ------------------------------------------------------------- workflows
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))


def test_workflow_set():
    assert {p.name for p in WORKFLOW_FILES} >= {"linux.yml", "freebsd.yml", "ci-lint.yml"}


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_parses_as_yaml(path):
    wf = yaml.safe_load(path.read_text())
    assert isinstance(wf, dict) and wf["jobs"] and on(wf)


def test_workflows_pass_github_schema():
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
           "vendor.github-workflows", *map(str, WORKFLOW_FILES)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok -- validation done" in r.stdout


def test_workflow_schema_check_can_fail(tmp_path):
    """The schema check is not vacuous: a job without runs-on is rejected."""
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    steps:\n      - run: true\n")
    cmd = [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
           "vendor.github-workflows", str(bad)]
    assert subprocess.run(cmd, capture_output=True, timeout=120).returncode != 0


def test_freebsd_workflow_matrix_and_script():
    wf = workflow("freebsd.yml")
    trig = on(wf)
    for event in ("push", "pull_request"):
        assert "vagrant/provision/**" in trig[event]["paths"]
        assert "compat/**" in trig[event]["paths"]
    assert wf["concurrency"]["cancel-in-progress"] is True
    assert "github.workflow" in wf["concurrency"]["group"]
    job = wf["jobs"]["freebsd"]
    assert "head.repo.full_name != github.repository" in job["if"]
    cells = {(c["release"], c["arch"] or "x86_64") for c in job["strategy"]["matrix"]["include"]}
    assert cells == {*((r, "x86_64") for r in FREEBSD_RELEASES), ("14.3", "aarch64")}
    vm = [s for s in job["steps"] if str(s.get("uses", "")).startswith("vmactions/freebsd-vm@")]
    assert len(vm) == 1 and vm[0]["uses"] == "vmactions/freebsd-vm@v1"
    assert vm[0]["with"]["release"] == "${{ matrix.release }}"
    assert vm[0]["with"]["arch"] == "${{ matrix.arch }}"
    calls = script_calls(vm[0]["with"]["run"])
    assert len(calls) == 1
    assert_valid_call(calls[0], "freebsd")
    assert calls[0][0] == SCRIPT_REL and "--unit-tests" in calls[0]
    upload = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload and upload[0]["if"] == "always()"
    assert upload[0]["with"]["path"].rstrip("/") == raw_outdir(vm[0]["with"]["run"])


def test_linux_workflow_tox_matrix_and_script():
    wf = workflow("linux.yml")
    assert wf["concurrency"]["cancel-in-progress"] is True
    tox = wf["jobs"]["tox"]
    envs = {c["toxenv"] for c in tox["strategy"]["matrix"]["include"]}
    assert envs == {"py310", "py311", "py312", "py313", "lint", "type"}
    pythons = {c["toxenv"]: c["python"] for c in tox["strategy"]["matrix"]["include"]}
    assert pythons["py310"] == "3.10" and pythons["py313"] == "3.13"
    assert any("tox -e ${{ matrix.toxenv }}" in s.get("run", "") for s in tox["steps"])
    conf = wf["jobs"]["conformance"]
    calls = [c for s in conf["steps"] for c in script_calls(s.get("run", ""))]
    assert len(calls) == 1 and calls[0][0] == SCRIPT_REL
    assert_valid_call(calls[0], "linux")
    upload = [s for s in conf["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert upload and upload[0]["with"]["path"].rstrip("/") == calls[0][2]


def test_lint_workflow_runs_these_checks():
    wf = workflow("ci-lint.yml")
    runs = "\n".join(s.get("run", "") for j in wf["jobs"].values() for s in j["steps"])
    assert "check-jsonschema --builtin-schema vendor.github-workflows" in runs
    assert "shellcheck -s sh vagrant/provision/*.sh vagrant/run-conformance.sh" in runs
    assert "ruby -c" in runs and "vagrant" in runs
    assert "tests/test_vm_ci.py" in runs


def test_tox_envs_use_the_same_entry_points():
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(ROOT / "tox.ini")
    calls = script_calls(ini["testenv:conformance"]["commands"])
    assert len(calls) == 1 and calls[0][0] == "{toxinidir}/" + SCRIPT_REL
    assert_valid_call(calls[0], "auto")
    assert calls[0][2] == "{toxworkdir}/reports"
    # the script, not tox, installs the package (tox's .tox is mode 0700: the suite's
    # unprivileged observers could not import from a venv under it)
    assert ini["testenv:conformance"]["skip_install"] == "true"
    assert "{toxinidir}/vagrant/run-conformance.sh" in ini["testenv:vagrant"]["commands"]


def test_runner_uses_the_one_script():
    text = RUNNER.read_text()
    assert "PROVISION=$HERE/provision/conformance.sh" in text
    assert 'sh "$PROVISION" "$1" "$out" --src "$ROOT"' in text


# ------------------------------------------------------------- end to end, here
def _junit_failures(path: Path) -> tuple[int, list[str]]:
    """(number of test cases, names of failed or errored ones) of a JUnit file."""
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    bad = [f"{c.get('classname')}::{c.get('name')}" for c in cases
           if c.find("failure") is not None or c.find("error") is not None]
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    assert suites
    declared = sum(int(st.get("failures", 0)) + int(st.get("errors", 0)) for st in suites)
    assert (declared == 0) == (not bad), (declared, bad)
    return len(cases), bad


@pytest.mark.vm_local
@pytest.mark.root
@pytest.mark.fuse
@pytest.mark.timeout(300)
def test_run_conformance_linux_local_end_to_end(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("the --local Linux lane needs a Linux host")
    if os.geteuid() != 0:
        pytest.skip("needs root: the provisioning mounts FUSE (and may apt-get install fuse3)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing")
    if not (ROOT / "compat" / "bsdprocfs" / "cli" / "conformance.py").exists():
        pytest.fail("bsdprocfs conformance (compat/bsdprocfs/cli/conformance.py) is missing")
    results = tmp_path / "results"
    # Reuse the venv running this test: the script still checks fuse3, verifies the
    # package's `bsdprocfs conformance` runs, runs API + FUSE and unmounts.
    # TMPDIR stays the system one: the suite runs helpers as other users from it.
    env = dict(os.environ, BSDPROCFS_VENV=sys.prefix, BSDPROCFS_RESULTS=str(results),
               BSDPROCFS_JOBS="2")
    # its own process group: on a hang, SIGTERM reaches the script (whose trap unmounts)
    # and every suite worker, so nothing outlives the test
    p = subprocess.Popen(["sh", str(RUNNER), "linux", "--local"], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    try:
        log, _ = p.communicate(timeout=280)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            log, _ = p.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            log, _ = p.communicate()
        daemon = results / "local-linux" / "fuse-daemon.log"
        tail = daemon.read_text()[-3000:] if daemon.exists() else "(no daemon log)"
        pytest.fail(f"run-conformance.sh hung for 280 s:\n{log[-4000:]}\n--- daemon:\n{tail}")
    for step in ("fuse3: ", "reusing venv", "bsdprocfs conformance --api",
                 "bsdprocfs mount ", "bsdprocfs umount "):
        assert step in log, (step, log[-4000:])
    # the reports came back, whatever the verdict ...
    out = results / "local-linux"
    summary = dict(ln.split() for ln in (out / "summary.txt").read_text().splitlines())
    assert set(summary) == {"api", "fuse", "fuse-umount"}, summary
    failed = {}
    for target in ("api", "fuse"):
        cases, bad = _junit_failures(out / f"{target}.xml")
        assert cases > 0, target
        assert (out / f"{target}.md").read_text().strip()
        json.loads((out / f"{target}.json").read_text())
        failed[target] = bad
    # ... the FUSE mount is gone and its directory removed ...
    m = re.search(r"bsdprocfs mount (\S+)", log)
    assert m
    mnt = m.group(1)
    assert not os.path.exists(mnt)
    with open("/proc/self/mounts") as f:
        assert mnt not in f.read()
    # ... and the verdict: zero failures against the API and the FUSE mount.
    assert failed == {"api": [], "fuse": []}, failed
    assert summary == {"api": "0", "fuse": "0", "fuse-umount": "0"}
    assert p.returncode == 0, log[-4000:]


@pytest.mark.parametrize("release,box", [(None, "generic/freebsd14"), ("13.5", "generic/freebsd13"),
                                         ("15.0", "generic/freebsd15")])
def test_freebsd_vagrantfile_libvirt_box_by_release(release, box):
    env = {"BSDPROCFS_FREEBSD_RELEASE": release} if release else {}
    cfg = vagrantfile_config(VAGRANTFILES["freebsd"], **env)
    assert cfg["set"]["config.vm.provider.override.vm.box"] == box
    assert cfg["set"]["config.vm.provider.driver"] in ("kvm", "qemu")


@pytest.mark.parametrize("arch,machine,emulator,cpu", [
    ("amd64", "x86_64", "/usr/bin/qemu-system-x86_64", "qemu64"),
    ("i386", "i686", "/usr/bin/qemu-system-i386", "qemu32"),
    ("arm64", "aarch64", "/usr/bin/qemu-system-aarch64", "cortex-a57")])
def test_linux_vagrantfile_libvirt_machine_by_arch(arch, machine, emulator, cpu):
    cfg = vagrantfile_config(VAGRANTFILES["linux"], BSDPROCFS_VM_ARCH=arch,
                             BSDPROCFS_VM_ACCEL="tcg")
    s = cfg["set"]
    assert s["config.vm.provider.driver"] == "qemu"          # TCG: no KVM domain
    assert (s["config.vm.provider.machine_arch"], s["config.vm.provider.emulator_path"]) == (
        machine, emulator)
    assert (s["config.vm.provider.cpu_mode"], s["config.vm.provider.cpu_model"]) == ("custom", cpu)
    assert s["config.vm.provider.management_network_name"] == "default"
    if arch == "arm64":
        assert s["config.vm.provider.machine_type"] == "virt"
        assert s["config.vm.provider.features"] == [] and s["config.vm.provider.inputs"] == []


def test_linux_vagrantfile_picks_tcg_without_hardware_virtualisation():
    """This machine's /dev/kvm is paravirtual (no vmx/svm flag): the default is TCG."""
    flags = Path("/proc/cpuinfo").read_text()
    cfg = vagrantfile_config(VAGRANTFILES["linux"])
    want = "kvm" if (os.access("/dev/kvm", os.W_OK) and re.search(r"\b(vmx|svm)\b", flags)) \
        else "qemu"
    assert cfg["set"]["config.vm.provider.driver"] == want


def test_linux_vagrantfile_rejects_unknown_arch():
    ruby = need("ruby")
    r = subprocess.run([ruby, "-e", RUBY_RECORDER, str(VAGRANTFILES["linux"])],
                       capture_output=True, text=True, cwd=VAGRANTFILES["linux"].parent,
                       env={**os.environ, "BSDPROCFS_VM_ARCH": "mips"})
    assert r.returncode != 0 and "BSDPROCFS_VM_ARCH=mips" in r.stderr


def test_runner_rejects_bad_arch_and_release():
    for argv in (["linux", "--arch", "mips"], ["linux", "--release", "11"], ["linux", "--arch"]):
        r = subprocess.run(["sh", str(RUNNER), *argv], capture_output=True, text=True)
        assert r.returncode == 2 and "usage:" in r.stderr, argv


@pytest.mark.parametrize("script", BOX_SCRIPTS, ids=lambda p: p.name)
def test_box_scripts_pass_shellcheck(script):
    shellcheck = need("shellcheck")
    r = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_box_script_rejects_bad_usage():
    for argv in (["--arch", "mips"], ["--release", "11"], ["--bogus"]):
        r = subprocess.run(["bash", str(VAGRANT_DIR / "boxes" / "build-box.sh"), *argv],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "usage:" in r.stderr, argv
