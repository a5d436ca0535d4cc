"""bench/RESULTS.md and bench/plots/*.png from one run's figures."""

from pathlib import Path

MiB = 1 << 20
MSG = 4096      # the smtp and imap workloads' message size
# The message of each session workload (bench/run's WORKLOADS), in bytes.
SIZES = {"smtp": MSG, "imap": MSG, "smtp-64k": 64 << 10, "smtp-1m": 1 << 20}

# Goals from issue 7: reported against, never asserted.
GOAL_HS_NGINX, GOAL_HS_FLOOR, GOAL_STARTTLS_NGINX = 0.5, 1.1, 0.3
GOAL_BULK_BOUND, GOAL_IDLE_KIB = 2.0, 8.0


def references(key, refs):
    """(crypto bound, OpenSSL floor) in us per op for workload key (bulk:
    per MiB), or (None, None)."""
    b, f = refs["bound_us"], refs["floor_us"]
    simple = {"handshake-tls13-ecdsa": "tls13_ecdsa", "handshake-tls12-rsa": "tls12_rsa",
              "handshake-tls13-rsa": "tls13_rsa", "resume-tls13": "resume_tls13"}
    if key in simple:
        return b[simple[key]], f[simple[key]]
    if key in SIZES:
        return (b["tls13_ecdsa"] + b["aes128gcm_per_mib"] * SIZES[key] / MiB,
                f["tls13_ecdsa"] + f["read_per_mib"] * SIZES[key] / MiB)
    if key == "bulk":
        return b["aes128gcm_per_mib"], f["read_per_mib"]
    return None, None


def cost(key, r):
    """The server's CPU figure of a result: us per op (bulk: per MiB)."""
    if not r or "ops" not in r:
        return None
    return r.get("cpu_us_per_mib") if key == "bulk" else r.get("cpu_us_per_op")


def fmt(x, digits=1, unit=""):
    return "–" if x is None else f"{x:,.{digits}f}{unit}"


def ratio(a, b):
    return None if a is None or not b else a / b


def unavailable(r):
    """Why a server has no figures for a workload ("n/a: ..." or
    "failed: ..."), or None when it has them."""
    if "na" in r:
        return f"n/a: {r['na']}"
    if "error" in r:
        return f"failed: {r['error'].splitlines()[0]}"
    return None


def workload_table(data, w):
    key, refs = w["key"], data["references"]
    bound, floor = references(key, refs)
    bulk, resume = key == "bulk", key.startswith("resume")
    sl = cost(key, data["servers"].get("sluice", {}).get("results", {}).get(key))
    unit = "µs/MiB" if bulk else "µs/op"
    head = ["server", f"CPU {unit}", "× crypto bound", "× OpenSSL floor", "sluice ÷ server",
            "MiB/s" if bulk else "ops/s", "p50 ms", "p99 ms"]
    if resume:
        head.append("resumed")
    head += ["errors", "server CPU busy", "load gen. CPU"]
    rows = []
    for name, s in data["servers"].items():
        r = s["results"].get(key)
        if r is None:
            continue
        if unavailable(r):
            rows.append([s["label"], unavailable(r)] + [""] * (len(head) - 2))
            continue
        c = cost(key, r)
        lat = r["latency_us"]
        row = [s["label"], fmt(c), fmt(ratio(c, bound), 2, "×"), fmt(ratio(c, floor), 2, "×"),
               "" if name == "sluice" else fmt(ratio(sl, c), 2, "×"),
               fmt(r["mib_per_s"] if bulk else r["ops_per_s"], 1),
               fmt(lat["p50"] / 1000, 2), fmt(lat["p99"] / 1000, 2)]
        if resume:
            row.append(f"{100 * r['resumed_fraction']:.0f} %")
        errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items() if v) or "0"
        dur = r["duration_s"] or 0
        busy = 100 * r["server_cpu_s"] / dur / data["workers"] if dur else 0
        cpu_pct = 100 * r["client_cpu_s"] / dur if dur else 0
        row += [f"{errs} of {r['started']}", f"{busy:.0f} %", f"{cpu_pct:.0f} %"]
        rows.append(row)
    out = [f"### {key}: {w['title']}", ""]
    out.append(f"Crypto bound {fmt(bound)} {unit}, OpenSSL floor {fmt(floor)} {unit}.")
    out.append("")
    out += table(head, rows)
    peers = [(s["label"], ratio(sl, cost(key, s["results"].get(key))))
             for n, s in data["servers"].items()
             if n not in ("sluice", "sluice-native", "sluice-native-tap")]
    peers = [(l, x) for l, x in peers if x is not None]
    if sl is not None and peers:
        out += ["", "sluice against each peer (sluice's CPU ÷ the peer's; below 1: sluice "
                "is cheaper): " + ", ".join(f"{l} {x:.2f}×" for l, x in peers) + "."]
    nat = [data["servers"].get(n, {}).get("results", {}).get(key) or {}
           for n in ("sluice-native", "sluice-native-tap")]
    if any("ops" in r for r in nat):
        out += ["", "The native stack's row shows busy cycles as µs, not the process's "
                "CPU time (see \"The native stack beside the kernel stack\"); its "
                "\"server CPU busy\" is wall CPU, polling included."]
    return out + [""]


