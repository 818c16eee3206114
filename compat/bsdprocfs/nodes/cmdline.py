"""cmdline: p_args, each argv string NUL-terminated (cite: cmdline.args); empty for
kernel processes (cite: cmdline.system)."""

from __future__ import annotations

from ..errors import ParseError
from ..profiles import Profile
from ..records import CmdlineRecord

NODE = "cmdline"


def render(rec: CmdlineRecord, profile: Profile | None = None) -> bytes:
    return b"".join(a + b"\0" for a in rec.args)


def parse(data: bytes, profile: Profile | None = None) -> CmdlineRecord:
    if not data:
        return CmdlineRecord(())
    if not data.endswith(b"\0"):
        raise ParseError(NODE, "argv", len(data), "last string is not NUL-terminated")
    return CmdlineRecord(tuple(data[:-1].split(b"\0")))
