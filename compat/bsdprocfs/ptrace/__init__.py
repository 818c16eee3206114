"""ptrace for procfs: the tracer thread, the per-OS request layer and the
register struct layouts of FreeBSD's <machine/reg.h> per architecture."""
