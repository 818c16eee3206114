"""The tracer package: ptrace for procfs, one module per concern (debugger.py is the
interface the tree calls: ctl.py, regsets.py, memory.py, transient.py over the tracer
thread tracer.py <- release.py <- stops.py, the Linux requests linux.py and the
register struct layouts of FreeBSD's <machine/reg.h> per architecture, layouts.py)."""
