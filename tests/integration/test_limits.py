"""Limits at the accept path and under floods (DESIGN.md §5,
docs/configuration.md "limits", docs/operations.md "Limits and floods"):
real clients from distinct loopback addresses (127.0.0.0/8) against a real
sluice in front of a real Postfix and Dovecot.

Each test starts its own sluice on ports 40600-40699 with the limits it
needs:
    smtp   127.0.0.1:40600  tls: starttls   (Postfix)
    imap   127.0.0.1:40601  tls: starttls   (Dovecot)
    pop3   127.0.0.1:40602  tls: starttls   (Dovecot)
    smtps  127.0.0.1:40603  tls: implicit   (Postfix)

- per address: one address over limits.per_address.sessions gets the
  protocol's temporary refusal (421 4.7.0, * BYE, -ERR) then the close,
  another address is still served, and a closed session gives its place
  back; an exempt network is not counted; the rate limit; an implicit-TLS
  listener refuses by closing;
- the descriptor flood: limits.nofile 256 and 400 idle connections from
  200 addresses: sluice stays idle (CPU from /proc/PID/stat), enters stress
  mode, evicts idle sessions so a STARTTLS delivery through Postfix lands,
  and leaves stress once the flood is gone;
- handshake floods: clients that send a ClientHello and close cost no
  handshake step (handshake_jobs_skipped) and a delivery still lands;
  limits.per_address.handshakes refuses the next full handshake; both
  again with workers: 0, the cores running the steps (HandshakeFloodInline).
"""

import os
import smtplib
import socket
import ssl
import threading
import time
import unittest

import harness
from harness import (SENDER, Dovecot, Postfix, Sluice, client_hello, load_example,
                     make_message, message_id, no_verify_context, recipient, stop_all,
                     unique, wait_until)

PORTS = {"smtp": 40600, "imap": 40601, "pop3": 40602, "smtps": 40603}
PF = DV = None


def setUpModule():
    global PF, DV
    PF = Postfix().start()
    DV = Dovecot().start()


def tearDownModule():
    stop_all(PF, DV)


def limits_config(limits=None, per_listener=None):
    """The example configuration on this module's ports, with limits."""
    cfg = load_example("mail-front.yaml")
    by_name = {l["name"]: l for l in cfg["listeners"]}
    smtps = dict(by_name["submissions"], name="smtps")
    cfg["listeners"] = [by_name["smtp"], by_name["imap"], by_name["pop3"], smtps]
    for l in cfg["listeners"]:
        l["address"] = f"127.0.0.1:{PORTS[l['name']]}"
        if per_listener and l["name"] in per_listener:
            l["limits"] = per_listener[l["name"]]
    if limits:
        cfg["limits"] = limits
    return cfg


def connect(sl, listener, ip, timeout=10):
    """A raw connection from ip (any source port)."""
    s = socket.create_connection(sl.addr(listener), timeout=timeout, source_address=(ip, 0))
    return s


def first_line(s, timeout=10):
    """The first line the server sends (b"" if it closes first)."""
    s.settimeout(timeout)
    data = b""
    while b"\r\n" not in data:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0]


def closed_after(s, timeout=10):
    """True once the server closed s (EOF or reset) within timeout."""
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not s.recv(4096):
                return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False
    return False


def counters(sl):
    return sl.ctl("stats")["counters"]


def cpu_seconds(pid):
    """utime + stime of pid, in seconds (/proc/PID/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def deliver(sl, tag, source="127.0.0.9", timeout=30):
    """One message through sluice's smtp listener over STARTTLS."""
    s = smtplib.SMTP(*sl.addr("smtp"), local_hostname="client.test",
                     source_address=(source, 0), timeout=timeout)
    try:
        s.starttls(context=no_verify_context())
        s.ehlo()
        s.sendmail(SENDER, [recipient(tag)], make_message(tag))
        s.quit()
    finally:
        s.close()


def delivered(tag, timeout=20):
    return len(PF.maildir_messages(message_id(tag).encode(), count=1, timeout=timeout))


