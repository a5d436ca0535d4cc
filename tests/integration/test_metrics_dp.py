"""The dataplane's Prometheus families (issue 13, docs/metrics.md): the
`metrics` command on the dataplane socket, after real sessions through
sluice with a real Postfix and a real Dovecot behind it.

- SMTP STARTTLS (smtplib, a delivery into Postfix), IMAP STARTTLS and
  POP3 STLS (imaplib, poplib, logging in to Dovecot) and implicit IMAP:
  sluice_sessions_total per listener, STARTTLS offered / attempted /
  succeeded, the TLS versions, handshakes, the latency histogram, bytes.
- A client that offers only P-256 (groups and signature schemes) to a
  listener whose only certificate is ECDSA P-384 is one failed handshake
  under its reason (no_certificate) and its tls/certsel rule.
- `promtool check metrics` (Debian's prometheus) passes on the text.
- Two reads with a delivery between: no counter went backwards, and the
  delivery's listener counted one more session.
- `stats` keeps its sums; `stats` with per_listener gives each listener's.
- Reloads (a sluice of its own): a listener keeps its series across a
  reload, one the reload removed keeps its last values, a new one starts
  at 0; the reload is counted (result ok, generation 2).
- Failure reasons a client decides (a sluice of its own): a handshake
  stalled past timeouts.handshake counts as `timeout`, a client that closes
  after sluice's flight as `client_gone`.
- Listener slots: with 64 listener names, the 63rd and 64th count as
  listener="(other)", with one warning logged.
- Resumption by kind (a sluice of its own): a TLS 1.2 session resumed from
  its ticket counts as `ticket`, one resumed by session ID (no tickets) as
  `cache`.
"""

import imaplib
import copy
import os
import poplib
import re
import signal
import smtplib
import subprocess
import tempfile
import unittest
from pathlib import Path

import pki
from harness import (MAIL_PASSWORD, MAIL_USER, SENDER, Dovecot, Postfix, Sluice, client_source,
                     load_example, make_message, no_verify_context, recipient, run, scratch,
                     stop_all, unique, wait_until)

BASE = 40900          # listener ports BASE .. BASE + 9 (40900-40949 is this module's)
CLIENT = "127.0.0.91"
FRONT = load_example("mail-front.yaml")

PF = DV = SL = None


def listener(name, port, protocol, tls, backend, **kw):
    l = {"name": name, "address": f"127.0.0.1:{BASE + port}", "protocol": protocol,
         "tls": tls, "backend": backend}
    l.update(kw)
    return l


def setUpModule():
    global PF, DV, SL
    PF = Postfix().start()
    DV = Dovecot().start()
    d = Path(tempfile.mkdtemp(prefix="metrics-", dir=scratch()))
    p384 = pki.leaf(d, "p384", names=(FRONT["hostname"],))
    cfg = {"hostname": FRONT["hostname"], "cores": 2, "workers": 1,
           "backends": FRONT["backends"],
           "cert_sets": [{"name": "p384", "certs": [p384]}],
           "listeners": [
               listener("smtp", 0, "smtp", "starttls", "postfix"),
               listener("imap", 1, "imap", "starttls", "dovecot-imap"),
               listener("pop3", 2, "pop3", "starttls", "dovecot-pop3"),
               listener("imaps", 3, "imap", "implicit", "dovecot-imap"),
               listener("p384", 4, "smtp", "implicit", "postfix", cert_sets=["p384"]),
           ]}
    SL = Sluice(cfg, "metrics").start()


def tearDownModule():
    stop_all(SL, DV, PF)


def deliver(tag):
    with smtplib.SMTP(*SL.addr("smtp"), local_hostname="client.test",
                      source_address=client_source(CLIENT), timeout=20) as s:
        s.starttls(context=no_verify_context())
        refused = s.sendmail(SENDER, [recipient(tag)], make_message(tag))
        assert refused == {}, refused


