"""bsdprocfs: FreeBSD's procfs(5), byte-exact, on any machine."""

from __future__ import annotations

from typing import Any

from .access import Reader
from .api import ProcFS
from .errors import ParseError, ProcfsError
from .profiles import PROFILES, Profile, get_profile

__version__ = "0.1.0"


def parse(node: str, data: bytes, profile: str | Profile = "compat") -> Any:
    """Parse FreeBSD-format bytes of ``node`` into its record (strict)."""
    from .nodes import module_for
    return module_for(node).parse(data, get_profile(profile))


def render(node: str, record: Any, profile: str | Profile = "compat") -> bytes:
    """Render a record as FreeBSD would print ``node``."""
    from .nodes import module_for
    return bytes(module_for(node).render(record, get_profile(profile)))


__all__ = ["PROFILES", "ParseError", "ProcFS", "ProcfsError", "Profile", "Reader",
           "__version__", "get_profile", "parse", "render"]
