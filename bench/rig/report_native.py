"""The native stack's part of bench/RESULTS.md: cycles per operation beside
the kernel stack, what each figure counts, and its plot."""

from pathlib import Path

from .report import cost, fmt, ratio, references, table


def _res(data, server, key):
    r = data["servers"].get(server, {}).get("results", {}).get(key) or {}
    return r if "ops" in r else None


def cycles(key, r, tsc):
    """Cycles per op (bulk: per MiB): the native row's busy cycles, the
    kernel row's CPU time times the TSC rate."""
    if not r or not tsc:
        return None
    if "native" in r:
        return r.get("cycles_per_mib") if key == "bulk" else r.get("cycles_per_op")
    c = cost(key, r)
    return None if c is None else c * tsc / 1e6


ROWS = ("sluice-native", "sluice-native-tap")


def transport(data, name):
    """net_memif or net_tap: what a native row ran on (runs from before the
    memif row had only the tap one, under sluice-native)."""
    return data["servers"].get(name, {}).get("transport", "net_tap")


def section(data):
    """Markdown lines; [] when the run had no native row."""
    out = []
    for name in ROWS:
        if name in data["servers"]:
            out += _section(data, name)
    if "sluice-native" in data["servers"] and transport(data, "sluice-native") == "net_memif":
        out += goals(data)
    return out


# Goals from issue 14, each a ratio within this run: reported, never asserted.
GOAL_NAT_HS_FLOOR, GOAL_NAT_HS_NGINX, GOAL_NAT_SMTP_FLOOR = 1.2, 0.6, 1.4
GOAL_NAT_BULK_BOUND, GOAL_NAT_STACK_PP, GOAL_NAT_IDLE_KIB = 1.5, 1000, 6.0
GOAL_KERNEL_HS_NGINX = 0.8


def goals(data):
    """The native path's goals, each from this run's own figures: the
    memif row's busy µs against OpenSSL's floor and the crypto bound the
    same run measured, and against nginx-mail on the kernel stack."""
    refs = data["references"]
    nat = lambda k: _res(data, "sluice-native", k)  # noqa: E731
    ker = lambda srv, k: _res(data, srv, k)          # noqa: E731
    out = ["## Goals of the native path (issue 14; each a ratio within this run, "
           "reported, not asserted)", ""]

    def line(goal, value, x, limit):
        mark = "–" if x is None else ("met" if x <= limit else "not met")
        out.append(f"- {goal}: {value} ({mark})")

    hs = "handshake-tls13-ecdsa"
    n_hs, fl = cost(hs, nat(hs)), references(hs, refs)[1]
    x = ratio(n_hs, fl)
    line(f"native full handshake (TLS 1.3 ECDSA P-256) at most {GOAL_NAT_HS_FLOOR}× "
         "OpenSSL's floor", f"{fmt(x, 2, '×')} ({fmt(n_hs)} against {fmt(fl)} µs)",
         x, GOAL_NAT_HS_FLOOR)
    ng = cost(hs, ker("nginx", hs))
    x = ratio(n_hs, ng)
    line(f"native full handshake at most {GOAL_NAT_HS_NGINX}× nginx-mail's CPU on the "
         "kernel stack", f"{fmt(x, 2, '×')} (nginx-mail {fmt(ng)} µs)", x, GOAL_NAT_HS_NGINX)
    n_smtp, fl = cost("smtp", nat("smtp")), references("smtp", refs)[1]
    x = ratio(n_smtp, fl)
    line(f"native SMTP STARTTLS session with a 4 KiB message at most "
         f"{GOAL_NAT_SMTP_FLOOR}× the floor (a handshake and 4 KiB read)",
         f"{fmt(x, 2, '×')} ({fmt(n_smtp)} against {fmt(fl)} µs)", x, GOAL_NAT_SMTP_FLOOR)
    n_bulk, bound = cost("bulk", nat("bulk")), references("bulk", refs)[0]
    x = ratio(n_bulk, bound)
    line(f"native bulk relay at most {GOAL_NAT_BULK_BOUND}× the AES-128-GCM bound",
         f"{fmt(x, 2, '×')} ({fmt(n_bulk)} against {fmt(bound)} µs/MiB)", x,
         GOAL_NAT_BULK_BOUND)
    pp = {k: (nat(k) or {}).get("native", {}).get("stack_cycles_per_packet")
          for k in (hs, "smtp", "bulk")}
    worst = max((v for v in pp.values() if v), default=None)
    line(f"native stack at most {GOAL_NAT_STACK_PP:,} cycles per packet outside TLS",
         ", ".join(f"{k} {fmt(v, 0)}" for k, v in pp.items()), worst, GOAL_NAT_STACK_PP)
    idle = (nat("idle") or _idle(data)) or {}
    kib = idle.get("bytes_per_conn_tls")
    kib = None if kib is None else kib / 1024
    line(f"native idle TLS connection at most {GOAL_NAT_IDLE_KIB:g} KiB",
         f"{fmt(kib, 1, ' KiB')} (PSS growth per connection; bench/idle-scale holds "
         "many more)", kib, GOAL_NAT_IDLE_KIB)
    k_hs = cost(hs, ker("sluice", hs))
    x = ratio(k_hs, ng)
    line(f"kernel-stack full handshake at most {GOAL_KERNEL_HS_NGINX}× nginx-mail's "
         "(the goal is the median of three alternating runs; this is one)",
         fmt(x, 2, "×"), x, GOAL_KERNEL_HS_NGINX)
    sc = data.get("scaling_native", {}).get("runs", {})
    one, two = sc.get("1", {}).get("cycles_per_op"), sc.get("2", {}).get("cycles_per_op")
    out.append("- scaling, 2 cores and 2 workers against 1 and 1 on the memif rig: "
               + (f"{ratio(two, one):.2f}× the busy cycles per handshake (see \"Worker "
                  "scaling on the native stack\")" if one and two else
                  "not measured by this run (`bench/run --scaling`)"))
    return out + [""]