def idle_table(data, w):
    key = w["key"]
    head = ["server", "connections", "KiB/conn before TLS (PSS)", "KiB/conn after TLS (PSS)",
            "KiB/conn before / after (RSS)", "sluice ÷ server (after TLS)"]
    rows = []
    sl = data["servers"].get("sluice", {}).get("results", {}).get(key, {}).get(
        "bytes_per_conn_tls")
    for name, s in data["servers"].items():
        r = s["results"].get(key)
        if r is None:
            continue
        if unavailable(r):
            rows.append([s["label"], unavailable(r)] + [""] * (len(head) - 2))
            continue
        kib = lambda v: None if v is None else v / 1024  # noqa: E731
        rows.append([s["label"], f"{r['held'].get('tls', 0)} of {r['connections']}",
                     fmt(kib(r["bytes_per_conn_plain"])), fmt(kib(r["bytes_per_conn_tls"])),
                     f"{fmt(kib(r['rss_bytes_per_conn_plain']))} / "
                     f"{fmt(kib(r['rss_bytes_per_conn_tls']))}",
                     "" if name == "sluice" else fmt(ratio(sl, r["bytes_per_conn_tls"]), 2, "×")])
    return [f"### {key}: {w['title']}", "",
            "The server's memory (PSS of its counted processes) grown per connection "
            "over its memory before the first one: connections parked right after the "
            "TCP handshake (before any TLS byte), then after the TLS handshake and the "
            "greeting.", ""] + table(head, rows) + [""]


def table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join(str(c) for c in r) + " |")
    return out


def goals(data):
    s = data["servers"]
    get = lambda srv, k: s.get(srv, {}).get("results", {}).get(k)  # noqa: E731
    refs = data["references"]
    out = ["## Goals (from issue 7; reported, not asserted)", ""]

    def line(goal, value, ok):
        mark = "–" if ok is None else ("met" if ok else "not met")
        out.append(f"- {goal}: {value} ({mark})")

    hs = cost("handshake-tls13-ecdsa", get("sluice", "handshake-tls13-ecdsa"))
    ng = cost("handshake-tls13-ecdsa", get("nginx", "handshake-tls13-ecdsa"))
    fl = references("handshake-tls13-ecdsa", refs)[1]
    x = ratio(hs, ng)
    line(f"full handshake (TLS 1.3 ECDSA) at most {GOAL_HS_NGINX}× nginx-mail's CPU",
         fmt(x, 2, "×"), None if x is None else x <= GOAL_HS_NGINX)
    x = ratio(hs, fl)
    line(f"full handshake within {GOAL_HS_FLOOR}× OpenSSL's floor", fmt(x, 2, "×"),
         None if x is None else x <= GOAL_HS_FLOOR)
    x = ratio(cost("smtp", get("sluice", "smtp")), cost("smtp", get("nginx", "smtp")))
    line(f"STARTTLS session (smtp) at most {GOAL_STARTTLS_NGINX}× nginx-mail's CPU",
         fmt(x, 2, "×"), None if x is None else x <= GOAL_STARTTLS_NGINX)
    x = ratio(cost("bulk", get("sluice", "bulk")), references("bulk", refs)[0])
    line(f"bulk within {GOAL_BULK_BOUND}× the AES-128-GCM bound", fmt(x, 2, "×"),
         None if x is None else x <= GOAL_BULK_BOUND)
    idle = (get("sluice", "idle") or {}).get("bytes_per_conn_tls")
    kib = None if idle is None else idle / 1024
    line(f"at most {GOAL_IDLE_KIB:g} KiB per idle TLS connection", fmt(kib, 1, " KiB"),
         None if kib is None else kib <= GOAL_IDLE_KIB)
    res = get("sluice", "resume-tls13")
    if res and "resumed_fraction" in res:
        out.append(f"- resumption: sluice resumed {100 * res['resumed_fraction']:.0f} % of "
                   "the handshakes offered a session" +
                   (" (it issues no tickets and keeps no session cache yet: every "
                    "'resumed' handshake was a full one)" if res["resumed_fraction"] == 0 else ""))
    sc = data.get("scaling", {}).get("runs", {})
    one, two = sc.get("1", {}).get("ops_per_s"), sc.get("2", {}).get("ops_per_s")
    if one and two:
        out.append(f"- two workers at least 1.8× one: {two / one:.2f}× on this machine, "
                   "which is not the answer (see \"Worker scaling\": the load generator "
                   "shares the CPUs)")
    else:
        out.append(f"- two workers at least 1.8× one: not measured by this run "
                   f"({data['workers']} server CPU(s) here; the rig pins servers to half "
                   "the CPUs; `bench/run --scaling` runs the comparison)")
    return out + [""]