class LimitsCase(unittest.TestCase):
    sl = None

    def start(self, cfg):
        self.sl = Sluice(cfg, name="limits").start()
        return self.sl

    def tearDown(self):
        if self.sl:
            self.sl.stop()
        self.sl = None


class PerAddress(LimitsCase):
    def test_smtp_sessions_per_address(self):
        sl = self.start(limits_config({"per_address": {"sessions": 2}}))
        held = [connect(sl, "smtp", "127.0.0.2") for _ in range(2)]
        for s in held:
            self.assertTrue(first_line(s).startswith(b"220 "))
        over = connect(sl, "smtp", "127.0.0.2")
        line = first_line(over)
        self.assertTrue(line.startswith(b"421 4.7.0 "), line)
        self.assertIn(b"too many connections from your address", line)
        self.assertTrue(closed_after(over))
        # Another address is served meanwhile.
        other = connect(sl, "smtp", "127.0.0.3")
        self.assertTrue(first_line(other).startswith(b"220 "))
        # A session that ends gives its place back.
        held.pop().close()
        wait_until(lambda: self._greeted(sl, "127.0.0.2"), 10,
                   "a new session from 127.0.0.2 once one closed")
        c = counters(sl)
        self.assertGreaterEqual(c["conn_refused_per_address"], 1)
        line = [l for l in sl.log_lines() if "event=refused" in l and "client=127.0.0.2:" in l]
        self.assertTrue(line, "no refusal log line for 127.0.0.2")
        self.assertIn("limit=per_address.sessions value=2", line[0])
        for s in held + [other]:
            s.close()

    def _greeted(self, sl, ip):
        s = connect(sl, "smtp", ip)
        try:
            return first_line(s).startswith(b"220 ")
        finally:
            s.close()

    def test_imap_pop3_refusals(self):
        sl = self.start(limits_config({"per_address": {"sessions": 1}}))
        imap = connect(sl, "imap", "127.0.0.2")
        self.assertTrue(first_line(imap).startswith(b"* OK"))
        over = connect(sl, "imap", "127.0.0.2")
        line = first_line(over)
        self.assertTrue(line.startswith(b"* BYE [UNAVAILABLE]"), line)
        self.assertTrue(closed_after(over))
        pop = connect(sl, "pop3", "127.0.0.2")
        self.assertTrue(first_line(pop).startswith(b"+OK"))
        over = connect(sl, "pop3", "127.0.0.2")
        line = first_line(over)
        self.assertTrue(line.startswith(b"-ERR [SYS/TEMP]"), line)
        self.assertTrue(closed_after(over))
        # Other addresses are served by both.
        for name, greeting in (("imap", b"* OK"), ("pop3", b"+OK")):
            s = connect(sl, name, "127.0.0.3")
            self.assertTrue(first_line(s).startswith(greeting))
            s.close()
        self.assertGreaterEqual(counters(sl)["conn_refused_per_address"], 2)
        imap.close()
        pop.close()

    def test_exempt_network(self):
        sl = self.start(limits_config({"per_address": {"sessions": 1},
                                       "exempt": ["127.0.0.4/32"]}))
        held = [connect(sl, "smtp", "127.0.0.4") for _ in range(4)]
        for s in held:
            self.assertTrue(first_line(s).startswith(b"220 "))
        # Not the neighbour.
        a = connect(sl, "smtp", "127.0.0.5")
        self.assertTrue(first_line(a).startswith(b"220 "))
        b = connect(sl, "smtp", "127.0.0.5")
        self.assertTrue(first_line(b).startswith(b"421 4.7.0 "))
        for s in held + [a, b]:
            s.close()

    def test_rate(self):
        sl = self.start(limits_config({"per_address": {"rate": 3}}))
        for _ in range(3):
            s = connect(sl, "smtp", "127.0.0.6")
            self.assertTrue(first_line(s).startswith(b"220 "))
            s.sendall(b"QUIT\r\n")
            s.close()
        s = connect(sl, "smtp", "127.0.0.6")
        line = first_line(s)
        self.assertTrue(line.startswith(b"421 4.7.0 "), line)
        self.assertIn(b"try again later", line)
        s.close()
        s = connect(sl, "smtp", "127.0.0.7")
        self.assertTrue(first_line(s).startswith(b"220 "))
        s.close()
        self.assertEqual(counters(sl)["conn_refused_rate"], 1)

    def test_implicit_tls_refusal_is_a_close(self):
        sl = self.start(limits_config(per_listener={"smtps": {"sessions": 1}}))
        ctx = no_verify_context()
        first = ctx.wrap_socket(connect(sl, "smtps", "127.0.0.2"))
        self.assertTrue(first_line(first).startswith(b"220 "))
        over = connect(sl, "smtps", "127.0.0.2")
        # No plaintext can be said: no byte, then the close.
        self.assertEqual(read_until_close(over), b"")
        self.assertGreaterEqual(counters(sl)["conn_refused_per_address"], 1)
        over.close()
        first.close()


