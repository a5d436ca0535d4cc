"""SMTP through sluice: real clients in front, a real Postfix behind.

One Postfix (127.0.0.1:10025 plain, 10026 PROXY) and one sluice on
firmware-config/examples/mail-front.yaml serve the whole module:
    smtp        127.0.0.1:2525  tls: starttls  (plaintext mail allowed)
    submission  127.0.0.1:2587  tls: required  (530 before STARTTLS)
    submissions 127.0.0.1:2465  tls: implicit
Tests that need other timeouts or another backend start their own sluice on
other ports. Each client binds its own loopback address (127.0.0.2...) where
it can: sluice reaches Postfix from 127.0.0.1, so when Postfix logs the
client's address and port, the PROXY v2 header did its job.
"""

import os
import random
import smtplib
import time
import unittest

from harness import (client_source, EXAMPLES, SENDER, Closed, Interactive, Postfix, Sluice,
                     Smtp, backend_capabilities, client_hello, compare_message,
                     dot_stuff, ehlo_keywords, listening, load_example, make_message,
                     message_id, no_verify_context, posttls_finger_env, received_ip,
                     recipient, run, scratch, sluice_bin, unique, wait_until, stop_all, shifted,
                     assert_conn_log)

FRONT = load_example("mail-front.yaml")
HOSTNAME = FRONT["hostname"]                    # mail-front.test
SMTP, SUBMISSION, SUBMISSIONS = "smtp", "submission", "submissions"

# One loopback source address per kind of client.
SWAKS, OPENSSL, SMTPLIB, CURL, MSMTP, RAW, PLAIN, BAD = (
    f"127.0.0.{i}" for i in range(2, 10))

PF = None       # the Postfix backend
SL = None       # sluice on mail-front.yaml


def setUpModule():
    global PF, SL
    PF = Postfix().start()
    SL = Sluice(FRONT, "front").start()


def tearDownModule():
    stop_all(SL, PF)


def variant(port_offset, **changes):
    """mail-front.yaml on ports shifted by port_offset (2525 -> 2525+offset
    ...; below the ephemeral range), with top-level keys replaced."""
    cfg = shifted(FRONT, port_offset)
    cfg.update(changes)
    return cfg


def mail_transaction(c, tag, msg):
    """MAIL, RCPT, DATA and the message on an open session; returns the
    reply to the final dot."""
    c.expect(f"MAIL FROM:<{SENDER}>", 250)
    c.expect(f"RCPT TO:<{recipient(tag)}>", 250)
    c.expect("DATA", 354)
    c.send(dot_stuff(msg))
    return c.reply()


def scratch_file(name, data):
    path = scratch() / name
    path.write_bytes(data)
    return path