def scaling_rows(runs, width, base, cells):
    """The rows of a scaling table: the count, ops/s and its ratio to one,
    the section's own cells(r, duration), the load generator's CPU and the
    errors; a run that failed says why."""
    rows = []
    for n, r in runs.items():
        if "ops" not in r:
            why = r.get("na") or (r.get("error") or "?").splitlines()[0]
            rows.append([n, f"failed: {why}"] + [""] * (width - 2))
            continue
        dur = r["duration_s"] or 0
        rows.append([n, fmt(r["ops_per_s"]), fmt(ratio(r["ops_per_s"], base), 2, "×")]
                    + cells(r, dur)
                    + [f"{100 * r['client_cpu_s'] / dur:.0f} %" if dur else "–",
                       f"{sum(r['errors'].values())} of {r['started']}"])
    return rows


def scaling_section(data):
    """Worker scaling: sluice with 1 and 2 (or more) cores and workers."""
    sc = data.get("scaling")
    if not sc:
        return []
    runs = sc["runs"]
    base = (runs.get("1") or {}).get("ops_per_s")
    head = ["cores = workers", "ops/s", "× one worker", "CPU µs/op", "p50 ms", "p99 ms",
            "server CPU (of all CPUs)", "load gen. CPU", "errors"]
    ncpu = len(sc["cpus"])

    def cells(r, dur):
        return [fmt(r["cpu_us_per_op"]), fmt(r["latency_us"]["p50"] / 1000, 2),
                fmt(r["latency_us"]["p99"] / 1000, 2),
                f"{100 * r['server_cpu_s'] / dur / ncpu:.0f} %" if dur else "–"]
    rows = scaling_rows(runs, len(head), base, cells)
    return ["## Worker scaling (`--scaling`)", "",
            f"sluice on the kernel stack, `{sc['workload']}`, with `cores` and `workers` "
            f"set to each count in turn; no pinning: sluice, the load generator and the "
            f"sink share all {ncpu} CPUs ({sc['cpus']}).", ""] + table(head, rows) + [
            "", f"**This is not the answer to \"two workers at least 1.8× one\".** On "
            f"{ncpu} CPUs the load generator, which verifies a certificate and does its "
            "own key exchange per handshake (it costs more than the server's side), "
            "needs about one CPU itself, and the sink and the kernel's loopback TCP run "
            "there too: a second worker gets no CPU that the client does not also want. "
            "The ratio above measures that contention, not sluice's scaling. Measuring "
            "it needs at least 2 CPUs for sluice plus enough for a load generator that "
            "can saturate two workers (4 or more CPUs, or the load generator on another "
            "machine), then `bench/run --scaling` on it.", ""]


