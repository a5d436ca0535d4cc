"""The benchmark rig in quick mode, as a smoke test (no thresholds).

One `bench/run --quick --stack kernel,native` into a temporary folder; then:
every server (sluice and each peer) produced figures for every workload it
serves (operations, server CPU per operation, latency; memory per idle
connection before and after TLS), the rest say why not; the references
(crypto bound, OpenSSL floor) were measured; the report and the plots were
written; the native stack's row says it is not built; sluice exited cleanly.
"""

import json
import os
import subprocess
import tempfile
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
SERVERS = ["sluice", "nginx", "stunnel", "haproxy", "postfix", "dovecot"]
WORKLOADS = ["idle", "handshake-tls13-ecdsa", "resume-tls13", "smtp", "imap", "bulk",
             "handshake-tls12-rsa", "handshake-tls13-rsa"]
# What the peers cannot do, by design (HAProxy: no mail STARTTLS, ...).
NOT_SERVED = {("haproxy", "smtp"), ("haproxy", "imap"), ("postfix", "imap"),
              ("dovecot", "smtp"), ("dovecot", "bulk")}


class BenchQuick(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="bench-smoke-")
        out = Path(cls.tmp.name)
        cls.results, cls.plots, cls.json = out / "RESULTS.md", out / "plots", out / "run.json"
        p = subprocess.run(["/usr/bin/python3", str(REPO / "bench" / "run"), "--quick",
                            "--stack", "kernel,native", "--results", str(cls.results),
                            "--plots", str(cls.plots), "--json", str(cls.json)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=900)
        cls.output = p.stdout.decode(errors="replace")
        cls.rc = p.returncode
        cls.data = json.loads(cls.json.read_text()) if cls.json.exists() else None

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def setUp(self):
        self.assertEqual(self.rc, 0, f"bench/run --quick failed:\n{self.output[-4000:]}")
        self.assertIsNotNone(self.data, "bench/run wrote no JSON")

    def test_references_measured(self):
        refs = self.data["references"]
        for key in ("tls13_ecdsa", "tls12_rsa", "tls13_rsa", "resume_tls13"):
            self.assertGreater(refs["bound_us"][key], 0, key)
            self.assertGreater(refs["floor_us"][key], 0, key)
        self.assertGreater(refs["bound_us"]["aes128gcm_per_mib"], 0)
        self.assertGreater(refs["floor_us"]["read_per_mib"], 0)

    def test_every_workload_has_figures(self):
        for server in SERVERS:
            results = self.data["servers"][server]["results"]
            for w in WORKLOADS:
                with self.subTest(server=server, workload=w):
                    r = results[w]
                    self.assertNotIn("error", r)
                    if (server, w) in NOT_SERVED:
                        self.assertTrue(r["na"])
                        continue
                    self.assertNotIn("na", r)
                    self.assertGreater(r["ops"], 0)
                    if w == "idle":
                        self.assertGreater(r["held"]["plain"], 0)
                        self.assertGreater(r["held"]["tls"], 0)
                        self.assertIsNotNone(r["bytes_per_conn_plain"])
                        self.assertIsNotNone(r["bytes_per_conn_tls"])
                        continue
                    self.assertGreater(r["server_cpu_s"], 0)
                    self.assertIsNotNone(r["cpu_us_per_op"])
                    self.assertGreater(r["latency_us"]["p50"], 0)
                    self.assertGreaterEqual(r["latency_us"]["p99"], r["latency_us"]["p50"])
                    if w == "bulk":
                        self.assertGreaterEqual(r["payload_bytes"], r["ops"] * 10 * 2**20)
                        self.assertGreater(r["mib_per_s"], 0)

    def test_report_and_plots_written(self):
        text = self.results.read_text()
        for w in WORKLOADS:
            self.assertIn(f"### {w}:", text)
        for label in ("sluice", "nginx-mail", "stunnel", "HAProxy", "Postfix TLS",
                      "Dovecot TLS", "crypto bound", "OpenSSL floor"):
            self.assertIn(label, text)
        pngs = sorted(self.plots.glob("*.png"))
        self.assertGreaterEqual(len(pngs), 4, pngs)
        for p in pngs:
            self.assertEqual(p.read_bytes()[:8], b"\x89PNG\r\n\x1a\n", p)

    def test_native_stack_row_says_not_built(self):
        row = self.data["servers"]["sluice-native"]["results"]
        for w in WORKLOADS:
            self.assertEqual(row[w], {"na": "not available: the native stack is not built"})
        self.assertIn("not available: the native stack is not built", self.results.read_text())

    def test_sluice_exited_cleanly(self):
        self.assertEqual(self.data["problems"], [])


if __name__ == "__main__":
    unittest.main()
