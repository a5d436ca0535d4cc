"""sluice's metrics as an operator meets them (issue 13, docs/metrics.md): a
real Prometheus server (Debian's prometheus) scraping sluice-control's
metrics endpoint every second, with a real sluice in front of a real
Postfix and Dovecot, and the shipped alert rules (docs/prometheus/alerts.yml)
loaded. Every figure is read back with PromQL over Prometheus's HTTP API
(/api/v1/query), as a dashboard or an alert reads it.

- Sessions per listener: SMTP STARTTLS deliveries, IMAP STARTTLS and POP3
  STLS logins through sluice are counted on their listener
  (sluice_sessions_total, sluice_tls_handshakes_total,
  sluice_starttls_succeeded_total), and none is open after.
- A TLS 1.2 client that offers only P-256 to a listener whose only
  certificate is ECDSA P-384 fails its handshake, counted once under
  reason no_certificate and certsel rule ecdsa_curve_not_offered.
- sluice_cert_not_after_timestamp_seconds is each certificate's notAfter,
  and the shipped SluiceCertificateExpiringSoon alert is pending for the
  one with 10 days left.
- sluicectl reload is counted (sluice_config_reloads_total{result="ok"});
  a failed one too (a YAML error sluice-control refuses before the
  dataplane sees it: sluice_control_reloads_total{result="failed"}), with
  sluice_control_last_reload_successful 0 and the SluiceReloadFailed alert
  pending, until a good one.
- The scraped text passes `promtool check metrics` (naming lint), and the
  target is up with sluice_dataplane_up 1.

Ports 40500-40549: the listeners from 40500, sluice-control's metrics at
40520, Prometheus's web port at 40521.
"""

import datetime
import json
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from cryptography import x509

import pki
from harness import (MAIL_PASSWORD, MAIL_USER, POP3, IMAP4, REPO, SENDER, Dovecot, Postfix,
                     Sluice, SluiceControl, _running, listening, make_message, no_verify_context,
                     poll, recipient, run, scratch, stop_all, unique)

BASE = 40500
METRICS = ("127.0.0.1", BASE + 20)
PROM = ("127.0.0.1", BASE + 21)
NAME = "mail.example.test"
RULES = REPO / "docs" / "prometheus" / "alerts.yml"

# A TLS 1.2 client (an old Exchange) that offers ECDHE-ECDSA and RSA suites
# but only the group secp256r1 (test_certs.py CurveRule): a P-384-only
# listener has no certificate for it (RFC 8422 5.1).
P256_ONLY = ["-tls1_2", "-groups", "P-256", "-sigalgs",
             "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:rsa_pkcs1_sha256:rsa_pss_rsae_sha256",
             "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"]

PF = DV = None


def setUpModule():
    global PF, DV
    PF = Postfix().start()
    DV = Dovecot().start()


def tearDownModule():
    stop_all(PF, DV)