def scaling_native_section(data):
    """The same comparison on the memif rig: busy cycles per handshake
    (cores and workers) at each count, and what they predict for 16."""
    sc = data.get("scaling_native")
    if not sc:
        return []
    runs = sc["runs"]
    base = (runs.get("1") or {}).get("ops_per_s")
    base_cyc = (runs.get("1") or {}).get("cycles_per_op")
    head = ["cores = workers", "ops/s", "× one", "busy kcycles/op", "× one's cycles",
            "p50 ms", "p99 ms", "load gen. CPU", "errors"]
    ncpu = len(sc["cpus"])

    def cells(r, dur):
        cyc = r.get("cycles_per_op")
        return [fmt(cyc / 1e3 if cyc else None), fmt(ratio(cyc, base_cyc), 2, "×"),
                fmt(r["latency_us"]["p50"] / 1000, 2), fmt(r["latency_us"]["p99"] / 1000, 2)]
    rows = scaling_rows(runs, len(head), base, cells)
    done = [(int(n), r) for n, r in runs.items() if "ops" in r]
    last = done[-1] if done else None
    out = ["## Worker scaling on the native stack (`--scaling --stack native`)", "",
           f"sluice on net_memif, `{sc['workload']}`, with `cores` and `workers` set to "
           f"each count in turn; sluice's cores and workers, the load generator (which "
           f"polls its own memif port on one CPU) and the sink share all {ncpu} CPUs "
           f"({sc['cpus']}). Busy cycles count the cores' loop passes that found work "
           "and the workers' CPU time: sluice's work, not its waiting.", ""] + \
        table(head, rows) + [""]
    if last and last[1].get("cycles_per_op") and base_cyc:
        n, r = last
        tsc = (r.get("native") or {}).get("tsc_hz") or data["references"].get("tsc_hz")
        if tsc:
            hi, lo = 16 * tsc / base_cyc, 16 * tsc / r["cycles_per_op"]
            out += [f"**What it predicts for 16 cores.** A handshake costs "
                    f"{base_cyc / 1e3:.0f} k busy cycles at one core and "
                    f"{r['cycles_per_op'] / 1e3:.0f} k at {n} "
                    f"({ratio(r['cycles_per_op'], base_cyc):.2f}×). At {tsc / 1e9:.1f} GHz, "
                    f"16 CPUs given wholly to sluice's cores and workers would do about "
                    f"{lo:,.0f} to {hi:,.0f} handshakes a second: the upper figure if the "
                    f"cost stays as at one core, the lower if it stays as at {n}. Here the "
                    f"growth mixes two things this machine cannot separate: {n} cores, {n} "
                    "workers, the load generator and the sink oversubscribe its CPUs (a core "
                    "preempted inside a pass that found work counts that time as busy), and "
                    "the one thing shared per handshake, the certificate set's SSL_CTX, "
                    "whose locks cost OpenSSL 3.0 dearly under contention (openssl#20286). "
                    "Each core owns its sessions and its TCP. A load generator for 16 such "
                    "CPUs needs about as many again: a client's side of a handshake "
                    "(verifying the certificate, its own key share) costs more than the "
                    "server's.", ""]
    out += [f"**Why {ncpu} CPUs bound it.** The throughput column is not sluice's "
            "scaling: the load generator needs about one CPU for itself, so a second "
            "core and worker get only what the client leaves. The cycles column is the "
            "figure that carries over: if the cost per handshake does not grow with the "
            "cores, throughput grows with them on a machine with CPUs to spare.", ""]
    return out


