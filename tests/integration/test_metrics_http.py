"""sluice-control's Prometheus endpoint (issue 13, docs/metrics.md): a real
sluice, a real sluice-control serving control.metrics with libmicrohttpd,
real Postfix behind SMTP STARTTLS, curl and promtool as the clients.

- GET /metrics answers 200, Content-Type text/plain; version=0.0.4, and
  `promtool check metrics` passes on the body; other paths 404, other
  methods 405.
- sluice_cert_not_after_timestamp_seconds{set,type,names} of the configured
  certificate equals its notAfter as `openssl x509 -enddate` reads it;
  sluice_ticket_key_age_seconds is the sealing key's age.
- control.metrics: off serves nothing; a bad address is refused at start
  with FILE:LINE: control.metrics: reason and exit status 1.
- With the dataplane stopped a scrape still answers 200, with
  sluice_dataplane_up 0.
- 50 clients that connect and send nothing hold up neither sluicectl status
  nor, once dropped after the idle timeout, a scrape.
- A scrape every 100 ms while deliveries run: every answer 200 and parsed,
  no counter ever goes backwards.
"""

import copy
import os
import re
import smtplib
import socket
import subprocess
import threading
import time
import unittest
from datetime import datetime, timezone

import yaml

import pki
from harness import (SENDER, Postfix, Sluice, SluiceControl, client_source, control_bin,
                     make_message, no_verify_context, recipient, scratch, stop_all, tool,
                     unique, wait_until)

CLIENT = "127.0.0.82"
BASE = 40950                # listeners 40950.., the metrics address 40960..
METRICS = ("127.0.0.1", BASE + 10)
NAME = "metrics.example.test"
CONTENT_TYPE = "text/plain; version=0.0.4"
IDLE_TIMEOUT = 5            # control/metrics_http.h MH_IDLE_TIMEOUT_S

PF = None


def setUpModule():
    global PF
    PF = Postfix().start()


def tearDownModule():
    stop_all(PF)


def curl(path="/metrics", method=None, addr=METRICS, timeout=10):
    """curl: (HTTP status, Content-Type, body); status 0 when nothing answered."""
    out = scratch() / f"metrics-{os.getpid()}.body"
    cmd = [tool("curl"), "-s", "-o", str(out), "-w", "%{http_code} %{content_type}",
           "--max-time", str(timeout)]
    if method:
        cmd += ["-X", method]
    cmd.append(f"http://{addr[0]}:{addr[1]}{path}")
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout + 5)
    code, _, ctype = p.stdout.partition(" ")
    body = out.read_text() if out.exists() and int(code or 0) else ""
    if out.exists():
        out.unlink()
    return int(code or 0), ctype, body


def samples(text):
    """{(name, labels): value} and {family: type} of an exposition text."""
    vals, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, fam, typ = line.split(" ", 3)
            types[fam] = typ
        elif line and not line.startswith("#"):
            m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)( \d+)?', line)
            assert m, f"not a sample line: {line!r}"
            vals[(m[1], m[2] or "")] = float(m[3])
    return vals, types


def counter_family(name, types):
    """The counter family a sample belongs to, or None."""
    for suffix in ("", "_total", "_bucket", "_count", "_sum"):
        if suffix and not name.endswith(suffix):
            continue
        fam = name[:len(name) - len(suffix)] if suffix else name
        if types.get(fam) in ("counter", "histogram") or (
                suffix == "_total" and types.get(name) == "counter"):
            return fam
    return None