class SluiceCase(unittest.TestCase):
    maxDiff = None

    def tearDown(self):
        # A test that crashed sluice fails itself; the next ones get a new one.
        SL.replace_if_dead()

    def assert_delivered(self, tag, sent, ip, port=None, listener=SMTP, tls=True,
                         sluice=None):
        """Exactly one copy of the message landed, byte for byte; Postfix
        logged ip (and port) as the client; sluice's connection line names
        the same client, the listener and the TLS version."""
        mid = message_id(tag)
        PF.maildir_messages(mid.encode(), count=1, timeout=15)
        wait_until(PF.queue_empty, 15, "the Postfix queue to drain")
        copies = PF.maildir_messages(mid.encode(), count=0)
        self.assertEqual(len(copies), 1, f"copies of {mid} in the Maildir")
        delivered = copies[0][1]
        self.assertIsNone(compare_message(sent, delivered))
        got_ip, got_port = PF.client_of(mid)
        self.assertEqual(got_ip, ip, "client address in Postfix's log (PROXY v2)")
        if port is not None:
            self.assertEqual(got_port, port, "client port in Postfix's log (PROXY v2)")
        self.assertEqual(received_ip(delivered), ip, "address in Postfix's Received:")
        self.assert_conn_log(ip, got_port, listener, tls, result="ok", sluice=sluice)

    def assert_conn_log(self, ip, port, listener, tls, result=None, sluice=None):
        """harness.assert_conn_log, on this module's sluice by default."""
        return assert_conn_log(self, sluice or SL, ip, port, listener, tls, result)

    def assert_error(self, reply, code, enhanced):
        got, lines = reply
        self.assertEqual(got, code, lines)
        self.assertRegex(lines[-1], rf"^{code} {enhanced}\b", lines)

    def continues_or_closed(self, c):
        """After an error reply the session goes on (NOOP -> 250) or ends."""
        try:
            code, lines = c.cmd("NOOP")
        except Closed:
            return
        self.assertEqual(code, 250, lines)

    def assert_backend_saw(self, ip, port):
        """Postfix logged a session of client ip:port (it came through PROXY)."""
        PF.wait_log(rf"connect from \S+\[{ip}\]:{port}\b")

    def assert_still_serves(self, sluice=None):
        """After whatever a test did, a normal STARTTLS session delivers."""
        tag = unique("after")
        msg = make_message(tag)
        with smtplib.SMTP(*(sluice or SL).addr(SMTP), local_hostname="client.test",
                          source_address=client_source(BAD), timeout=15) as s:
            port = s.sock.getsockname()[1]
            s.starttls(context=no_verify_context())
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        self.assert_delivered(tag, msg, BAD, port, SMTP, sluice=sluice)


# ----------------------------------------------------------------- clients ---