def size_section(data):
    """How a session's cost grows with its message: the SMTP session at
    each size run (smtp, smtp-64k, smtp-1m), sluice on each stack beside
    the peers, and the cost of a MiB more of message between the sizes."""
    keys = [k for k in SIZES if k.startswith("smtp")
            and any(w["key"] == k for w in data["workloads"])]
    if len(keys) < 2:
        return []
    refs = data["references"]
    names = [n for n in data["servers"] if any(
        "ops" in (data["servers"][n]["results"].get(k) or {}) for k in keys)]
    head = ["server"] + [f"{SIZES[k] // 1024:,} KiB µs/op (× floor)" for k in keys] + \
        ["µs per MiB more", "× AES-GCM bound"]
    rows = []
    bound = refs["bound_us"]["aes128gcm_per_mib"]
    for n in names:
        srv = data["servers"][n]
        vals = [cost(k, srv["results"].get(k)) for k in keys]
        cells = [f"{fmt(v)} ({fmt(ratio(v, references(k, refs)[1]), 2, '×')})"
                 for k, v in zip(keys, vals)]
        a, b = vals[0], vals[-1]
        slope = None if a is None or b is None else \
            (b - a) / ((SIZES[keys[-1]] - SIZES[keys[0]]) / MiB)
        rows.append([srv["label"]] + cells + [fmt(slope), fmt(ratio(slope, bound), 2, "×")])
    floors = ", ".join(f"{SIZES[k] // 1024:,} KiB {fmt(references(k, refs)[1])} µs"
                       for k in keys)
    return ["## How a session's cost grows with its message", "",
            "The SMTP session (banner, EHLO, STARTTLS, EHLO, MAIL, RCPT, DATA, QUIT) "
            "with each message size run; the native row in busy µs, the others in CPU "
            f"µs, each against OpenSSL's floor for a handshake and that many bytes read "
            f"({floors}). \"µs per MiB more\" is the slope from the smallest to the "
            "largest size: what each further MiB of message costs, against the "
            f"AES-128-GCM bound ({fmt(bound)} µs/MiB).", ""] + table(head, rows) + [""]


