"""bsdprocfs: FreeBSD's procfs(5), byte-exact, on any machine.

The names below are loaded on first use (PEP 562), so that ``import bsdprocfs.cli``
or a short command pays only for the modules it touches.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .access import Reader
    from .api import ProcFS
    from .errors import ParseError, ProcfsError
    from .profiles import PROFILES, Profile, get_profile

__version__ = "0.1.0"

#: public name -> the module that defines it
_LAZY = {"Reader": "access", "ProcFS": "api", "ParseError": "errors", "ProcfsError": "errors",
         "PROFILES": "profiles", "Profile": "profiles", "get_profile": "profiles"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def parse(node: str, data: bytes, profile: str | Profile = "compat") -> Any:
    """Parse FreeBSD-format bytes of ``node`` into its record (strict)."""
    from .nodes import module_for
    from .profiles import get_profile
    return module_for(node).parse(data, get_profile(profile))


def render(node: str, record: Any, profile: str | Profile = "compat") -> bytes:
    """Render a record as FreeBSD would print ``node``."""
    from .nodes import module_for
    from .profiles import get_profile
    return bytes(module_for(node).render(record, get_profile(profile)))


__all__ = ["PROFILES", "ParseError", "ProcFS", "ProcfsError", "Profile", "Reader",
           "__version__", "get_profile", "parse", "render"]
