"""Client quirks (DESIGN.md section 3), with real Postfix and Dovecot behind.

The second STARTTLS of Outlook for iOS/Android: after sluice's OK the client
sends the STARTTLS command once more, and only then its ClientHello. An
OpenSSL server reads that line as a broken record and cuts the connection;
sluice answers OK again (twice at most) and the session goes on. Anything
else after the OK that is not a TLS record closes the connection: no other
plaintext is ever read there.
"""

import os
import re
import signal
import smtplib
import subprocess
import socket
import ssl
import time
import unittest

from harness import (client_source, SENDER, Dovecot, Postfix, Sluice, load_example, make_message,
                     message_id, no_verify_context, recipient, unique, wait_until, stop_all,
                     shifted)

FRONT = load_example("mail-front.yaml")
CLIENT = "127.0.0.31"
PF = DV = SL = None


def setUpModule():
    global PF, DV, SL
    PF = Postfix().start()
    DV = Dovecot().start()
    SL = Sluice(FRONT, "quirks").start()


def tearDownModule():
    stop_all(SL, DV, PF)


class Conn:
    """A raw client: exact bytes out, lines in; TLS in place."""

    def __init__(self, listener):
        self.sock = socket.create_connection(SL.addr(listener), timeout=10,
                                             source_address=client_source(CLIENT))
        self.port = self.sock.getsockname()[1]
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError(f"closed; pending {self.buf!r}")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def lines_until(self, pred):
        out = []
        while True:
            out.append(self.line())
            if pred(out[-1]):
                return out

    def send(self, data):
        self.sock.sendall(data)

    def tls(self):
        assert not self.buf, self.buf
        self.sock = no_verify_context().wrap_socket(self.sock, server_hostname="mail-front.test")

    def closed(self, wait=5):
        """True if sluice closes the connection (after whatever it sends)."""
        self.sock.settimeout(wait)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except (ConnectionResetError, ssl.SSLError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


# GnuTLS without the extended master secret (RFC 7627), TLS 1.2.
NO_EMS = "NORMAL:-VERS-ALL:+VERS-TLS1.2:%NO_SESSION_HASH"


def gnutls_starttls(sl, listener, priority):
    """gnutls-cli through STARTTLS to listener of sl (from 127.0.0.1:
    gnutls-cli cannot bind a source): (exit code, output, sluice's log line
    of that connection)."""
    before = len(sl.conn_logs())
    host, port = sl.addr(listener)
    proto = {"smtp": "smtp", "submission": "smtp"}.get(listener, listener)
    p = subprocess.run(["gnutls-cli", "--insecure", f"--starttls-proto={proto}",
                        f"--priority={priority}", "-p", str(port), host],
                       input=b"", capture_output=True, timeout=30)
    def found():
        new = [kv for kv in sl.conn_logs()[before:] if kv["client"].startswith("127.0.0.1:")]
        return new[-1] if new else None
    return p.returncode, (p.stdout + p.stderr).decode(errors="replace"), \
        wait_until(found, 10, "sluice's log line of the gnutls-cli connection")


def sslv2_client_hello(version=0x0303):
    """An SSLv2-compatible CLIENT-HELLO (RFC 5246 E.2), as IE6 on XP and
    Java 6 sent it: two-byte header with the high bit, no extensions, so no
    EMS either."""
    specs = bytes.fromhex("00c02f" "00009c" "00002f" "000035" "0000ff")
    challenge = os.urandom(32)
    body = bytes([1]) + version.to_bytes(2, "big") + len(specs).to_bytes(2, "big") \
        + (0).to_bytes(2, "big") + len(challenge).to_bytes(2, "big") + specs + challenge
    return (0x8000 | len(body)).to_bytes(2, "big") + body


class SecondStarttls(unittest.TestCase):

    def conn(self, listener):
        c = Conn(listener)
        self.addCleanup(c.close)
        return c

    def assert_log(self, c, quirks, result="ok"):
        line = SL.conn_log(CLIENT, c.port)
        self.assertEqual(line["quirks"], quirks, line)
        self.assertEqual(line["result"], result, line)
        return line

    def test_smtp_outlook_delivers(self):
        tag = unique("outlook")
        msg = make_message(tag)
        c = self.conn("submission")
        self.assertTrue(c.line().startswith("220 "))
        c.send(b"EHLO client.test\r\n")
        c.lines_until(lambda l: l.startswith("250 "))
        c.send(b"STARTTLS\r\n")
        self.assertEqual(c.line(), "220 2.0.0 Ready to start TLS")
        c.send(b"STARTTLS\r\n")                       # Outlook mobile's second one
        self.assertEqual(c.line(), "220 2.0.0 Ready to start TLS")
        c.tls()
        c.send(b"EHLO client.test\r\n")
        ehlo = c.lines_until(lambda l: l.startswith("250 "))
        self.assertNotIn("STARTTLS", " ".join(ehlo))
        for cmd, code in ((f"MAIL FROM:<{SENDER}>", "250"), (f"RCPT TO:<{recipient(tag)}>", "250"),
                          ("DATA", "354")):
            c.send(cmd.encode() + b"\r\n")
            self.assertTrue(c.line().startswith(code))
        c.send(msg.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        self.assertRegex(c.line(), r"^250 2\.0\.0 Ok: queued")
        c.send(b"QUIT\r\n")
        self.assertTrue(c.line().startswith("221"))
        got = PF.maildir_messages(message_id(tag).encode(), count=1, timeout=15)
        self.assertEqual(len(got), 1)
        self.assert_log(c, "second-starttls")

    def test_imap_outlook_logs_in(self):
        c = self.conn("imap")
        self.assertTrue(c.line().startswith("* OK"))
        c.send(b"a STARTTLS\r\n")
        self.assertEqual(c.line(), "a OK Begin TLS negotiation now.")
        c.send(b"b STARTTLS\r\n")                     # any tag
        self.assertEqual(c.line(), "b OK Begin TLS negotiation now.")
        c.tls()
        c.send(b"c LOGIN bob secret\r\n")
        self.assertRegex(c.lines_until(lambda l: l.startswith("c "))[-1], r"^c OK ")
        c.send(b"d SELECT INBOX\r\n")
        self.assertRegex(c.lines_until(lambda l: l.startswith("d "))[-1], r"^d OK ")
        c.send(b"e LOGOUT\r\n")
        c.lines_until(lambda l: l.startswith("e "))
        login = DV.login(CLIENT, c.port)
        self.assertTrue(login["secured"], login)
        self.assert_log(c, "second-starttls")

    def test_pop3_outlook_logs_in(self):
        c = self.conn("pop3")
        self.assertTrue(c.line().startswith("+OK"))
        c.send(b"STLS\r\n")
        self.assertTrue(c.line().startswith("+OK"))
        c.send(b"stls\r\n")                           # case-insensitive, exact line
        self.assertTrue(c.line().startswith("+OK"))
        c.tls()
        for cmd in (b"USER bob", b"PASS secret", b"STAT"):
            c.send(cmd + b"\r\n")
            self.assertTrue(c.line().startswith("+OK"), cmd)
        c.send(b"QUIT\r\n")
        c.line()
        login = DV.login(CLIENT, c.port)
        self.assertTrue(login["secured"], login)
        self.assert_log(c, "second-starttls")

    def test_third_repeat_closes(self):
        c = self.conn("pop3")
        c.line()
        c.send(b"STLS\r\n")
        c.line()
        for _ in range(2):
            c.send(b"STLS\r\n")
            self.assertTrue(c.line().startswith("+OK"))
        c.send(b"STLS\r\n")
        self.assertTrue(c.closed())
        self.assert_log(c, "second-starttls,not-tls-after-starttls", "client-error")

    def test_plaintext_after_the_ok_closes(self):
        mark = len(PF.log())
        c = self.conn("smtp")
        c.line()
        c.send(b"EHLO client.test\r\n")
        c.lines_until(lambda l: l.startswith("250 "))
        c.send(b"STARTTLS\r\n")
        c.line()
        c.send(f"MAIL FROM:<{SENDER}>\r\n".encode())   # not TLS, not a repeat
        self.assertTrue(c.closed())
        self.assert_log(c, "not-tls-after-starttls", "client-error")
        time.sleep(0.5)
        self.assertNotIn(f"[{CLIENT}]:{c.port}", PF.log()[mark:], "it reached Postfix")

    def test_repeat_with_an_argument_closes(self):
        c = self.conn("smtp")
        c.line()
        c.send(b"STARTTLS\r\n")
        c.line()
        c.send(b"STARTTLS now\r\n")
        self.assertTrue(c.closed())
        self.assert_log(c, "not-tls-after-starttls", "client-error")

    def test_sluice_still_serves(self):
        with socket.create_connection(SL.addr("imaps"), timeout=10) as s:
            t = no_verify_context().wrap_socket(s, server_hostname="mail-front.test")
            self.assertTrue(t.recv(4096).startswith(b"* OK"))
            t.close()


def counters(sl):
    return sl.counters()


class ClientHelloQuirks(unittest.TestCase):
    """What the ClientHello shows, read on the core before the handshake."""

    def test_fallback_scsv_gets_inappropriate_fallback(self):
        before = counters(SL).get("quirk_fallback_scsv", 0)
        host, port = SL.addr("submissions")
        p = subprocess.run(["openssl", "s_client", "-connect", f"{host}:{port}", "-tls1_2",
                            "-fallback_scsv"], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=20, text=True)
        self.assertIn("inappropriate fallback", p.stdout + p.stderr)
        self.assertEqual(counters(SL).get("quirk_fallback_scsv", 0), before + 1)
        line = [l for l in SL.conn_logs() if "fallback-scsv" in l.get("quirks", "")][-1]
        self.assertEqual(line["result"], "tls-failed", line)
        self.assertRegex(line["ja4"], r"^t12[di]\d{4}\w\w_[0-9a-f]{12}_[0-9a-f]{12}$", line)

    def test_sslv2_hello_is_read_and_counted(self):
        """An SSLv2-format hello after the STARTTLS OK: parsed on the core
        (its JA4, the quirk), then OpenSSL decides; whatever it decides, the
        connection ends cleanly with a line that says so."""
        before = counters(SL).get("quirk_sslv2_hello", 0)
        c = Conn("smtp")
        self.addCleanup(c.close)
        c.line()
        c.send(b"STARTTLS\r\n")
        self.assertTrue(c.line().startswith("220 2.0.0"))
        c.send(sslv2_client_hello())
        self.assertTrue(c.closed(10))
        line = SL.conn_log(CLIENT, c.port)
        self.assertIn("sslv2-hello", line["quirks"].split(","), line)
        self.assertRegex(line["ja4"], r"^t12i05\d\d00_", line)  # 5 specs, no extensions
        self.assertEqual(counters(SL).get("quirk_sslv2_hello", 0), before + 1)

    def test_trailing_blanks_are_ignored_and_counted(self):
        c = Conn("smtp")
        self.addCleanup(c.close)
        c.line()
        c.send(b"EHLO client.test \r\n")
        self.assertTrue(c.lines_until(lambda l: l.startswith("250 "))[0].startswith("250-"))
        c.send(b"NOOP\t \r\nQUIT \r\n")
        self.assertTrue(c.line().startswith("250 "))
        self.assertTrue(c.line().startswith("221 "))
        line = SL.conn_log(CLIENT, c.port)
        self.assertEqual((line["quirks"], line["result"]), ("trailing-blanks", "ok"), line)

    def test_ja4_of_a_tls13_client_is_logged(self):
        host, port = SL.addr("submissions")
        with socket.create_connection((host, port), timeout=10, source_address=client_source(CLIENT)) as s:
            cport = s.getsockname()[1]
            t = no_verify_context().wrap_socket(s, server_hostname="mail-front.test")
            self.assertTrue(t.recv(4096).startswith(b"220 "))
            t.sendall(b"QUIT\r\n")
            t.recv(4096)
        line = SL.conn_log(CLIENT, cport)
        self.assertRegex(line["ja4"], r"^t13d\d{4}\w\w_[0-9a-f]{12}_[0-9a-f]{12}$", line)
        self.assertEqual(line["tls"], "TLSv1.3", line)


class SwitchedToClose(unittest.TestCase):
    """Each quirk with an action can be switched per listener: here the
    smtp listener closes instead of working around."""

    @classmethod
    def setUpClass(cls):
        cfg = shifted(FRONT, 53000)
        for l in cfg["listeners"]:
            if l["name"] == "smtp":
                l["quirks"] = {"second_starttls": "close", "pipelined_starttls": "close",
                               "bare_lf": "close", "trailing_blanks": "close",
                               "sslv2_hello": "close", "no_ems": "close"}
        cls.sl = Sluice(cfg, "strict").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def conn(self):
        s = socket.create_connection(self.sl.addr("smtp"), timeout=10,
                                     source_address=client_source(CLIENT))
        self.addCleanup(s.close)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"220 "))
        return s, f

    def closed(self, s):
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except ConnectionResetError:
            pass
        return True

    def log(self, s):
        return self.sl.conn_log(CLIENT, s.getsockname()[1])

    def test_second_starttls_closes(self):
        s, f = self.conn()
        s.sendall(b"STARTTLS\r\n")
        self.assertTrue(f.readline().startswith(b"220 2.0.0"))
        s.sendall(b"STARTTLS\r\n")
        self.assertEqual(f.read(), b"")
        line = self.log(s)
        self.assertEqual((line["quirks"], line["result"]), ("second-starttls", "client-error"))

    def test_pipelined_behind_starttls_closes(self):
        s, f = self.conn()
        s.sendall(b"STARTTLS\r\nNOOP\r\n")
        self.assertTrue(f.readline().startswith(b"220 2.0.0"))
        self.assertEqual(f.read(), b"")
        line = self.log(s)
        self.assertEqual((line["quirks"], line["result"]),
                         ("pipelined-after-starttls", "client-error"))

    def test_bare_lf_closes(self):
        s, f = self.conn()
        s.sendall(b"NOOP\n")
        self.assertEqual(f.read(), b"")
        line = self.log(s)
        self.assertEqual((line["quirks"], line["result"]), ("bare-lf", "client-error"))

    def test_trailing_blanks_close(self):
        s, f = self.conn()
        s.sendall(b"NOOP \r\n")
        self.assertEqual(f.read(), b"")
        line = self.log(s)
        self.assertEqual((line["quirks"], line["result"]), ("trailing-blanks", "client-error"))

    def test_sslv2_hello_closes(self):
        s, f = self.conn()
        s.sendall(b"STARTTLS\r\n")
        self.assertTrue(f.readline().startswith(b"220 2.0.0"))
        s.sendall(sslv2_client_hello())
        self.assertEqual(f.read(), b"")
        line = self.log(s)
        self.assertEqual((line["quirks"], line["result"]), ("sslv2-hello", "tls-refused"))
        self.assertIn("quirks.sslv2_hello: close", line["reason"])

    def test_no_ems_closes(self):
        """A real client without extended_master_secret (GnuTLS told so)."""
        rc, out, line = gnutls_starttls(self.sl, "smtp", NO_EMS)
        self.assertNotEqual(rc, 0, out)
        self.assertEqual((line["quirks"], line["result"]), ("no-ems", "tls-refused"), line)
        self.assertIn("quirks.no_ems: close", line["reason"])

    def test_other_listeners_still_allow(self):
        s = socket.create_connection(self.sl.addr("submission"), timeout=10)
        self.addCleanup(s.close)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"NOOP\n")
        self.assertTrue(f.readline().startswith(b"250 "))
        s.sendall(b"NOOP \t\r\n")
        self.assertTrue(f.readline().startswith(b"250 "))
        rc, out, line = gnutls_starttls(self.sl, "submission", NO_EMS)
        self.assertEqual(rc, 0, out)
        self.assertEqual((line["quirks"], line["tls"]), ("no-ems", "TLSv1.2"), line)


