"""regs, fpregs and dbregs hold known values at FreeBSD's offsets, on amd64, i386 and
aarch64 (the Vagrant lanes run this file in a VM of each architecture).

The subject is a few instructions of assembly per architecture: it loads constants
into registers a read(2) leaves alone (general and floating-point/vector ones), then
blocks in read(fd, buf, n) on a pipe nobody writes, through the raw system call
instruction. Stopped there (ctl attach), every checked byte of the nodes has one right
value. Offsets are written out here from FreeBSD's <machine/reg.h>, not taken from
ptrace/layouts.py, so a wrong layout fails. The paths under test: GETREGS and
GETFPREGS with 32-bit structs on i386, GETREGSET (NT_PRSTATUS, NT_PRFPREG,
NT_ARM_HW_WATCH) on aarch64, PEEKUSER/POKEUSER of the debug registers on x86.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest
from test_ptrace_util import needs_ptrace

from bsdprocfs.debug import get_debugger, proc_state
from bsdprocfs.ptrace import linux as lx
from bsdprocfs.ptrace.layouts import host_arch

ARCH = host_arch()
pytestmark = [needs_ptrace, pytest.mark.timeout(120),
              pytest.mark.skipif(ARCH not in ("amd64", "i386", "aarch64"),
                                 reason=f"no FreeBSD register layout for {ARCH}")]

N = 3001                                    # read(fd, buf, N)

# registers the subject loads, per architecture: {FreeBSD field: (offset, value)}
GPR = {
    "amd64": {"r_r15": (0, 0x1515151515151515), "r_r14": (8, 0x1414141414141414),
              "r_r13": (16, 0x1313131313131313), "r_r12": (24, 0x1212121212121212),
              "r_r10": (40, 0x1010101010101010), "r_r9": (48, 0x0909090909090909),
              "r_r8": (56, 0x0808080808080808), "r_rbp": (80, 0x0BB0BB0BB0BB0BB0),
              "r_rbx": (88, 0x0B0B0B0B0B0B0B0B)},
    "i386": {"r_edi": (12, 0xD1D1D1D1), "r_esi": (16, 0x51515151),
             "r_ebp": (20, 0xBDBDBDBD)},
    "aarch64": {f"x{i}": (8 * i, int.from_bytes(bytes([i]) * 8, "little"))
                for i in range(19, 29)},
}
# the read(fd, buf, n) arguments: {argument: offset}, and the register width
ARGS = {"amd64": (8, {"fd": 64, "buf": 72, "n": 96}),           # r_rdi, r_rsi, r_rdx
        "i386": (4, {"fd": 28, "buf": 36, "n": 32}),            # r_ebx, r_ecx, r_edx
        "aarch64": (8, {"buf": 8, "n": 16})}                   # x1, x2 (x0: the result)
# amd64: xmm8..15 (fxsave, at 160 + 16 i); aarch64: v16..23 (at 16 i); i386: the x87
# stack st(0)..st(7), 10 bytes each after the 28-byte environment (save87)
VEC = {"amd64": [(160 + 16 * i, bytes((0x80 + 16 * (i - 8) + j) for j in range(16)))
                 for i in range(8, 16)],
       "aarch64": [(16 * i, bytes(((16 * i + j) ^ 0x5A) & 0xFF for j in range(16)))
                   for i in range(16, 24)]}


def x87(k: int) -> bytes:
    """The 80-bit extended encoding of the integer k > 0 (what fild/fstpt produce)."""
    e = k.bit_length() - 1
    return struct.pack("<QH", k << (63 - e), 16383 + e)


# st(0) = 8, ..., st(7) = 1 (the subject pushes 1 first, 8 last)
VEC["i386"] = [(28 + 10 * i, x87(8 - i)) for i in range(8)]

# the syscall number register: rax/eax are overwritten by the interrupted call's result
NR = {"aarch64": (64, 63)}                  # x8 = __NR_read

ASM = {
    "amd64": r"""
    .text
    .globl block
block:                      /* block(fd, buf, n, pat): rdi, rsi, rdx, rcx */
    movdqu 0(%rcx), %xmm8
    movdqu 16(%rcx), %xmm9
    movdqu 32(%rcx), %xmm10
    movdqu 48(%rcx), %xmm11
    movdqu 64(%rcx), %xmm12
    movdqu 80(%rcx), %xmm13
    movdqu 96(%rcx), %xmm14
    movdqu 112(%rcx), %xmm15
    movabs $0x1515151515151515, %r15
    movabs $0x1414141414141414, %r14
    movabs $0x1313131313131313, %r13
    movabs $0x1212121212121212, %r12
    movabs $0x1010101010101010, %r10
    movabs $0x0909090909090909, %r9
    movabs $0x0808080808080808, %r8
    movabs $0x0BB0BB0BB0BB0BB0, %rbp
    movabs $0x0B0B0B0B0B0B0B0B, %rbx
    xor %eax, %eax           /* __NR_read */
    syscall
    mov $60, %eax            /* exit(0) once the pipe closes */
    xor %edi, %edi
    syscall
