"""The dataplane's `hellos` command (docs/control.md): the ClientHellos
sluice records per (listener, JA4) for "who would break" (control/impact.c).

Real clients make real handshakes through sluice: `openssl s_client` as a
Windows/Exchange sender's TLS 1.2 hello (P-256 only, ECDSA+SHA256 and
RSA+SHA256, two ECDHE AES128-GCM suites) and OpenSSL's own TLS 1.3 hello,
on two implicit-TLS listeners of a sluice with two cores. The test then asks
the dataplane socket for `hellos` (JSON over the UNIX socket) and checks
each (listener, fingerprint) is there once, merged over the cores, with its
counts, its handshakes done, its client, its times and the bytes of the
hello (which parse again to the same JA4).
"""

import json
import re
import subprocess
import time
import unittest
from pathlib import Path

from harness import REPO, Sluice, run, stop_all

import os

BASE = 39700          # listener ports: BASE + n
BUILD = Path(os.environ.get("SLUICE_BUILD_DIR") or REPO / "build")
HELLO_DUMP = BUILD / "tests" / "tools" / "hello_dump"
EXCHANGE = ["-tls1_2", "-groups", "P-256", "-sigalgs", "ECDSA+SHA256:RSA+SHA256",
            "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"]
MODERN = ["-tls1_3"]
SL = None


def setUpModule():
    global SL
    cfg = {"hostname": "mx.example.test", "cores": 2, "workers": 1,
           "backends": [{"name": "pf", "protocol": "smtp", "proxy": "none",
                         "servers": ["127.0.0.1:10025"]}],
           "listeners": [
               {"name": "smtps-a", "address": f"127.0.0.1:{BASE}", "protocol": "smtp",
                "tls": "implicit", "backend": "pf"},
               {"name": "smtps-b", "address": f"127.0.0.1:{BASE + 1}", "protocol": "smtp",
                "tls": "implicit", "backend": "pf"}]}
    SL = Sluice(cfg, name="impact").start()


def tearDownModule():
    stop_all(SL)


def handshake(listener, args):
    """One TLS handshake with openssl s_client, QUIT after it: the output."""
    host, port = SL.addr(listener)
    rc, out = run(["openssl", "s_client", "-connect", f"{host}:{port}",
                   "-servername", "mx.example.test", *args], input=b"QUIT\r\n", timeout=20)
    if not re.search(r"^(New|Reused), TLSv1\.[23], Cipher is (?!\(NONE\))", out, re.M):
        raise AssertionError(f"no handshake with {listener} ({' '.join(args)}):\n{out}")
    return out


def dump(hello_hex):
    p = subprocess.run([str(HELLO_DUMP), "--raw"], input=bytes.fromhex(hello_hex),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    return json.loads(p.stdout)


class Hellos(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.t0 = int(time.time())
        for _ in range(3):
            handshake("smtps-a", EXCHANGE)
        for _ in range(2):
            handshake("smtps-a", MODERN)
        handshake("smtps-b", MODERN)

    def ask(self, since=3600):
        ans = SL.ctl("hellos", since=since)
        self.assertTrue(ans["ok"], ans)
        return ans["hellos"]

    def rows(self, listener, version):
        """The rows of listener whose JA4 says TLS version ("12", "13")."""
        def done():
            rows = [r for r in self.ask() if r["listener"] == listener
                    and r["ja4"].startswith("t" + version)]
            # the handshake's end is counted when the session ends
            return rows if rows and sum(r["ok"] for r in rows) >= sum(
                r["count"] for r in rows) else None
        deadline = time.time() + 10
        while time.time() < deadline:
            rows = done()
            if rows:
                return rows
            time.sleep(0.1)
        return [r for r in self.ask() if r["listener"] == listener
                and r["ja4"].startswith("t" + version)]

    def test_exchange_hello_recorded_once_over_cores(self):
        rows = self.rows("smtps-a", "12")
        self.assertEqual(len(rows), 1, rows)      # one (listener, JA4) whatever the core
        r = rows[0]
        self.assertEqual(r["count"], 3)
        self.assertEqual(r["ok"], 3)
        self.assertEqual(r["fail"], 0)
        self.assertRegex(r["client"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(r["clients"], ["127.0.0.1"])     # distinct addresses, no port
        self.assertLessEqual(self.t0, r["first_seen"])
        self.assertLessEqual(r["first_seen"], r["last_seen"])
        self.assertLessEqual(r["last_seen"], int(time.time()))
        self.assertNotIn("hello_len", r)          # kept whole
        d = dump(r["hello"])
        self.assertEqual(d["result"], "ok")
        self.assertEqual(d["ja4"], r["ja4"])
        self.assertEqual(d["groups"], ["0x0017"])  # P-256 only, as sent
        self.assertEqual(d["ciphers"][:2], ["0xc02b", "0xc02f"])

    def test_modern_hello_per_listener(self):
        a = self.rows("smtps-a", "13")
        b = self.rows("smtps-b", "13")
        self.assertEqual([r["count"] for r in a], [2])
        self.assertEqual([r["count"] for r in b], [1])
        self.assertEqual(a[0]["ja4"], b[0]["ja4"])   # the same client, two listeners
        self.assertEqual(dump(a[0]["hello"])["version"], "0x0304")
        self.assertEqual(a[0]["version"], "TLSv1.3")

    def test_since_leaves_older_out(self):
        self.rows("smtps-b", "13")
        time.sleep(2.2)
        self.assertEqual(self.ask(since=1), [])
        self.assertTrue(self.ask(since=3600))

    def test_bad_since_refused(self):
        ans = SL.ctl("hellos", since="yesterday")
        self.assertFalse(ans["ok"])
        self.assertIn("since", ans["error"])


if __name__ == "__main__":
    unittest.main()
