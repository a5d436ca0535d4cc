"""sluice's own dialogue has limits (issue 12), and the relay keeps its words
out of the backend's responses: real clients against sluice in front of a
real Postfix and Dovecot.

- timeouts.plaintext_deadline: the whole of sluice's own dialogue has a
  fixed end, however busy the client keeps it (a NOOP every half second):
  the protocol's refusal, then the close (counted, logged).
- limits.junk_commands: commands that make no progress (NOOP, RSET, HELP,
  unknown verbs, errors) are counted; the one past the limit is refused
  with the protocol's temporary error and the connection closed. A client
  that makes progress still delivers.
- The relay's idle timeout (timeouts.idle) says nothing inside a FETCH
  literal: there the client sees only the close, as when the backend is
  lost (the mail process is stopped mid-literal with SIGSTOP: a backend
  stuck on its disk).
- A ClientHello larger than the input buffer (24 KiB, a padding extension)
  is refused and closed with a clear reason, never half-read.
- A backend connect that fails on sluice's side (EMFILE: sluice's
  RLIMIT_NOFILE lowered with prlimit to what it holds plus the client) gets
  the client the temporary error, is counted apart and does not mark the
  server down.

One sluice on ports 40700-40706 (this file's range), with a short deadline,
idle timeout and junk limit.
"""

import os
import re
import resource
import signal
import socket
import ssl
import struct
import time
import unittest

from harness import (MAIL_PASSWORD, MAIL_USER, SENDER, Dovecot, Postfix, Sluice, Smtp, _comm,
                     _session_pids, client_source, dot_stuff, load_example, make_message,
                     no_verify_context, recipient, stop_all, unique, wait_until)

DEADLINE, IDLE, JUNK = 3, 3, 5
PORTS = {"smtp": 40700, "submission": 40701, "submissions": 40702, "imap": 40703,
         "imaps": 40704, "pop3": 40705, "pop3s": 40706}
SOURCE = "127.0.0.61"

PF = DV = SL = None


def config():
    cfg = load_example("mail-front.yaml")
    for l in cfg["listeners"]:
        l["address"] = f"127.0.0.1:{PORTS[l['name']]}"
    cfg["timeouts"].update(plaintext_deadline=DEADLINE, idle=IDLE)
    cfg["limits"] = {"junk_commands": JUNK}
    return cfg


def setUpModule():
    global PF, DV, SL
    PF = Postfix().start()
    DV = Dovecot().start()
    SL = Sluice(config(), "dialogue").start()


def tearDownModule():
    stop_all(SL, DV, PF)


def counters():
    return SL.ctl("stats")["counters"]


def log_lines(conn_port, timeout=10):
    """sluice's log line for the session of the client's local port."""
    pat = re.compile(rf"client=127\.0\.0\.\d+:{conn_port} .*")
    lines = []
    wait_until(lambda: lines.extend(pat.findall(SL.log_text())) or lines, timeout,
               f"the log line of client port {conn_port}")
    return lines[0]