def write(data, results, plots_dir):
    plots = make_plots(data, plots_dir)
    m, refs = data["machine"], data["references"]
    pin = data["pinning"]
    out = ["# sluice benchmark results", "",
           f"Produced by `{data['command']}` ({data['mode']} mode) on {data['date']}, "
           f"in {data['elapsed_s']} s. Every figure below comes from that one run.", ""]
    if data["mode"] == "quick":
        out += ["**Quick mode**: runs of about half a second per workload, a smoke test; "
                "the figures are rough (CPU time is read in 10 ms ticks).", ""]
    out += ["The machine is shared with other engineers' builds and tests while the rig "
            "runs, so absolute figures move from run to run; ratios measured in the same "
            "run move less.", "",
            "## Set-up", ""]
    if data.get("loadavg"):
        la = data["loadavg"]
        out += [f"- Load average (1 min) of the machine: {la.get('start')} when the run "
                f"began, {la.get('end')} when it ended (the rig itself adds about 1-2)."]
    out += [
            f"- Machine: {m['cpu']}, {m['cores']} cores, {m['memory_mib']} MiB, "
            f"kernel {m['kernel']}, {m['os']}.",
            f"- Pinning (taskset): servers on CPU {pin['server_cpus']}, the load generator "
            f"and the sink on CPU {pin['client_cpus']}"
            + ("" if pin["taskset"] else " (one CPU only: no pinning possible)") + ". "
            f"Every server gets {data['workers']} worker(s) (one per server CPU) where it "
            "has such a knob"
            + ("." if data.get("sluice_workers", data["workers"]) == data["workers"] else
               f"; sluice runs with `workers: {data['sluice_workers']}`"
               + (" (handshakes inline on its cores)." if data["sluice_workers"] == 0
                  else ".")),
            "- Network: " + ("a network namespace of the rig's own (its loopback, "
                             "127.0.0.1, ports 7000-7999)." if data["netns"] else
                             "the host's loopback, ports 7000-7999."),
            "- Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()) + ".",
            "- Certificates: one self-signed ECDSA P-256 and one RSA-2048 certificate, "
            "the same files for every server; the workload picks which one the servers "
            "are started with. Policy for all: TLS 1.2 and 1.3, ECDHE with AEAD. The "
            "client offers exactly one version, X25519 only, one signature scheme and "
            "AES-128-GCM.",
            "- Server CPU: user+system time of the server's processes (/proc/PID/stat) "
            "over the measured run, divided by the operations completed; a warm-up run "
            "comes first. Latency is from the load generator (closed loop at the "
            "concurrency shown in the JSON, so it includes queueing at saturation).",
            "- Reading the tables: × crypto bound and × OpenSSL floor divide the "
            "server's CPU per operation by the references below; \"sluice ÷ server\" "
            "below 1 means sluice spent less CPU than that server. \"server CPU busy\" "
            "is the server's share of its CPUs during the run: well below 100 % means "
            "the server waited (on the load generator, whose own CPU is the last column, "
            "or on timers: a p50 near 40 ms at low busy points at Nagle's algorithm "
            "meeting the client's delayed ACK), so its ops/s is not its capacity; the "
            "CPU per operation holds either way.",
            "- Backend: `build/bench/sink` (SMTP/IMAP/POP3, PROXY v1/v2), on the load "
            "generator's CPU.", ""]
    out += ["## References (same run, same OpenSSL)", "",
            "| figure | µs |", "|---|---|"]
    for k, v in refs["primitives_us"].items():
        out.append(f"| primitive: {k} | {v:.1f} |")
    for k, v in refs["bound_us"].items():
        out.append(f"| crypto bound: {k} | {v:.1f} |")
    for k, v in refs["floor_us"].items():
        out.append(f"| OpenSSL floor: {k} | {v:.1f} |")
    out += ["", "The crypto bound is one signature and the server's half of the key "
            "exchange per handshake (resumed: the key exchange only), and AES-128-GCM "
            "per MiB. OpenSSL's floor is a whole handshake between two SSL objects in "
            "memory, timed on the server object only (SSL_new to SSL_free), and the "
            "server's SSL_read per MiB. For smtp and imap both add 4 KiB of record "
            "crypto to the TLS 1.3 ECDSA handshake. Each figure is the 10th percentile of "
            "many small batches, measured at the start and at the end of the run, the lower "
            "of the two kept (a busy neighbour only ever adds time).", ""]
    out += goals(data)
    out += ["## Results per workload", ""]
    for w in data["workloads"]:
        out += idle_table(data, w) if w["family"] == "idle" else workload_table(data, w)
    from . import report_native      # imports this module: here, not at the top
    out += report_native.section(data)
    out += size_section(data)
    out += scaling_section(data)
    out += scaling_native_section(data)
    out += ["## The servers", ""]
    for s in data["servers"].values():
        out.append(f"- **{s['label']}** ({s['version']}): {s['note']}.")
    out += ["", "Their configurations are in `bench/peers/` (README.md there says how each "
            "was adapted from the verified references).", ""]
    if plots:
        out += ["## Plots", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    else:
        out += ["(No plots: python3-matplotlib is not installed.)", ""]
    out += ["## Where a handshake's CPU goes", "",
            "A profile of sluice's full TLS 1.3 handshake by function group (libcrypto, "
            "libssl, sluice's TLS glue, the session layer, the kernel, the allocator) and "
            "what each optimisation bought, measured in alternating runs (A B A B A B, the "
            "median of each), are in [HANDSHAKE.md](HANDSHAKE.md): this report is written "
            "anew by every run, that one by hand.", "",
            "## Where a native handshake's cycles go",
            "",
            "The same profile on the native stack over net_memif (libcrypto, libssl, "
            "sluice's TLS glue, the session layer, sluice's TCP/IP stack, the driver, "
            "the polling), `workers: 1` against `workers: 0`, the stack's cycles per "
            "packet before and after, and every alternating run behind them are in "
            "[NATIVE.md](NATIVE.md), written by hand like HANDSHAKE.md.", ""]
    out += ["## Reproduce", "", "```sh", "sudo " + data["command"], "```", "",
            "Every figure of this run is also in the JSON file beside this report "
            "(`RESULTS.json`); `bench/run --report-from RESULTS.json` writes this report "
            "and the plots again from it.", ""]
    results.write_text("\n".join(out))


def make_plots(data, d):
    """PNG plots; returns their paths ([] without matplotlib)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    d.mkdir(parents=True, exist_ok=True)
    names = [n for n, s in data["servers"].items()
             if n not in ("sluice-native", "sluice-native-tap")]
    labels = [data["servers"][n]["label"] for n in names]
    keys = [w["key"] for w in data["workloads"] if w["family"] not in ("idle", "bulk")]
    out = []

    def res(n, k):
        r = data["servers"][n]["results"].get(k) or {}
        return r if "ops" in r else None

    def bars(ax, groups, series, values, ylabel, log=True):
        width = 0.8 / max(len(series), 1)
        for i, s in enumerate(series):
            xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, [v if v else 0 for v in values[i]], width, label=s)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=7)

    if keys:
        fig, ax = plt.subplots(figsize=(10, 5))
        vals = [[cost(k, res(n, k)) for k in keys] for n in names]
        bars(ax, keys, labels, vals, "server CPU µs per operation (log)")
        for g, k in enumerate(keys):
            b, f = references(k, data["references"])
            ax.hlines([b], g - 0.45, g + 0.45, colors="black", linestyles="dashed",
                      label="crypto bound" if g == 0 else None)
            ax.hlines([f], g - 0.45, g + 0.45, colors="grey",
                      label="OpenSSL floor" if g == 0 else None)
        ax.legend(fontsize=7)
        ax.set_title("Server CPU per operation (dashed: crypto bound; grey: OpenSSL floor)")
        fig.tight_layout()
        out.append(save(fig, d / "cpu_per_op.png", plt))

        fig, ax = plt.subplots(figsize=(10, 5))
        vals = [[(res(n, k) or {}).get("ops_per_s") for k in keys] for n in names]
        bars(ax, keys, labels, vals, "operations per second", log=False)
        ax.set_title("Throughput (closed loop; the load generator's CPU may limit it)")
        fig.tight_layout()
        out.append(save(fig, d / "throughput.png", plt))

        fig, axs = plt.subplots(1, 2, figsize=(12, 5))
        for ax, q in zip(axs, ("p50", "p99")):
            vals = [[((res(n, k) or {}).get("latency_us") or {}).get(q, 0) / 1000
                     for k in keys] for n in names]
            bars(ax, keys, labels, vals, f"latency {q}, ms (log)")
            ax.set_title(f"Latency {q}")
        fig.tight_layout()
        out.append(save(fig, d / "latency.png", plt))

    sizes = [k for k in SIZES if k.startswith("smtp")
             and any(w["key"] == k for w in data["workloads"])]
    if len(sizes) >= 2:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        xs = [SIZES[k] for k in sizes]
        for n, s in data["servers"].items():
            ys = [cost(k, s["results"].get(k)) for k in sizes]
            if any(ys):
                ax.plot([x for x, y in zip(xs, ys) if y], [y for y in ys if y], marker="o",
                        label=s["label"])
        ax.plot(xs, [references(k, data["references"])[1] for k in sizes], color="grey",
                linestyle="dashed", label="OpenSSL floor")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("message bytes (log)")
        ax.set_ylabel("server µs per SMTP session (log; native: busy µs)")
        ax.set_title("A session's cost against its message size")
        ax.legend(fontsize=7)
        fig.tight_layout()
        out.append(save(fig, d / "message_size.png", plt))

    idle = [w["key"] for w in data["workloads"] if w["family"] == "idle"]
    if idle:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        vals = []
        for phase in ("plain", "tls"):
            vals.append([((data["servers"][n]["results"].get(idle[0]) or {})
                          .get(f"bytes_per_conn_{phase}") or 0) / 1024 for n in names])
        vals = [[max(v, 0.1) for v in row] for row in vals]   # log scale: no zero
        bars(ax, labels, ["before TLS", "after TLS"], vals,
             "KiB per idle connection (PSS, log)")
        ax.axhline(GOAL_IDLE_KIB, color="black", linestyle="dashed", linewidth=0.8)
        ax.set_title("Server memory per idle connection (dashed: the 8 KiB goal)")
        fig.tight_layout()
        out.append(save(fig, d / "idle_memory.png", plt))

    if any(w["key"] == "bulk" for w in data["workloads"]):
        fig, ax = plt.subplots(figsize=(8, 4.5))
        vals = [[cost("bulk", res(n, "bulk")) for n in names]]
        bars(ax, labels, ["server CPU µs per MiB"], vals, "µs per MiB", log=False)
        b, f = references("bulk", data["references"])
        ax.axhline(b, color="black", linestyle="dashed", linewidth=0.8)
        ax.axhline(f, color="grey", linewidth=0.8)
        ax.set_title("Bulk: server CPU per MiB (dashed: AES-128-GCM; grey: OpenSSL SSL_read)")
        fig.tight_layout()
        out.append(save(fig, d / "bulk.png", plt))
    from . import report_native
    p = report_native.plot(data, d, plt, save)
    return out + ([p] if p else [])


def save(fig, path, plt):
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)