def imap_session(name, starttls):
    host, port = SL.addr(name)
    if starttls:
        c = imaplib.IMAP4(host, port, timeout=20)
        c.starttls(ssl_context=no_verify_context())
    else:
        c = imaplib.IMAP4_SSL(host, port, ssl_context=no_verify_context(), timeout=20)
    c.login(MAIL_USER, MAIL_PASSWORD)
    typ, _ = c.select("INBOX")
    assert typ == "OK", typ
    c.logout()


def pop3_session():
    c = poplib.POP3(*SL.addr("pop3"), timeout=20)
    c.stls(context=no_verify_context())  # its CAPA first: one offer
    c.user(MAIL_USER)
    c.pass_(MAIL_PASSWORD)
    c.stat()
    c.quit()


def p256_only_client():
    """openssl s_client offering only P-256 (key share and signatures) to
    the P-384-only listener: (exit code, output)."""
    host, port = SL.addr("p384")
    return run(["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_3",
                "-groups", "P-256", "-sigalgs", "ecdsa_secp256r1_sha256", "-ign_eof"],
               input=b"QUIT\r\n", timeout=20)


def metrics():
    ans = SL.ctl("metrics")
    assert ans.get("ok") is True, ans
    return ans["text"]


SERIES = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset of (label, value)): value} and {family: type}."""
    values, types = {}, {}
    for line in text.split("\n"):
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
        elif line and not line.startswith("#"):
            m = SERIES.match(line)
            assert m, f"not a series line: {line!r}"
            labels = frozenset(LABEL.findall(m.group(3) or ""))
            key = (m.group(1), labels)
            assert key not in values, f"series twice: {line!r}"
            values[key] = float(m.group(4))
    return values, types


def get(values, name, **labels):
    """The value of the series name with at least these labels (exactly
    one must match); 0 when none does."""
    want = set(labels.items())
    found = [v for (n, l), v in values.items() if n == name and want <= set(l)]
    assert len(found) <= 1, f"{name}{labels}: {len(found)} series"
    return found[0] if found else 0


def counter_keys(values, types):
    """The series of counters and histograms (their _bucket, _sum, _count)."""
    out = []
    for (n, l) in values:
        fam = re.sub(r"_(bucket|sum|count)$", "", n)
        if types.get(n) == "counter" or types.get(fam) == "histogram":
            out.append((n, l))
    return out


class Metrics(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tag = unique("metrics")
        deliver(cls.tag)
        imap_session("imap", True)
        pop3_session()
        imap_session("imaps", False)
        cls.fail_rc, cls.fail_out = p256_only_client()
        # Every session's close counted (the log line is written at close).
        wait_until(lambda: len([l for l in SL.conn_logs() if l["listener"] in
                                ("smtp", "imap", "pop3", "imaps", "p384")]) >= 5,
                   20, "the five sessions' log lines")
        cls.text = metrics()
        cls.values, cls.types = parse(cls.text)

    def lst(self, name):
        proto = {"smtp": "smtp", "imap": "imap", "pop3": "pop3", "imaps": "imap",
                 "p384": "smtp"}[name]
        mode = {"imaps": "implicit", "p384": "implicit"}.get(name, "starttls")
        return {"listener": name, "proto": proto, "mode": mode}

    def test_sessions_per_listener(self):
        for name in ("smtp", "imap", "pop3", "imaps", "p384"):
            self.assertEqual(get(self.values, "sluice_sessions_total", **self.lst(name)), 1,
                             f"sessions of {name}:\n" + self.grep("sluice_sessions_total"))
            self.assertEqual(get(self.values, "sluice_sessions", **self.lst(name)), 0, name)

    def test_starttls_offered_attempted_succeeded(self):
        for name in ("smtp", "imap", "pop3"):
            for fam in ("offered", "attempted", "succeeded"):
                self.assertEqual(
                    get(self.values, f"sluice_starttls_{fam}_total", **self.lst(name)), 1,
                    f"STARTTLS {fam} on {name}:\n" + self.grep(f"sluice_starttls_{fam}_total"))
        for fam in ("offered", "attempted", "succeeded"):
            self.assertEqual(get(self.values, f"sluice_starttls_{fam}_total",
                                 **self.lst("imaps")), 0, fam)

    def test_versions_and_handshakes(self):
        for name in ("smtp", "imap", "pop3", "imaps"):
            self.assertEqual(get(self.values, "sluice_tls_handshakes_total", **self.lst(name)), 1,
                             name)
            self.assertEqual(get(self.values, "sluice_tls_versions_total", version="1.3",
                                 **self.lst(name)), 1, name + "\n" +
                             self.grep("sluice_tls_versions_total"))
            self.assertEqual(get(self.values, "sluice_tls_ems_total", **self.lst(name)), 1, name)
            self.assertEqual(get(self.values, "sluice_tls_handshake_duration_seconds_count",
                                 **self.lst(name)), 1, name)
            self.assertEqual(get(self.values, "sluice_tls_handshake_duration_seconds_bucket",
                                 le="+Inf", **self.lst(name)), 1, name)
        self.assertEqual(self.types.get("sluice_tls_handshake_duration_seconds"), "histogram")
        # The delivery's bytes both ways (the message went to Postfix).
        self.assertGreater(get(self.values, "sluice_client_received_bytes_total",
                               **self.lst("smtp")), 200)
        self.assertGreater(get(self.values, "sluice_client_sent_bytes_total",
                               **self.lst("smtp")), 20)

    def test_p256_client_to_p384_listener_fails_under_its_reason(self):
        self.assertNotIn("220 ", self.fail_out)
        line = [l for l in SL.conn_logs() if l["listener"] == "p384"][-1]
        self.assertEqual(line["result"], "tls-failed", line)
        rule = re.search(r"; (\w+): ", line["reason"])
        self.assertIsNotNone(rule, line["reason"])
        fails = {dict(l).get("rule"): v for (n, l), v in self.values.items()
                 if n == "sluice_tls_handshake_failures_total" and
                 dict(l).get("listener") == "p384"}
        self.assertEqual(fails, {rule.group(1): 1}, self.grep("sluice_tls_handshake_failures_total"))
        self.assertEqual(get(self.values, "sluice_tls_handshake_failures_total",
                             reason="no_certificate", rule=rule.group(1), **self.lst("p384")), 1)
        self.assertEqual(get(self.values, "sluice_tls_handshakes_total", **self.lst("p384")), 0)
        for name in ("smtp", "imap", "pop3", "imaps"):
            self.assertFalse([k for k in self.values if k[0] == "sluice_tls_handshake_failures_total"
                              and ("listener", name) in k[1]], name)

    def test_process_cores_backends(self):
        v = self.values
        self.assertEqual(get(v, "sluice_config_generation"), 1)
        self.assertEqual(get(v, "sluice_config_last_reload_successful"), 1)
        self.assertEqual(get(v, "sluice_draining"), 0)
        self.assertEqual(len([k for k in v if k[0] == "sluice_build_info"]), 1)
        self.assertEqual(sorted(dict(l)["core"] for n, l in v if n == "sluice_core_busy_seconds_total"),
                         ["0", "1"])
        self.assertGreater(sum(x for (n, l), x in v.items()
                               if n == "sluice_core_busy_seconds_total"), 0)
        self.assertEqual(sum(x for (n, l), x in v.items() if n == "sluice_worker_queue_depth"), 0)
        self.assertEqual(get(v, "sluice_backend_up", backend="postfix", server="127.0.0.1:10026"), 1)
        age = get(v, "sluice_backend_probe_age_seconds", backend="postfix", server="127.0.0.1:10026")
        self.assertTrue(0 <= age < 600, age)

    def test_promtool_check_metrics(self):
        p = subprocess.run(["promtool", "check", "metrics"], input=self.text.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())

    def test_counters_never_go_back(self):
        first, types = parse(metrics())
        deliver(unique("metrics"))
        wait_until(lambda: get(parse(metrics())[0], "sluice_sessions", **self.lst("smtp")) == 0,
                   20, "the delivery's session closed")
        second, _ = parse(metrics())
        back = [(n, dict(l), first[(n, l)], second.get((n, l)))
                for (n, l) in counter_keys(first, types)
                if second.get((n, l), -1) < first[(n, l)]]
        self.assertEqual(back, [], "counters that went back or vanished")
        self.assertEqual(get(second, "sluice_sessions_total", **self.lst("smtp")) -
                         get(first, "sluice_sessions_total", **self.lst("smtp")), 1)

    def test_stats_sums_and_per_listener(self):
        ans = SL.ctl("stats", per_listener=True)
        self.assertTrue(ans["ok"], ans)
        by = {l["name"]: l for l in ans["listeners"]}
        self.assertEqual(set(by), {"smtp", "imap", "pop3", "imaps", "p384"})
        self.assertEqual((by["pop3"]["proto"], by["pop3"]["mode"]), ("pop3", "starttls"))
        self.assertEqual(by["imaps"]["mode"], "implicit")
        self.assertEqual(by["p384"]["counters"].get("handshake_fail"), 1)
        for k in ("conn_accepted", "handshake_ok", "starttls"):
            self.assertEqual(ans["counters"][k], sum(l["counters"].get(k, 0) for l in by.values()), k)
        self.assertNotIn("listeners", SL.ctl("stats"))

    def grep(self, name):
        return "\n".join(l for l in self.text.split("\n") if l.startswith(name))


class Reload(unittest.TestCase):
    """Listener slots across reloads: by name, never reused."""

    def test_series_across_a_reload(self):
        cfg = {"hostname": FRONT["hostname"], "cores": 2, "workers": 1,
               "backends": FRONT["backends"],
               "listeners": [listener("keep", 20, "smtp", "starttls", "postfix"),
                             listener("gone", 21, "smtp", "starttls", "postfix")]}
        sl = Sluice(copy.deepcopy(cfg), "metrics-reload").start()
        try:
            def smtp_quit(name):
                with smtplib.SMTP(*sl.addr(name), local_hostname="client.test",
                                  source_address=client_source(CLIENT), timeout=20) as s:
                    s.starttls(context=no_verify_context())

            def values():
                ans = sl.ctl("metrics")
                self.assertTrue(ans.get("ok"), ans)
                return parse(ans["text"])[0]

            smtp_quit("keep")
            smtp_quit("gone")
            cfg["listeners"] = [listener("keep", 20, "smtp", "starttls", "postfix"),
                                listener("new", 22, "smtp", "starttls", "postfix")]
            sl.rewrite(cfg)
            os.kill(sl.proc.pid, signal.SIGHUP)
            wait_until(lambda: get(values(), "sluice_config_generation") == 2, 10,
                       "generation 2")
            smtp_quit("keep")
            smtp_quit("new")
            lab = dict(proto="smtp", mode="starttls")
            wait_until(lambda: get(values(), "sluice_sessions", listener="new", **lab) == 0 and
                       get(values(), "sluice_sessions", listener="keep", **lab) == 0,
                       10, "the sessions closed")
            v = values()
            self.assertEqual(get(v, "sluice_sessions_total", listener="keep", **lab), 2)
            self.assertEqual(get(v, "sluice_sessions_total", listener="gone", **lab), 1)
            self.assertEqual(get(v, "sluice_sessions_total", listener="new", **lab), 1)
            self.assertEqual(get(v, "sluice_starttls_succeeded_total", listener="keep", **lab), 2)
            self.assertEqual(get(v, "sluice_config_reloads_total", result="ok"), 1)
            self.assertEqual(get(v, "sluice_config_reloads_total", result="failed"), 0)
            self.assertEqual(get(v, "sluice_config_last_reload_successful"), 1)
            self.assertGreaterEqual(get(v, "sluice_config_last_reload_timestamp_seconds"),
                                    get(v, "sluice_start_time_seconds"))
        finally:
            sl.stop()


class Resumption(unittest.TestCase):

    def test_ticket_and_cache_counted_apart(self):
        cfg = {"hostname": FRONT["hostname"], "cores": 2, "workers": 1,
               "backends": FRONT["backends"],
               "listeners": [listener("res", 30, "smtp", "implicit", "postfix")]}
        sl = Sluice(cfg, "metrics-resume").start()
        try:
            host, port = sl.addr("res")
            d = Path(tempfile.mkdtemp(prefix="resume-", dir=scratch()))

            def s_client(*args):
                rc, out = run(["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_2",
                               "-ign_eof", *args], input=b"QUIT\r\n", timeout=20)
                m = re.search(r"^(New|Reused), ", out, re.M)
                return m.group(1) if m else out

            for kind, extra in (("ticket", []), ("cache", ["-no_ticket"])):
                sess = str(d / f"{kind}.pem")
                self.assertEqual(s_client("-sess_out", sess, *extra), "New", kind)
                self.assertEqual(s_client("-sess_in", sess, *extra), "Reused", kind)
            lab = dict(listener="res", proto="smtp", mode="implicit")
            v = wait_until(lambda: (lambda v: v if get(v, "sluice_sessions", **lab) == 0 and
                                    get(v, "sluice_sessions_total", **lab) == 4 else None)(
                               parse(sl.ctl("metrics")["text"])[0]), 10, "four sessions closed")
            self.assertEqual(get(v, "sluice_tls_resumptions_total", kind="ticket", **lab), 1)
            self.assertEqual(get(v, "sluice_tls_resumptions_total", kind="cache", **lab), 1)
            self.assertEqual(get(v, "sluice_tls_handshakes_total", **lab), 4)
            self.assertEqual(get(v, "sluice_tls_ems_total", **lab), 4)
            self.assertEqual(get(v, "sluice_tls_certificates_total", type="ecdsa_p256", **lab) +
                             get(v, "sluice_tls_certificates_total", type="rsa", **lab), 2)
        finally:
            sl.stop()


class ClientAlerts(unittest.TestCase):

    def test_client_alert_counted_by_name(self):
        """A client that does not trust sluice's certificate gives up with
        an alert (here unknown_ca: openssl s_client verifying against
        another certificate): counted under peer_alert with the alert's
        name, which docs/metrics.md maps to RFC 8460's
        certificate-not-trusted."""
        cfg = {"hostname": FRONT["hostname"], "cores": 1, "workers": 1,
               "backends": FRONT["backends"],
               "listeners": [listener("alerts", 31, "smtp", "implicit", "postfix")]}
        other = pki.leaf(Path(tempfile.mkdtemp(prefix="other-", dir=scratch())), "p256",
                         names=("someone.else.test",))
        sl = Sluice(cfg, "metrics-alerts").start()
        try:
            host, port = sl.addr("alerts")
            rc, out = run(["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_3",
                           "-verify_return_error", "-CAfile", other["cert"]],
                          input=b"", timeout=20)
            self.assertNotEqual(rc, 0, out)
            lab = dict(listener="alerts", proto="smtp", mode="implicit")
            v = wait_until(lambda: (lambda v: v if get(v, "sluice_sessions", **lab) == 0 and
                                    get(v, "sluice_sessions_total", **lab) == 1 else None)(
                               parse(sl.ctl("metrics")["text"])[0]), 10, "the session closed")
            self.assertEqual(get(v, "sluice_tls_handshake_failures_total", reason="peer_alert",
                                 rule="alert_unknown_ca", **lab), 1, out)
            self.assertEqual(get(v, "sluice_tls_handshakes_total", **lab), 0)
        finally:
            sl.stop()


if __name__ == "__main__":
    unittest.main()


def tls_flight_then_close(host, port):
    """A TLS 1.3 client that sends its ClientHello, reads sluice's whole
    flight (ServerHello to Finished), then closes without its Finished:
    the handshake can never end. The bytes sluice sent (to check that the
    flight came)."""
    import socket
    import ssl
    ctx = no_verify_context()
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="mx.test")
    got = b""
    with socket.create_connection((host, port), timeout=10,
                                  source_address=(CLIENT, 0)) as s:
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        s.sendall(out.read())
        # sluice's flight: read until a record of type 23 (the encrypted
        # handshake) has come, then stop before answering it.
        while b"\x17\x03\x03" not in got:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    return got


class FailureReasons(unittest.TestCase):
    """The handshake failure reasons a client's behaviour decides: a
    handshake that never ends within timeouts.handshake (`timeout`), a
    client that vanished after sluice's flight (`client_gone`)."""

    @classmethod
    def setUpClass(cls):
        cfg = {"hostname": FRONT["hostname"], "cores": 1, "workers": 1,
               "timeouts": {"plaintext": 30, "handshake": 2, "idle": 60},
               "backends": FRONT["backends"],
               "listeners": [listener("hsf", 31, "smtp", "implicit", "postfix")]}
        cls.sl = Sluice(cfg, "metrics-hsfail").start()
        cls.lab = dict(listener="hsf", proto="smtp", mode="implicit")

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def failures(self, reason):
        v = parse(self.sl.ctl("metrics")["text"])[0]
        return get(v, "sluice_tls_handshake_failures_total", reason=reason, **self.lab)

    def test_handshake_that_never_ends_is_timeout(self):
        import socket
        before, gone = self.failures("timeout"), self.failures("client_gone")
        host, port = self.sl.addr("hsf")
        with socket.create_connection((host, port), timeout=10,
                                      source_address=(CLIENT, 0)) as s:
            # A handshake record header that promises 512 bytes, and 10 of them.
            s.sendall(b"\x16\x03\x01\x02\x00" + b"\x01\x00\x01\xfc\x03\x03" + b"\x00" * 4)
            t0 = __import__("time").monotonic()
            self.assertEqual(s.recv(100), b"", "sluice closes the stalled handshake")
            waited = __import__("time").monotonic() - t0
        self.assertGreaterEqual(waited, 1.5, "closed by the 2 s handshake deadline, not earlier")
        wait_until(lambda: self.failures("timeout") == before + 1, 10,
                   "one handshake failure under reason timeout")
        self.assertEqual(self.failures("client_gone"), gone, "and not as client_gone")

    def test_client_gone_after_the_flight(self):
        before = self.failures("client_gone")
        host, port = self.sl.addr("hsf")
        got = tls_flight_then_close(host, port)
        self.assertIn(b"\x16\x03\x03", got, "sluice's ServerHello came")
        wait_until(lambda: self.failures("client_gone") == before + 1, 10,
                   "one handshake failure under reason client_gone")


