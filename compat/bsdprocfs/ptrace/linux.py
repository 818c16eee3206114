"""Linux ptrace requests and the Linux <-> FreeBSD register mapping.

Who does what:
* python-ptrace (``ptrace.binding``) does GETREGS/SETREGS (its user_regs_struct
  for x86_64, i386 and aarch64), GETFPREGS/SETFPREGS and PEEKUSER/POKEUSER.
* This thin ctypes layer does what python-ptrace lacks (PTRACE_SEIZE,
  PTRACE_INTERRUPT, PTRACE_LISTEN, GETREGSET for the aarch64 FP and debug sets)
  and the hot path (SINGLESTEP, SYSEMU_SINGLESTEP, CONT): measured on this VM,
  python-ptrace's ``singleStep()`` + ``waitSignals()`` costs 27 us a step against
  20 us for a raw call (linux-mapping.md section 6), so stepping goes straight to
  libc.

Every function here must run on the tracer thread (Linux accepts ptrace
requests only from the thread that attached); tracer.py guarantees it.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

from .layouts import RegSet, host_arch, unpack, zero

PTRACE_PEEKUSER = 3
PTRACE_POKEUSER = 6
PTRACE_CONT = 7
PTRACE_SINGLESTEP = 9
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETSIGINFO = 0x4202
PTRACE_GETREGSET = 0x4204
PTRACE_SETREGSET = 0x4205
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_LISTEN = 0x4208

PTRACE_SYSCALL = 24
PTRACE_GET_SYSCALL_INFO = 0x420E
PTRACE_SYSCALL_INFO_ENTRY = 1
PTRACE_SYSCALL_INFO_EXIT = 2
PTRACE_SYSEMU_SINGLESTEP = 32          # x86 only
PTRACE_O_TRACESYSGOOD = 0x01
PTRACE_O_TRACEEXEC = 0x10
SYSCALL_TRAP = 0x85                    # SIGTRAP | 0x80: a system-call stop (TRACESYSGOOD)
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_STOP = 0x80
WALL = 0x40000000                     # __WALL: also wait for clone children (threads)

NT_PRFPREG = 2
NT_ARM_HW_BREAK = 0x402
NT_ARM_HW_WATCH = 0x403

#: offsetof(struct user, u_debugreg): 848 on x86_64 (checked with gcc, linux-mapping.md
#: section 5), 252 on i386.
DEBUGREG_OFFSET = {"amd64": 848, "i386": 252}

#: siginfo si_code of SIGTRAP -> FreeBSD trap number (machine/trap.h T_*).
TRAP_BRKPT, TRAP_TRACE, TRAP_HWBKPT = 1, 2, 4
T_BPTFLT, T_TRCTRAP = 3, 10

_libc = ctypes.CDLL(None, use_errno=True)
_ptrace = _libc.ptrace
_ptrace.restype = ctypes.c_long
_ptrace.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)


def ptrace(req: int, pid: int, addr: int = 0, data: int = 0) -> int:
    """A raw ptrace(2) call; -1 raises OSError with the Linux errno."""
    r: int = _ptrace(req, pid, addr or None, data or None)
    if r == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def seize(pid: int, options: int = PTRACE_O_TRACEEXEC | PTRACE_O_TRACESYSGOOD) -> None:
    ptrace(PTRACE_SEIZE, pid, 0, options)


def interrupt(pid: int) -> None:
    ptrace(PTRACE_INTERRUPT, pid)


def listen(pid: int) -> None:
    ptrace(PTRACE_LISTEN, pid)


def attach(pid: int) -> None:
    ptrace(PTRACE_ATTACH, pid)


def detach(pid: int, sig: int = 0) -> None:
    ptrace(PTRACE_DETACH, pid, 0, sig)


def cont(pid: int, sig: int = 0) -> None:
    ptrace(PTRACE_CONT, pid, 0, sig)


def singlestep(pid: int, sig: int = 0) -> None:
    ptrace(PTRACE_SINGLESTEP, pid, 0, sig)


def syscall_step(pid: int, sig: int = 0) -> None:
    """PTRACE_SYSCALL: run, stopping at the next system-call entry or exit.  How a step
    runs a system call that may block: no trace flag is armed meanwhile, so if this
    process dies, Linux's release (__ptrace_unlink clears SYSCALL_TRACE) leaves nothing
    that traps; a syscall stop reports SIGTRAP|0x80 (TRACESYSGOOD), which the kernel
    refuses to post as a signal if the tracee is released while stopped there."""
    ptrace(PTRACE_SYSCALL, pid, 0, sig)


class _SyscallInfo(ctypes.Structure):
    _fields_ = (("op", ctypes.c_uint8), ("pad", ctypes.c_uint8 * 3),
                ("arch", ctypes.c_uint32), ("ip", ctypes.c_uint64), ("sp", ctypes.c_uint64),
                ("nr_or_rval", ctypes.c_int64), ("args", ctypes.c_uint64 * 6))


def syscall_info(pid: int) -> tuple[int, int]:
    """At a syscall stop: (op, value): op ENTRY with the number, or EXIT with the
    return value (PTRACE_GET_SYSCALL_INFO, Linux 5.3)."""
    info = _SyscallInfo()
    ptrace(PTRACE_GET_SYSCALL_INFO, pid, ctypes.sizeof(info), ctypes.addressof(info))
    return int(info.op), int(info.nr_or_rval)


def sysemu_singlestep(pid: int, sig: int = 0) -> None:
    """A single step that stops at the entry of a system call instead of running it."""
    if _ptrace(PTRACE_SYSEMU_SINGLESTEP, pid, None, sig or None) == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def rewind_syscall(pid: int) -> None:
    """At a SYSEMU entry stop: back to the (2-byte) syscall instruction with its number
    restored, so the next step runs it for real."""
    r = _pp_call(_pp().ptrace_getregs, pid)
    r.rip -= 2
    r.rax = r.orig_rax
    _pp_call(_pp().ptrace_setregs, pid, r)


#: -ERESTARTSYS, -ERESTARTNOINTR, -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK: the return
#: value of a system call that a stop interrupted and the kernel will restart
RESTART = _RESTART = frozenset({-512, -513, -514, -516})


def syscall_restart_pending(pid: int) -> bool:
    """At a stop: was a system call interrupted, to be restarted on resume?"""
    r = _pp_call(_pp().ptrace_getregs, pid)
    for name in ("rax", "eax", "r0"):         # amd64, i386, aarch64 (x0)
        if hasattr(r, name):
            return (int(getattr(r, name)) & 0xFFFFFFFF) - (1 << 32) in _RESTART
    return False


def _pp() -> Any:
    """python-ptrace's binding functions, imported lazily (it probes the CPU at import)."""
    from ptrace.binding import func
    return func


