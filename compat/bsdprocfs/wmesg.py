"""Linux wait channel (kernel symbol) -> FreeBSD wait message (td_wmesg).

Approximated: Linux symbols name kernel functions, FreeBSD wmesgs name the
sleep.  The table covers the sleeps measured in linux-mapping.md §1.6; an
unknown symbol prints its first 8 bytes (WMESGLEN), as FreeBSD truncates.
"""

from __future__ import annotations

WMESGLEN = 8

SYMBOLS = {
    "hrtimer_nanosleep": "nanslp", "do_nanosleep": "nanslp", "clock_nanosleep": "nanslp",
    "do_wait": "wait", "kernel_wait4": "wait",
    "pipe_read": "piperd", "anon_pipe_read": "piperd", "pipe_write": "pipewr",
    "anon_pipe_write": "pipewr", "wait_for_partner": "fifoor",
    "n_tty_read": "ttyin", "wait_woken": "ttyin",
    "poll_schedule_timeout": "select", "do_select": "select", "do_sys_poll": "select",
    "do_epoll_wait": "kqread", "ep_poll": "kqread",
    "futex_wait_queue": "uwait", "futex_do_wait": "uwait", "futex_wait_queue_me": "uwait",
    "inet_csk_accept": "accept", "unix_stream_read_generic": "sbwait",
    "unix_dgram_recvmsg": "sbwait", "sk_wait_data": "sbwait", "__skb_wait_for_more_packets":
    "sbwait", "__do_sys_pause": "pause", "sys_pause": "pause",
    "do_sigtimedwait": "sigwait", "sigsuspend": "pause", "__do_sys_rt_sigsuspend": "pause",
    "do_signal_stop": "stopped", "ptrace_stop": "stopped",
    "io_schedule": "biord", "folio_wait_bit_common": "biord", "wait_on_page_bit_common": "biord",
    "jbd2_log_wait_commit": "jbdwait",
}


def wmesg_for(symbol: str, state: str) -> str:
    """The FreeBSD wmesg for a Linux wchan symbol; ``nochan`` when not sleeping."""
    if state == "R" or symbol in ("", "0"):
        return "nochan"
    base = symbol.split(".", 1)[0]
    return SYMBOLS.get(base) or base[:WMESGLEN]