def time_to_greeting(sl, listener):
    """Connect from CLIENT, read the greeting: (seconds from connect to the
    greeting's end, the greeting, the client port). The socket is closed."""
    t0 = time.monotonic()
    with socket.create_connection(sl.addr(listener), timeout=10,
                                  source_address=client_source(CLIENT)) as s:
        t1 = time.monotonic()
        cport = s.getsockname()[1]
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        t2 = time.monotonic()
        s.sendall(b"QUIT\r\n")
        s.recv(4096)
    return t2 - t1, data, cport, t1 - t0


def s_client_tls_first(sl, listener):
    """openssl s_client straight at a STARTTLS port (no -starttls), as iOS
    Mail set to "SSL" on 587 does: its output and sluice's log line."""
    before = len(sl.conn_logs())
    host, port = sl.addr(listener)
    p = subprocess.run(["openssl", "s_client", "-connect", f"{host}:{port}", "-quiet",
                        "-ign_eof", "-servername", "mail-front.test"],
                       input="EHLO ios.test\r\nQUIT\r\n", capture_output=True,
                       timeout=30, text=True)
    def found():
        new = [kv for kv in sl.conn_logs()[before:] if kv["listener"] == listener]
        return new[-1] if new else None
    return p.stdout + p.stderr, wait_until(found, 10, f"the log line of s_client on {listener}")