def _pp_call(fn: Any, *args: Any) -> Any:
    from ptrace import PtraceError
    try:
        return fn(*args)
    except PtraceError as e:
        err = e.errno or 5
        raise OSError(err, os.strerror(err)) from None


def trapno(pid: int, stopsig: int) -> int:
    """FreeBSD r_trapno for the current stop: from SIGTRAP's si_code, else 0."""
    import signal
    if stopsig != signal.SIGTRAP:
        return 0
    try:
        info = _pp_call(_pp().ptrace_getsiginfo, pid)
    except OSError:
        return 0
    code = info.si_code
    if code == TRAP_BRKPT:
        return T_BPTFLT
    if code in (TRAP_TRACE, TRAP_HWBKPT):
        return T_TRCTRAP
    return 0


class _Iovec(ctypes.Structure):
    _fields_ = (("base", ctypes.c_void_p), ("len", ctypes.c_size_t))


def _getregset(pid: int, note: int, size: int) -> bytes:
    buf = ctypes.create_string_buffer(size)
    iov = _Iovec(ctypes.addressof(buf), size)
    ptrace(PTRACE_GETREGSET, pid, note, ctypes.addressof(iov))
    return buf.raw[: iov.len]


def _setregset(pid: int, note: int, data: bytes) -> None:
    buf = ctypes.create_string_buffer(data, len(data))
    iov = _Iovec(ctypes.addressof(buf), len(data))
    ptrace(PTRACE_SETREGSET, pid, note, ctypes.addressof(iov))


# ------------------------------------------------------------------ x86_64 / i386
_AMD64_REGS = ("r15", "r14", "r13", "r12", "r11", "r10", "r9", "r8", "rdi", "rsi", "rbp",
               "rbx", "rdx", "rcx", "rax")
_I386_REGS = {"r_edi": "edi", "r_esi": "esi", "r_ebp": "ebp", "r_ebx": "ebx", "r_edx": "edx",
              "r_ecx": "ecx", "r_eax": "eax", "r_eip": "eip", "r_cs": "cs",
              "r_eflags": "eflags", "r_esp": "esp", "r_ss": "ss", "r_fs": "fs", "r_es": "es",
              "r_ds": "ds", "r_gs": "gs"}


