"""Backends collect facts into records; they never format.

One module per OS (the psutil model).  ``get_backend`` picks the host's.
"""

from __future__ import annotations

import sys
from typing import Any


def get_backend(name: str = "auto", root: str | None = None) -> Any:
    if name == "auto":
        name = "freebsd" if sys.platform.startswith("freebsd") else "linux"
    if name == "linux":
        from .linux import LinuxBackend
        return LinuxBackend(root or "/proc")
    if name == "freebsd":
        from .freebsd import FreeBSDBackend
        return FreeBSDBackend(root)
    raise ValueError(f"unknown backend {name!r}; choose auto, linux or freebsd")