class Clients(SluiceCase):
    """Each real client delivers a unique message through sluice."""

    def swaks(self, listener, tls_flag):
        tag = unique("swaks")
        msg = make_message(tag)
        # swaks strips a final "\r\n.\r\n" and adds "\r\n." itself.
        data = scratch_file(f"{tag}.eml", msg + b".\r\n")
        host, port = SL.addr(listener)
        rc, out = run(["swaks", "--server", f"{host}:{port}", tls_flag,
                       "--local-interface", SWAKS, "--ehlo", "client.test",
                       "--from", SENDER, "--to", recipient(tag), "--data", f"@{data}"])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^<~  250 .*queued", out)   # 250 inside TLS
        self.assert_delivered(tag, msg, SWAKS, listener=listener)

    def test_swaks_starttls_on_smtp(self):
        self.swaks(SMTP, "--tls")

    def test_swaks_starttls_on_submission(self):
        self.swaks(SUBMISSION, "--tls")

    def test_swaks_implicit_tls(self):
        self.swaks(SUBMISSIONS, "--tlsc")

    def openssl(self, listener, starttls):
        """openssl s_client carries a scripted SMTP dialogue."""
        tag = unique("openssl")
        msg = make_message(tag)
        host, port = SL.addr(listener)
        cmd = ["openssl", "s_client", "-connect", f"{host}:{port}",
               "-bind", f"{OPENSSL}:0", "-quiet"]
        if starttls:
            cmd += ["-starttls", "smtp", "-name", "client.test"]
        with Interactive(cmd) as c:
            if not starttls:
                code, banner = c.reply()
                self.assertEqual(code, 220, banner)
            caps = ehlo_keywords(c.expect("EHLO client.test", 250))
            self.assertNotIn("STARTTLS", caps)
            code, lines = mail_transaction(c, tag, msg)
            self.assertEqual(code, 250, lines)
            c.expect("QUIT", 221)
            self.assertEqual(c.wait(), 0, c.stderr())
        self.assert_delivered(tag, msg, OPENSSL, listener=listener)

    def test_openssl_starttls_on_smtp(self):
        self.openssl(SMTP, starttls=True)

    def test_openssl_starttls_on_submission(self):
        self.openssl(SUBMISSION, starttls=True)

    def test_openssl_implicit_tls(self):
        self.openssl(SUBMISSIONS, starttls=False)

    def test_smtplib_starttls(self):
        for listener in (SMTP, SUBMISSION):
            with self.subTest(listener=listener):
                tag = unique("smtplib")
                msg = make_message(tag)
                with smtplib.SMTP(*SL.addr(listener), local_hostname="client.test",
                                  source_address=client_source(SMTPLIB), timeout=15) as s:
                    port = s.sock.getsockname()[1]
                    s.ehlo()
                    self.assertTrue(s.has_extn("starttls"), s.esmtp_features)
                    self.assertFalse(s.has_extn("auth"), s.esmtp_features)
                    s.starttls(context=no_verify_context())
                    s.ehlo()
                    self.assertFalse(s.has_extn("starttls"), s.esmtp_features)
                    self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
                self.assert_delivered(tag, msg, SMTPLIB, port, listener)

    def test_smtplib_implicit_tls(self):
        tag = unique("smtplib-ssl")
        msg = make_message(tag)
        with smtplib.SMTP_SSL(*SL.addr(SUBMISSIONS), local_hostname="client.test",
                              source_address=client_source(SMTPLIB), timeout=15,
                              context=no_verify_context()) as s:
            port = s.sock.getsockname()[1]
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        self.assert_delivered(tag, msg, SMTPLIB, port, SUBMISSIONS)

    def curl(self, listener, scheme, *flags):
        tag = unique("curl")
        msg = make_message(tag)
        data = scratch_file(f"{tag}.eml", msg)
        host, port = SL.addr(listener)
        rc, out = run(["curl", "-sS", "-k", *flags, f"{scheme}://{host}:{port}/client.test",
                       "--interface", CURL, "--mail-from", SENDER,
                       "--mail-rcpt", recipient(tag), "--upload-file", data,
                       "-w", "\nlocal %{local_ip} %{local_port}\n"])
        self.assertEqual(rc, 0, out)
        local_ip, local_port = out.rsplit("local ", 1)[1].split()
        self.assertEqual(local_ip, CURL)
        self.assert_delivered(tag, msg, CURL, int(local_port), listener)

    def test_curl_starttls_on_smtp(self):
        self.curl(SMTP, "smtp", "--ssl-reqd")

    def test_curl_starttls_on_submission(self):
        self.curl(SUBMISSION, "smtp", "--ssl-reqd")

    def test_curl_implicit_tls(self):
        self.curl(SUBMISSIONS, "smtps")

    def posttls_finger(self, listener, *flags):
        """posttls-finger only says hello over TLS (it sends no mail, and it
        cannot bind a source address): the port Postfix logs must be the one
        sluice logged for the client."""
        before = len(SL.conn_logs())
        host, port = SL.addr(listener)
        rc, out = run(["posttls-finger", "-c", *flags, f"[{host}]:{port}"],
                      env=posttls_finger_env())
        self.assertRegex(out, r"TLS connection established to .*TLSv1", out)
        line = wait_until(lambda: [l for l in SL.conn_logs()[before:]
                                   if l["listener"] == listener
                                   and l["client"].startswith("127.0.0.1:")], 10,
                          "sluice's line for the posttls-finger session")[0]
        ip, cport = line["client"].rsplit(":", 1)
        self.assert_conn_log(ip, int(cport), listener, tls=True, result="ok")
        self.assert_backend_saw(ip, int(cport))

    def test_posttls_finger_starttls_on_smtp(self):
        self.posttls_finger(SMTP, "-l", "may")

    def test_posttls_finger_starttls_on_submission(self):
        self.posttls_finger(SUBMISSION, "-l", "may")

    def test_posttls_finger_implicit_tls(self):
        self.posttls_finger(SUBMISSIONS, "-l", "encrypt", "-w")

    def msmtp(self, listener, starttls):
        tag = unique("msmtp")
        msg = make_message(tag)
        host, port = SL.addr(listener)
        rcfile = scratch_file("msmtprc", b"")       # ignore any system msmtprc
        rcfile.chmod(0o600)
        rc, out = run(["msmtp", "-C", rcfile, f"--host={host}", f"--port={port}",
                       "--tls=on", f"--tls-starttls={'on' if starttls else 'off'}",
                       "--tls-certcheck=off", f"--source-ip={MSMTP}",
                       "--domain=client.test", "--auth=off", f"--from={SENDER}",
                       recipient(tag)], input=msg)
        self.assertEqual(rc, 0, out)
        self.assert_delivered(tag, msg, MSMTP, listener=listener)

    def test_msmtp_starttls(self):
        self.msmtp(SUBMISSION, starttls=True)

    def test_msmtp_implicit_tls(self):
        self.msmtp(SUBMISSIONS, starttls=False)