class Raw:
    """A line client for IMAP and POP3 (and TLS in place)."""

    def __init__(self, port, tls=False, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                             source_address=client_source(SOURCE))
        self.port = self.sock.getsockname()[1]
        if tls:
            self.sock = no_verify_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, line):
        self.sock.sendall(line.encode() + b"\r\n")

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed; pending {self.buf!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode(errors="replace")

    def rest(self, timeout):
        """Everything until the server closes (fails if it does not)."""
        self.sock.settimeout(timeout)
        data, self.buf = self.buf, b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return data
                data += chunk
        except (ConnectionResetError, ssl.SSLError):
            return data
        except socket.timeout:
            raise AssertionError(f"still open after {timeout} s; got {data[-200:]!r}") from None

    def close(self):
        self.sock.close()


class Deadline(unittest.TestCase):
    """A NOOP every half second does not keep sluice's dialogue open."""

    def test_smtp_busy_client_meets_the_deadline(self):
        before = counters().get("timeout_deadline", 0)
        t0 = time.monotonic()
        with Smtp(("127.0.0.1", PORTS["smtp"]), source=SOURCE) as c:
            self.assertEqual(c.reply()[0], 220)
            c.expect("EHLO client.test", 250)
            got = None
            while time.monotonic() - t0 < DEADLINE + 5:
                time.sleep(0.5)
                code, lines = c.cmd("NOOP") if time.monotonic() - t0 < DEADLINE - 1 \
                    else c.reply()
                if code != 250:
                    got = (code, lines)
                    break
            self.assertIsNotNone(got, "no refusal: the NOOPs kept the dialogue open")
            self.assertEqual(got[0], 421, got)
            self.assertIn("4.4.2", got[1][0])
            c.closed_by_peer(5)
            port = c.local[1]
        elapsed = time.monotonic() - t0
        self.assertGreaterEqual(elapsed, DEADLINE - 0.5)
        self.assertLess(elapsed, DEADLINE + 3)
        line = log_lines(port)
        self.assertIn("result=timeout", line)
        self.assertIn("plaintext_deadline", line)
        self.assertGreater(counters().get("timeout_deadline", 0), before)

    def test_imap_busy_client_meets_the_deadline(self):
        c = Raw(PORTS["imap"])
        try:
            self.assertTrue(c.line().startswith("* OK"))
            t0 = time.monotonic()
            i = 0
            while time.monotonic() - t0 < DEADLINE - 1:
                i += 1
                c.send(f"n{i} NOOP" if i % 2 else f"n{i} CAPABILITY")
                line = c.line()
                while line.startswith("* CAPABILITY"):
                    line = c.line()
                self.assertTrue(line.startswith(f"n{i} OK"), line)
                time.sleep(0.4)
            rest = c.rest(DEADLINE + 3)
            self.assertIn(b"* BYE Disconnected for inactivity.", rest)
            self.assertLess(time.monotonic() - t0, DEADLINE + 3)
        finally:
            c.close()

    def test_deadline_starts_again_after_implicit_tls(self):
        """On 465 the deadline counts from the end of the handshake."""
        with Smtp(("127.0.0.1", PORTS["submissions"]), source=SOURCE, tls=True) as c:
            t0 = time.monotonic()
            self.assertEqual(c.reply()[0], 220)
            # (No EHLO: inside TLS it goes to the backend, and the dialogue
            # is sluice's only until then.)
            while time.monotonic() - t0 < DEADLINE - 1:
                c.expect("NOOP", 250)
                time.sleep(0.5)
            code, lines = c.reply()
            self.assertEqual(code, 421, lines)
            self.assertIn("4.4.2", lines[0])
            self.assertLess(time.monotonic() - t0, DEADLINE + 2)

    def test_delivery_within_the_deadline(self):
        """A real sender is not hurt: STARTTLS and the mail within it."""
        import smtplib
        tag = unique("deadline")
        msg = make_message(tag)
        with smtplib.SMTP("127.0.0.1", PORTS["smtp"], timeout=10,
                          source_address=client_source(SOURCE)) as s:
            s.ehlo("client.test")
            s.starttls(context=no_verify_context())
            s.ehlo("client.test")
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        self.assertEqual(len(PF.maildir_messages(containing=f"Message-ID: <{tag}@".encode(),
                                                 timeout=30)), 1)


class JunkCommands(unittest.TestCase):

    def test_smtp_junk_limit(self):
        before = counters().get("junk_refused", 0)
        with Smtp(("127.0.0.1", PORTS["smtp"]), source=SOURCE) as c:
            self.assertEqual(c.reply()[0], 220)
            c.expect("EHLO client.test", 250)
            c.expect("NOOP", 250)
            c.expect("RSET", 250)
            c.expect("HELP", 214)
            code, _ = c.cmd("XYZZY")
            self.assertEqual(code, 502)
            c.expect("NOOP", 250)                      # the 5th: still answered
            code, lines = c.cmd("NOOP")                # the 6th: refused
            self.assertEqual(code, 421, lines)
            self.assertIn("4.7.0", lines[0])
            self.assertIn("without progress", lines[0])
            c.closed_by_peer(5)
            port = c.local[1]
        line = log_lines(port)
        self.assertIn("result=client-error", line)
        self.assertIn("too many commands without progress", line)
        self.assertGreater(counters().get("junk_refused", 0), before)

    def test_pop3_junk_limit(self):
        c = Raw(PORTS["pop3"])
        try:
            self.assertTrue(c.line().startswith("+OK"))
            for _ in range(JUNK):
                c.send("NOOP")
                self.assertTrue(c.line().startswith("+OK"))
            c.send("NOOP")
            self.assertEqual(c.line(), "-ERR Too many commands without progress.")
            self.assertEqual(c.rest(5), b"")
        finally:
            c.close()

    def test_progress_then_delivery(self):
        """A few junk commands, then STARTTLS and a delivery: fine."""
        tag = unique("junk")
        msg = make_message(tag)
        with Smtp(("127.0.0.1", PORTS["smtp"]), source=SOURCE) as c:
            self.assertEqual(c.reply()[0], 220)
            c.expect("EHLO client.test", 250)
            c.expect("NOOP", 250)
            c.expect("RSET", 250)
            c.starttls()
            c.expect("EHLO client.test", 250)
            c.expect(f"MAIL FROM:<{SENDER}>", 250)
            c.expect(f"RCPT TO:<{recipient(tag)}>", 250)
            c.expect("DATA", 354)
            c.send(dot_stuff(msg))
            self.assertEqual(c.reply()[0], 250)
            c.expect("QUIT", 221)
        self.assertEqual(len(PF.maildir_messages(containing=f"Message-ID: <{tag}@".encode(),
                                                 timeout=30)), 1)


class IdleMidLiteral(unittest.TestCase):
    """Finding 9: the idle timeout fires while Dovecot, stopped, is in the
    middle of a FETCH literal: the client must not get "* BYE" as part of
    the message."""

    def test_idle_timeout_inside_fetch_literal(self):
        body = "x" * 76 + "\r\n"
        msg = make_message(unique("big"), body=body * (8 * 1024 * 1024 // 78))
        uid = DV.append(MAIL_USER, "INBOX", msg)
        master = DV.master_pid()
        stopped = []
        c = Raw(PORTS["imaps"], tls=True, timeout=15)
        try:
            self.assertTrue(c.line().startswith("* OK"))
            c.send(f"a LOGIN {MAIL_USER} {MAIL_PASSWORD}")
            while not (l := c.line()).startswith("a "):
                pass
            self.assertTrue(l.startswith("a OK"), l)
            c.send("b SELECT INBOX")
            while not (l := c.line()).startswith("b "):
                pass
            c.send(f"c UID FETCH {uid} BODY.PEEK[]")
            head = c.line()
            m = re.search(r"\{(\d+)\}$", head)
            self.assertTrue(m, head)
            size = int(m.group(1))
            # Stop the mail process while the literal is on its way.
            pids = [p for p in _session_pids(master) if _comm(p) == "imap"]
            self.assertTrue(pids, "no imap process")
            for p in pids:
                os.kill(p, signal.SIGSTOP)
                stopped.append(p)
            rest = c.rest(IDLE + 15)   # drain all that was in flight, then the close
            self.assertLess(len(rest), size, "the whole literal came: not mid-literal")
            self.assertNotIn(b"* BYE", rest)
            self.assertNotIn(b"Disconnected", rest)
            port = c.port
        finally:
            for p in stopped:
                try:
                    os.kill(p, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            c.close()
        line = log_lines(port)
        self.assertIn("result=timeout", line)
        self.assertIn(f"idle for {IDLE}s", line)


def client_hello(padding):
    """A TLS 1.2 ClientHello (ECDHE, AES-GCM) with a padding extension
    (RFC 7685) of padding bytes, in as many records as it takes."""
    exts = b""

    def ext(t, data):
        return struct.pack("!HH", t, len(data)) + data
    exts += ext(0x000a, struct.pack("!H", 4) + b"\x00\x1d\x00\x17")       # groups
    exts += ext(0x000b, b"\x01\x00")                                      # point formats
    exts += ext(0x000d, struct.pack("!H", 6) + b"\x04\x03\x08\x04\x04\x01")  # sig algs
    exts += ext(0x0017, b"")                                              # EMS
    exts += ext(0xff01, b"\x00")                                          # reneg info
    exts += ext(0x0015, b"\x00" * padding)                                # padding
    suites = b"\xc0\x2b\xc0\x2f\xc0\x2c\xc0\x30"
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" + struct.pack("!H", len(suites)) + suites
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    out = b""
    for i in range(0, len(hs), 16384):
        frag = hs[i:i + 16384]
        out += b"\x16\x03\x01" + struct.pack("!H", len(frag)) + frag
    return out


class BigClientHello(unittest.TestCase):
    """Finding 11: a 24 KiB ClientHello outgrows the 20 KiB input buffer."""

    def handshake(self, padding):
        s = socket.create_connection(("127.0.0.1", PORTS["submissions"]), timeout=10,
                                     source_address=client_source(SOURCE))
        port = s.getsockname()[1]
        s.sendall(client_hello(padding))
        got = b""
        try:
            while len(got) < 5 or len(got) < 5 + struct.unpack("!H", got[3:5])[0]:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        s.close()
        return got, port

    def test_24k_hello_refused(self):
        before = counters().get("hello_too_big", 0)
        got, port = self.handshake(24 * 1024)
        self.assertEqual(got, b"", f"sluice answered a 24 KiB hello: {got[:16]!r}")
        line = log_lines(port)
        self.assertIn("ClientHello larger than", line)
        self.assertIn("result=tls-refused", line)
        self.assertGreater(counters().get("hello_too_big", 0), before)

    def test_16k_hello_answered(self):
        """One that fits is read whole and answered: a ServerHello."""
        got, port = self.handshake(15 * 1024)
        self.assertTrue(got[:1] == b"\x16" and got[5:6] == b"\x02", got[:16])


if __name__ == "__main__":
    unittest.main()


class LocalConnectError(unittest.TestCase):
    """Finding 12: out of descriptors is sluice's trouble, not Postfix's."""

    def test_emfile_does_not_mark_the_backend_down(self):
        pid = SL.proc.pid
        before = counters()
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        c = None
        try:
            c = Smtp(("127.0.0.1", PORTS["smtp"]), source=SOURCE)
            self.assertEqual(c.reply()[0], 220)
            c.expect("EHLO client.test", 250)
            # Room for nothing more than what it holds now (the client
            # among it): the backend's socket() gets EMFILE.
            held = len(os.listdir(f"/proc/{pid}/fd"))
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (held, hard))
            code, lines = c.cmd(f"MAIL FROM:<{SENDER}>")
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            self.assertEqual(code, 421, lines)
            c.closed_by_peer(5)
            port = c.local[1]
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
            if c:
                c.close()
        line = log_lines(port)
        self.assertIn("result=backend-failed", line)
        self.assertIn("Too many open files (local error: server not marked down)", line)
        after = counters()
        self.assertEqual(after.get("backend_connect_local", 0),
                         before.get("backend_connect_local", 0) + 1)
        self.assertEqual(after["backend_connect_fail"], before["backend_connect_fail"])
        self.assertNotRegex(SL.log_text(), r"backend \S+: connect: Too many open files")


class StrictTracker(unittest.TestCase):
    """Finding 10 against the real Postfix: "BDAT 10x" is no chunk, so the
    tracker must not skip the ten bytes after it ("STARTTLS\\r\\n"): it
    stops trusting the stream, and the STARTTLS is refused and the session
    closed instead of reaching Postfix in plaintext."""

    def test_bdat_10x_then_starttls(self):
        before = counters()
        with Smtp(("127.0.0.1", PORTS["smtp"]), source=SOURCE) as c:
            self.assertEqual(c.reply()[0], 220)
            c.expect("EHLO client.test", 250)
            c.expect(f"MAIL FROM:<{SENDER}>", 250)     # the backend is open
            c.send(b"BDAT 10x\r\nSTARTTLS\r\n")
            code, lines = c.reply()                      # Postfix's, to BDAT
            self.assertGreaterEqual(code, 500, lines)
            code, lines = c.reply()                      # sluice's, to STARTTLS
            self.assertEqual(code, 421, lines)
            self.assertIn("could not be followed", lines[0])
            c.closed_by_peer(5)
        after = counters()
        self.assertEqual(after.get("relay_untracked", 0), before.get("relay_untracked", 0) + 1)
        self.assertEqual(after.get("starttls_untracked", 0),
                         before.get("starttls_untracked", 0) + 1)
