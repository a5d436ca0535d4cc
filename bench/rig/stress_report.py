"""bench/STRESS.md from a bench/stress run's figures (the JSON beside it)."""

from pathlib import Path

MiB = 1 << 20


def mib(b):
    return f"{b / MiB:.1f} MiB" if b else "-"


def num(x, fmt="{:,}"):
    return "-" if x is None else fmt.format(x)


def legit_row(name, s, base):
    l = s.get("legit", {})
    if "error" in l:
        return f"| {name} | error: {l['error']} | | | | | | |"
    bp99 = base.get("legit", {}).get("p99_ms")
    ratio = f" ({l['p99_ms'] / bp99:.2f}x)" if bp99 else ""
    rate = l.get("success_rate")
    return (f"| {name} | {l['ok']}/{l['started']} ({100 * rate:.1f} %) | "
            f"{l['p50_ms']:.1f} | {l['p99_ms']:.1f}{ratio} | {num(s.get('sluice_cpu_pct'))} | "
            f"{mib(s.get('rss_peak'))} | {num(s.get('fds_peak'))} | "
            f"{num(s.get('sessions_peak'))} |" if rate is not None else
            f"| {name} | 0 started | | | | | | |")


def write(data, path):
    sc = data["scenarios"]
    base = sc.get("baseline", {})
    L = [
        "# sluice under floods and a soak (bench/stress)",
        "",
        f"`{data.get('command', 'bench/stress')}` — {data['mode']} mode, {data['date']}, "
        f"sluice {data['sluice']} (`{data.get('sluice_bin', '?')}`), "
        f"{data['elapsed_s']} s in all.",
        "",
        f"sluice: `cores: 1`, `workers: {data.get('workers', 1)}` on CPU {data['server_cpus']}, "
        f"`limits.nofile: {data['nofile']}` (and RLIMIT_NOFILE set to it from outside), "
        f"`limits.sessions_per_core: {data['sessions_per_core']}`, other limits at their "
        "defaults; behind it the real Postfix and Dovecot of tests/integration. The floods "
        f"(build/bench/flood), the legitimate client and the soak's clients on CPU "
        f"{data['client_cpus']}. All in a network namespace of the run's own "
        "(loopback, client addresses from 127.0.0.0/8); the native scenario in two more "
        "(RFC 5737 addresses).",
        "",
        f"The legitimate client: build/bench/sluice-loadgen, open loop at {data['rate_per_s']:g} "
        "SMTP sessions a second (banner, EHLO, STARTTLS, TLS 1.3, EHLO, MAIL, RCPT, DATA "
        f"4 KiB, QUIT) on the submission port from 4 addresses, for {data['seconds']:g} s "
        "per scenario; latency from when each session was due.",
        "",
        "## Goals",
        "",
        "| goal | figure | |",
        "|---|---|---|",
    ]
    for g in data["goals"]:
        mark = "met" if g["ok"] else "MISSED" if g["ok"] is False else "n/a"
        L.append(f"| {g['goal']} | {g['figure']} | {mark} |")
    L += ["", "## The legitimate client under each flood", "",
          "| scenario | sessions ok | p50 ms | p99 ms (x baseline) | sluice CPU % | "
          "sluice RSS peak | descriptors peak | sessions peak |",
          "|---|---|---|---|---|---|---|---|"]
    for key, name in (("baseline", "baseline (no flood)"), ("slowloris", "idle slowloris"),
                      ("handshake", "handshake flood")):
        s = sc.get(key)
        if s is None:
            continue
        L.append(legit_row(name, s, base) if "legit" in s
                 else f"| {name} | error: {s.get('error', '?')[:200]} | | | | | | |")
    if base.get("rss_idle"):
        L += ["", f"sluice's RSS idle before the baseline: {mib(base['rss_idle'])}."]
    s = sc.get("slowloris")
    if s and "flood" in s:
        f = s["flood"]
        L += ["", "### Idle slowloris", "",
              f"{s['flood_connections_wanted']} idle plaintext connections wanted on the "
              f"port-25 listener from 300 addresses (127.1.0.1-), against "
              f"`limits.nofile` {s['nofile']}: the flood held at most "
              f"{num(f.get('held_peak'))} at once, opened {num(f.get('connected'))}, "
              f"sluice closed {num(f.get('closed_by_server'))}; connect errors "
              f"{f.get('errors')}.",
              "", "sluice's counters over the window: "
              + (", ".join(f"`{k}` {v:,}" for k, v in sorted(s["counters"].items())
                           if not k.startswith(("cipher_", "certsel_", "quirk_")))
                 or "none moved")]
    s = sc.get("handshake")
    if s and "flood" in s:
        f = s["flood"]
        L += ["", "### Handshake flood", "",
              f"ClientHello-and-close on the implicit-TLS port from 300 addresses "
              f"(127.2.0.1-), 256 in flight: {num(f.get('connected'))} connections and "
              f"{num(f.get('hellos_sent'))} hellos in {f.get('t', 0):.1f} s "
              f"({num(s.get('flood_rate'))}/s).",
              "",
              "| figure | value |", "|---|---|",
              f"| sluice's accept rate | {num(s.get('accept_rate'))} /s |",
              f"| handshake jobs posted to workers | {num(s.get('handshake_jobs'))} |",
              "| jobs skipped (client gone: `handshake_jobs_skipped`) | "
              + ("not exposed by this sluice" if s.get("jobs_skipped") is None
                 else num(s["jobs_skipped"])) + " |",
              f"| signatures wasted, at most (jobs posted beyond the legitimate handshakes' "
              f"two each) | "
              f"{num(s.get('signatures_wasted'))} |",
              "| worker queue depth | " + ("not exposed by this sluice"
                                          if not s.get("worker_queue_depth")
                                          else str(s["worker_queue_depth"])) + " |",
              f"| `worker_queue_full` | {num(s['counters'].get('worker_queue_full', 0))} |",
              f"| `conn_refused_overload` | "
              f"{num(s['counters'].get('conn_refused_overload', 0))} |"]
    n = sc.get("native")
    L += ["", "## Native stack (net_tap): SYN flood and connection flood", ""]
    if n is None:
        L.append("Not run.")
    elif "na" in n or "error" in n:
        L.append(n.get("na") or "error: " + n["error"])
    else:
        L += ["The bench's native topology (bench/rig/native.py): the clients in one "
              "namespace behind sluice's first tap, the bench sink behind the second. "
              "The SYN flood: raw SYNs at up to 20,000/s from 100 addresses the client "
              "namespace holds, whose RSTs to sluice's SYN-ACKs it drops "
              f"({'nft' if n.get('syn_rst_dropped') else 'NOT dropped: nft failed'}); "
              "the connection flood: connect-and-close from 50 more, 512 in flight. "
              "The TCP table's occupancy is not exposed by sluice: the table-full drops "
              "(`drop_tcp_conn_limit`) say whether it filled, and the sessions (`status`) "
              "how many connections reached sluice's sessions.", "",
              "| window | legitimate ok | p50 ms | p99 ms | SYNs / connections sent | "
              "frames sluice received | cookies sent | cookie ACKs ok | SYN queue full | table-full drops | "
              "sluice sessions peak |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
        for key, name in (("baseline", "no flood"), ("syn", "SYN flood"),
                          ("connect", "connection flood")):
            w = n.get(key)
            if not w:
                continue
            l, c, f = w["legit"], w["counters"], w.get("flood") or {}
            sent = f.get("syns") if key == "syn" else f.get("connected")
            if "error" in l:
                L.append(f"| {name} | error: {l['error']} | | | | | | | | | |")
                continue
            L.append(f"| {name} | {l['ok']}/{l['started']} | {l['p50_ms']:.1f} | "
                     f"{l['p99_ms']:.1f} | {num(sent)} | {c.get('net_rx_frames', 0):,} | "
                     f"{c['net_tcp_syncookie_tx']:,} | "
                     f"{c['net_tcp_syncookie_ok']:,} | {c['net_tcp_syn_queue_full']:,} | "
                     f"{c['net_drop_tcp_conn_limit']:,} | {num(w.get('sessions_peak'))} |")
        refusals = []
        for key, name in (("baseline", "no flood"), ("syn", "SYN flood"),
                          ("connect", "connection flood")):
            c = (n.get(key) or {}).get("counters", {})
            moved = [f"`{k}` {v:,}" for k, v in c.items()
                     if v and k.startswith(("conn_refused", "handshake_refused"))]
            if moved:
                refusals.append(f"{name}: " + ", ".join(moved))
        if refusals:
            L += ["", "sluice's limits refused: " + "; ".join(refusals) + "."]
    s = sc.get("soak")
    L += ["", "## Soak", ""]
    if s is None:
        L.append("Not run.")
    elif "error" in s:
        L.append("error: " + s["error"])
    else:
        L += [f"{s['minutes']:g} minutes of SMTP (STARTTLS and implicit TLS, to the real "
              "Postfix, delivering to a Maildir), IMAP STARTTLS (LOGIN, SELECT, FETCH), "
              "resumed handshakes on IMAPS and POP3S, POP3 through STLS, and misbehaving "
              "clients (vanishing mid-dialogue and mid-handshake, junk commands); Postfix "
              "restarted at a third, Dovecot at two thirds. Rates per second: "
              + ", ".join(f"{k} {v}" for k, v in s["rates_per_s"].items()) + ".", "",
              "| client | ok | errors | p50 ms | p99 ms |", "|---|---|---|---|---|"]
        for k, l in s["clients"].items():
            if "error" in l:
                L.append(f"| {k} | error: {l['error']} | | | |")
            else:
                L.append(f"| {k} | {l['ok']}/{l['started']} | {l['errors']} "
                         f"{l['errors_by_kind'] or ''} | {l['p50_ms']:.1f} | {l['p99_ms']:.1f} |")
        L += ["",
              "| figure | value |", "|---|---|",
              f"| messages accepted (250 after DATA) | {s['accepted_250']:,} |",
              f"| messages in the Maildir | {s['delivered']:,} "
              f"(queue drained: {s['queue_drained']}) |",
              f"| messages sent whose reply never came (may be in the Maildir) | "
              f"{s.get('unanswered', 0):,} |",
              f"| lost / doubled | {s['lost']} / {s['doubled']} |",
              f"| RSS, first quarter after {s['warmup_s']:.0f} s warm-up | "
              f"{mib(s.get('rss_first_quarter'))} |",
              f"| RSS, last quarter | {mib(s.get('rss_last_quarter'))} |",
              f"| RSS drift | {num(s.get('rss_drift_pct'), '{:+.3f} %')} |",
              f"| allocated by sluice (jemalloc stats.allocated) drift | "
              f"{num(s.get('allocated_drift_pct'), '{:+.3f} %')} |",
              f"| session-ID cache entries, first / last sample | "
              f"{num(s.get('sesscache_first'))} / {num(s.get('sesscache_last'))} |",
              f"| descriptors first / last / peak | {num(s.get('fds_first'))} / "
              f"{num(s.get('fds_last'))} / {num(s.get('fds_peak'))} |",
              f"| sluice CPU | {num(s.get('sluice_cpu_pct'))} % |",
              f"| resumed fraction (IMAPS, POP3S) | "
              f"{s['resumed_fraction'].get('imaps-resume')}, "
              f"{s['resumed_fraction'].get('pop3s-resume')} |",
              "| misbehaving clients | " + ", ".join(f"{k} {v}" for k, v in
                                                    sorted(s["misbehaving"].items())) + " |",
              "| backend restarts | " + "; ".join(
                  f"{r['backend']} at {r.get('at_s')} s (down {r.get('down_s')} s)"
                  if "error" not in r else f"{r['backend']}: {r['error']}"
                  for r in s["restarts"]) + " |"]
    if data.get("problems"):
        L += ["", "## Problems", ""] + [f"- `{p[:600]}`" for p in data["problems"]]
    L += ["", "Absolute figures on a small shared machine move from run to run; the "
          "ratios to the same run's baseline move less. Every figure is in the JSON "
          "beside this file.", ""]
    Path(path).write_text("\n".join(L))
