"""The one compiled part: the Linux /proc hot paths (backends/_linuxfacts.c).

Optional: where no C compiler or Python headers are found the build goes on
without it and ``backends._linuxparse`` (its pure-Python twin) serves instead.
Everything else about the package is in pyproject.toml.
"""

import sys

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "bsdprocfs.backends._linuxfacts",
    ["compat/bsdprocfs/backends/_linuxfacts.c"],
    optional=True,
    extra_compile_args=["-Wall", "-Wextra", "-Wno-unused-parameter"],
)] if sys.platform.startswith("linux") else [])
