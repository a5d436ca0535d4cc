"""Drain (DESIGN.md §5, docs/operations.md "Drain and upgrade"): SIGTERM
stops accepting at once, says goodbye to idle sessions at a safe point,
lets busy ones finish until control.drain_deadline, closes what is left
and exits 0. Real clients against sluice in front of a real Postfix and
Dovecot.

Each test starts its own sluice (a drain ends the process), on the
example configuration with its ports shifted and a short deadline:
    smtp   127.0.0.1:2525+OFF  tls: starttls
    imap   127.0.0.1:2143+OFF  tls: starttls
    pop3   127.0.0.1:2110+OFF  tls: starttls

Under load: several smtplib senders deliver over STARTTLS in a loop, two
raw clients are inside DATA with a slow body when SIGTERM comes, one never
ends its DATA; idle SMTP (in sluice's dialogue and relayed), IMAP (one in
IDLE) and POP3 clients wait. Then: every message a client got 250 for is in the Maildir
exactly once, none other is; the slow bodies finish and are delivered;
idle clients get 421 4.3.2 / * BYE / -ERR at once; new connections are
refused; the endless DATA is cut at the deadline, not before; sluice exits
0 soon after.
"""

import re
import signal
import smtplib
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import (IMAP4, MAIL_PASSWORD, MAIL_USER, POP3, SENDER, Closed, Dovecot, dot_stuff,
                     Postfix, Sluice, Smtp, client_source, load_example, make_message,
                     message_id, no_verify_context, recipient, shifted, stop_all, unique,
                     wait_until)

OFFSET = 700
DEADLINE = 5                     # control.drain_deadline of these tests, seconds
SENDERS = 4                      # smtplib senders looping
SLOW = 2                         # raw clients mid-DATA with a slow body

PF = DV = None


def setUpModule():
    global PF, DV
    PF = Postfix().start()
    DV = Dovecot().start()


def tearDownModule():
    stop_all(PF, DV)


def drain_config(deadline=DEADLINE):
    cfg = shifted(load_example("mail-front.yaml"), OFFSET)
    cfg["listeners"] = [l for l in cfg["listeners"] if l["name"] in ("smtp", "imap", "pop3")]
    cfg.setdefault("control", {})["drain_deadline"] = deadline
    return cfg


def delivered(tag):
    """Copies of the message tagged tag in the Maildir."""
    return len(PF.maildir_messages(message_id(tag).encode(), count=0))


class Sender(threading.Thread):
    """smtplib over STARTTLS, message after message on one connection (idle
    a moment between them: a session between transactions), a new
    connection when one ends, until a connection is refused. Records the
    tags that got 250 and those that did not."""

    def __init__(self, sl, n):
        super().__init__(daemon=True)
        self.sl, self.n = sl, n
        self.acked, self.failed = [], []
        self.goodbyes = []         # replies that ended a connection (421 ...)
        self.refused = False
        self.error = None

    def run(self):
        try:
            while not self.refused:
                self.connection()
        except Exception as e:      # reported by the test
            self.error = repr(e)

    def connection(self):
        try:
            s = smtplib.SMTP(*self.sl.addr("smtp"), local_hostname="client.test",
                             source_address=client_source(), timeout=20)
        except ConnectionRefusedError:
            self.refused = True
            return
        except (smtplib.SMTPServerDisconnected, ConnectionResetError):
            return                  # accepted as the listener stopped: reset
        try:
            s.starttls(context=no_verify_context())
            s.ehlo()
            for _ in range(5):
                tag = unique(f"drain{self.n}")
                try:
                    s.sendmail(SENDER, [recipient(tag)], make_message(tag))
                except Exception:
                    self.failed.append(tag)
                    raise
                self.acked.append(tag)
                time.sleep(0.1)
            s.quit()
        except smtplib.SMTPResponseException as e:
            self.goodbyes.append(f"{e.smtp_code} {e.smtp_error!r}")
        except (smtplib.SMTPServerDisconnected, OSError):
            pass
        finally:
            s.close()