def read_regs(pid: int, stopsig: int, arch: str | None = None) -> RegSet:
    arch = arch or host_arch()
    r = _pp_call(_pp().ptrace_getregs, pid)
    rs = zero(arch, "regs")
    v = dict(rs.values)
    if arch == "amd64":
        for n in _AMD64_REGS:
            v["r_" + n] = getattr(r, n)
        v.update(r_trapno=trapno(pid, stopsig), r_fs=r.fs & 0xFFFF, r_gs=r.gs & 0xFFFF,
                 r_err=0, r_es=r.es & 0xFFFF, r_ds=r.ds & 0xFFFF, r_rip=r.rip, r_cs=r.cs,
                 r_rflags=r.eflags, r_rsp=r.rsp, r_ss=r.ss)
    elif arch == "i386":
        for fb, lx in _I386_REGS.items():
            v[fb] = getattr(r, lx) & 0xFFFFFFFF
        v["r_isp"] = r.esp & 0xFFFFFFFF   # the kernel stack pointer: Linux does not expose it
        v["r_trapno"] = trapno(pid, stopsig)
    elif arch == "aarch64":
        v["x"] = [getattr(r, f"r{i}") for i in range(30)]
        v.update(lr=r.r30, sp=r.sp, elr=r.pc, spsr=r.pstate)
    else:
        raise OSError(95, f"no register mapping for {arch}")
    return RegSet(arch, "regs", v)


def write_regs(pid: int, rs: RegSet) -> None:
    """SETREGS from a FreeBSD struct: orig_rax, fs_base and gs_base are kept, r_trapno and
    r_err have no Linux register and are ignored."""
    b = _pp()
    r = _pp_call(b.ptrace_getregs, pid)
    v = rs.values
    if rs.arch == "amd64":
        for n in _AMD64_REGS:
            setattr(r, n, v["r_" + n])
        if v["r_rip"] != r.rip:
            # a new pc cancels a pending system-call restart (Linux would rewind the new
            # pc by 2 on resume; FreeBSD has already restarted before the stop)
            r.orig_rax = (1 << 64) - 1
        r.fs, r.gs, r.es, r.ds = v["r_fs"], v["r_gs"], v["r_es"], v["r_ds"]
        r.rip, r.cs, r.eflags, r.rsp, r.ss = (v["r_rip"], v["r_cs"], v["r_rflags"], v["r_rsp"],
                                              v["r_ss"])
    elif rs.arch == "i386":
        for fb, lx in _I386_REGS.items():
            setattr(r, lx, v[fb])
    elif rs.arch == "aarch64":
        for i in range(30):
            setattr(r, f"r{i}", v["x"][i])
        r.r30, r.sp, r.pc, r.pstate = v["lr"], v["sp"], v["elr"], v["spsr"]
    _pp_call(b.ptrace_setregs, pid, r)


def read_fpregs(pid: int, arch: str | None = None) -> RegSet:
    arch = arch or host_arch()
    if arch == "aarch64":
        # user_fpsimd_state: vregs[32] (512) fpsr fpcr __reserved[2] = 528 = struct fpreg
        data = _getregset(pid, NT_PRFPREG, 528)
        return unpack(arch, "fpregs", data[:520].ljust(528, b"\0"))
    fp = bytes(_pp_call(_pp().ptrace_getfpregs, pid))
    # amd64: the FXSAVE image, byte-identical; i386: user_i387_struct (108 bytes) is the
    # save87 prefix of FreeBSD's struct (env[7] + acc), fpr_ex_sw/pad stay 0.
    size = 512 if arch == "amd64" else 176
    return unpack(arch, "fpregs", fp[:size].ljust(size, b"\0"))


def write_fpregs(pid: int, rs: RegSet) -> None:
    from .layouts import pack
    data = pack(rs)
    if rs.arch == "aarch64":
        _setregset(pid, NT_PRFPREG, data[:520] + b"\0" * 8)
        return
    b = _pp()
    fp = _pp_call(b.ptrace_getfpregs, pid)
    n = ctypes.sizeof(fp)
    ctypes.memmove(ctypes.addressof(fp), data, min(n, len(data)))
    _pp_call(b.ptrace_setfpregs, pid, fp)