def read_until_close(s, timeout=10):
    """What the server sent until it closed; fails if it does not close."""
    s.settimeout(timeout)
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"still open after {timeout} s; got {data!r}")


class DescriptorFlood(LimitsCase):
    FLOOD = 400          # idle connections, more than limits.nofile
    ADDRESSES = 200

    def test_idle_flood_no_spin_and_delivery(self):
        sl = self.start(limits_config({"nofile": 256}))
        self.assertEqual(sl.ctl("status")["nofile"], 256)
        flood, deadline = [], time.monotonic() + 30
        for i in range(self.FLOOD):
            if time.monotonic() > deadline:
                break
            ip = f"127.0.1.{10 + i % self.ADDRESSES}"
            try:
                s = socket.create_connection(sl.addr("smtp"), timeout=5, source_address=(ip, 0))
            except OSError:
                continue
            flood.append(s)
        try:
            self.assertGreaterEqual(len(flood), self.FLOOD - 10)
            time.sleep(1.0)                         # let it settle: idle from here
            pid = sl.proc.pid
            t0, c0 = time.monotonic(), cpu_seconds(pid)
            time.sleep(3.0)
            cpu = (cpu_seconds(pid) - c0) / (time.monotonic() - t0)
            self.assertLess(cpu, 0.20, f"sluice used {cpu:.0%} of a core with an idle flood")
            self.assertTrue(sl.ctl("status")["stress"], "no core in stress mode")
            # A real sender still gets through: stress eviction made room.
            tag = unique("flood")
            deliver(sl, tag)
            self.assertEqual(delivered(tag), 1)
            c = counters(sl)
            self.assertGreaterEqual(c["stress_entered"], 1)
            self.assertGreaterEqual(c["stress_evicted"], 1)
        finally:
            for s in flood:
                s.close()
        # The flood gone, the next connections take the cores out of stress.
        def left():
            s = connect(sl, "smtp", "127.0.0.8")
            first_line(s)
            s.close()
            return not sl.ctl("status")["stress"]
        wait_until(left, 15, "stress mode left once the flood closed")
        self.assertGreaterEqual(counters(sl)["stress_left"], 1)
        self.assertTrue(sl.running())


