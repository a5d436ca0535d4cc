#!/usr/bin/python3
"""Group the samples of a `perf record --call-graph dwarf` of sluice by
function group (bench/HANDSHAKE.md): libcrypto, libssl, the allocator,
sluice's TLS glue (tls/), its session layer (session/, proto/), the rest of
sluice, the per-session log line, and the kernel split into syscalls and
TCP/IP, thread switches, and interrupts or involuntary preemption. A
sample counts where it was taken (its leaf), a libc leaf for its nearest
caller outside libc (OpenSSL's locks and string compares are OpenSSL's),
and a sample in an interrupt's return to user space (in a VM perf samples
with cpu-clock, whose own tick lands there) for the user code it
interrupted.

On the native stack (DPDK) the kernel's share becomes sluice's own:
its TCP/IP stack (dataplane/net/), the driver (librte_* with the memif
PMD, io/dpdk.c and io/native.c: the RX and TX bursts, mbufs, the frames'
copies into them), and the polling of the idle loop (a sample under
nat_idle or nat_pause, the kernel's ppoll of a pause included). An idle
pass's empty RX burst counts as the driver's: the TSC split of busy and
idle passes (nat_busy_cycles, nat_idle_cycles) says how much of the
loop is idle.

    bench/perfgroups.py perf.data build/dataplane/sluice
"""

import collections
import re
import subprocess
import sys


def source_files(binary):
    """{function: source file} of sluice's functions (nm -l)."""
    out = subprocess.run(["nm", "-l", "--defined-only", binary], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True).stdout
    files = {}
    for line in out.splitlines():
        p = line.split()
        if len(p) >= 4 and p[1] in "tT":
            f = p[3].rsplit(":", 1)[0]
            files[p[2]] = re.sub(r"^.*?/\.\./", "", f)
    return files


def samples(data):
    """[(thread, [(symbol, dso), ...] leaf first)] from perf script."""
    p = subprocess.run(["perf", "script", "-i", data, "-F", "comm,ip,sym,dso"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out, cur = [], None
    for line in p.stdout.splitlines():
        if not line.strip():
            if cur:
                out.append(cur)
            cur = None
        elif not line.startswith((" ", "\t")):
            cur = (line.split()[0], [])
        elif cur is not None:
            m = re.match(r"\s*[0-9a-f]+\s+(.*)\s+\((.*)\)\s*$", line)
            if m:
                sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(1).strip())
                cur[1].append((sym, m.group(2).rsplit("/", 1)[-1]))
    if cur:
        out.append(cur)
    for _, fr in out:       # an inlined frame belongs to the frame below it
        for i in range(len(fr) - 1, -1, -1):
            if fr[i][1] == "inlined":
                below = fr[i + 1][1] if i + 1 < len(fr) else "?"
                libc = fr[i][0].startswith(("__libc_", "__GI_", "__pthread", "___pthread"))
                fr[i] = (fr[i][0], "libc.so.6" if libc else below)
    return out


DRIVER = "driver (DPDK, memif PMD, io/dpdk.c, io/native.c)"
POLLING = "polling (the idle loop: idle passes, pauses)"
PAUSE = ("nat_idle", "nat_pause")


def sluice_group(sym, files):
    f = files.get(sym, "")
    if f.startswith("tls/"):
        return "sluice TLS glue (tls/)"
    if f.startswith(("dataplane/session/", "dataplane/proto/", "dataplane/quirk/")):
        return "sluice session layer (session/, proto/)"
    if f.startswith("dataplane/net/"):
        return "sluice TCP/IP stack (net/)"
    if f.startswith(("dataplane/io/dpdk.c", "dataplane/io/native.c")):
        return DRIVER
    return "sluice I/O, core loop and the rest (io/, core.c, lib/)"


def classify(fr, files, binary_name):
    syms = [s for s, _ in fr]
    if any(s in ("sess_log", "log_msg", "logline_v") for s in syms):
        return "the per-session log line (formatting, write)"
    if any(s in PAUSE for s in syms):
        return POLLING
    sym, dso = fr[0]
    kernel = lambda d: "kernel" in d or d.startswith("[")
    if kernel(dso):
        in_syscall = any(s in ("do_syscall_64", "entry_SYSCALL_64_after_hwframe") for s in syms)
        if in_syscall and any(s in ("schedule", "__schedule", "finish_task_switch.isra.0")
                              for s in syms):
            return "kernel: thread switches in a wait (epoll, eventfd)"
        if not in_syscall:
            if any(s in ("schedule", "__schedule") for s in syms):
                return "kernel: involuntary preemption (another task ran)"
            # perf's own sampling tick (cpu-clock in a VM) or another
            # interrupt returning to user space: the time is the user
            # code's it interrupted
            user = [f for f in fr if not kernel(f[1])]
            if not user:
                return "kernel: interrupts"
            return classify(user, files, binary_name)
        return "kernel: syscalls, TCP/IP, epoll"
    owner = dso
    if dso.startswith("libc.so"):
        owner = next((d for _, d in fr[1:] if not d.startswith("libc.so")), dso)
        sym = next((s for s, d in fr[1:] if not d.startswith("libc.so")), sym)
    if owner.startswith("libcrypto"):
        return "libcrypto"
    if owner.startswith("libssl"):
        return "libssl"
    if owner.startswith("libjemalloc"):
        return "allocator (jemalloc)"
    if owner.startswith("librte_"):
        return DRIVER
    if owner == binary_name:
        # an inlined helper (rte_rdtsc, le64) has no file of its own: the
        # function of sluice it was inlined into has
        sym = next((s for s, d in fr if d == binary_name and s in files), sym)
        return sluice_group(sym, files)
    return owner


def main():
    data, binary = sys.argv[1], sys.argv[2]
    files = source_files(binary)
    name = binary.rsplit("/", 1)[-1]
    groups, threads = collections.Counter(), collections.Counter()
    for thread, fr in samples(data):
        if fr:
            groups[classify(fr, files, name)] += 1
            threads[thread] += 1
    n = sum(groups.values()) or 1
    print(f"{n} samples; by thread: "
          + ", ".join(f"{t} {100 * c / n:.1f} %" for t, c in threads.most_common()))
    print("| group | share |\n|---|---|")
    for g, c in groups.most_common():
        print(f"| {g} | {100 * c / n:.1f} % |")


if __name__ == "__main__":
    main()
