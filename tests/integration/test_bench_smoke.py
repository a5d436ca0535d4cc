"""The benchmark rig in quick mode, as a smoke test (no thresholds).

One `bench/run --quick --stack kernel,native` into a temporary folder; then:
every server (sluice and each peer) produced figures for every workload it
serves (operations, server CPU per operation, latency; memory per idle
connection before and after TLS), the rest say why not; the references
(crypto bound, OpenSSL floor) were measured; the report and the plots were
written; sluice exited cleanly. The native stack's row (sluice on DPDK
net_memif ports, the load generator and the sink on their own user-space
TCP/IP: test_bench_memif.py looks closer) has figures for every workload
when the binary links DPDK, busy cycles per operation among them, and says
why not otherwise.
"""

import unittest

from rigsmoke import RigQuick, sluice_links_dpdk

SERVERS = ["sluice", "nginx", "stunnel", "haproxy", "postfix", "dovecot"]
WORKLOADS = ["idle", "handshake-tls13-ecdsa", "resume-tls13", "smtp", "imap", "bulk",
             "handshake-tls12-rsa", "handshake-tls13-rsa"]
# What the peers cannot do, by design (HAProxy: no mail STARTTLS, ...).
NOT_SERVED = {("haproxy", "smtp"), ("haproxy", "imap"), ("postfix", "imap"),
              ("dovecot", "smtp"), ("dovecot", "bulk")}


class BenchQuick(RigQuick, unittest.TestCase):
    rig, prefix, timeout = "run", "bench-smoke-", 900

    @classmethod
    def rig_args(cls, out):
        cls.results, cls.plots, cls.json = out / "RESULTS.md", out / "plots", out / "run.json"
        return ["--stack", "kernel,native", "--results", str(cls.results),
                "--plots", str(cls.plots), "--json", str(cls.json)]

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

    def test_native_stack_row(self):
        """With DPDK: figures for every workload (no thresholds), busy
        cycles and the TSC rate behind them, and the report's native
        section. Without: every workload says why not."""
        row = self.data["servers"]["sluice-native"]["results"]
        if not sluice_links_dpdk():
            for w in WORKLOADS:
                self.assertIn("without DPDK", row[w]["na"])
            self.assertIn("Not measured: not available", self.results.read_text())
            return
        self.assertGreater(self.data["references"]["tsc_hz"], 1e8)
        for w in WORKLOADS:
            with self.subTest(workload=w):
                r = row[w]
                self.assertNotIn("error", r)
                self.assertNotIn("na", r)
                self.assertGreater(r["ops"], 0)
                if w == "idle":
                    self.assertGreater(r["held"]["tls"], 0)
                    self.assertIsNotNone(r["bytes_per_conn_tls"])
                    continue
                self.assertEqual(sum(r["errors"].values()), 0, r["errors"])
                n = r["native"]
                self.assertGreater(n["delta"]["nat_rx_frames"], 0)
                self.assertGreater(n["delta"]["nat_busy_cycles"], 0)
                self.assertGreater(n["groups_s"]["cores"]["cpu_s"], 0)
                self.assertGreater(n["core_cycles"], 0)
                self.assertEqual(n["core_cycles"], min(n["core_busy_tsc"],
                                                       n["core_thread_cycles"]))
                self.assertGreater(r["cycles_per_op"], 0)
                self.assertGreater(r["wall_cpu_us_per_op"], 0)
                self.assertAlmostEqual(r["cpu_us_per_op"],
                                       r["cycles_per_op"] / n["tsc_hz"] * 1e6, places=3)
                if w == "bulk":
                    self.assertGreaterEqual(r["payload_bytes"], r["ops"] * 10 * 2**20)
                    self.assertGreater(r["cycles_per_mib"], 0)
                self.assertGreater(r["loadgen_native"]["busy_cycles"], 0)
        text = self.results.read_text()
        self.assertIn("## The native stack beside the kernel stack", text)
        self.assertIn("native busy cycles/op", text)
        self.assertTrue((self.plots / "native_cycles.png").exists())

    # test_sluice_exited_cleanly: RigQuick's


if __name__ == "__main__":
    unittest.main()