# ---------------------------------------------------------------- protocol ---

class Protocol(SluiceCase):
    """Transcripts: what the client sends, what it must get back."""

    def connect(self, listener=SMTP, source=RAW):
        c = Smtp(SL.addr(listener), source=source)
        self.addCleanup(c.close)
        return c

    def test_banner_and_ehlo_before_and_after_tls(self):
        backend = backend_capabilities()
        self.assertIn("STARTTLS", backend)          # Postfix offers it too
        c = self.connect(SMTP)
        code, banner = c.reply()
        self.assertEqual(code, 220)
        self.assertRegex(banner[0], rf"^220 {HOSTNAME} ESMTP( |$)")
        lines = c.expect("EHLO client.test", 250)
        self.assertRegex(lines[0], rf"^250[- ]{HOSTNAME}\b")
        before = ehlo_keywords(lines)
        # The backend's capabilities plus STARTTLS; never AUTH before TLS.
        self.assertEqual(before, backend | {"STARTTLS"})
        self.assertFalse([k for k in before if k.startswith("AUTH")])
        c.starttls()
        after = ehlo_keywords(c.expect("EHLO client.test", 250))
        # From Postfix, minus STARTTLS (Postfix does offer it).
        self.assertEqual(after, backend - {"STARTTLS"})
        c.expect("QUIT", 221)

    def test_implicit_tls_banner_and_ehlo(self):
        backend = backend_capabilities()
        c = Smtp(SL.addr(SUBMISSIONS), source=RAW, tls=True)
        self.addCleanup(c.close)
        code, banner = c.reply()
        self.assertEqual(code, 220, banner)
        self.assertRegex(banner[0], rf"^220 {HOSTNAME} ESMTP( |$)")
        self.assertEqual(ehlo_keywords(c.expect("EHLO client.test", 250)),
                         backend - {"STARTTLS"})
        code, lines = c.cmd("STARTTLS")
        self.assertTrue(500 <= code < 600, lines)
        c.expect("NOOP", 250)
        c.expect("QUIT", 221)

    def test_simple_commands_before_tls(self):
        c = self.connect(SMTP)
        c.reply()
        c.expect("EHLO client.test", 250)
        for command, code in (("NOOP", 250), ("RSET", 250), ("HELP", 214),
                              ("NOOP", 250)):
            with self.subTest(command=command):
                c.expect(command, code)
        c.expect("QUIT", 221)
        self.assertEqual(c.closed_by_peer(), b"")

    def test_unknown_verb(self):
        c = self.connect(SMTP)
        c.reply()
        self.assert_error(c.cmd("FROBNICATE now"), 502, r"5\.5\.2")
        c.expect("NOOP", 250)

    def test_line_longer_than_512_bytes(self):
        c = self.connect(SMTP)
        c.reply()
        self.assert_error(c.cmd("NOOP " + "x" * 600), 500, r"5\.5\.2")
        self.continues_or_closed(c)

    def test_nul_in_a_line(self):
        c = self.connect(SMTP)
        c.reply()
        self.assert_error(c.cmd(b"NO\x00OP\r\n"), 500, r"5\.5\.2")
        self.continues_or_closed(c)

    def test_starttls_inside_tls_is_refused(self):
        c = self.connect(SMTP)
        c.reply()
        c.expect("EHLO client.test", 250)
        c.starttls()
        c.expect("EHLO client.test", 250)
        code, lines = c.cmd("STARTTLS")
        self.assertTrue(500 <= code < 600, lines)
        # Still the same TLS session, speaking SMTP: no second handshake began.
        c.expect("NOOP", 250)
        c.expect("QUIT", 221)

    def test_bytes_pipelined_after_starttls_are_discarded(self):
        """CVE-2011-0411: a command sent with STARTTLS, before the handshake,
        is never executed inside TLS."""
        c = self.connect(SMTP)
        c.reply()
        c.expect("EHLO client.test", 250)
        # The injection of the "NO STARTTLS" research: STARTTLS and a
        # command in one segment, then the handshake.
        c.send(f"STARTTLS\r\nMAIL FROM:<injected@{SENDER.split('@')[1]}>\r\n".encode())
        code, lines = c.reply()
        self.assertEqual(code, 220, lines)
        c.starttls_handshake()
        lines = c.expect("EHLO client.test", 250)
        self.assertGreater(len(lines), 1, f"a reply to the injected MAIL? {lines}")
        c.expect("NOOP", 250)       # and nothing else queued before it
        # Postfix never saw the injected MAIL: a RCPT now has no transaction.
        self.assert_error(c.cmd(f"RCPT TO:<{recipient('inject')}>"), 503, r"5\.5\.1")
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("QUIT", 221)

    def test_submission_refuses_mail_before_tls(self):
        c = self.connect(SUBMISSION)
        c.reply()
        self.assertIn("STARTTLS", ehlo_keywords(c.expect("EHLO client.test", 250)))
        for command in (f"MAIL FROM:<{SENDER}>", f"RCPT TO:<{recipient('x')}>", "DATA",
                        "AUTH PLAIN AHVzZXIAcGFzcw==", "BDAT 0 LAST"):
            with self.subTest(command=command):
                self.assert_error(c.cmd(command), 530, r"5\.7\.0")
        c.expect("NOOP", 250)
        c.expect("QUIT", 221)
        c.closed_by_peer()
        self.assert_conn_log(RAW, c.local[1], SUBMISSION, tls=False)
        self.assertEqual(PF.sessions(RAW, c.local[1]), [],
                         "Postfix was contacted before TLS")

    def test_plaintext_delivery_on_smtp(self):
        tag = unique("plain")
        msg = make_message(tag)
        with smtplib.SMTP(*SL.addr(SMTP), local_hostname="client.test",
                          source_address=client_source(PLAIN), timeout=15) as s:
            port = s.sock.getsockname()[1]
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        self.assert_delivered(tag, msg, PLAIN, port, SMTP, tls=False)


