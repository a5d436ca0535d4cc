#!/usr/bin/env python3
"""The dataplane core's busy time per session with TLS to the backend.

Usage (as root, from the repository; one run at a time):

    flock /tmp/sluice-bench.lock python3 bench/betls_core_cost.py \\
        [--sluice BIN] [--sessions 200] [--threads 2] [--workers 1] [--json FILE]

A sluice with `cores: 1` and `workers: 1` (or --workers) in front of the
implicit-TLS Postfix port that tests/integration/test_backend_tls.py
starts (a certificate from a test CA, verified by ca_file and
server_name, PROXY v2 first). N sessions, each an implicit-TLS SMTP
client (python smtplib) that sends one small message; `core_busy_ns` of
the core (the control socket's `stats` with `per_core`) before and after;
busy ns per session = delta / N. Beside it, the CPU time the core and
worker threads were given (/proc/PID/task/TID/schedstat), which a busy
pass's wall time exceeds when the machine's CPUs are shared with the
clients and Postfix. The client-side handshakes go to the
worker in both builds; what differs between a build that runs the
backend handshake on the core and one that posts it to the worker is the
backend's key exchange and certificate check.

Compare two builds by alternating them (A B A B A B) and taking the
medians; the figures of one run are in docs/configuration.md
("Backend TLS").
"""

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import smtplib  # noqa: E402

import harness  # noqa: E402
import test_backend_tls as tb  # noqa: E402

LISTEN = 43750   # 43700-43799: the bench's ports beside the tests'


def thread_cpu_ns(pid):
    """CPU time (ns, /proc/PID/task/*/schedstat) of sluice's threads by
    name: the cores (sl-core*) and the TLS workers (sl-tls*)."""
    out = {"core": 0, "worker": 0}
    for t in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (t / "comm").read_text().strip()
            ns = int((t / "schedstat").read_text().split()[0])
        except OSError:
            continue
        if comm.startswith("sl-core"):
            out["core"] += ns
        elif comm.startswith("sl-tls"):
            out["worker"] += ns
    return out


def busy_ns(sl):
    ans = sl.ctl("stats", per_core=True)
    return sum(c["core_busy_ns"] for c in ans["cores"]), ans["counters"]


def one(sl, i):
    host, port = sl.addr("bench")
    tag = f"betls{i}-{os.getpid()}"
    with smtplib.SMTP_SSL(host, port, context=harness.no_verify_context(), timeout=30,
                          source_address=(tb.CLIENT, 0)) as s:
        s.ehlo("client.test")
        s.sendmail(harness.SENDER, [harness.recipient(tag)], harness.make_message(tag))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", help="the sluice binary (default: SLUICE_BIN or build/)")
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", help="append the figures as one JSON line to FILE")
    a = ap.parse_args()
    if a.sluice:
        os.environ["SLUICE_BIN"] = str(Path(a.sluice).resolve())

    tb.setUpModule()
    try:
        cfg = {"hostname": "mail-front.test", "cores": 1, "workers": a.workers, "log": "stderr",
               "backends": [tb.smtp_backend("bench", ca_file=tb.PKI.ca_file,
                                            server_name=tb.NAME, health_interval=3600)],
               "listeners": [{"name": "bench", "address": f"127.0.0.1:{LISTEN}",
                              "protocol": "smtp", "tls": "implicit", "backend": "bench"}]}
        sl = harness.Sluice(cfg, "betls-bench").start()
        try:
            one(sl, -1)                     # warm: first session, the backend's slot
            b0, c0 = busy_ns(sl)
            cpu0 = thread_cpu_ns(sl.proc.pid)
            t0 = time.monotonic()
            todo = list(range(a.sessions))
            lock = threading.Lock()
            errors = []

            def worker():
                while True:
                    with lock:
                        if not todo:
                            return
                        i = todo.pop()
                    try:
                        one(sl, i)
                    except Exception as e:  # counted, reported: a bad run is said so
                        errors.append(repr(e))
            ts = [threading.Thread(target=worker) for _ in range(a.threads)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            wall = time.monotonic() - t0
            # the last sessions' close reaches the core a moment later
            harness.wait_until(lambda: busy_ns(sl)[1].get("conn_closed", 0)
                               >= c0.get("conn_closed", 0) + a.sessions, 20,
                               "every session closed")
            b1, c1 = busy_ns(sl)
            cpu1 = thread_cpu_ns(sl.proc.pid)
        finally:
            sl.stop()
    finally:
        tb.tearDownModule()

    def d(k):
        return c1.get(k, 0) - c0.get(k, 0)
    out = {"sluice": os.environ.get("SLUICE_BIN", "build/dataplane/sluice"),
           "sessions": a.sessions, "threads": a.threads, "workers": a.workers,
           "errors": len(errors), "wall_s": round(wall, 2),
           "core_busy_ns": b1 - b0, "busy_ns_per_session": (b1 - b0) // a.sessions,
           "core_cpu_ns_per_session": (cpu1["core"] - cpu0["core"]) // a.sessions,
           "worker_cpu_ns_per_session": (cpu1["worker"] - cpu0["worker"]) // a.sessions,
           "backend_tls_ok": d("backend_tls_ok"), "backend_tls_resumed": d("backend_tls_resumed"),
           "backend_tls_jobs": d("backend_tls_jobs"), "handshake_jobs": d("handshake_jobs")}
    print(json.dumps(out))
    if errors:
        print("errors:", errors[:5], file=sys.stderr)
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(out) + "\n")
    return 1 if errors or out["backend_tls_ok"] != a.sessions else 0


if __name__ == "__main__":
    sys.exit(main())