""",
    "i386": r"""
    .text
    .globl block
block:                      /* block(fd, buf, n, pat): on the stack */
    mov 16(%esp), %eax
    fldt 0(%eax)
    fldt 10(%eax)
    fldt 20(%eax)
    fldt 30(%eax)
    fldt 40(%eax)
    fldt 50(%eax)
    fldt 60(%eax)
    fldt 70(%eax)
    mov 4(%esp), %ebx
    mov 8(%esp), %ecx
    mov 12(%esp), %edx
    mov $0xD1D1D1D1, %edi
    mov $0x51515151, %esi
    mov $0xBDBDBDBD, %ebp
    mov $3, %eax             /* __NR_read */
    int $0x80
    mov $1, %eax             /* exit(0) once the pipe closes */
    xor %ebx, %ebx
    int $0x80
""",
    "aarch64": r"""
    .text
    .globl block
block:                      /* block(fd, buf, n, pat): x0, x1, x2, x3 */
    ld1 {v16.16b, v17.16b, v18.16b, v19.16b}, [x3], #64
    ld1 {v20.16b, v21.16b, v22.16b, v23.16b}, [x3]
""" + "".join(f"    ldr x{i}, ={GPR['aarch64'][f'x{i}'][1]:#x}\n" for i in range(19, 29)) + r"""
    mov x8, #63              /* __NR_read */
    svc #0
    mov x8, #93              /* exit(0) once the pipe closes */
    mov x0, #0
    svc #0
    .ltorg
""",
}

MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
void block(int fd, char *buf, long n, const unsigned char *pat);
static char buf[4096] __attribute__((aligned(16)));
static const unsigned char pat[] = { %s };
int main(int argc, char **argv) {
    printf("%%lx\n", (unsigned long)buf);
    fflush(stdout);
    block(atoi(argv[1]), buf, %d, pat);
    return 1;
}
"""


@pytest.fixture(scope="module")
def subject_exe(tmp_path_factory) -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("needs gcc to build the register subject")
    d = tmp_path_factory.mktemp("regs_known")
    vec = VEC[ARCH]
    # the x87 stack: fldt pushes, so st(0) is the value loaded last
    pat = b"".join(v for _, v in (vec[::-1] if ARCH == "i386" else vec))
    (d / "main.c").write_text(MAIN % (", ".join(str(b) for b in pat), N))
    (d / "block.S").write_text(ASM[ARCH])
    exe = str(d / "subject")
    subprocess.run([cc, "-O0", "-o", exe, str(d / "main.c"), str(d / "block.S")], check=True)
    os.chmod(d, 0o755)
    return exe


class Subject:
    """The subject, blocked in read(fd, buf, N) and stopped by ctl attach."""

    def __init__(self, exe: str, fs) -> None:
        self.rfd, self.wfd = os.pipe()
        self.proc = subprocess.Popen([exe, str(self.rfd)], pass_fds=(self.rfd,),
                                     stdout=subprocess.PIPE)
        os.close(self.rfd)
        assert self.proc.stdout is not None
        self.buf = int(self.proc.stdout.readline(), 16)
        self.pid = self.proc.pid
        self.fd = self.rfd
        self._wait_blocked()
        fs.write(self.pid, "ctl", b"attach")
        fs.write(self.pid, "ctl", b"wait")
        assert proc_state(self.pid) == "t"

    def _wait_blocked(self) -> None:
        """Until the kernel shows the subject asleep in read (syscall 0/3/63)."""
        import time
        nr = {"amd64": "0", "i386": "3", "aarch64": "63"}[ARCH]
        deadline = time.monotonic() + 30
        words: list[str] = []
        while time.monotonic() < deadline:
            with open(f"/proc/{self.pid}/syscall") as f:
                words = f.read().split()
            if words and words[0] == nr and proc_state(self.pid) == "S":
                return
            time.sleep(0.01)
        raise AssertionError(f"subject never blocked in read: {words}")

    def close(self) -> None:
        dbg = get_debugger()
        if dbg.traced_by_us(self.pid):
            try:
                dbg.tracer.call(dbg._op_detach, self.pid)
            except OSError:
                pass
        self.proc.kill()
        self.proc.wait(10)
        os.close(self.wfd)


