"""bsdprocfs_conformance: one pytest suite that judges any FreeBSD procfs(5)
implementation: a mounted path (``--procfs-root``) or the bsdprocfs API
(``--procfs-api``).  Run ``pytest --pyargs bsdprocfs_conformance.checks
--procfs-api`` or ``bsdprocfs conformance --api``."""

__version__ = "0.1.0"