class ImplicitTlsOnStarttlsPort(unittest.TestCase):
    """iOS Mail speaks TLS at once to port 587. A tls: required listener
    holds its greeting by default (mail-front.yaml's submission has no
    detect_implicit_ms) for about two round trips of the connection: a
    ClientHello in the window switches the connection to implicit TLS;
    silence gets the greeting, on loopback after a few ms."""

    def test_s_client_tls_first(self):
        out, line = s_client_tls_first(SL, "submission")
        self.assertRegex(out, r"(?m)^220 mail-front\.test ESMTP", out)
        self.assertRegex(out, r"(?m)^250", out)
        self.assertEqual(line["quirks"], "implicit-tls-on-starttls-port", line)
        self.assertEqual(line["starttls"], "no", line)
        self.assertRegex(line["tls"], r"^TLSv1\.[23]$", line)
        print(f"\n  s_client TLS-first on submission: hold_ms={line['hold_ms']} "
              f"tls={line['tls']} quirks={line['quirks']}", flush=True)

    def test_python_ssl_tls_first_delivers(self):
        tag = unique("ios")
        msg = make_message(tag)
        host, port = SL.addr("submission")
        with smtplib.SMTP_SSL(host, port, local_hostname="client.test",
                              source_address=client_source(CLIENT), timeout=15,
                              context=no_verify_context()) as s:
            cport = s.sock.getsockname()[1]
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        self.assertEqual(len(PF.maildir_messages(message_id(tag).encode(), count=1,
                                                 timeout=15)), 1)
        line = SL.conn_log(CLIENT, cport)
        self.assertEqual(line["quirks"], "implicit-tls-on-starttls-port", line)
        self.assertEqual(line["starttls"], "no", line)
        self.assertRegex(line["tls"], r"^TLSv1\.[23]$", line)

    def test_plaintext_greeted_without_delay(self):
        """On loopback the round trip is some µs: the hold is its floor
        (10 ms), not the 200 ms maximum."""
        waits = []
        for _ in range(5):
            waited, greeting, cport, _ = time_to_greeting(SL, "submission")
            self.assertTrue(greeting.startswith(b"220 mail-front.test ESMTP"), greeting)
            line = SL.conn_log(CLIENT, cport)
            waits.append((waited, int(line["hold_ms"])))
        print("\n  plaintext on submission (tls: required, no detect_implicit_ms): "
              + ", ".join(f"greeting after {w * 1000:.1f} ms (hold_ms={h})" for w, h in waits),
              flush=True)
        for waited, hold in waits:
            self.assertGreaterEqual(hold, 1)
            self.assertLess(hold, 50)          # the RTT's, not the 200 ms maximum
            self.assertGreaterEqual(waited, hold / 1000 * 0.9)
        self.assertLess(sorted(w for w, _ in waits)[len(waits) // 2], 0.1)  # the median

    def test_plaintext_client_on_submission_delivers(self):
        tag = unique("plain587")
        msg = make_message(tag)
        host, port = SL.addr("submission")
        with smtplib.SMTP(host, port, local_hostname="client.test",
                          source_address=client_source(CLIENT), timeout=15) as s:
            self.assertEqual(s.starttls(context=no_verify_context())[0], 220)
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        self.assertEqual(len(PF.maildir_messages(message_id(tag).encode(), count=1,
                                                 timeout=15)), 1)

    def test_starttls_listener_greets_at_once(self):
        """Port 25 style (tls: starttls): no hold by default."""
        waited, greeting, cport, _ = time_to_greeting(SL, "smtp")
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        line = SL.conn_log(CLIENT, cport)
        self.assertEqual(line["hold_ms"], "0", line)
        print(f"\n  plaintext on smtp (tls: starttls): greeting after {waited * 1000:.1f} ms",
              flush=True)

    def test_an_early_talker_is_greeted_then_answered(self):
        c = socket.create_connection(SL.addr("submission"), timeout=10)
        self.addCleanup(c.close)
        c.sendall(b"EHLO early.test\r\n")
        data = b""
        while data.count(b"\r\n250 ") < 1:
            chunk = c.recv(4096)
            self.assertTrue(chunk, data)
            data += chunk
        self.assertTrue(data.startswith(b"220 mail-front.test ESMTP\r\n250-mail-front.test"), data)

    def test_hold_is_counted(self):
        before = counters(SL)
        time_to_greeting(SL, "submission")
        after = wait_until(lambda: (lambda c: c if c.get("greeting_held", 0) > before.get(
            "greeting_held", 0) else None)(counters(SL)), 10, "greeting_held to grow")
        self.assertGreaterEqual(after["greeting_held_ms"] - before.get("greeting_held_ms", 0), 1)


class ImplicitTlsSwitched(unittest.TestCase):
    """detect_implicit_ms written out: 0 turns it off on a required
    listener, a value turns it on for a starttls one (as the maximum)."""

    @classmethod
    def setUpClass(cls):
        cfg = shifted(FRONT, 52000)
        for l in cfg["listeners"]:
            if l["name"] == "submission":
                l["detect_implicit_ms"] = 0
            if l["name"] == "smtp":
                l["detect_implicit_ms"] = 300
        cls.sl = Sluice(cfg, "detect").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def test_off_greets_at_once(self):
        waited, greeting, cport, _ = time_to_greeting(self.sl, "submission")
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        self.assertEqual(self.sl.conn_log(CLIENT, cport)["hold_ms"], "0")
        self.assertLess(waited, 0.1)

    def test_off_does_not_switch(self):
        out, line = s_client_tls_first(self.sl, "submission")
        self.assertNotIn("implicit-tls-on-starttls-port", line["quirks"], line)
        self.assertEqual(line["tls"], "none", line)

    def test_on_for_a_starttls_listener(self):
        out, line = s_client_tls_first(self.sl, "smtp")
        self.assertRegex(out, r"(?m)^220 mail-front\.test ESMTP", out)
        self.assertEqual(line["quirks"], "implicit-tls-on-starttls-port", line)
        waited, greeting, cport, _ = time_to_greeting(self.sl, "smtp")
        self.assertTrue(greeting.startswith(b"220 "), greeting)
        hold = int(self.sl.conn_log(CLIENT, cport)["hold_ms"])
        self.assertTrue(1 <= hold < 300, hold)


if __name__ == "__main__":
    unittest.main()