@pytest.fixture
def fs():
    import bsdprocfs
    return bsdprocfs.ProcFS(backend="linux")


@pytest.fixture
def subject(subject_exe, fs):
    s = Subject(subject_exe, fs)
    yield s
    s.close()


def word(data: bytes, off: int, width: int) -> int:
    return int.from_bytes(data[off:off + width], "little")


SIZES = {"amd64": (176, 512, 128), "i386": (76, 176, 32), "aarch64": (272, 528, 520)}


def test_regs_hold_the_loaded_registers_and_the_read_arguments(fs, subject):
    raw = fs.read(subject.pid, "regs")
    assert len(raw) == SIZES[ARCH][0]
    width = 4 if ARCH == "i386" else 8
    got = {name: word(raw, off, width) for name, (off, _) in GPR[ARCH].items()}
    assert got == {name: v for name, (_, v) in GPR[ARCH].items()}
    w, offs = ARGS[ARCH]
    args = {a: word(raw, off, w) for a, off in offs.items()}
    want = {"fd": subject.fd, "buf": subject.buf, "n": N}
    assert args == {a: want[a] for a in offs}
    if ARCH in NR:
        off, nr = NR[ARCH]
        assert word(raw, off, 8) == nr


def test_fpregs_hold_the_loaded_vector_registers(fs, subject):
    raw = fs.read(subject.pid, "fpregs")
    assert len(raw) == SIZES[ARCH][1]
    got = [(off, raw[off:off + len(v)]) for off, v in VEC[ARCH]]
    assert got == VEC[ARCH]
    if ARCH == "aarch64":
        # fp_sr, fp_cr at 512, 516: what GETREGSET NT_PRFPREG reports after the vregs
        note = get_debugger().tracer.call(lx._getregset, subject.pid, lx.NT_PRFPREG, 528)
        assert raw[512:520] == note[512:520]
    if ARCH == "i386":
        # save87: fpr_env[1] is the status word; TOP = 0 after eight pushes
        assert (word(raw, 4, 4) >> 11) & 7 == 0


def test_dbregs_write_lands_at_its_offsets(fs, subject):
    raw = bytearray(fs.read(subject.pid, "dbregs"))
    assert len(raw) == SIZES[ARCH][2]
    if ARCH == "aarch64":
        # db_nbkpts/db_nwtpts: the counts NT_ARM_HW_BREAK/WATCH report
        dbg = get_debugger()
        info = [int.from_bytes(dbg.tracer.call(lx._getregset, subject.pid, note, 264)[:4],
                               "little") for note in (lx.NT_ARM_HW_BREAK, lx.NT_ARM_HW_WATCH)]
        assert (raw[0], raw[1], raw[2]) == ((info[1] >> 8) & 0xFF, info[0] & 0xFF,
                                            info[1] & 0xFF)
        if raw[2] == 0:
            pytest.skip("this CPU has no watchpoints")
        # watchpoint 0 on buf: enabled, EL0, store, 8 bytes (BAS 0xff)
        ctrl = 1 | (2 << 1) | (2 << 3) | (0xFF << 5)
        struct.pack_into("<QI", raw, 264, subject.buf, ctrl)
        assert fs.write(subject.pid, "dbregs", bytes(raw)) == 520
        back = fs.read(subject.pid, "dbregs")
        assert struct.unpack_from("<QI", back, 264) == (subject.buf, ctrl)
        return
    w = 8 if ARCH == "amd64" else 4
    # a fresh process: no address, nothing enabled (DR6's idle value is Linux's
    # 0xffff0ff0, test_ptrace_regs.py; DR4/5 are reserved, read as 0)
    assert [word(raw, w * i, w) for i in (0, 1, 2, 3, 4, 5, 7)] == [0] * 7
    # DR0 = buf, DR7: L0 enabled, break on data writes (RW0 = 01), 4 bytes (LEN0 = 11)
    dr7 = 0x1 | (0b01 << 16) | (0b11 << 18)
    raw[0:w] = subject.buf.to_bytes(w, "little")
    raw[7 * w:8 * w] = dr7.to_bytes(w, "little")
    assert fs.write(subject.pid, "dbregs", bytes(raw)) == len(raw)
    back = fs.read(subject.pid, "dbregs")
    assert (word(back, 0, w), word(back, 7 * w, w)) == (subject.buf, dr7)
    # and the kernel holds them (PEEKUSER u_debugreg[0], [7])
    dbg = get_debugger()
    base = lx.DEBUGREG_OFFSET[ARCH]
    from ptrace.binding.func import ptrace_peekuser
    got = [dbg.tracer.call(ptrace_peekuser, subject.pid, base + w * i) for i in (0, 7)]
    assert got == [subject.buf, dr7]
