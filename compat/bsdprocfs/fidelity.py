"""How faithfully the Linux backend can supply each FreeBSD field.

The table is data, kept beside the code that fills the fields, and
docs/fidelity.md is generated from it (``bsdprocfs fidelity``); a test keeps
the two in sync.  Grades: exact, approximated (with the bound), constant.
"""

from __future__ import annotations

EXACT, APPROX, CONST = "exact", "approximated", "constant"

#: (node, field, grade, source and reason)
FIDELITY: tuple[tuple[str, str, str, str], ...] = (
    ("status", "comm", APPROX, "stat bytes between the first '(' and the last ')'; Linux keeps "
     "15 bytes (TASK_COMM_LEN), rebuilt to FreeBSD's 19 (MAXCOMLEN) from argv[0] or the "
     "executable's basename when it starts with the 15; otherwise 15 bytes. Escaping exact."),
    ("status", "pid", EXACT, "thread-group id; thread ids are not process directories"),
    ("status", "ppid", APPROX, "stat ppid. FreeBSD shows the debugger while traced (reparent, "
     "UNVERIFIED for current kernels); Linux keeps the real parent, and so do we"),
    ("status", "pgid", EXACT, "stat pgrp"),
    ("status", "sid", EXACT, "stat session, or 0 once the session leader has exited or is a "
     "zombie (FreeBSD s_leader): getsid(leader) == sid and its pidfd not yet readable (the "
     "leader's stat state and session under a foreign procfs root)"),
    ("status", "tty", EXACT, "tty_nr: major 136 -> pts/N, else /sys/dev/char DEVNAME, else a "
     "/dev scan; only hits are cached"),
    ("status", "flags", EXACT, "ctty = tty_nr != 0 (session has a tty), sldr = session == pid"),
    ("status", "start", APPROX, "starttime ticks + (realtime - CLOCK_BOOTTIME): 10 ms "
     "granularity (CLK_TCK 100); never btime (0.63 s off)"),
    ("status", "utime/stime", APPROX, "calcru: the precise runtime of all threads, exited ones "
     "too (the process CPU-time clock), split by the tick ratio; 10 ms ticks when it "
     "disagrees with them. Under a foreign procfs root the runtime is schedstat summed over "
     "live threads, which misses exited ones. Total within 20 ms of getrusage"),
    ("status", "wmesg", APPROX, "/proc/PID/wchan kernel symbol mapped to a FreeBSD wmesg "
     "(nanslp, wait, piperd, ttyin, select, kqread, uwait, ...); unknown symbols print their "
     "first 8 bytes; running -> nochan; nochan for a non-root caller Linux hides the "
     "wchan from (it may not ptrace-read the target)"),
    ("status", "euid ruid rgid,groups", EXACT, "/proc/PID/status Uid/Gid/Groups, egid first "
     "(FreeBSD <= 14 cr_groups layout)"),
    ("status", "jail", APPROX, "the UTS-namespace hostname when the target's uts namespace "
     "differs from the daemon's, else '-' (Linux has no jails); 'uts:INODE' if setns fails"),
    ("cmdline", "argv", EXACT, "/proc/PID/cmdline; a final NUL is added if setproctitle "
     "removed it; kernel threads: empty"),
    ("rlimit", "cpu fsize data stack core rss memlock nofile vmem", EXACT,
     "/proc/PID/limits (readable for any uid; prlimit is not); vmem = address space; "
     "values >= 2^63-1 print -1"),
    ("rlimit", "nproc", APPROX, "Linux counts threads per real uid, FreeBSD processes"),
    ("rlimit", "sbsize npts swap kqueues umtx pipebuf vmm", CONST,
     "-1 -1: Linux enforces no such per-process limit, so it is literally infinite"),
    ("map", "start end prot", EXACT, "/proc/PID/maps"),
    ("map", "resident private_resident", EXACT, "smaps Rss and Private_Clean+Private_Dirty in "
     "pages; 0 in fast (maps-only) mode, as FreeBSD with vm.vmmap_skip_res_cnt=1"),
    ("map", "obj", CONST, "no Linux equivalent: a stable synthetic pointer hashed from "
     "dev:inode (shared like a vnode object) or pid:start:address (anonymous); 0 when the "
     "entry has no object"),
    ("map", "ref_count", APPROX, "round(Rss/Pss), the mean mapcount of resident pages"),
    ("map", "shadow_count", CONST, "0: no Linux equivalent"),
    ("map", "flags", APPROX, "OBJ_ANON|OBJ_SWAP (0x210) for anonymous swap objects, else "
     "0x0; OBJT-era profiles (10-13): OBJ_ONEMAPPING (0x2000), what _vm_object_allocate "
     "gives an anonymous default object"),
    ("mem ioctl", "PIOC* stop events", APPROX, "10-12 profiles: S_EXEC, S_EXIT, S_SCE/S_SCX "
     "(val: the Linux system-call number) and S_SIG from a PTRACE_SEIZE of the main thread "
     "only; S_CORE is never raised (Linux stops nowhere before a core dump); a target "
     "traced by someone else gives EBUSY; a FUSE release is asynchronous, so the last "
     "close's reset lands just after close(2) returns; the in-process API must not trace "
     "its own children (their wait statuses would be shared with the parent)"),
    ("map", "COW/NCOW", EXACT, "private (p) vs shared (s) mapping"),
    ("map", "NC/NNC", APPROX, "NC for private anonymous memory with pages still shared "
     "after fork (Shared_Clean+Shared_Dirty > 0)"),
    ("map", "type", APPROX, "vdso/vvar -> phys; untouched anonymous -> none; anonymous, memfd, "
     "SYSV and shared /dev/zero -> swap; /dev/* -> device; files (incl. /dev/shm) -> vnode"),
    ("map", "path", EXACT, "maps pathname; '-' for anonymous, [pseudo] and deleted files"),
    ("map", "CH/NCH uid", APPROX, "the 'ac' (VM_ACCOUNT) VmFlag: CH and the target's real uid"),
    ("etype", "sv_name", EXACT, "ELF class and brand of /proc/PID/exe: Linux ELF64/ELF32 (every "
     "Linux process runs the Linux ABI), null for kernel threads"),
    ("osrel", "value", EXACT, "GNU ABI tag -> (a<<16)+(b<<8)+c (linux_trans_osrel), 0 without "
     "it; writes persist in an overlay keyed by (pid, start time) for the image they "
     "were written for: an exec resets it, as FreeBSD does"),
    ("file/exe", "target", EXACT, "readlink /proc/PID/exe; ENOENT when the binary was deleted"),
    ("P_SUGID", "attr modes, candebug", APPROX, "no Linux flag; set when the kernel shows a "
     "credential change (FreeBSD's setsugid() callers: set*id/setgroups changing an id, a "
     "set-id exec): differing real/effective/saved uids or gids; non-dumpable (credential "
     "change, set-id or file-capability exec, PR_SET_DUMPABLE 0: /proc/PID turns "
     "root-owned); any inheritable, permitted, effective or ambient capability of a task "
     "with no uid 0 (file capabilities, setpriv --ambient-caps). FreeBSD clears it at a "
     "plain exec; Linux keeps the capabilities that survive it, so we keep P_SUGID. A "
     "uid-0 task that dropped capabilities is not P_SUGID (only root passes its modes)"),
    ("access", "the kernel's floor", APPROX, "ptrace-guarded nodes (regs fpregs dbregs mem "
     "ctl: ATTACH; map, file, exe: READ_FSCREDS; etype/osrel read the image /proc/PID/exe "
     "leads to) of a caller less privileged than the daemon run in a worker process holding "
     "exactly the caller's ids, groups and capability sets (ptrace/boundary.py), so Linux "
     "decides and a traced set-id exec gains nothing; FreeBSD's rules apply on top. Hence "
     "EACCES for file/exe/etype and EPERM for map/mem where FreeBSD would answer (another "
     "uid, a supplementary-only gid). Cost: first use of a credential set ~120 ms (a fresh "
     "interpreter), then 80-190 us per operation (IPC round trip, loaded 2-core VM). status "
     "of a non-root caller takes its wchan and UTS namespace (READ_FSCREDS-guarded) from "
     "its worker. A uid-0 caller lacking capabilities still gets those two from us"),
    ("FUSE mount", "stat owner, mode", APPROX, "stat(2) through the mount may be served from "
     "the daemon's 50 ms attribute cache (existence stays exact via pidfds), and fstat of an "
     "open fd from the kernel's 1 s attr cache: a credential change can show late by that "
     "much. No access decision uses the cache: reads, writes and debug nodes look afresh"),
    ("regs", "struct reg", APPROX, "PTRACE_GETREGS remapped to FreeBSD order (amd64; i386 "
     "and aarch64 via GETREGS/GETREGSET); r_trapno from the stop's SIGTRAP si_code "
     "(T_BPTFLT 3, T_TRCTRAP 10), else 0; r_err 0; cs/ss are Linux's selectors. A process "
     "stopped by someone else's SIGSTOP is read through a transient PTRACE_SEIZE and left "
     "stopped; one traced by another debugger gives EBUSY (FreeBSD would read it)"),
    ("fpregs", "struct fpreg", EXACT, "amd64: PTRACE_GETFPREGS, the FXSAVE image, "
     "byte-identical; i386: the 32-bit GETFPREGS user_i387_struct is save87's env[7] + "
     "acc[8] (fpr_ex_sw, fpr_pad 0); aarch64: GETREGSET NT_PRFPREG (v0-v31, fpsr, fpcr). "
     "Known values at their offsets checked in Debian 12/13 VMs per architecture "
     "(tests/test_regs_known.py)"),
    ("dbregs", "struct dbreg", EXACT, "DR0-DR7 via PEEKUSER at offsetof(struct user, "
     "u_debugreg); DR4/5 and DR8-15 read 0 and are not writable (EINVAL). Reads while "
     "running: traced by us -> interrupt, read, continue; untraced -> transient seize, "
     "interrupt, read, detach (the target pauses for microseconds; a system call it "
     "sleeps in is restarted); EBUSY if it cannot stop within 0.5 s. Like FreeBSD's, "
     "the registers stay armed after detach (measured): a hit then delivers SIGTRAP to "
     "the untraced process. aarch64: NT_ARM_HW_BREAK/WATCH; only the CPU's slots "
     "(db_nbkpts, db_nwtpts) are written (Linux answers ENOSPC past them), a value in a "
     "slot beyond them is EINVAL"),
    ("mem", "bytes", EXACT, "/proc/PID/mem at offset = address; EFAULT for unmapped, also "
     "when part of the range was transferred; offsets >= 2^63 EINVAL"),
    ("ctl", "attach", APPROX, "PTRACE_SEIZE + PTRACE_INTERRUPT instead of SIGSTOP: same "
     "stop (reported as SIGSTOP), but the target is released running if the daemon dies; "
     "already traced EBUSY, self EINVAL, no right EPERM. Only the main thread is traced "
     "and stopped: other threads of a multi-threaded target keep running"),
    ("ctl", "step run wait signals", APPROX, "FreeBSD's 'traced, stopped and a child of the "
     "caller' rule (TRACE_WAIT_P): profile flag ctl_attacher_only (freebsd-10) enforces it "
     "with EBUSY and releases the target when its attacher exits (nobody else could resume "
     "it); compat accepts any caller passing p_candebug. step/run discard a pending stop "
     "signal (p_xstat = 0). step answers once nothing is left armed (amd64: its trap "
     "parked, ~55 us median); every later request through the same tracer sees it "
     "stopped. A step of a process blocked in a system call runs the call under "
     "PTRACE_SYSCALL and completes when it returns (as FreeBSD's trace flag in the saved "
     "frame); wait waits for it, a second step meanwhile is EBUSY; other architectures "
     "step into the call with the trace flag armed. wait, traced: freebsd-10 as 10.4's "
     "procfs_ctl.c (sleeps while the child is stopped, then EBUSY); compat waits until it "
     "stops. Signal words need no p_candebug (procfs_doprocctl), Linux's kill(2) rule is "
     "the floor; without p_candebug a signal is only posted. Blocking waits: 64 per caller "
     "uid, 192 in all, then EAGAIN (FreeBSD sleeps without a bound)"),
    ("ctl", "detach", APPROX, "PTRACE_DETACH (interrupting a running tracee first); a "
     "pending SIGTRAP is dropped, as FreeBSD's sigqueue_delete_proc(p, SIGTRAP); the stop "
     "signal of a signal-delivery stop: freebsd-10 drops it (p_xstat = 0), compat delivers "
     "it (what the process would have got untraced); a group stop we resumed it from is "
     "ended with SIGCONT, one still in effect is kept (the process stays stopped, as it "
     "was); an interrupted system call restarts (nanosleep with its remaining time). A "
     "target that cannot stop (a vfork parent, a TASK_KILLABLE wait) stays traced until "
     "that wait ends, then is let go at its first stop (FreeBSD untraces at once); a "
     "process traced by another debugger gives EBUSY (FreeBSD would untrace it)"),
    ("ctl", "daemon killed", APPROX, "SIGTERM/SIGINT/exit: every tracee detached as by "
     "detach. SIGKILL: Linux releases the tracees itself; nothing is left armed except "
     "inside a step of one instruction: from PTRACE_SYSEMU_SINGLESTEP until its trap is "
     "parked (measured on this 2-vCPU VM under load: median 55 us, p99 2-5 ms, max 34 ms "
     "with the GIL contended) the trap's SIGTRAP would kill the released target. A step "
     "blocked in a system call arms nothing (PTRACE_SYSCALL; its stops report "
     "SIGTRAP|0x80, which Linux never posts). A group stop of a SIGSTOPped target stays"),
    ("ctl", "emt info", CONST, "no Linux signal: emt -> EOPNOTSUPP ('SIGEMT does not "
     "exist on Linux'): compat promises no SIGEMT, nothing changes; info is accepted and "
     "delivers nothing (SIGINFO's default action is to ignore and no Linux process can "
     "catch it); a traced-and-stopped target resumes without a signal (p_xstat = 0)"),
    ("status extras", "state", APPROX, "ProcExtras (ps/w extension): stat state; t->T, "
     "I (idle kthread) -> I, W/P/K -> D; Linux cannot tell FreeBSD's I (asleep > 20 s) "
     "from S; a multithreaded process shows its main thread's state"),
    ("status extras", "tpgid nice nthreads tty_dev rss_pages vsz lastcpu", EXACT,
     "stat tpgid, nice, num_threads, tty_nr, rss, vsize, processor"),
    ("status extras", "traced tracer", EXACT, "status TracerPid (thread id -> its Tgid)"),
    ("status extras", "locked_pages system exiting", EXACT,
     "status VmLck != 0 kB; PF_KTHREAD; PF_EXITING or zombie"),
    ("status extras", "priority", APPROX, "stat priority (20+nice, < 0 realtime): FreeBSD's "
     "pri_level - PUSER has no Linux twin; ps prints it as PRI"),
    ("zombies()", "status records", EXACT, "extension for ps: zombie/exiting processes "
     "(lookup with zombies=True), which the procfs tree hides as FreeBSD does"),
    ("ps", "%cpu", APPROX, "cpu time / lifetime (procps' rule); FreeBSD's decaying "
     "p_pctcpu average has no Linux source"),
    ("ps", "jobc", APPROX, "pgrp_calc_jobc() over the visible processes"),
    ("ps", "jid", CONST, "0 outside a jail, -1 inside one (Linux has no jail ids)"),
    ("ps", "STAT W V C", CONST, "never printed: no swapped-out processes, no vfork-wait or "
     "capability-mode flag on Linux"),
)


def markdown() -> str:
    lines = ["# Fidelity of the Linux backend", "",
             "Generated by `bsdprocfs fidelity` from `compat/bsdprocfs/fidelity.py`; do not "
             "edit by hand.", "",
             "| node | field | grade | source and bound |", "|---|---|---|---|"]
    for node, field, grade, why in FIDELITY:
        lines.append(f"| {node} | {field} | {grade} | {why} |")
    return "\n".join(lines) + "\n"