# --------------------------------------------------------------- bad input ---

class BadInput(SluiceCase):
    """Hostile or broken clients; after each, sluice still serves."""

    def connect(self, listener=SMTP, banner=True):
        c = Smtp(SL.addr(listener), source=BAD)
        self.addCleanup(c.close)
        if banner:
            self.assertEqual(c.reply()[0], 220)
        return c

    def test_overlong_line(self):
        c = self.connect()
        c.send(b"EHLO " + b"A" * 100_000 + b"\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 500, lines)
        self.assertRegex(lines[-1], r"^500 5\.5\.2")
        self.assert_still_serves()

    def test_binary_garbage(self):
        garbage = bytearray(random.Random(0x5100CE).randbytes(16384))
        garbage[0] = ord("X")               # not a TLS record (0x16)
        c = self.connect()
        c.send(bytes(garbage) + b"\r\nQUIT\r\n")
        codes = []
        try:
            while True:
                codes.append(c.reply()[0])
        except (Closed, AssertionError):
            pass                            # closed, or not worth parsing
        self.assertFalse([x for x in codes if x < 400 and x != 221],
                         f"garbage got success replies: {codes}")
        c.closed_by_peer(15)
        self.assert_still_serves()

    def test_nul_bytes(self):
        c = self.connect()
        self.assert_error(c.cmd(b"\x00\x00\x00\x00\r\n"), 500, r"5\.5\.2")
        self.continues_or_closed(c)
        c = self.connect()
        self.assert_error(c.cmd(b"EHLO client\x00.test\r\n"), 500, r"5\.5\.2")
        self.assert_still_serves()

    def test_client_vanishes_mid_handshake(self):
        hello = client_hello()
        for listener in (SMTP, SUBMISSIONS):
            with self.subTest(listener=listener):
                c = self.connect(listener, banner=listener != SUBMISSIONS)
                if listener != SUBMISSIONS:
                    c.expect("STARTTLS", 220)
                c.send(hello[:len(hello) // 2])
                c.close(reset=True)
                self.assert_conn_log(BAD, c.local[1], listener, tls=None, result="error")
        self.assert_still_serves()

    def test_garbage_instead_of_client_hello(self):
        c = self.connect()
        c.expect("STARTTLS", 220)
        c.send(b"this is not a TLS ClientHello\r\n" * 8)
        rest = c.closed_by_peer()
        # A clean close: nothing, or a TLS alert record; no SMTP text.
        self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
        # Closed for good, not only shut for writing: the connection's log
        # line (written at close) comes while the client still holds its end.
        self.assert_conn_log(BAD, c.local[1], SMTP, tls=None, result="error")
        self.assert_still_serves()

    def test_client_vanishes_mid_data(self):
        tag = unique("vanish")
        msg = make_message(tag)
        c = self.connect(SUBMISSION)
        c.expect("EHLO client.test", 250)
        c.starttls()
        c.expect("EHLO client.test", 250)
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect(f"RCPT TO:<{recipient(tag)}>", 250)
        c.expect("DATA", 354)
        c.send(msg[:len(msg) // 2])
        PF.wait_log(rf"\w+: client=\S+\[{BAD}\]:{c.local[1]}\b")
        c.close(reset=True)
        PF.wait_session_end(BAD, c.local[1])
        self.assertEqual(PF.maildir_messages(message_id(tag).encode(), count=0), [])
        SL.conn_log(BAD, c.local[1])
        self.assert_still_serves()


# ---------------------------------------------------------------- timeouts ---

class Timeouts(SluiceCase):
    """Short timeouts, set globally (2 s of plaintext silence, 2 s for the
    whole handshake), except on listener submission, whose own setting
    allows 30 s of plaintext silence."""

    @classmethod
    def setUpClass(cls):
        cfg = variant(20000, timeouts={"plaintext": 2, "handshake": 2, "idle": 600})
        cfg["listeners"][1]["timeouts"] = {"plaintext": 30}
        cls.sl = Sluice(cfg, "timeouts").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def connect(self, listener):
        c = Smtp(self.sl.addr(listener), source=BAD, timeout=15)
        self.addCleanup(c.close)
        return c

    def test_silent_client_gets_421(self):
        c = self.connect(SMTP)
        self.assertEqual(c.reply()[0], 220)
        start = time.monotonic()
        code, lines = c.reply()                 # sent nothing at all
        waited = time.monotonic() - start
        self.assertEqual(code, 421, lines)
        self.assertRegex(lines[-1], r"^421 4\.4\.2")
        self.assertGreater(waited, 1.5)
        self.assertLess(waited, 10)
        c.closed_by_peer()
        line = self.sl.conn_log(BAD, c.local[1])
        self.assertNotEqual(line.get("result"), "ok", line)
        self.assert_still_serves(self.sl)

    def test_stalled_handshake_is_closed(self):
        c = self.connect(SUBMISSION)
        self.assertEqual(c.reply()[0], 220)
        c.expect("STARTTLS", 220)
        hello = client_hello()
        c.send(hello[:len(hello) // 2])         # and then nothing
        start = time.monotonic()
        rest = c.closed_by_peer(15)
        self.assertLess(time.monotonic() - start, 10)
        self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
        line = self.sl.conn_log(BAD, c.local[1])
        self.assertNotEqual(line.get("result"), "ok", line)
        self.assert_still_serves(self.sl)

    def test_silent_client_on_implicit_tls_is_closed(self):
        c = self.connect(SUBMISSIONS)
        start = time.monotonic()
        rest = c.closed_by_peer(15)
        self.assertLess(time.monotonic() - start, 10)
        self.assertEqual(rest, b"")             # no plaintext banner on 465
        self.assert_still_serves(self.sl)

    def test_listener_timeout_overrides_the_global_one(self):
        c = self.connect(SUBMISSION)
        self.assertEqual(c.reply()[0], 220)
        deadline = time.monotonic() + 4         # twice the global 2 s
        c.sock.settimeout(4)
        with self.assertRaises(AssertionError, msg="no reply within"):
            c.reply()
        self.assertGreaterEqual(time.monotonic(), deadline - 0.1)
        c.sock.settimeout(10)
        c.expect("NOOP", 250)


# -------------------------------------------------------- backend failures ---

class BackendFailure(SluiceCase):
    """The client gets 421 4.4.2 or a close, never a 250 for its message;
    when the backend is back, a retry lands exactly one copy."""

    def tls_session(self, addr):
        c = Smtp(addr, source=BAD, timeout=15)
        self.addCleanup(c.close)
        self.assertEqual(c.reply()[0], 220)
        c.expect("EHLO client.test", 250)
        c.starttls()
        return c

    def assert_421_or_closed(self, c, command):
        try:
            code, lines = c.cmd(command)
        except Closed:
            return
        self.assertEqual(code, 421, f"{command!r} -> {lines}")
        self.assertRegex(lines[-1], r"^421 4\.4\.2")

    def test_backend_port_closed(self):
        self.assertFalse(listening("127.0.0.1", 10099))
        cfg = variant(21000)
        cfg["backends"][0]["servers"] = ["127.0.0.1:10099"]
        sl = Sluice(cfg, "nobackend").start()
        self.addCleanup(sl.stop)
        clients = []
        with self.subTest("STARTTLS, then EHLO"):
            c = self.tls_session(sl.addr(SUBMISSION))
            self.assert_421_or_closed(c, "EHLO client.test")
            clients.append((c, SUBMISSION))
        with self.subTest("plaintext MAIL on smtp"):
            c = Smtp(sl.addr(SMTP), source=BAD)
            self.addCleanup(c.close)
            c.reply()
            c.expect("EHLO client.test", 250)
            self.assert_421_or_closed(c, f"MAIL FROM:<{SENDER}>")
            clients.append((c, SMTP))
        with self.subTest("implicit TLS"):
            c = Smtp(sl.addr(SUBMISSIONS), source=BAD, tls=True)
            self.addCleanup(c.close)
            try:
                code, lines = c.reply()
            except Closed:
                code, lines = None, []
            if code == 220:
                self.assert_421_or_closed(c, "EHLO client.test")
            else:
                self.assertIn(code, (421, None), lines)
            clients.append((c, SUBMISSIONS))
        for c, listener in clients:
            c.close()
            line = self.assert_conn_log(BAD, c.local[1], listener, tls=None,
                                        result="error", sluice=sl)
            self.assertTrue(line["reason"], line)

    def attempt(self, tag, msg):
        """One delivery over STARTTLS on submission: the client port if the
        message was taken (250), else None. A refusal must be a 421 or a
        close: nothing else is acceptable while the backend is away."""
        try:
            with smtplib.SMTP(*SL.addr(SUBMISSION), local_hostname="client.test",
                              source_address=client_source(BAD), timeout=15) as s:
                port = s.sock.getsockname()[1]
                self.assertEqual(s.starttls(context=no_verify_context())[0], 220)
                self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
                return port
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            return None
        except smtplib.SMTPRecipientsRefused as e:
            self.assertEqual({c for c, _ in e.recipients.values()}, {421}, e)
        except smtplib.SMTPResponseException as e:
            self.assertEqual(e.smtp_code, 421, e)
        return None

    def deliver_with_retries(self, tag, msg, deadline=40):
        """Like an MTA: try again until the backend takes the message."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            port = self.attempt(tag, msg)
            if port:
                return port
            time.sleep(0.5)
        self.fail(f"no delivery within {deadline} s after the backend came back")

    def test_postfix_stopped_then_back(self):
        tag = unique("down")
        msg = make_message(tag)
        PF.stop()
        self.addCleanup(lambda: PF.master_pid() or PF.start())
        c = self.tls_session(SL.addr(SUBMISSION))
        self.assert_421_or_closed(c, "EHLO client.test")
        self.assertIsNone(self.attempt(tag, msg), "a 250 while Postfix is down")
        PF.start()
        port = self.deliver_with_retries(tag, msg)
        self.assert_delivered(tag, msg, BAD, port, SUBMISSION)

    def test_postfix_dies_mid_data(self):
        tag = unique("killed")
        msg = make_message(tag)
        c = self.tls_session(SL.addr(SUBMISSION))
        c.expect("EHLO client.test", 250)
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect(f"RCPT TO:<{recipient(tag)}>", 250)
        c.expect("DATA", 354)
        body = dot_stuff(msg)
        c.send(body[:len(body) // 2])
        PF.wait_log(rf"\w+: client=\S+\[{BAD}\]:{c.local[1]}\b")
        PF.kill_smtpd()
        try:
            c.send(body[len(body) // 2:])
            code, lines = c.reply()
        except Closed:
            code, lines = None, []
        self.assertIn(code, (421, None), f"after the backend died: {lines}")
        wait_until(PF.queue_empty, 15, "the Postfix queue to drain")
        self.assertEqual(PF.maildir_messages(message_id(tag).encode(), count=0), [])
        port = self.deliver_with_retries(tag, msg)
        self.assert_delivered(tag, msg, BAD, port, SUBMISSION)


# ------------------------------------------------------------------ config ---

class Config(unittest.TestCase):
    """A bad file names itself, the line and the key; nothing starts."""

    EXAMPLE = EXAMPLES / "mail-front.yaml"

    def sluice(self, *args, timeout=15):
        binary = sluice_bin()
        self.assertTrue(os.access(binary, os.X_OK), f"{binary} is not built")
        return run([binary, *args], timeout=timeout)

    def test_check_accepts_the_example(self):
        rc, out = self.sluice("--check", "-c", self.EXAMPLE)
        self.assertEqual(rc, 0, out)

    def bad_files(self):
        """(name, text, line, key): one wrong value in mail-front.yaml."""
        lines = self.EXAMPLE.read_text().splitlines(keepends=True)
        for name, old, new, key in (
                ("bad tls mode", "tls: required", "tls: sometimes", "listeners[1].tls"),
                ("unknown backend", "backend: postfix", "backend: nosuch",
                 "listeners[0].backend"),
                ("bad timeout", "plaintext:", "plaintext: soon", "timeouts.plaintext")):
            i = next(i for i, l in enumerate(lines) if l.strip().startswith(old))
            indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
            changed = lines[:i] + [f"{indent}{new}\n"] + lines[i + 1:]
            yield name, "".join(changed), i + 1, key

    def test_bad_config_is_rejected_with_file_line_and_key(self):
        for name, text, line, key in self.bad_files():
            with self.subTest(name):
                path = scratch() / f"bad-{unique('cfg')}.yaml"
                path.write_text(text)
                where = f"{path}:{line}: {key}:"
                rc, out = self.sluice("--check", "-c", path)
                self.assertNotEqual(rc, 0, out)
                self.assertIn(where, out)
                rc, out = self.sluice("-c", path)
                self.assertNotEqual(rc, 0, out)
                self.assertIn(where, out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