class ListenerSlots(unittest.TestCase):
    """More listener names than metrics slots (62 named): the 63rd and
    later count together as listener="(other)", with a warning logged once;
    the first 62 keep their own series."""

    PORTS = 43300   # 43300-43363: this class's (outside every helper range)

    def test_overflow_counts_as_other(self):
        ls = [{"name": f"l{i:02d}", "address": f"127.0.0.1:{self.PORTS + i}",
               "protocol": "smtp", "tls": "starttls", "backend": "postfix"}
              for i in range(64)]
        cfg = {"hostname": FRONT["hostname"], "cores": 1, "workers": 1,
               "backends": FRONT["backends"], "listeners": ls}
        sl = Sluice(cfg, "metrics-slots").start()
        try:
            for name in ("l00", "l61", "l62", "l63"):
                with smtplib.SMTP(*sl.addr(name), local_hostname="client.test",
                                  source_address=client_source(CLIENT), timeout=20) as s:
                    code, _ = s.ehlo()
                    self.assertEqual(code, 250, name)

            def sessions():
                v = parse(sl.ctl("metrics")["text"])[0]
                return {n: get(v, "sluice_sessions_total", listener=n)
                        for n in ("l00", "l61", "l62", "l63", "(other)")}
            got = wait_until(lambda: (lambda d: d if d["(other)"] == 2 else None)(sessions()),
                             10, "two sessions under (other)")
            self.assertEqual(got["l00"], 1, got)
            self.assertEqual(got["l61"], 1, got)
            self.assertEqual(got["l62"], 0, got)
            self.assertEqual(got["l63"], 0, got)
            warned = [l for l in sl.log_lines() if "count as (other)" in l]
            self.assertEqual(len(warned), 1, warned)
            self.assertIn("listener l62", warned[0])
        finally:
            sl.stop()