class CoreFull(LimitsCase):
    def test_eviction_and_stress_timers(self):
        # One core of 16 sessions, stress at half: the 9th session is
        # under stress (a 2 s plaintext timer), the 17th evicts the
        # longest idle one, which hears 421 4.3.2.
        cfg = limits_config({"sessions_per_core": 16, "stress_percent": 50,
                             "stress_plaintext": 2})
        cfg["cores"] = 1
        sl = self.start(cfg)
        held = []
        for i in range(8):
            s = connect(sl, "smtp", f"127.0.3.{i + 1}")
            self.assertTrue(first_line(s).startswith(b"220 "))
            held.append(s)
        t0 = time.monotonic()
        late = connect(sl, "smtp", "127.0.3.100")
        self.assertTrue(first_line(late).startswith(b"220 "))
        self.assertEqual(sl.ctl("status")["stress"], [0])
        for i in range(8, 16):
            s = connect(sl, "smtp", f"127.0.3.{i + 1}")
            self.assertTrue(first_line(s).startswith(b"220 "))
            held.append(s)
        # Full: the next one is served, the longest idle is evicted.
        new = connect(sl, "smtp", "127.0.3.200")
        self.assertTrue(first_line(new).startswith(b"220 "))
        line = first_line(held[0])
        self.assertTrue(line.startswith(b"421 4.3.2 "), line)
        self.assertTrue(closed_after(held[0]))
        c = counters(sl)
        self.assertGreaterEqual(c["stress_evicted"], 1)
        self.assertEqual(sl.conn_log("127.0.3.1")["result"], "evicted")
        # The session opened under stress timed out on the short timer
        # (if it was not evicted first: it is younger than held[0]).
        line = first_line(late, timeout=10)
        self.assertTrue(line.startswith(b"421 4.4.2 "), line)
        self.assertLess(time.monotonic() - t0, 8)
        for s in held + [late, new]:
            s.close()


class HandshakeFlood(LimitsCase):
    HELLOS = 300

    def test_hello_and_close_flood(self):
        sl = self.start(limits_config())
        # TLS 1.2 with RSA key transport's cousin ECDHE-RSA: the server
        # signs with RSA-2048, the slowest step, so the one worker falls
        # behind and the steps of clients that have gone wait for it.
        ctx = no_verify_context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname="mail-front.test")
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = outgoing.read()
        sent = [0] * 4

        def flood(k):
            t_end = time.monotonic() + 10
            for i in range(self.HELLOS // len(sent)):
                if time.monotonic() > t_end:
                    break
                try:
                    s = socket.create_connection(sl.addr("smtps"), timeout=5,
                                                 source_address=(f"127.0.2.{1 + k * 50 + i % 50}", 0))
                    s.sendall(hello)
                    s.close()
                    sent[k] += 1
                except OSError:
                    pass
        threads = [threading.Thread(target=flood, args=(k,)) for k in range(len(sent))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertGreaterEqual(sum(sent), self.HELLOS // 2)
        wait_until(lambda: counters(sl)["conn_closed"] >= sum(sent), 20,
                   "every flood connection closed")
        c = counters(sl)
        self.assertGreaterEqual(c["handshake_jobs_skipped"], 1, c)
        tag = unique("hsflood")
        deliver(sl, tag)
        self.assertEqual(delivered(tag), 1)

    def test_handshake_rate(self):
        sl = self.start(limits_config(per_listener={"smtps": {"handshakes": 2}}))
        ctx = no_verify_context()
        ctx.options |= ssl.OP_NO_TICKET
        for _ in range(2):
            s = ctx.wrap_socket(connect(sl, "smtps", "127.0.0.2"))
            self.assertTrue(first_line(s).startswith(b"220 "))
            s.close()
        with self.assertRaises((ssl.SSLError, ConnectionResetError, OSError)):
            s = ctx.wrap_socket(connect(sl, "smtps", "127.0.0.2"))
            first_line(s)
            raise AssertionError("third full handshake was served")
        s = ctx.wrap_socket(connect(sl, "smtps", "127.0.0.3"))
        self.assertTrue(first_line(s).startswith(b"220 "))
        s.close()
        self.assertEqual(counters(sl)["handshake_refused_rate"], 1)



class HandshakeFloodInline(HandshakeFlood):
    """The same floods with workers: 0 (issue 14): the core runs the steps
    itself, through the same job code, so a ClientHello-and-close costs no
    step (handshake_jobs_skipped), a delivery still lands, and
    limits.per_address.handshakes refuses before any work."""

    def start(self, cfg):
        cfg["workers"] = 0
        sl = super().start(cfg)
        self.assertEqual(sl.ctl("status")["workers"], 0)
        return sl


if __name__ == "__main__":
    unittest.main()
