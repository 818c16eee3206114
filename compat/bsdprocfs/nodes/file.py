"""file / exe: symlink to the executable (proc_get_binpath; cite: file.link); PATH_MAX 1024."""

from __future__ import annotations

from ..errors import ParseError
from ..profiles import Profile
from ..records import FileRecord

NODE = "file"
PATH_MAX = 1024


def render(rec: FileRecord, profile: Profile | None = None) -> bytes:
    return rec.path.encode("utf-8", "surrogateescape")


def parse(data: bytes, profile: Profile | None = None) -> FileRecord:
    if b"\0" in data:
        raise ParseError(NODE, "path", data.index(b"\0"), "NUL byte in a path")
    if len(data) >= PATH_MAX:
        raise ParseError(NODE, "path", PATH_MAX, "longer than PATH_MAX")
    return FileRecord(data.decode("utf-8", "surrogateescape"))
