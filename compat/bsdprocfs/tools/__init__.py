"""Ports of FreeBSD tools (ps, w) that read process facts only through the API."""