def read_dbregs(pid: int, arch: str | None = None) -> RegSet:
    arch = arch or host_arch()
    rs = zero(arch, "dbregs")
    if arch == "aarch64":
        v = dict(rs.values)
        for note, kind, pre in ((NT_ARM_HW_BREAK, "db_breakregs", "dbr"),
                                (NT_ARM_HW_WATCH, "db_watchregs", "dbw")):
            raw = _getregset(pid, note, 8 + 16 * 16)
            info = int.from_bytes(raw[:4], "little")
            v["db_debug_ver"] = (info >> 8) & 0xFF
            v["db_nbkpts" if pre == "dbr" else "db_nwtpts"] = info & 0xFF
            for i in range(min(16, (len(raw) - 8) // 16)):
                off = 8 + 16 * i
                v[f"{kind}[{i}].{pre}_addr"] = int.from_bytes(raw[off:off + 8], "little")
                v[f"{kind}[{i}].{pre}_ctrl"] = int.from_bytes(raw[off + 8:off + 12], "little")
        return RegSet(arch, "dbregs", v)
    base = DEBUGREG_OFFSET[arch]
    word = 8 if arch == "amd64" else 4
    peek = _pp().ptrace_peekuser
    dr = list(rs.values["dr"])
    for i in range(8):
        dr[i] = 0 if i in (4, 5) else _pp_call(peek, pid, base + word * i) & ((1 << 8 * word) - 1)
    return rs.replace(dr=dr)


def disarm_x86(pid: int) -> None:
    """DR7 = 0 if anything is enabled: no breakpoint survives our shutdown."""
    arch = host_arch()
    off = DEBUGREG_OFFSET[arch] + (8 if arch == "amd64" else 4) * 7
    if _pp_call(_pp().ptrace_peekuser, pid, off):
        _pp_call(_pp().ptrace_pokeuser, pid, off, 0)


def write_dbregs(pid: int, rs: RegSet, cur: RegSet) -> None:
    """POKEUSER only the registers that changed, addresses before DR7 (Linux validates a
    DR7 enable against the addresses). DR4/5 and 8-15 are reserved: changing them is EINVAL."""
    if rs.arch == "aarch64":
        # Only the CPU's slots (db_nbkpts, db_nwtpts): Linux reserves a perf event for every
        # slot written and answers ENOSPC past the last one; a value there is EINVAL.
        for note, kind, pre, nfield in ((NT_ARM_HW_BREAK, "db_breakregs", "dbr", "db_nbkpts"),
                                        (NT_ARM_HW_WATCH, "db_watchregs", "dbw", "db_nwtpts")):
            n = min(16, cur.values[nfield])
            if any(rs.values[f"{kind}[{i}].{pre}_{f}"] for i in range(n, 16)
                   for f in ("addr", "ctrl")):
                raise OSError(22, f"{kind}: this CPU has {n} slots")
            raw = bytearray(8 + 16 * n)
            for i in range(n):
                off = 8 + 16 * i
                raw[off:off + 8] = rs.values[f"{kind}[{i}].{pre}_addr"].to_bytes(8, "little")
                raw[off + 8:off + 12] = rs.values[f"{kind}[{i}].{pre}_ctrl"].to_bytes(4, "little")
            if n:
                _setregset(pid, note, bytes(raw))
        return
    base = DEBUGREG_OFFSET[rs.arch]
    word = 8 if rs.arch == "amd64" else 4
    new, old = rs.values["dr"], cur.values["dr"]
    if any(new[i] != old[i] for i in (4, 5, *range(8, len(new)))):
        raise OSError(22, "reserved debug register")
    poke = _pp().ptrace_pokeuser
    for i in (0, 1, 2, 3, 6, 7):
        if new[i] != old[i]:
            _pp_call(poke, pid, base + word * i, new[i])


def proc_state(pid: int) -> str:
    """The /proc/PID/stat state letter, 'X' when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            st = f.read()
    except OSError:
        return "X"
    return chr(st[st.rindex(b")") + 2])


def pidfd_exited(pidfd: int) -> bool:
    """A pidfd polls readable once its process exited (poll(2), not select(2): fds above
    1024 are likely once a daemon raised its fd limit)."""
    import select
    p = select.poll()
    p.register(pidfd, select.POLLIN)
    return bool(p.poll(0))


def tracer_pid(pid: int) -> int:
    """TracerPid (a thread id) of /proc/PID/status, 0 when untraced or gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"TracerPid:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def pending_unblocked(pid: int) -> int:
    """The signal mask pending and not blocked for the thread ``pid`` (its own queue
    and its process's), 0 when gone."""
    pnd = blk = 0
    try:
        with open(f"/proc/{pid}/task/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith((b"SigPnd:", b"ShdPnd:")):
                    pnd |= int(line.split()[1], 16)
                elif line.startswith(b"SigBlk:"):
                    blk = int(line.split()[1], 16)
    except (OSError, ValueError):
        return 0
    return pnd & ~blk