class Prometheus:
    """/usr/bin/prometheus on a config written to a scratch folder, its
    TSDB there too, stderr to a file; stop() is SIGTERM."""

    def __init__(self, dir, targets, rule_files=()):
        self.dir = Path(dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(json.dumps({   # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s",
                       "evaluation_interval": "1s"},
            "rule_files": [str(r) for r in rule_files],
            "scrape_configs": [{"job_name": "sluice",
                                "static_configs": [{"targets": list(targets)}]}],
        }, indent=1))
        self.stderr_path = self.dir / "prometheus.stderr"
        self.proc = None

    def start(self, timeout=30):
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        assert os.access(binary, os.X_OK), "prometheus is not installed (tests/packages.txt)"
        assert not listening(*PROM), f"{PROM} is taken: a Prometheus of an earlier run?"
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--config.file", str(self.config),
             "--storage.tsdb.path", str(self.dir / "data"),
             "--web.listen-address", f"{PROM[0]}:{PROM[1]}",
             "--web.enable-lifecycle"],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
            start_new_session=True)
        _running.append(self)
        ready = poll(lambda: self.proc.poll() is not None or self._ready(), timeout, 0.2)
        if self.proc.poll() is not None or not ready:
            self.stop()
            raise AssertionError(f"prometheus did not become ready in {timeout} s:\n"
                                 + self.log_text()[-3000:])
        return self

    def _ready(self):
        try:
            with urllib.request.urlopen(f"http://{PROM[0]}:{PROM[1]}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self, timeout=20):
        if self.proc is None:
            return
        _running.remove(self)
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self._err.close()

    def log_text(self):
        try:
            return self.stderr_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def api(self, path, **params):
        url = f"http://{PROM[0]}:{PROM[1]}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                answer = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError(f"{url}: HTTP {e.code}: {e.read()[:2000]!r}") from None
        assert answer.get("status") == "success", f"{url}: {answer}"
        return answer["data"]

    def query(self, promql):
        """An instant query: [(labels, float value)]."""
        data = self.api("query", query=promql)
        assert data["resultType"] == "vector", f"{promql}: {data}"
        return [(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(self, promql):
        """The one value of a query that yields one series (sum(...) of
        nothing yields none: None)."""
        result = self.query(promql)
        assert len(result) <= 1, f"{promql}: more than one series: {result}"
        return result[0][1] if result else None

    def alerts(self):
        return self.api("alerts")["alerts"]


def not_after(path):
    """A certificate file's notAfter as Unix time."""
    crt = x509.load_pem_x509_certificate(Path(path).read_bytes())
    dt = getattr(crt, "not_valid_after_utc", None) or \
        crt.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


class Metrics(unittest.TestCase):
    """One sluice, sluice-control and Prometheus for the class. Each test
    has listeners of its own, so that its counts are absolute."""

    @classmethod
    def setUpClass(cls):
        cls.d = Path(tempfile.mkdtemp(prefix="prometheus-", dir=scratch()))
        now = pki.NOW.replace(microsecond=0)
        cls.mail = pki.leaf(cls.d / "mail", "p256", names=(NAME,),
                            not_after=now + datetime.timedelta(days=200))
        cls.p384 = pki.leaf(cls.d / "p384", "p384", names=(NAME,),
                            not_after=now + datetime.timedelta(days=10))
        cfg = {
            "hostname": NAME, "cores": 2, "workers": 1,
            "backends": [
                {"name": "postfix", "protocol": "smtp", "proxy": "v2",
                 "servers": ["127.0.0.1:10026"]},
                {"name": "dovecot-imap", "protocol": "imap", "proxy": "v2",
                 "servers": ["127.0.0.1:10144"]},
                {"name": "dovecot-pop3", "protocol": "pop3", "proxy": "v2",
                 "servers": ["127.0.0.1:10111"]},
            ],
            "cert_sets": [{"name": "mail", "certs": [cls.mail]},
                          {"name": "p384", "certs": [cls.p384]}],
            "listeners": [
                {"name": "smtp", "address": f"127.0.0.1:{BASE}", "protocol": "smtp",
                 "tls": "starttls", "backend": "postfix", "cert_sets": ["mail"]},
                {"name": "imap", "address": f"127.0.0.1:{BASE + 1}", "protocol": "imap",
                 "tls": "starttls", "backend": "dovecot-imap", "cert_sets": ["mail"]},
                {"name": "pop3", "address": f"127.0.0.1:{BASE + 2}", "protocol": "pop3",
                 "tls": "starttls", "backend": "dovecot-pop3", "cert_sets": ["mail"]},
                {"name": "p384", "address": f"127.0.0.1:{BASE + 3}", "protocol": "smtp",
                 "tls": "implicit", "backend": "postfix", "cert_sets": ["p384"]},
            ],
        }
        cls.sl = cls.sc = cls.prom = None
        try:
            cls.sl = Sluice(cfg, "prometheus").start()
            cls.sc = SluiceControl(cls.sl, metrics=f"{METRICS[0]}:{METRICS[1]}").start()
            cls.yaml = cls.sl.path.read_text()
            cls.prom = Prometheus(cls.d / "prometheus", [f"{METRICS[0]}:{METRICS[1]}"],
                                  rule_files=[RULES]).start()
            # The first scrape with the dataplane's families in it.
            cls.wait_value(cls, 'sluice_dataplane_up{job="sluice"}', 1, 30)
        except BaseException:
            stop_all(cls.sl, cls.sc, cls.prom)
            raise

    @classmethod
    def tearDownClass(cls):
        stop_all(cls.sl, cls.sc, cls.prom)

    def setUp(self):
        self.assertTrue(self.sl.running(), "sluice is not running")
        self.assertTrue(self.sc.running(), "sluice-control is not running")

    def wait_value(self, promql, want, timeout=20):
        """Poll the query until its one value is want (the scrape runs each
        second, the counters are read at each scrape); fail with the last
        answer."""
        last = []

        def check():
            last[:] = [self.prom.query(promql)]
            return len(last[0]) == 1 and last[0][0][1] == want
        if not poll(check, timeout, 0.5):
            raise AssertionError(f"{promql}: wanted {want} within {timeout} s, "
                                 f"Prometheus answers {last[0] if last else None}")

    def scrape_text(self):
        with urllib.request.urlopen(f"http://{METRICS[0]}:{METRICS[1]}/metrics",
                                    timeout=10) as r:
            return r.read().decode()

    # ----------------------------------------------------------- tests ---

    def test_target_up_and_lint(self):
        """The target is up, sluice-control attached, and the text it
        serves passes promtool's naming lint."""
        self.assertEqual(self.prom.value('up{job="sluice"}'), 1)
        self.assertEqual(self.prom.value('sluice_dataplane_up{job="sluice"}'), 1)
        self.assertEqual(self.prom.value('sluice_build_info{job="sluice"}'), 1)
        text = self.scrape_text()
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, "promtool check metrics:\n"
                         + p.stdout.decode(errors="replace"))
        # Every sluice family Prometheus has seen from this target is one
        # of docs/metrics.md's (the dashboard and the rules are held to
        # the same list by test_prometheus_rules).
        from test_prometheus_rules import known, metric_families
        fam = metric_families()
        names = self.prom.api("label/__name__/values")
        unknown = [n for n in names if n.startswith("sluice_") and not known(n, fam)]
        self.assertEqual(unknown, [], "families served that docs/metrics.md does not list")

    def test_sessions_per_listener(self):
        """SMTP STARTTLS deliveries, IMAP STARTTLS and POP3 STLS logins:
        each counted on its listener, with its handshake."""
        counts = {"smtp": 3, "imap": 2, "pop3": 2}
        for _ in range(counts["smtp"]):
            tag = unique("prom")
            with smtplib.SMTP(*self.sl.addr("smtp"), local_hostname="client.test",
                              timeout=20) as s:
                s.starttls(context=no_verify_context())
                self.assertEqual(s.sendmail(SENDER, [recipient(tag)], make_message(tag)), {})
        for _ in range(counts["imap"]):
            m = IMAP4(*self.sl.addr("imap"), timeout=20)
            m.starttls(ssl_context=no_verify_context())
            m.login(MAIL_USER, MAIL_PASSWORD)
            self.assertEqual(m.select("INBOX", readonly=True)[0], "OK")
            m.logout()
        for _ in range(counts["pop3"]):
            p = POP3(*self.sl.addr("pop3"), timeout=20)
            p.stls(context=no_verify_context())
            p.user(MAIL_USER)
            p.pass_(MAIL_PASSWORD)
            p.stat()
            p.quit()
        for listener, n in counts.items():
            with self.subTest(listener=listener):
                sel = f'job="sluice", listener="{listener}"'
                self.wait_value(f"sum(sluice_sessions_total{{{sel}}})", n)
                self.wait_value(f"sum(sluice_tls_handshakes_total{{{sel}}})", n)
                self.wait_value(f"sum(sluice_starttls_succeeded_total{{{sel}}})", n)
                self.wait_value(f"sum(sluice_sessions{{{sel}}})", 0)
                labels = self.prom.query(f"sluice_sessions_total{{{sel}}}")[0][0]
                self.assertEqual((labels["proto"], labels["mode"]), (listener, "starttls"))
                self.assertGreater(self.prom.value(
                    f"sum(sluice_client_sent_bytes_total{{{sel}}})") or 0, 0)
                self.assertEqual(self.prom.value(
                    f"sum(sluice_tls_handshake_failures_total{{{sel}}})") or 0, 0)
        # The dashboard's handshake latency: every handshake in the histogram.
        self.wait_value('sum(sluice_tls_handshake_duration_seconds_count{job="sluice", '
                        'listener=~"smtp|imap|pop3"})', sum(counts.values()))

    def test_p256_client_on_p384_listener(self):
        """One failed handshake, under its reason and certsel rule."""
        rc, out = run(["openssl", "s_client", "-connect",
                       f"{self.sl.addr('p384')[0]}:{self.sl.addr('p384')[1]}",
                       "-ign_eof", *P256_ONLY], input=b"QUIT\r\n", timeout=20)
        self.assertNotIn("220 ", out, "the P-256-only client got a greeting")
        self.assertIn("alert handshake failure", out)
        sel = 'job="sluice", listener="p384"'
        self.wait_value(f"sum(sluice_tls_handshake_failures_total{{{sel}}})", 1)
        failed = self.prom.query(f"sluice_tls_handshake_failures_total{{{sel}}} > 0")
        self.assertEqual(len(failed), 1, failed)
        labels, value = failed[0]
        self.assertEqual((labels["reason"], labels["rule"], labels["proto"], labels["mode"]),
                         ("no_certificate", "ecdsa_curve_not_offered", "smtp", "implicit"),
                         labels)
        self.assertEqual(self.prom.value(f"sum(sluice_tls_handshakes_total{{{sel}}})") or 0, 0)
        self.assertEqual(self.prom.value(f"sum(sluice_sessions_total{{{sel}}})"), 1)

    def test_certificate_not_after(self):
        """Each certificate's notAfter, to the second; the shipped alert is
        pending for the one with 10 days left (its `for` is an hour)."""
        for set_name, pair in (("mail", self.mail), ("p384", self.p384)):
            with self.subTest(set=set_name):
                got = self.prom.query('sluice_cert_not_after_timestamp_seconds'
                                      f'{{job="sluice", set="{set_name}"}}')
                self.assertEqual(len(got), 1, got)
                labels, value = got[0]
                self.assertEqual(value, not_after(pair["cert"]))
                self.assertIn(NAME, labels["names"])
                self.assertIn("p384" if set_name == "p384" else "p256",
                              labels["type"].replace("-", "_").lower())

        def pending():
            return [a for a in self.prom.alerts()
                    if a["labels"]["alertname"] == "SluiceCertificateExpiringSoon"]
        got = poll(pending, 20, 0.5)
        self.assertEqual([(a["labels"]["set"], a["state"]) for a in got or []],
                         [("p384", "pending")], "SluiceCertificateExpiringSoon")

    def reloads(self, result):
        return self.prom.value(
            f'sum(sluice_config_reloads_total{{job="sluice", result="{result}"}})') or 0

    def control_reloads(self, result):
        return self.prom.value(
            f'sum(sluice_control_reloads_total{{job="sluice", result="{result}"}})') or 0

    def test_reload_counted(self):
        """sluicectl reload, then sluice_config_reloads_total{result="ok"}
        is one more, the generation is newer, the last reload successful."""
        ok = self.reloads("ok")
        gen = self.prom.value('sluice_config_generation{job="sluice"}')
        rc, out, err = self.sc.ctl("reload")
        self.assertEqual(rc, 0, err)
        self.wait_value('sum(sluice_config_reloads_total{job="sluice", result="ok"})', ok + 1)
        self.wait_value('sluice_config_last_reload_successful{job="sluice"}', 1)
        self.assertGreater(self.prom.value('sluice_config_generation{job="sluice"}'), gen)
        self.assertGreaterEqual(self.prom.value(
            'sluice_config_last_reload_timestamp_seconds{job="sluice"}'), time.time() - 60)

    def test_failed_reload_counted(self):
        """The reload operators get wrong most (sluicectl reload of a file
        with a YAML error, refused by sluice-control before the dataplane
        sees it) is counted as failed and shows in
        sluice_config_last_reload_successful, which the shipped
        SluiceReloadFailed alert watches, until a good one."""
        ok, failed = self.control_reloads("ok"), self.control_reloads("failed")
        self.addCleanup(self.restore)
        self.sl.path.write_text(self.yaml + "listeners: [\n")
        rc, out, err = self.sc.ctl("reload")
        self.assertNotEqual(rc, 0, "a broken file reloaded")
        # sluice-control refused it: the dataplane saw nothing, its
        # families are unchanged; sluice-control's own count it
        self.wait_value('sluice_control_last_reload_successful{job="sluice"}', 0)
        self.wait_value('sum(sluice_control_reloads_total{job="sluice", result="failed"})',
                        failed + 1)
        self.assertEqual(self.prom.value('sluice_config_last_reload_successful{job="sluice"}'), 1)
        self.assertTrue(poll(lambda: [a for a in self.prom.alerts()
                                      if a["labels"]["alertname"] == "SluiceReloadFailed"],
                             20, 0.5), "SluiceReloadFailed is not pending")
        self.restore()
        self.wait_value('sum(sluice_control_reloads_total{job="sluice", result="ok"})', ok + 1)
        self.wait_value('sluice_control_last_reload_successful{job="sluice"}', 1)

    def restore(self):
        if self.sl.path.read_text() != self.yaml:
            self.sl.path.write_text(self.yaml)
            rc, out, err = self.sc.ctl("reload")
            self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    unittest.main()
