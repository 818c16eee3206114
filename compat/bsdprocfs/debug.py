"""The debugger, kept importable here: it lives in the tracer package
(ptrace/debugger.py routes to ptrace/ctl.py, regsets.py, memory.py,
transient.py)."""

from __future__ import annotations

from .ptrace.ctl import LINUX_SIGNALS, NO_LINUX_SIGNAL
from .ptrace.debugger import LinuxDebugger, get_debugger
from .ptrace.linux import proc_state, tracer_pid

__all__ = ["LINUX_SIGNALS", "NO_LINUX_SIGNAL", "LinuxDebugger", "get_debugger", "proc_state",
           "tracer_pid"]
