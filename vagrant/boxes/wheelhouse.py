#!/usr/bin/env python3
"""The VM's Python dependencies, fetched on the host (a guest has no network here).

usage: wheelhouse.py --arch amd64|i386|arm64 --python 3.11 --out DIR [--pyproject FILE]

Downloads wheels of the package's runtime and [test] dependencies (and the build
backend of its editable install) for the guest's CPython and architecture with
``pip download --platform``. A requirement with no wheel for that platform (PyYAML on
i686) comes as an sdist plus its build requirements: the guest builds it with the gcc
and python3-dev of its rootfs. DIR/.complete marks a finished wheelhouse; the caller
caches DIR by a hash of its inputs; DIR/requirements.txt lists what a box's venv
pre-installs from it (build-box.sh --wheels).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import tomllib

MACHINE = {"amd64": "x86_64", "i386": "i686", "arm64": "aarch64"}
# the manylinux tags a Debian 12 (glibc 2.36) or 13 (2.41) guest accepts
GLIBC = ["2_5", "2_12", "2_17", "2_24", "2_27", "2_28", "2_31", "2_34", "2_35", "2_36"]
LEGACY = {"2_5": "manylinux1", "2_12": "manylinux2010", "2_17": "manylinux2014"}
# build requirements of an sdist the guest builds (its setup.py or pyproject)
SDIST_BUILD = ["setuptools>=77", "wheel", "Cython"]


def requirements(pyproject: Path) -> list[str]:
    data = tomllib.loads(pyproject.read_text())
    reqs = list(data["project"]["dependencies"])
    reqs += data["project"]["optional-dependencies"]["test"]
    reqs += data["build-system"]["requires"]
    return sorted(set(reqs))


def pip_download(args: list[str], out: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
           "--dest", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True, choices=sorted(MACHINE))
    ap.add_argument("--python", required=True, help="guest CPython, e.g. 3.11")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--pyproject", type=Path,
                    default=Path(__file__).resolve().parents[2] / "pyproject.toml")
    a = ap.parse_args()
    m = MACHINE[a.arch]
    plat: list[str] = []
    for g in GLIBC:
        plat += ["--platform", f"manylinux_{g}_{m}"]
        if g in LEGACY:
            plat += ["--platform", f"{LEGACY[g]}_{m}"]
    target = [*plat, "--python-version", a.python, "--implementation", "cp",
              "--only-binary=:all:"]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / ".complete").unlink(missing_ok=True)
    reqs = requirements(a.pyproject)
    sdists: list[str] = []
    for _ in range(10):
        r = pip_download([*target, *reqs], a.out)
        if r.returncode == 0:
            break
        miss = re.search(r"No matching distribution found for ([A-Za-z0-9_.-]+)", r.stderr)
        if not miss:
            sys.stderr.write(r.stderr)
            return 1
        name = miss.group(1)
        print(f"wheelhouse.py: no {m} wheel of {name} for CPython {a.python}: "
              "its sdist goes in, the guest builds it", file=sys.stderr)
        spec = next((q for q in reqs if re.match(rf"{re.escape(name)}\b", q, re.I)), name)
        reqs = [q for q in reqs if q != spec]
        sdists.append(spec)
        reqs += [q for q in SDIST_BUILD if q not in reqs]
    else:
        return 1
    for spec in sdists:
        # the sdist and its (pure or platform) dependencies
        r = pip_download(["--no-deps", "--no-binary=:all:", spec], a.out)
        if r.returncode != 0:
            sys.stderr.write(r.stderr)
            return 1
    # what the box pre-installs into its venv (build-box.sh --wheels)
    (a.out / "requirements.txt").write_text("\n".join(requirements(a.pyproject)) + "\n")
    (a.out / ".complete").write_text("\n".join(sorted(p.name for p in a.out.iterdir())) + "\n")
    print(f"wheelhouse.py: {a.out}: {len(list(a.out.iterdir())) - 2} files "
          f"(sdists built in the guest: {', '.join(sdists) or 'none'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
