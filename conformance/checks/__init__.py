"""The conformance checks (collected with ``pytest --pyargs bsdprocfs_conformance.checks``)."""
