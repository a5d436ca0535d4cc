"""Idle IMAP sessions after STARTTLS on sluice's native stack (issue 14,
"the million is the point"), in the quick form of `bench/idle-scale`:
N = 1,000 and then 5,000 sessions held over net_memif (200 and 1,000 with
an ASAN build, which does its handshakes at a third of the speed), each
opened by sluice-loadgen at a bounded rate (`--rate`), parked after
STARTTLS, the handshake and a NOOP, and stripped to its TCP connection on
the client side (`--idle-release`); with all held, sluice's busy cycles
per second and memory are measured, then new sessions are timed.

Asserted: every session established and held by sluice, no error; the
busy cycles per idle second at the larger N at most twice those at the
smaller plus a floor (an idle session costs nothing per second: no timer,
no poll per connection); an idle session holds no TCP buffer (the native
stack's nat_buf_bytes over the sessions); sluice's memory per held
session below 25 KiB by jemalloc's count (about 17 KiB today, 14 KiB of
it OpenSSL's SSL object), or with ASAN (no jemalloc, its quarantine and
shadow in every page) its PSS growing with the sessions; a new session's
latency measured under that load; and sluice alive through the load
generators' disconnects and 150 memif clients that fill the ring and go
(bench/memif-flap: the memif crash of bench/IDLE.md) and exiting cleanly.
"""

import unittest

from rigsmoke import RigQuick, sluice_links_dpdk

KIB_BOUND = 25 * 1024
# an idle connection's TCP buffers are freed after a second idle: what is
# left over all sessions is a few still draining, not a buffer each
TCP_BUF_BOUND = 256
# 1 % of a 2.6 GHz CPU: the noise of a shared 2-CPU machine (the control
# socket's status, the backend's health probe, the worker's wake-ups)
FLOOR_CYCLES = 26e6


@unittest.skipUnless(sluice_links_dpdk(), "sluice is built without DPDK: no memif rig")
class IdleScaleQuick(RigQuick, unittest.TestCase):
    rig, prefix, timeout = "idle-scale", "idle-scale-", 240

    @classmethod
    def rig_args(cls, out):
        cls.json, cls.md = out / "IDLE.json", out / "IDLE.md"
        return ["--json", str(cls.json), "--md", str(cls.md)]

    def setUp(self):
        self.assertEqual(self.rc, 0, f"bench/idle-scale --quick failed:\n{self.output[-4000:]}")
        self.assertIsNotNone(self.data, "bench/idle-scale wrote no JSON")
        self.rows = {r["n"]: r for r in self.data["rows"]}
        self.asan = self.data["sanitized"]
        self.small, self.big = (200, 1000) if self.asan else (1000, 5000)
        self.assertEqual(sorted(self.rows), [self.small, self.big],
                         "rows missing: sluice gone, or the rig stopped early")

    def test_every_session_held_without_error(self):
        for n, r in self.rows.items():
            with self.subTest(n=n):
                self.assertNotIn("error", r)
                self.assertEqual(r["failed"], 0, r.get("first_error"))
                self.assertEqual(r["held"], n)
                self.assertEqual(r["released"], n, "--idle-release freed every SSL")
                self.assertEqual(r["sluice_sessions"], n, "sluice's status: sessions open")
                self.assertEqual(r.get("loadgen_rc"), 0,
                                 f"{r.get('first_error')} {r.get('loadgen_stderr')}")
                self.assertEqual(r["probe"]["failed"], 0)

    def test_sluice_survives_memif_disconnects(self):
        # bench/memif-flap: 150 memif clients, each filling the ring and
        # gone at once; before the interrupt gate sluice died of SIGSEGV
        # in eth_memif_rx within about 80 of them (5 runs of 5)
        f = self.data["flap"]
        self.assertTrue(f["sluice_alive"], f"sluice died after {f.get('flaps')} flaps")
        self.assertEqual(f["flaps"], 150)
        self.assertEqual(f["connected"], 150, f.get("stderr"))
        self.assertEqual(f["rc"], 0, f.get("stderr"))
        self.assertGreater(f["frames"], 150 * 500, "the rings were not filled")

    def test_idle_sessions_cost_no_cycles_per_second(self):
        a = self.rows[self.small]["busy_cycles_per_s"]
        b = self.rows[self.big]["busy_cycles_per_s"]
        self.assertLessEqual(b, 2 * a + FLOOR_CYCLES,
                             f"busy cycles/s grew with idle sessions: {a:.3g} at "
                             f"{self.small:,}, {b:.3g} at {self.big:,}")

    def test_idle_sessions_hold_no_tcp_buffer(self):
        for n, r in self.rows.items():
            with self.subTest(n=n):
                self.assertIsNotNone(r["tcp_buf_per_session"], "no nat_buf_bytes counter")
                self.assertLess(r["tcp_buf_per_session"], TCP_BUF_BOUND,
                                f"{r['tcp_buf_bytes']} B of TCP buffers over {n:,} idle "
                                "sessions")

    def test_memory_per_session(self):
        r = self.rows[self.big]
        if self.asan:
            # no allocator figure; PSS carries ASAN's shadow and quarantine,
            # so only that the sessions are there in it, and the bigger N
            # holds more than the smaller
            self.assertIsNone(r["allocated_per_session"])
            self.assertGreater(r["pss_per_session"], 1024, "sessions cost something")
            self.assertGreater(r["held_mem"]["pss"], self.rows[self.small]["held_mem"]["pss"],
                               "PSS did not grow with the sessions held")
            return
        self.assertIsNotNone(r["allocated_per_session"], "no jemalloc figure from status")
        self.assertGreater(r["allocated_per_session"], 1024, "sessions cost something")
        self.assertLess(r["allocated_per_session"], KIB_BOUND,
                        f"{r['allocated_per_session'] / 1024:.1f} KiB per idle session")

    def test_new_session_latency_measured(self):
        for n, r in self.rows.items():
            with self.subTest(n=n):
                p = r["probe"]
                self.assertEqual(p["probes"], 20)
                self.assertGreater(p["p50_us"], 0)
                self.assertGreaterEqual(p["p99_us"], p["p50_us"])

    def test_report_written(self):
        text = self.md.read_text()
        self.assertIn(f"| {self.big:,} |", text)


if __name__ == "__main__":
    unittest.main()
