"""Reading a server's processes from /proc: CPU time, memory, listeners.

CPU time is utime + stime of /proc/PID/stat (all threads of a process,
including those that already exited); a process that exits during a
measured interval is lost, so the servers are configured to keep theirs
(see bench/peers/). Memory is PSS (/proc/PID/smaps_rollup: shared pages
split among the processes sharing them) and RSS.
"""

import os
import signal
import socket
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat(pid):
    """(comm, ppid, sid, cpu seconds) of pid, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.index("(") + 1:text.rindex(")")]
    f = text[text.rindex(")") + 2:].split()
    # fields after comm: state ppid pgrp session ... utime(12) stime(13)
    return comm, int(f[1]), int(f[3]), (int(f[11]) + int(f[12])) / CLK_TCK


def pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def session_pids(sid, comms=None):
    """Processes of session sid (optionally only those named in comms)."""
    out = []
    for pid in pids():
        s = stat(pid)
        if s and s[2] == sid and s[0] != "Z" and (comms is None or s[0] in comms):
            out.append(pid)
    return out


def wait_gone(list_pids, timeout, interval=0.05):
    """Wait up to timeout s for list_pids() to come back empty."""
    deadline = time.monotonic() + timeout
    while list_pids() and time.monotonic() < deadline:
        time.sleep(interval)


def end_all(list_pids, signals=(signal.SIGTERM, signal.SIGKILL), timeout=5):
    """Each signal in turn to what list_pids() names, waiting up to timeout
    s after each for them to go. Processes already gone are no error."""
    for sig in signals:
        for pid in list_pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        wait_gone(list_pids, timeout)


def cpu(pidlist):
    """{pid: cpu seconds} of the processes still alive."""
    out = {}
    for pid in pidlist:
        s = stat(pid)
        if s:
            out[pid] = s[3]
    return out


def cpu_delta(before, after):
    """CPU seconds spent between two cpu() snapshots: a process born in
    between counts whole, one that died is lost (none should)."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def memory(pidlist):
    """(PSS bytes, RSS bytes) summed over the processes."""
    pss = rss = 0
    for pid in pidlist:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return pss, rss


def settled_memory(pidfn, timeout=12.0, interval=1.0):
    """Memory of pidfn()'s processes once it stops moving (two readings a
    second apart within 0.2 % or 64 KiB), or after timeout: servers accept
    and allocate asynchronously after the client sees its connect complete,
    and an allocator that returns freed pages over time (sluice's jemalloc
    purges over about a second) is still shrinking for a while after the
    last handshake. Readings closer together took a slow purge for a
    settled figure and moved the idle result by +-30 % between runs."""
    last = memory(pidfn())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(interval)
        now = memory(pidfn())
        if abs(now[0] - last[0]) <= max(0.002 * now[0], 64 * 1024):
            return now
        last = now
    return last


def thread_cpu(pid):
    """{thread name: [user s, system s, on-CPU s]} summed over pid's
    threads of that name (user and system in clock ticks from
    /proc/PID/task/TID/stat; on-CPU in nanoseconds from .../schedstat,
    which a short run needs: ticks are 10 ms)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            ns = int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
        comm = text[text.index("(") + 1:text.rindex(")")]
        f = text[text.rindex(")") + 2:].split()
        t = out.setdefault(comm, [0.0, 0.0, 0.0])
        t[0] += int(f[11]) / CLK_TCK
        t[1] += int(f[12]) / CLK_TCK
        t[2] += ns / 1e9
    return out


def thread_group(comm):
    """sluice's threads by role: its dataplane cores (sl-core*), its TLS
    workers (sl-tls*), and the rest (main, DPDK's own, health checks)."""
    return ("cores" if comm.startswith("sl-core") else
            "workers" if comm.startswith("sl-tls") else "other")


def listening_ports(pid=None, host=None):
    """Ports with an IPv4 TCP socket in LISTEN state (in this netns, or in
    the netns of process pid; on address host only, if given)."""
    want = None
    if host:
        want = "".join(f"{int(b):02X}" for b in reversed(host.split(".")))
    out = set()
    with open(f"/proc/{pid}/net/tcp" if pid else "/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            addr, port = fields[1].split(":")
            if fields[3] == "0A" and (want is None or addr == want):
                out.add(int(port, 16))
    return out


def wait_listening(ports, timeout, alive=lambda: True):
    """True once every port listens; False on timeout or when alive()
    turns false (the server exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if set(ports) <= listening_ports():
            return True
        if not alive():
            return False
        time.sleep(0.05)
    return False


def connectable(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False
