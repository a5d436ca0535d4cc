"""The backend pool: failover, the connect timeout, and the relay's idle
timeout, with a real Postfix behind sluice.

Each test starts its own sluice on mail-front.yaml with the backend's
server list changed:
  - a server whose port is closed (connect refused),
  - a "black hole": a listener whose accept queue is full, so that the
    kernel drops further SYNs and a connect can only time out,
and then the real Postfix. Mail must land through the next server.
"""

import smtplib
import socket
import time
import unittest

from harness import (client_source, SENDER, Postfix, Sluice, Smtp, listening, load_example,
                     make_message, message_id, no_verify_context, recipient,
                     unique, wait_until, stop_all, shifted)

FRONT = load_example("mail-front.yaml")
CLIENT = "127.0.0.11"
CLOSED = "127.0.0.1:10099"
HOLE = ("127.0.0.1", 10098)
POSTFIX = "127.0.0.1:10026"
PF = None


def setUpModule():
    global PF
    PF = Postfix().start()


def tearDownModule():
    stop_all(PF)


def config(port_offset, servers, **backend):
    """mail-front.yaml on shifted ports with this server list."""
    cfg = shifted(FRONT, port_offset)
    cfg["backends"][0]["servers"] = servers
    cfg["backends"][0].update(backend)
    return cfg


class BlackHole:
    """A listener that never accepts, its one-slot queue taken: SYNs to it
    are dropped, so connecting to it hangs until the connector gives up."""

    def __enter__(self):
        self.lsn = socket.socket()
        self.lsn.bind(HOLE)
        self.lsn.listen(0)
        self.fillers = []
        for _ in range(2):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(HOLE)
            self.fillers.append(s)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(HOLE)
            raise AssertionError("the black hole accepted a connection")
        except socket.timeout:
            pass
        finally:
            probe.close()
        return self

    def __exit__(self, *exc):
        for s in self.fillers:
            s.close()
        self.lsn.close()


class Pool(unittest.TestCase):

    def start(self, cfg, name):
        sl = Sluice(cfg, name).start()
        self.addCleanup(sl.stop)
        return sl

    def deliver(self, sl, listener="submission"):
        """One message over STARTTLS; returns (tag, msg, client port, seconds)."""
        tag = unique("pool")
        msg = make_message(tag)
        t0 = time.monotonic()
        with smtplib.SMTP(*sl.addr(listener), local_hostname="client.test",
                          source_address=client_source(CLIENT), timeout=20) as s:
            port = s.sock.getsockname()[1]
            self.assertEqual(s.starttls(context=no_verify_context())[0], 220)
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        return tag, msg, port, time.monotonic() - t0

    def assert_landed(self, sl, tag, port):
        mid = message_id(tag).encode()
        self.assertEqual(len(PF.maildir_messages(mid, count=1, timeout=15)), 1)
        line = sl.conn_log(CLIENT, port)
        self.assertEqual(line["backend"], POSTFIX, line)
        self.assertEqual(line["result"], "ok", line)
        PF.wait_log(rf"connect from \S+\[{CLIENT}\]:{port}\b")

    def test_failover_past_a_closed_port(self):
        self.assertFalse(listening("127.0.0.1", 10099))
        sl = self.start(config(31000, [CLOSED, POSTFIX]), "failover")
        for _ in range(3):
            tag, msg, port, _ = self.deliver(sl)
            self.assert_landed(sl, tag, port)
        # The dead server is reported once, not once per session.
        refused = [l for l in sl.log_lines() if "10099: connect" in l or
                   ("10099" in l and "down" in l)]
        self.assertGreaterEqual(len(refused), 1, sl.log_text())
        self.assertLessEqual(len(refused), 2, refused)

    def test_a_server_found_down_costs_sessions_nothing(self):
        with BlackHole():
            sl = self.start(config(32000, [f"{HOLE[0]}:{HOLE[1]}", POSTFIX],
                                   connect_timeout=1, health_interval=60), "hole-first")
            # The start-up probe found the hole down: sessions go straight
            # to the next server and never try it (no connect attempt fails).
            self.assertRegex(sl.log_text(), r"10098: down: connect: Connection timed out")
            for _ in range(2):
                tag, msg, port, took = self.deliver(sl)
                self.assert_landed(sl, tag, port)
            self.assertEqual(sl.counters().get("backend_connect_fail", 0), 0,
                             "a session tried the black hole")

    def test_connect_timeout(self):
        """The only server is a black hole: the session's own connect
        attempt times out after connect_timeout and the client gets 421."""
        with BlackHole():
            sl = self.start(config(35000, [f"{HOLE[0]}:{HOLE[1]}"], connect_timeout=1),
                            "hole-only")
            c = Smtp(sl.addr("submission"), source=CLIENT, timeout=15)
            self.addCleanup(c.close)
            self.assertEqual(c.reply()[0], 220)
            c.expect("EHLO client.test", 250)
            c.starttls()
            t0 = time.monotonic()
            code, lines = c.cmd("EHLO client.test")
            waited = time.monotonic() - t0
            self.assertEqual(code, 421, lines)
            self.assertRegex(lines[-1], r"^421 4\.4\.2 ")
            self.assertGreater(waited, 0.8)
            self.assertLess(waited, 4)
            c.close()
            line = sl.conn_log(CLIENT, c.local[1])
            self.assertEqual(line["result"], "backend-failed", line)

    def test_idle_relay_gets_421(self):
        cfg = config(33000, [POSTFIX])
        cfg["timeouts"] = dict(cfg.get("timeouts", {}), idle=2)
        sl = self.start(cfg, "idle")
        c = Smtp(sl.addr("submission"), source=CLIENT, timeout=15)
        self.addCleanup(c.close)
        self.assertEqual(c.reply()[0], 220)
        c.expect("EHLO client.test", 250)
        c.starttls()
        c.expect("EHLO client.test", 250)       # relayed: from Postfix
        t0 = time.monotonic()
        code, lines = c.reply()                 # silence, then sluice speaks
        waited = time.monotonic() - t0
        self.assertEqual(code, 421, lines)
        self.assertRegex(lines[-1], r"^421 4\.4\.2 ")
        self.assertGreater(waited, 1.5)
        self.assertLess(waited, 6)
        line = sl.conn_log(CLIENT, c.local[1])
        self.assertEqual(line["result"], "timeout", line)


if __name__ == "__main__":
    unittest.main()