class SlowData(threading.Thread):
    """A raw client inside DATA: MAIL, RCPT, DATA, then the body in pieces
    over `seconds` (forever with None), then "." and the reply."""

    def __init__(self, sl, seconds):
        super().__init__(daemon=True)
        self.seconds = seconds
        self.tag = unique("slow")
        self.c = Smtp(sl.addr("smtp"), timeout=30)
        self.c.reply()
        self.c.expect("EHLO client.test", 250)
        self.c.starttls()
        self.c.expect("EHLO client.test", 250)
        self.c.expect(f"MAIL FROM:<{SENDER}>", 250)
        self.c.expect(f"RCPT TO:<{recipient(self.tag)}>", 250)
        self.c.expect("DATA", 354)
        self.end = None            # the reply to the end of data
        self.after = None          # what came after it (the goodbye)
        self.closed_at = None
        self.error = None

    def run(self):
        msg = dot_stuff(make_message(self.tag))     # with its "." line
        try:
            if self.seconds is None:     # headers, line after line, forever
                while True:
                    self.c.send(b"X-Slow: still writing\r\n")
                    time.sleep(0.2)
            for i in range(10):          # the message in ten pieces
                self.c.send(msg[i * len(msg) // 10:(i + 1) * len(msg) // 10])
                time.sleep(self.seconds / 10)
            self.end = self.c.reply()
            self.after = self.c.reply()
        except (Closed, OSError) as e:
            self.error = repr(e)
        self.closed_at = time.monotonic()


def refused(sl, listener):
    """True if a new connection to the listener is refused (or reset before
    it is greeted): nothing is left waiting."""
    try:
        with socket.create_connection(sl.addr(listener), timeout=3,
                                      source_address=client_source()) as s:
            return s.recv(100) == b""
    except (ConnectionRefusedError, ConnectionResetError):
        return True
    except socket.timeout:
        return False


def start_beside(cfg, name):
    """A second sluice on the same ports as a running one (an upgrade):
    Sluice.start would stop the first, so it is started here."""
    sl = Sluice(cfg, name)
    sl._err = open(sl.stderr_path, "wb")
    sl.proc = subprocess.Popen([harness.sluice_bin(), "-c", str(sl.path)],
                               stdin=subprocess.DEVNULL, stdout=sl._err, stderr=sl._err,
                               start_new_session=True)
    harness._running.append(sl)
    wait_until(lambda: " started: " in sl.log_text() or sl.proc.poll() is not None, 20,
               "the second sluice to start")
    assert sl.running(), sl.log_text()
    return sl


def exit_status(sl, timeout):
    """Wait for sluice to exit by itself; its status (None: still running)."""
    try:
        return sl.proc.wait(timeout)
    except Exception:
        return None


class Drain(unittest.TestCase):
    maxDiff = None

    def tearDown(self):
        if self.sl.running():
            self.sl.proc.send_signal(signal.SIGKILL)
        self.sl.stop()

    def counters(self):
        lines = [l for l in self.sl.log_lines() if "counters: " in l]
        self.assertTrue(lines, "the counters line at exit")
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", lines[-1].split("counters: ", 1)[1])}

    def test_sigterm_drains_under_load(self):
        self.sl = sl = Sluice(drain_config(), "drain").start()

        # Idle clients: in sluice's own dialogue, relayed SMTP, IMAP, POP3.
        dialogue = Smtp(sl.addr("smtp"))
        self.assertEqual(dialogue.reply()[0], 220)
        relayed = Smtp(sl.addr("smtp"))
        relayed.reply()
        relayed.expect("EHLO client.test", 250)
        relayed.starttls()
        relayed.expect("EHLO client.test", 250)        # the backend's reply: relayed
        imap = IMAP4(*sl.addr("imap"))
        imap.starttls(ssl_context=no_verify_context())
        imap.login(MAIL_USER, MAIL_PASSWORD)
        idling = IMAP4(*sl.addr("imap"))                # in IDLE (RFC 2177)
        idling.starttls(ssl_context=no_verify_context())
        idling.login(MAIL_USER, MAIL_PASSWORD)
        idling.select("INBOX")
        idling.send(b"i1 IDLE\r\n")
        self.assertTrue(idling.readline().startswith(b"+ "))
        pop = POP3(*sl.addr("pop3"))
        pop.stls(context=no_verify_context())
        pop.user(MAIL_USER)
        pop.pass_(MAIL_PASSWORD)

        senders = [Sender(sl, i) for i in range(SENDERS)]
        for s in senders:
            s.start()
        slow = [SlowData(sl, 2.0) for _ in range(SLOW)]
        endless = SlowData(sl, None)
        wait_until(lambda: sum(len(s.acked) for s in senders) >= 2 * SENDERS, 20,
                   "the senders' first deliveries")
        for t in slow + [endless]:
            t.start()
        time.sleep(0.3)                                 # inside DATA, all three

        t_term = time.monotonic()
        sl.proc.send_signal(signal.SIGTERM)

        # Idle sessions get their goodbye at once.
        for c, what in ((dialogue, "dialogue"), (relayed, "relay")):
            c.sock.settimeout(3)
            code, lines = c.reply()
            self.assertEqual(code, 421, f"{what}: {lines}")
            self.assertIn("4.3.2", lines[0], what)
            self.assertEqual(c.closed_by_peer(3), b"", what)
        for c in (imap, idling):
            c.sock.settimeout(3)
            self.assertRegex(c.readline(), rb"^\* BYE .*shutting down")
        pop.sock.settimeout(3)
        self.assertRegex(pop._getline()[0], rb"^-ERR .*shutting down")
        self.assertLess(time.monotonic() - t_term, 2, "goodbyes came at once")

        # Accepting stopped at once: refused, not left waiting.
        for listener in ("smtp", "imap", "pop3"):
            self.assertTrue(refused(sl, listener), f"{listener}: a new connection during the drain")

        # The slow bodies finish inside the deadline: 250, then the 421.
        for t in slow:
            t.join(DEADLINE)
            self.assertIsNone(t.error, "slow DATA")
            self.assertEqual(t.end[0], 250, t.end)
            self.assertEqual(t.after[0], 421, t.after)
            self.assertIn("4.3.2", t.after[1][0])
        for s in senders:
            s.join(DEADLINE)
            self.assertFalse(s.is_alive(), "a sender still running")
            self.assertIsNone(s.error, f"sender {s.n}")
            self.assertTrue(s.refused, f"sender {s.n} never found the listener closed")

        # The endless DATA is cut at the deadline, not before; sluice exits 0.
        status = exit_status(sl, DEADLINE + 5)
        t_exit = time.monotonic() - t_term
        endless.join(5)
        self.assertEqual(status, 0, sl.log_text()[-3000:])
        self.assertIsNotNone(endless.closed_at)
        self.assertGreaterEqual(endless.closed_at - t_term, DEADLINE - 0.2, "cut before the deadline")
        self.assertLess(endless.closed_at - t_term, DEADLINE + 2, "not cut at the deadline")
        self.assertLess(t_exit, DEADLINE + 3, "exit soon after the deadline")
        self.assertIsNone(endless.end, "the endless DATA got no reply")

        # Every 250 landed exactly once; nothing without a 250 landed.
        wait_until(PF.queue_empty, 20, "the Postfix queue to drain")
        acked = [t for s in senders for t in s.acked] + [t.tag for t in slow]
        failed = [t for s in senders for t in s.failed] + [endless.tag]
        self.assertGreater(len(acked), 2 * SENDERS + SLOW)
        PF.maildir_messages(message_id(acked[-1]).encode(), count=1, timeout=15)
        self.assertEqual({t: delivered(t) for t in acked}, {t: 1 for t in acked})
        self.assertEqual({t: delivered(t) for t in failed}, {t: 0 for t in failed})
        for s in senders:
            for g in s.goodbyes:
                self.assertRegex(g, r"^421 .*4\.3\.2")

        # What the log and the counters say.
        log = sl.log_text()
        self.assertRegex(log, r"drain: started by SIGTERM: deadline 5 s, \d+ sessions open")
        self.assertRegex(log, r"drain: deadline reached after \d+ ms: 1 busy sessions cut; exiting")
        cut = [kv for kv in sl.conn_logs() if kv.get("result") == "drain-cut"]
        self.assertEqual(len(cut), 1, cut)
        ctr = self.counters()
        self.assertEqual(ctr.get("drain_cut"), 1)
        self.assertGreaterEqual(ctr.get("drain_goodbye", 0), 5 + SLOW)
        for c in (dialogue, relayed):
            c.close()
        # The relayed sessions' backends were ended politely (QUIT).
        PF.wait_log(rf"disconnect from \S+\[127\.0\.0\.1\]:{relayed.local[1]}\b.* quit=1")

    def test_idle_box_exits_at_once(self):
        """No session busy: SIGTERM ends the process in well under a second."""
        self.sl = sl = Sluice(drain_config(deadline=30), "drain-idle").start()
        with Smtp(sl.addr("smtp")) as c:
            c.reply()
            t0 = time.monotonic()
            sl.proc.send_signal(signal.SIGTERM)
            self.assertEqual(c.reply()[0], 421)
            self.assertEqual(exit_status(sl, 5), 0)
            self.assertLess(time.monotonic() - t0, 2)
        self.assertIn("drain: done after", sl.log_text())

    def test_second_sigterm_stops_at_once(self):
        """A busy session holds the drain; a second SIGTERM ends it now."""
        self.sl = sl = Sluice(drain_config(deadline=60), "drain-twice").start()
        busy = SlowData(sl, None)
        busy.start()
        time.sleep(0.3)
        sl.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "drain: started by SIGTERM" in sl.log_text(), 5, "the drain")
        self.assertTrue(refused(sl, "smtp"))
        self.assertIsNone(exit_status(sl, 1.5), "the busy session holds the drain")
        self.assertIsNone(busy.closed_at, "the busy session was cut before its deadline")
        t0 = time.monotonic()
        sl.proc.send_signal(signal.SIGTERM)
        self.assertEqual(exit_status(sl, 5), 0)
        self.assertLess(time.monotonic() - t0, 2)
        busy.join(5)
        self.assertIsNotNone(busy.closed_at)
        self.assertIn("drain: SIGTERM again during the drain: stopping now", sl.log_text())
        self.assertEqual(delivered(busy.tag), 0)

    def test_control_drain_undrain_health(self):
        """The control socket's drain, health and undrain: a drain refuses
        new connections and says goodbye; undrain (while a busy session
        keeps the drained process alive) accepts again and says no more
        goodbyes; a drain with deadline_s ends the process at it."""
        self.sl = sl = Sluice(drain_config(deadline=30), "drain-ctl").start()
        self.assertEqual(sl.ctl("health"), {"ok": True, "serving": True, "draining": False})
        bad = sl.ctl("drain", deadline_s="soon")
        self.assertFalse(bad["ok"])
        self.assertIn("deadline_s", bad["error"])
        self.assertEqual(sl.ctl("undrain"), {"ok": False, "error": "not draining"})

        busy = SlowData(sl, None)                      # inside DATA: holds the drain
        busy.start()
        with Smtp(sl.addr("smtp")) as idle:
            idle.reply()
            ans = sl.ctl("drain", deadline_s=20)
            self.assertEqual(ans, {"ok": True, "sessions": 2})
            code, lines = idle.reply()
            self.assertEqual(code, 421, lines)
        self.assertEqual(sl.ctl("health"), {"ok": True, "serving": False, "draining": True})
        self.assertTrue(sl.ctl("status")["draining"])
        self.assertTrue(refused(sl, "smtp"))

        self.assertEqual(sl.ctl("undrain"), {"ok": True})
        self.assertEqual(sl.ctl("health"), {"ok": True, "serving": True, "draining": False})
        with Smtp(sl.addr("smtp")) as c:               # accepted and greeted again
            self.assertEqual(c.reply()[0], 220)
            c.sock.settimeout(1)
            self.assertRaises(AssertionError, c.reply)  # no goodbye: nothing comes
            c.expect("EHLO client.test", 250)
        self.assertIn("drain: undrained after", sl.log_text())
        self.assertIsNone(busy.closed_at, "the busy session goes on")

        with Smtp(sl.addr("smtp")) as idle:
            idle.reply()
            t0 = time.monotonic()
            self.assertTrue(sl.ctl("drain", deadline_s=1)["ok"])
            self.assertEqual(idle.reply()[0], 421)
            self.assertEqual(exit_status(sl, 5), 0)
            self.assertGreater(time.monotonic() - t0, 0.9, "the busy session held it")
            self.assertLess(time.monotonic() - t0, 3)
        busy.join(5)
        self.assertIsNotNone(busy.closed_at)
        self.assertIn("drain: started by control: deadline 1 s", sl.log_text())
        self.assertIn("1 busy sessions cut", sl.log_text())

    def test_grace_accepts_while_health_fails(self):
        """control.drain_grace: health fails at once (a fleet's health
        checker withdraws the route), but the listeners take new
        connections until the grace ends, and those are served in full;
        an idle session hears its goodbye only after the grace; then new
        connections are refused; the busy session is cut at the deadline."""
        cfg = drain_config(deadline=5)
        cfg["control"]["drain_grace"] = 2
        self.sl = sl = Sluice(cfg, "drain-grace").start()
        busy = SlowData(sl, None)                      # inside DATA: holds the drain
        busy.start()
        with Smtp(sl.addr("smtp")) as idle:
            idle.reply()
            t0 = time.monotonic()
            self.assertTrue(sl.ctl("drain")["ok"])
            self.assertEqual(sl.ctl("health"), {"ok": True, "serving": False, "draining": True})
            tag = unique("grace")
            with smtplib.SMTP(*sl.addr("smtp"), timeout=10,
                              source_address=client_source()) as c:
                c.starttls(context=no_verify_context())
                c.sendmail(SENDER, [recipient(tag)], dot_stuff(make_message(tag)))
                c.quit()
            self.assertLess(time.monotonic() - t0, 1.8, "the delivery ended within the grace")
            code, lines = idle.reply()
            waited = time.monotonic() - t0
            self.assertEqual(code, 421, lines)
            self.assertGreater(waited, 1.8, "the goodbye came before the grace ended")
        self.assertTrue(refused(sl, "smtp"), "a connection after the grace")
        wait_until(lambda: delivered(tag) == 1, 20, "the message taken in the grace, delivered")
        self.assertEqual(exit_status(sl, 10), 0)
        self.assertGreater(time.monotonic() - t0, 4.5, "the busy session held it to the deadline")
        busy.join(5)
        self.assertIsNotNone(busy.closed_at)
        self.assertIn("new connections are taken for 2 s more (control.drain_grace)",
                      sl.log_text())

    def test_reload_during_drain(self):
        """A listener that a reload adds while sluice drains does not
        listen either; undrain starts it with the others."""
        cfg = drain_config(deadline=30)
        self.sl = sl = Sluice(cfg, "drain-reload").start()
        busy = SlowData(sl, None)                      # holds the drain
        busy.start()
        self.assertTrue(sl.ctl("drain")["ok"])
        more = shifted(load_example("mail-front.yaml"), OFFSET)
        cfg["listeners"] += [l for l in more["listeners"] if l["name"] == "submission"]
        sl.rewrite(cfg)
        sl.listeners["submission"] = harness._addr(cfg["listeners"][-1]["address"])
        sl.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload from SIGHUP: generation 2 is serving" in sl.log_text(), 10,
                   "the reload")
        time.sleep(0.2)                                 # every core took it
        for listener in ("smtp", "submission"):
            self.assertTrue(refused(sl, listener), f"{listener} while draining")
        self.assertEqual(sl.ctl("undrain"), {"ok": True})
        for listener in ("smtp", "submission"):
            with Smtp(sl.addr(listener)) as c:
                self.assertEqual(c.reply()[0], 220, listener)
        self.assertIsNone(busy.closed_at)
        sl.proc.send_signal(signal.SIGTERM)             # the busy session holds it,
        wait_until(lambda: "drain: started by SIGTERM" in sl.log_text(), 5, "the drain")
        sl.proc.send_signal(signal.SIGTERM)             # until the second one
        self.assertEqual(exit_status(sl, 5), 0)

    def test_upgrade_beside(self):
        """An upgrade: a new sluice on the same ports (SO_REUSEPORT), then
        SIGTERM to the old one. Its idle sessions get their goodbye and it
        exits 0; from then on every new connection is served by the new
        one, none refused."""
        self.sl = old = Sluice(drain_config(deadline=10), "drain-old").start()
        new = start_beside(drain_config(), "drain-new")
        self.addCleanup(new.stop)
        # The kernel spreads connections over both processes by a hash of
        # the addresses, so six clients all land on the new one about one
        # time in 64: open them until each process holds one (at most 40).
        clients = []
        while len(clients) < 40:
            c = Smtp(old.addr("smtp"))
            clients.append(c)
            self.assertEqual(c.reply()[0], 220)
            if len(clients) >= 6 and old.ctl("status")["sessions"] and \
                    new.ctl("status")["sessions"]:
                break
        self.assertTrue(old.ctl("status")["sessions"], "no client reached the old one")
        old.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "drain: started by SIGTERM" in old.log_text(), 5, "the drain")
        self.assertEqual(exit_status(old, 5), 0, old.log_text()[-2000:])
        ports = []
        for _ in range(20):
            with Smtp(old.addr("smtp")) as c:              # not refused: the new one
                self.assertEqual(c.reply()[0], 220)
                c.expect("QUIT", 221)
                ports.append(c.local[1])
        wait_until(lambda: set(ports) <= {int(kv["client"].rsplit(":", 1)[1])
                                         for kv in new.conn_logs()}, 5,
                   "the new sluice's lines for every new connection")
        on_old = [kv for kv in old.conn_logs() if kv.get("result") == "drain"]
        self.assertTrue(on_old, "some of the first clients were the old one's")
        for c in clients:
            c.sock.settimeout(0.5)
            try:
                got = c.reply()[0]                          # the old one's: its goodbye
            except Closed:
                got = "closed without a goodbye"
            except AssertionError:
                got = None                                  # the new one's: idle
            self.assertIn(got, (None, 421))
            c.close()
        self.assertTrue(new.running())


if __name__ == "__main__":
    unittest.main()
