"""Idle IMAP sessions after STARTTLS on sluice's native stack (issue 14,
"the million is the point"), in the quick form of `bench/idle-scale`:
N = 1,000 and then 5,000 sessions held over net_memif, each opened by
sluice-loadgen at a bounded rate (`--rate`), parked after STARTTLS, the
handshake and a NOOP, and stripped to its TCP connection on the client
side (`--idle-release`); with all held, sluice's busy cycles per second
and memory are measured, then new sessions are timed.

Asserted: every session established and held by sluice, no error; the
busy cycles per idle second at 5,000 at most twice those at 1,000 plus a
floor (an idle session costs nothing per second: no timer, no poll per
connection); sluice's memory per held session below 25 KiB (about 19 KiB
today, 14.8 KiB of it OpenSSL's SSL object); a new session's latency
measured under that load.
"""

import unittest

from rigsmoke import RigQuick, sluice_links_dpdk

KIB_BOUND = 25 * 1024
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
        self.assertEqual(sorted(self.rows), [1000, 5000])

    def test_every_session_held_without_error(self):
        for n, r in self.rows.items():
            with self.subTest(n=n):
                self.assertNotIn("error", r)
                self.assertEqual(r["failed"], 0, r.get("first_error"))
                self.assertEqual(r["held"], n)
                self.assertEqual(r["released"], n, "--idle-release freed every SSL")
                self.assertEqual(r["sluice_sessions"], n, "sluice's status: sessions open")
                self.assertEqual(r["loadgen_rc"], 0, r.get("first_error"))
                self.assertEqual(r["probe"]["failed"], 0)

    def test_idle_sessions_cost_no_cycles_per_second(self):
        a, b = self.rows[1000]["busy_cycles_per_s"], self.rows[5000]["busy_cycles_per_s"]
        self.assertLessEqual(b, 2 * a + FLOOR_CYCLES,
                             f"busy cycles/s grew with idle sessions: {a:.3g} at 1,000, "
                             f"{b:.3g} at 5,000")

    def test_memory_per_session(self):
        r = self.rows[5000]
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
        self.assertIn("| 5,000 |", text)


if __name__ == "__main__":
    unittest.main()