def _idle(data):
    r = data["servers"].get("sluice-native", {}).get("results", {}).get("idle") or {}
    return r if "bytes_per_conn_tls" in r else None


MEMIF_INTRO = [
    "**No kernel on the data path.** sluice's two ports are DPDK `net_memif` "
    "servers: shared-memory rings, no system call per frame. The load generator "
    "and the sink are memif clients with a user-space TCP/IP of their own "
    "(`bench/natio.c`: sluice's `dataplane/net/` library and OpenSSL over a BIO on "
    "its connections; `loadgen --native`, `sink --native`): the load generator "
    "from 192.0.2.1-4 to 192.0.2.10, the sink at 198.51.100.1 behind 198.51.100.10. "
    "What sluice spends is its own work: TLS, sessions, its TCP/IP and the memif "
    "driver's copy of each frame into and out of the rings. The load generator's "
    "own busy cycles (TSC in its loop passes that moved frames, which include its "
    "TLS client and its TCP/IP) are shown beside sluice's: on this machine it "
    "shares one CPU with the sink and spends about as much per operation as sluice, "
    "so it bounds the rate.",
    ""]


def _section(data, name):
    nat = data["servers"][name]
    tsc = data["references"].get("tsc_hz")
    memif = transport(data, name) == "net_memif"
    title = "## The native stack beside the kernel stack" + ("" if name == "sluice-native"
                                                             else " (net_tap)")
    out = [title, ""]
    results = nat.get("results", {})
    if all("na" in r for r in results.values()):
        why = next(iter(results.values()), {}).get("na", "not run")
        return out + [f"Not measured: {why}.", ""]
    pause = data.get("native", {}).get("idle_pause_us")
    dpdk = next((r["native"]["tsc_hz_dpdk"] for r in results.values()
                 if r.get("native", {}).get("tsc_hz_dpdk")), None)
    if memif:
        out += [
            "sluice on its own TCP/IP over two DPDK `net_memif` ports (no hugepages; "
            f"`native.idle_pause_us: {pause}`), the same listeners, certificates, "
            "`cores` and `workers` as the kernel row, on the server CPU; the load "
            "generator and the sink on the other.", ""] + MEMIF_INTRO
    else:
        out += [
        "sluice on its own TCP/IP over two DPDK `net_tap` ports (no hugepages; "
        f"`native.idle_pause_us: {pause}`), the same listeners, certificates, "
        "`cores` and `workers` as the kernel row. The load generator runs in a "
        "network namespace of its own behind the first tap (192.0.2.1 → "
        "192.0.2.10), the sink in another behind the second (198.51.100.10 → "
        "198.51.100.1): the backends are on their own tap, as they would be on "
        "their own NIC. sluice itself stays in the rig's namespace, on the server "
        "CPU; the load generator and the sink on the other.",
        ""]
    out += [
        "**Which figure is which.** The kernel row's figure is CPU time (user+system "
        "of the process, /proc/PID/stat), shown here in cycles as CPU seconds × the "
        "TSC rate. The native row's figure is **busy cycles**, not the process's CPU "
        "time: a polling core's CPU time is partly waiting, not work. Busy cycles are "
        "(a) the dataplane cores' share: the lower of sluice's own count of TSC cycles "
        "in loop passes that found work (`nat_busy_cycles`, read with SIGUSR1 before "
        "and after the run) and the core threads' on-CPU time (schedstat), since each "
        "over-counts in its own way (the TSC count includes time the core was "
        "preempted inside a busy pass: on one server CPU the TLS worker it just woke "
        "runs its whole handshake there; the on-CPU time includes the idle polls "
        "before each pause); plus (b) the on-CPU time of every other thread (the TLS "
        "workers, the main thread, DPDK's interrupt thread), which all sleep when "
        "idle. The process's wall CPU (polling included) is shown beside it.",
        "",
        "**The TSC rate** is measured in the same run by `build/bench/cryptobound` "
        "(TSC ticks across 100 ms sleeps of CLOCK_MONOTONIC_RAW, median of five): "
        f"{fmt(tsc / 1e6 if tsc else None, 1)} MHz"
        + (f"; DPDK's own estimate in sluice (`nat_tsc_hz`): {fmt(dpdk / 1e6, 1)} MHz"
           if dpdk else "") + ". These are TSC (reference) cycles: the invariant TSC "
        "ticks at a fixed rate whatever clock the core runs at.",
        ""]
    if not memif:
        out += [
        "**What the tap costs, and where.** A `net_tap` port is a file descriptor: "
        "every frame sluice receives is a read() and every frame it sends a write() "
        "on it, and in that write() the kernel runs its half of the tap, which is the "
        "receiving side of the client's (or the sink's) own TCP/IP. Those syscalls "
        "run on sluice's core thread and count in its figure (the \"core system "
        "share\" column: the part of the core threads' CPU spent in the kernel); the "
        "kernel's processing of what the load generator and the sink send runs on "
        "their CPU, outside sluice's figure. A real NIC costs a descriptor write and "
        "a DMA instead, so on a NIC the native figure would lose most of the core "
        "threads' system time (the share times the cores' part of the figure; the "
        "pauses of an idle core are system time too, but little of it). The kernel "
        "row has the mirror image: on loopback, each side pays for the other's "
        "receive processing in its send().",
        ""]
    head = ["workload", "kernel CPU µs/op", "kernel cycles/op", "native busy cycles/op",
            "native ÷ kernel", "native wall CPU µs/op", "core system share",
            "core idle polls", "frames/op", "input cycles/rx frame",
            "stack cycles/packet",
            "ops/s kernel / native", "p99 ms kernel / native", "native errors"]
    if memif:
        head.insert(-3, "load generator busy cycles/op")
    rows, basis = [], []
    for w in data["workloads"]:
        key = w["key"]
        if w["family"] == "idle":
            continue
        n = results.get(key) or {}
        k = _res(data, "sluice", key)
        bulk = key == "bulk"
        if "ops" not in n:
            why = n.get("na") or (n.get("error") or "not run").splitlines()[0]
            rows.append([key, fmt(cost(key, k)), fmt(cycles(key, k, tsc), 0),
                         f"failed: {why}"[:120]] + [""] * (len(head) - 4))
            continue
        nc, kc = cycles(key, n, tsc), cycles(key, k, tsc)
        g = n["native"]["groups_s"]["cores"]
        tick = g["user_s"] + g["system_s"]
        sys_share = g["system_s"] / tick if tick else None
        wall = n.get("wall_cpu_us_per_mib") if bulk else n.get("wall_cpu_us_per_op")
        rate = (lambda r: None if not r else (r["mib_per_s"] if bulk else r["ops_per_s"]))
        p99 = (lambda r: None if not r else r["latency_us"]["p99"] / 1000)
        errs = sum(n["errors"].values())
        nn = n["native"]
        basis.append(nn["core_basis"])
        idle = nn.get("idle_poll_share")
        row = [key + (" (per MiB)" if bulk else ""), fmt(cost(key, k)), fmt(kc, 0),
               fmt(nc, 0), fmt(ratio(nc, kc), 2, "×"), fmt(wall),
               fmt(None if sys_share is None else 100 * sys_share, 0, " %"),
               fmt(None if idle is None else 100 * idle, 1, " %"),
               fmt(n.get("frames_per_op"), 1), fmt(nn.get("input_cycles_per_rx_frame"), 0),
               fmt(nn.get("stack_cycles_per_packet"), 0),
               f"{fmt(rate(k), 1)} / {fmt(rate(n), 1)}",
               f"{fmt(p99(k), 2)} / {fmt(p99(n), 2)}", f"{errs} of {n['started']}"]
        if memif:
            lg = n.get("loadgen_native") or {}
            per = lg.get("busy_cycles_per_op")
            if bulk and lg.get("busy_cycles") is not None and n.get("payload_bytes"):
                per = lg["busy_cycles"] / (n["payload_bytes"] / (1 << 20))
            row.insert(-3, fmt(per, 0))
        rows.append(row)
    out += table(head, rows) + [""]
    cpu_basis = sum(1 for b in basis if not b.startswith("TSC"))
    out += [f"The cores' share came from the core threads' CPU time in {cpu_basis} of "
            f"{len(basis)} workloads and from sluice's TSC busy count in the rest. "
            + ("Where it is the CPU time, the TSC count was higher (the preemption "
               "described above), and the busy figure is then close to the wall CPU: "
               "with `idle_pause_us` > 0 a core that finds no work sleeps after "
               "`idle_polls` empty passes, and \"core idle polls\" (sluice's idle "
               "cycles over the core threads' CPU time) shows how little the polling "
               "costs. " if cpu_basis else "")
            + "\"frames/op\" counts frames both ways on both ports. \"input cycles/rx "
            "frame\" is what sluice's own TCP/IP spends on a received frame (Ethernet, "
            "IP, TCP input and the ACK it queues; from its `nat_cycles_per_frame`): "
            "the session work a frame wakes runs later and is not in it, nor the "
            + ("memif driver's copies. " if memif else "tap's read() and write(). ")
            + "\"stack cycles/packet\" is the whole packet path outside TLS and the "
            "session over frames both ways: the stacks' input, their timers (every "
            "loop pass, idle ones too), the API calls (`tcp_send` building segments "
            "and copying them into mbufs, `tcp_read` copying bytes out) and the "
            "driver's bursts and mbuf frees (`nat_stack_*_cycles`, `nat_drv_cycles`; "
            "the goal is at most 1,000). "
            + "Set against the busy cycles per frame (busy "
            "cycles/op ÷ frames/op) it shows how small the stack's part is; the rest "
            "is the TLS records, the relay"
            + (" and the driver. " if memif else " and, above all (the system share), the "
               "tap's syscalls. ")
            + "Every count behind these "
            "figures (the counter deltas, each thread's user, system and on-CPU time) "
            "is in the JSON under `native`.", ""]
    idle = [w["key"] for w in data["workloads"] if w["family"] == "idle"]
    if idle:
        n = results.get(idle[0]) or {}
        k = _res(data, "sluice", idle[0]) or {}
        if "bytes_per_conn_tls" in n:
            kib = lambda v: fmt(None if v is None else v / 1024)  # noqa: E731
            out += [f"Idle connections ({n['held'].get('tls')} held): the native row "
                    f"grew by {kib(n['bytes_per_conn_plain'])} KiB per connection before "
                    f"TLS and {kib(n['bytes_per_conn_tls'])} KiB after it (PSS), against "
                    f"{kib(k.get('bytes_per_conn_plain'))} and "
                    f"{kib(k.get('bytes_per_conn_tls'))} on the kernel stack, where "
                    "the kernel holds the TCP buffers outside the process. The native "
                    "stack's buffers are in the process, and its DPDK memory (the "
                    "mbuf pools of `eal.memory_mb`, reserved at start) is counted as "
                    "its pages are first touched.", ""]
    return out


def plot(data, d, plt, save):
    """native_cycles.png: kernel CPU cycles and native busy cycles per op."""
    nat = data["servers"].get("sluice-native", {}).get("results", {})
    tsc = data["references"].get("tsc_hz")
    keys = [w["key"] for w in data["workloads"] if w["family"] not in ("idle",)
            and "ops" in (nat.get(w["key"]) or {})]
    if not keys or not tsc:
        return None
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.38
    for i, (label, fn) in enumerate((
            ("kernel stack: CPU time × TSC rate",
             lambda k: cycles(k, _res(data, "sluice", k), tsc)),
            ("native stack: busy cycles", lambda k: cycles(k, nat.get(k), tsc)))):
        xs = [g + (i - 0.5) * width for g in range(len(keys))]
        ax.bar(xs, [(fn(k) or 0) / 1e3 for k in keys], width, label=label)
    ax.set_xticks(range(len(keys)))
    ax.set_xticklabels([k + (" (/MiB)" if k == "bulk" else "") for k in keys],
                       rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("thousand TSC cycles per operation (log)")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title("sluice: kernel stack against native stack ("
                 + transport(data, "sluice-native") + "), cycles per operation")
    fig.tight_layout()
    return save(fig, Path(d) / "native_cycles.png", plt)