def not_after(cert):
    """The certificate's notAfter as openssl x509 -enddate reads it, Unix time."""
    out = subprocess.run([tool("openssl"), "x509", "-noout", "-enddate", "-in", cert],
                         stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    when = out.split("=", 1)[1]
    return int(datetime.strptime(when, "%b %d %H:%M:%S %Y %Z")
               .replace(tzinfo=timezone.utc).timestamp())


def deliver(addr, tag):
    with smtplib.SMTP(*addr, local_hostname="client.test", source_address=client_source(CLIENT),
                      timeout=20) as s:
        s.starttls(context=no_verify_context())
        refused = s.sendmail(SENDER, [recipient(tag)], make_message(tag))
        assert refused == {}, refused


class MetricsHttp(unittest.TestCase):
    """One sluice and one sluice-control (metrics on METRICS) for the class."""

    @classmethod
    def setUpClass(cls):
        cls.d = scratch() / f"metrics-{os.getpid()}"
        cls.d.mkdir(parents=True, exist_ok=True)
        cls.pair = pki.leaf(cls.d, "p256", names=(NAME, "mx." + NAME))
        cfg = {
            "hostname": NAME, "cores": 2, "workers": 1,
            "backends": [{"name": "pf", "protocol": "smtp", "proxy": "v2",
                          "servers": ["127.0.0.1:10026"]}],
            "cert_sets": [{"name": "mail", "certs": [dict(cls.pair)]}],
            "listeners": [
                {"name": "smtp", "address": f"127.0.0.1:{BASE}", "protocol": "smtp",
                 "tls": "starttls", "backend": "pf", "cert_sets": ["mail"]},
            ],
        }
        cls.sl = Sluice(cfg).start()
        cls.sc = SluiceControl(cls.sl, metrics=f"{METRICS[0]}:{METRICS[1]}")
        cls.config = copy.deepcopy(cls.sl.config)
        cls.sc.start()

    @classmethod
    def tearDownClass(cls):
        stop_all(cls.sc, cls.sl)

    def setUp(self):
        if not self.sl.running():
            self.sl.start()
        if not self.sc.running():
            self.sc.start()

    def tearDown(self):
        # Back to the class's configuration, sluice-control restarted on it
        # when a test changed it.
        if self.sl.config != self.config:
            self.sc.stop()
            self.sl.rewrite(copy.deepcopy(self.config))
            self.sc.start()

    def scrape(self):
        code, ctype, body = curl()
        self.assertEqual(code, 200, f"GET /metrics answered {code}:\n{body}\n"
                         + self.sc.log_text()[-2000:])
        return ctype, body

    # ------------------------------------------------------------------

    def test_scrape_content_type_and_promtool(self):
        ctype, body = self.scrape()
        self.assertTrue(ctype.startswith(CONTENT_TYPE), ctype)
        for fam in ("sluice_dataplane_up", "sluice_cert_not_after_timestamp_seconds",
                    "sluice_ticket_key_age_seconds"):
            self.assertIn(f"# HELP {fam} ", body)
            self.assertIn(f"# TYPE {fam} gauge", body)
        p = subprocess.run([tool("promtool"), "check", "metrics"], input=body, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 0, f"promtool check metrics:\n{p.stdout}\non:\n{body}")
        # HEAD: the same headers, no body.
        p = subprocess.run([tool("curl"), "-s", "-I", f"http://{METRICS[0]}:{METRICS[1]}/metrics"],
                           stdout=subprocess.PIPE, text=True, timeout=15)
        self.assertRegex(p.stdout, r"^HTTP/1\.1 200")

    def test_cert_not_after_and_ticket_age(self):
        _, body = self.scrape()
        vals, _ = samples(body)
        want = not_after(self.pair["cert"])
        key = ("sluice_cert_not_after_timestamp_seconds",
               f'{{set="mail",type="ecdsa_p256",names="{NAME},mx.{NAME}"}}')
        self.assertIn(key, vals, body)
        self.assertEqual(int(vals[key]), want, body)
        # sluice-control's ring seals with this window's key: younger
        # than tickets.rotate (default 3600 s).
        age = vals[("sluice_ticket_key_age_seconds", "")]
        self.assertGreaterEqual(age, 0)
        self.assertLess(age, 3600)
        rc, tk = self.sc.json("tickets", "show")
        self.assertEqual(rc, 0, tk)

    def test_404_and_405(self):
        for path in ("/", "/metricsx", "/metrics/", "/favicon.ico"):
            code, _, body = curl(path)
            self.assertEqual(code, 404, f"{path}: {code} {body}")
        for method in ("POST", "PUT", "DELETE", "OPTIONS"):
            code, _, body = curl(method=method)
            self.assertEqual(code, 405, f"{method}: {code} {body}")
        # still serving
        self.scrape()

    def test_off_serves_nothing(self):
        cfg = copy.deepcopy(self.config)
        cfg["control"]["metrics"] = "off"
        self.sc.stop()
        self.sl.rewrite(cfg)
        serving = self.sc.log_text().count("metrics: serving")
        self.sc.start()
        with socket.socket() as s:
            s.settimeout(5)
            self.assertNotEqual(s.connect_ex(METRICS), 0,
                                "control.metrics: off, yet something listens")
        self.assertEqual(self.sc.log_text().count("metrics: serving"), serving,
                         "control.metrics: off, yet it says it serves")
        rc, out, err = self.sc.ctl("status")
        self.assertEqual(rc, 0, err)

    def test_bad_address_refused(self):
        cases = {
            "localhost:40961": r"'localhost' is not a numeric IPv4 address",
            "127.0.0.1": r"cannot parse '127\.0\.0\.1'",
            "127.0.0.1:99999": r"port out of range",
            "[::1:40961": r"cannot parse",
        }
        for value, reason in cases.items():
            cfg = copy.deepcopy(self.config)
            cfg["control"]["metrics"] = value
            cfg["control"]["socket"] = str(self.d / "bad.sock")
            path = self.d / "bad.yaml"
            path.write_text(yaml.safe_dump(cfg, sort_keys=False))
            line = next(i for i, l in enumerate(path.read_text().splitlines(), 1)
                        if l.strip().startswith("metrics:"))
            p = subprocess.run([control_bin("sluice-control"), "-c", str(path)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=20)
            self.assertEqual(p.returncode, 1, f"{value}: exit {p.returncode}\n{p.stderr}")
            self.assertRegex(p.stderr, rf"{re.escape(str(path))}:{line}: control\.metrics: "
                             + reason, value)
        # A port that is taken: refused at start, naming the key.
        cfg = copy.deepcopy(self.config)
        cfg["control"]["socket"] = str(self.d / "bad.sock")
        path = self.d / "bad.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        p = subprocess.run([control_bin("sluice-control"), "-c", str(path)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=20)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn(f"control.metrics {METRICS[0]}:{METRICS[1]}: Address already in use",
                      p.stderr)

    def test_dataplane_stopped(self):
        self.sl.stop()
        try:
            wait_until(lambda: "lost the dataplane" in self.sc.log_text(), 10,
                       "sluice-control to see the dataplane go")
            ctype, body = self.scrape()
            self.assertTrue(ctype.startswith(CONTENT_TYPE), ctype)
            vals, _ = samples(body)
            self.assertEqual(vals[("sluice_dataplane_up", "")], 0, body)
            # sluice-control's own families are still there
            self.assertTrue(any(k[0] == "sluice_cert_not_after_timestamp_seconds"
                                for k in vals), body)
        finally:
            self.sl.start()
        wait_until(lambda: self.sc.log_text().count("attached to dataplane pid ") >= 2, 20,
                   "sluice-control to attach again")

    def test_slow_clients(self):
        socks = []
        try:
            for _ in range(50):
                s = socket.create_connection(METRICS, timeout=5)
                socks.append(s)
            t0 = time.monotonic()
            rc, out, err = self.sc.ctl("status", timeout=10)
            self.assertEqual(rc, 0, err)
            self.assertLess(time.monotonic() - t0, 5, "sluicectl status was held up")
            # Every one of them dropped: those accepted after the idle
            # timeout, those the connection limit left in the backlog after
            # one more.
            deadline = time.monotonic() + 4 * IDLE_TIMEOUT + 10
            open_ = set(range(len(socks)))
            while open_ and time.monotonic() < deadline:
                for i in list(open_):
                    socks[i].settimeout(0.05)
                    try:
                        if socks[i].recv(1) == b"":
                            open_.discard(i)
                    except socket.timeout:
                        pass
                    except OSError:
                        open_.discard(i)
            self.assertFalse(open_, f"{len(open_)} silent clients still connected after "
                             f"{4 * IDLE_TIMEOUT + 10} s")
            self.assertGreaterEqual(time.monotonic() - t0, IDLE_TIMEOUT - 1,
                                    "silent clients dropped before the idle timeout")
        finally:
            for s in socks:
                s.close()
        self.scrape()
        self.assertTrue(self.sc.running())

    def test_counters_monotonic_while_delivering(self):
        stop = threading.Event()
        results = []

        def deliveries():
            while not stop.is_set():
                try:
                    deliver(self.sl.addr("smtp"), unique("metrics"))
                    results.append(None)
                except Exception as e:  # asserted on below
                    results.append(f"{type(e).__name__}: {e}")

        th = threading.Thread(target=deliveries, daemon=True)
        th.start()
        first, last, series, scrapes, up = {}, {}, set(), 0, 0
        try:
            end = time.monotonic() + 8
            while time.monotonic() < end:
                t = time.monotonic()
                ctype, body = self.scrape()
                vals, types = samples(body)
                up += vals[("sluice_dataplane_up", "")] == 1
                for key, v in vals.items():
                    if counter_family(key[0], types) is None:
                        continue
                    series.add(key)
                    first.setdefault(key, v)
                    self.assertGreaterEqual(v, last.get(key, v),
                                            f"{key} went backwards: {last.get(key)} -> {v}")
                    last[key] = v
                scrapes += 1
                time.sleep(max(0, 0.1 - (time.monotonic() - t)))
        finally:
            stop.set()
            th.join(60)
        errors = [r for r in results if r]
        self.assertGreater(len(results), 0, "no delivery ran")
        self.assertEqual(errors, [], errors[:3])
        self.assertGreaterEqual(scrapes, 30, "too few scrapes in 8 s")
        if self.sl.ctl("metrics").get("ok"):
            # A dataplane with the metrics command (docs/control.md): its
            # families came with every scrape, and its counters moved.
            self.assertEqual(up, scrapes, "scrapes without the dataplane's families")
            moved = [k for k in series if k[0] == "sluice_sessions_total"
                     and last[k] > first.get(k, 0)]
            self.assertTrue(moved, "sluice_sessions_total did not move while delivering:\n"
                            + "\n".join(f"{k}: {first.get(k)} -> {last[k]}" for k in series
                                         if k[0] == "sluice_sessions_total"))
        else:
            # Before it: sluice-control's own families, the dataplane down.
            self.assertEqual(up, 0)


if __name__ == "__main__":
    unittest.main()
