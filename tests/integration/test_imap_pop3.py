"""IMAP and POP3 through sluice: real clients in front, a real Dovecot behind.

One Dovecot (tests/integration/backends/dovecot.conf.in: 10143/10110 plain,
10144/10111 PROXY; disable_plaintext_auth = yes except for 127.0.0.99) and
one sluice on firmware-config/examples/mail-front.yaml serve the module:
    imap   127.0.0.1:2143  tls: starttls  (LOGIN before TLS goes to Dovecot)
    imaps  127.0.0.1:2993  tls: implicit
    pop3   127.0.0.1:2110  tls: starttls  (USER/PASS before TLS go to Dovecot)
    pop3s  127.0.0.1:2995  tls: implicit
Tests that need `tls: required` or short timeouts start their own sluice on
ports shifted by 41000 and up (only the IMAP/POP3 listeners).

Before the first test, one 10 MiB message (random bytes, base64 in a MIME
body) is stored in bob's INBOX; every real client logs in as bob through
sluice and reads it, and the test compares the sha256 of what the client got
with what was stored. Each client binds its own loopback address
(127.0.0.21...) where it can; Dovecot must log the login with the address
and port that sluice logged for the client (PROXY v2), as secured (the SSL
TLV) exactly when the client used TLS.
"""

import glob
import imaplib
import poplib
import random
import re
import time
import unittest
from pathlib import Path

from harness import (MAIL_PASSWORD, MAIL_USER, PLAINTEXT_ALLOWED,
                     Closed, Dovecot, IMAP4, IMAP4_SSL, Imap, ImapInteractive, POP3,
                     POP3_SSL, Pop3, Pop3Interactive, Sluice, big_message,
                     client_hello, compare_message, dovecot_imap_capabilities,
                     dovecot_pop3_capabilities, imap_capabilities, load_example,
                     make_message, message_id, mime_payload, no_verify_context,
                     pop3_capabilities, run, scratch, sha256, unique, wait_until, stop_all,
                     shifted, assert_conn_log)

FRONT = load_example("mail-front.yaml")
HOSTNAME = FRONT["hostname"]                    # mail-front.test
IMAP, IMAPS, POP3L, POP3S = "imap", "imaps", "pop3", "pop3s"
PROTO = {IMAP: "imap", IMAPS: "imap", POP3L: "pop3", POP3S: "pop3"}

# One loopback source address per kind of client. gnutls-cli and fetchmail
# cannot bind one: they come from 127.0.0.1 and are found in sluice's log.
CURL, IMAPLIB, POPLIB, OPENSSL, RAW, BAD, IDLER, DENIED = (
    f"127.0.0.{i}" for i in range(21, 29))
PLAIN = PLAINTEXT_ALLOWED                       # 127.0.0.99: Dovecot allows it
LOCAL = "127.0.0.1"

DV = None       # the Dovecot backend
SL = None       # sluice on mail-front.yaml
BIG = None      # the 10 MiB message in bob's INBOX (CRLF line ends)
BIG_ID = None   # its Message-ID
BIG_PAYLOAD = None  # sha256 of the random bytes in its body


def setUpModule():
    global DV, SL, BIG, BIG_ID, BIG_PAYLOAD
    DV = Dovecot().start()
    tag = unique("big")
    BIG, payload = big_message(tag)
    BIG_PAYLOAD = sha256(payload)
    BIG_ID = message_id(tag)
    DV.append(MAIL_USER, "INBOX", BIG)
    SL = Sluice(FRONT, "mailbox").start()


def tearDownModule():
    stop_all(SL, DV)


def variant(port_offset, tls=None, **changes):
    """mail-front.yaml with only its IMAP/POP3 listeners, on ports shifted
    by port_offset; tls= replaces `starttls` on them (e.g. "required");
    top-level keys replaced by changes."""
    cfg = shifted(FRONT, port_offset)
    cfg["listeners"] = [l for l in cfg["listeners"] if l["protocol"] in ("imap", "pop3")]
    for listener in cfg["listeners"]:
        if tls and listener["tls"] == "starttls":
            listener["tls"] = tls
    cfg.update(changes)
    return cfg


def big_uid():
    return DV.uid_of(MAIL_USER, "INBOX", BIG_ID)


def big_seq():
    return DV.seq_of(MAIL_USER, "INBOX", BIG_ID)


def backend_imap_base():
    """Dovecot's pre-login capabilities without AUTH=..., STARTTLS and
    LOGINDISABLED: what sluice must advertise before TLS (plus STARTTLS)."""
    return {c for c in dovecot_imap_capabilities()
            if not c.startswith("AUTH=") and c not in ("STARTTLS", "LOGINDISABLED")}


def backend_imap_tls():
    """Dovecot's pre-login capabilities as a secured client sees them (with
    AUTH=PLAIN AUTH=LOGIN), without STARTTLS/LOGINDISABLED: what sluice must
    advertise inside TLS."""
    return dovecot_imap_capabilities() - {"STARTTLS", "LOGINDISABLED"}


def quietly(fn):
    """A cleanup that may find its object already closed."""
    def call():
        try:
            fn()
        except (OSError, EOFError, imaplib.IMAP4.error, poplib.error_proto):
            pass
    return call


def imap_ok_lines(lines):
    """Tagged OK lines among response lines."""
    return [l for l in lines if re.match(r"^[^*+ ]\S* OK\b", l, re.I)]


class MailboxCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        # Ephemeral ports come round again over a run: what Dovecot logged
        # for this test's clients is only what it logs from now on.
        self.dv_since = DV.log_mark()

    def tearDown(self):
        # A test that crashed sluice fails itself; the next ones get a new one.
        SL.replace_if_dead()

    # -- what the backend and sluice logged --

    def assert_conn_log(self, ip, port, listener, tls, result=None, sluice=None):
        """harness.assert_conn_log, on this module's sluice by default."""
        return assert_conn_log(self, sluice or SL, ip, port, listener, tls, result)

    def assert_session(self, ip, port, listener, tls=True, sluice=None):
        """The client ip:port logged in as bob through sluice: sluice's
        line names it with the listener and TLS state, result ok; Dovecot
        logged the login with the same address and port (PROXY v2), with
        sluice as the peer, the listener as the local address, and
        `secured` exactly when the client used TLS (the SSL TLV)."""
        sluice = sluice or SL
        self.assert_conn_log(ip, port, listener, tls, result="ok", sluice=sluice)
        login = DV.login(ip, port)
        self.assertEqual(login["user"], MAIL_USER, login["line"])
        self.assertEqual(login["proto"], PROTO[listener], login["line"])
        self.assertEqual(login["real_rip"], LOCAL, login["line"])
        self.assertEqual((login["lip"], int(login["lport"])), sluice.addr(listener),
                         login["line"])
        self.assertEqual(login["secured"], bool(tls),
                         f"Dovecot's idea of the session's security: {login['line']}")
        return login

    def new_conn(self, listener, before, ip=LOCAL, sluice=None):
        """(ip, port) of the one connection from ip (default 127.0.0.1:
        clients that cannot bind a source address) to listener that sluice
        logged after its first `before` connection lines."""
        sluice = sluice or SL
        found = wait_until(lambda: [l for l in sluice.conn_logs()[before:]
                                    if l["listener"] == listener
                                    and l["client"].startswith(ip + ":")], 15,
                           f"sluice's line for the client {ip} on {listener}")
        self.assertEqual(len(found), 1, found)
        ip, port = found[0]["client"].rsplit(":", 1)
        return ip, int(port)

    def assert_big(self, got, what):
        """What the client got is the stored 10 MiB message, byte for byte."""
        self.assertEqual(len(got), len(BIG), f"{what}: size of the message read")
        self.assertEqual(sha256(got), sha256(BIG), f"{what}: sha256 of the message read")

    # -- after a test: a normal session still works --

    def imaplib_session(self, sluice=None, listener=IMAP, source=BAD):
        """STARTTLS, LOGIN, EXAMINE, a small FETCH, LOGOUT with imaplib;
        returns the client port."""
        host, port = (sluice or SL).addr(listener)
        m = IMAP4(host, port, source=source, timeout=20)
        try:
            cport = m.sock.getsockname()[1]
            m.starttls(ssl_context=no_verify_context())
            m.login(MAIL_USER, MAIL_PASSWORD)
            typ, _ = m.select("INBOX", readonly=True)
            self.assertEqual(typ, "OK")
            typ, data = m.uid("FETCH", str(big_uid()), "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
            self.assertEqual(typ, "OK", data)
            self.assertIn(BIG_ID.encode(), data[0][1])
        finally:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
        return cport

    def poplib_session(self, sluice=None, listener=POP3L, source=BAD):
        host, port = (sluice or SL).addr(listener)
        p = POP3(host, port, source=source, timeout=20)
        try:
            cport = p.sock.getsockname()[1]
            p.stls(context=no_verify_context())
            p.user(MAIL_USER)
            p.pass_(MAIL_PASSWORD)
            resp, lines, _ = p.top(big_seq(), 0)
            self.assertTrue(resp.startswith(b"+OK"), resp)
            self.assertIn(f"Message-ID: {BIG_ID}".encode(), lines)
        finally:
            try:
                p.quit()
            except Exception:
                pass
        return cport

    def assert_still_serves(self, sluice=None, proto="imap"):
        """After whatever a test did, a normal STARTTLS login works and
        Dovecot logs it as secured."""
        if proto == "imap":
            port = self.imaplib_session(sluice)
            self.assert_session(BAD, port, IMAP, sluice=sluice)
        else:
            port = self.poplib_session(sluice)
            self.assert_session(BAD, port, POP3L, sluice=sluice)


# ----------------------------------------------------------------- clients ---

class Clients(MailboxCase):
    """Each real client logs in as bob and reads the 10 MiB message."""

    # -- curl --

    def curl(self, listener, url_path, *flags):
        host, port = SL.addr(listener)
        scheme = {IMAP: "imap", IMAPS: "imaps", POP3L: "pop3", POP3S: "pop3s"}[listener]
        out_file = scratch() / f"{unique('curl')}.eml"
        self.addCleanup(lambda: out_file.unlink(missing_ok=True))
        rc, out = run(["curl", "-sS", "-k", *flags, "--interface", CURL,
                       "-u", f"{MAIL_USER}:{MAIL_PASSWORD}",
                       f"{scheme}://{host}:{port}/{url_path}", "-o", out_file,
                       "-w", "\nlocal %{local_ip} %{local_port}\n"], timeout=60)
        self.assertEqual(rc, 0, out)
        local_ip, local_port = out.rsplit("local ", 1)[1].split()
        self.assertEqual(local_ip, CURL)
        self.assert_big(out_file.read_bytes(), f"curl {scheme}")
        self.assert_session(CURL, int(local_port), listener)

    def test_curl_imap_starttls(self):
        self.curl(IMAP, f"INBOX;UID={big_uid()}", "--ssl-reqd")

    def test_curl_imaps(self):
        self.curl(IMAPS, f"INBOX;UID={big_uid()}")

    def test_curl_pop3_stls(self):
        self.curl(POP3L, str(big_seq()), "--ssl-reqd")

    def test_curl_pop3s(self):
        self.curl(POP3S, str(big_seq()))

    # -- Python's imaplib and poplib --

    def imaplib_fetch(self, m, listener):
        cport = m.sock.getsockname()[1]
        m.login(MAIL_USER, MAIL_PASSWORD)
        typ, data = m.select("INBOX", readonly=True)
        self.assertEqual(typ, "OK", data)
        typ, data = m.uid("FETCH", str(big_uid()), "(BODY.PEEK[])")
        self.assertEqual(typ, "OK", data)
        got = data[0][1]
        self.assertEqual(m.logout()[0], "BYE")
        self.assert_big(got, "imaplib")
        self.assert_session(IMAPLIB, cport, listener)

    def test_imaplib_starttls(self):
        m = IMAP4(*SL.addr(IMAP), source=IMAPLIB)
        self.addCleanup(quietly(m.shutdown))
        self.assertIn("STARTTLS", m.capabilities)
        self.assertNotIn("LOGINDISABLED", m.capabilities)
        m.starttls(ssl_context=no_verify_context())
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.imaplib_fetch(m, IMAP)

    def test_imaplib_implicit_tls(self):
        m = IMAP4_SSL(*SL.addr(IMAPS), source=IMAPLIB, ssl_context=no_verify_context())
        self.addCleanup(quietly(m.shutdown))
        self.assertNotIn("STARTTLS", m.capabilities)
        self.assertIn("AUTH=PLAIN", m.capabilities)
        self.imaplib_fetch(m, IMAPS)

    def poplib_retr(self, p, listener):
        cport = p.sock.getsockname()[1]
        p.user(MAIL_USER)
        p.pass_(MAIL_PASSWORD)
        resp, lines, octets = p.retr(big_seq())
        self.assertTrue(resp.startswith(b"+OK"), resp)
        self.assertTrue(p.quit().startswith(b"+OK"))
        self.assert_big(b"\r\n".join(lines) + b"\r\n", "poplib")
        self.assert_session(POPLIB, cport, listener)

    def test_poplib_stls(self):
        p = POP3(*SL.addr(POP3L), source=POPLIB)
        self.addCleanup(quietly(p.close))
        self.assertRegex(p.getwelcome().decode(), rf"^\+OK {HOSTNAME}( |$)")
        caps = p.capa()
        self.assertIn("STLS", caps)
        p.stls(context=no_verify_context())
        caps = p.capa()
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        self.poplib_retr(p, POP3L)

    def test_poplib_implicit_tls(self):
        p = POP3_SSL(*SL.addr(POP3S), source=POPLIB, context=no_verify_context())
        self.addCleanup(quietly(p.close))
        self.assertRegex(p.getwelcome().decode(), rf"^\+OK {HOSTNAME}( |$)")
        self.assertNotIn("STLS", p.capa())
        self.poplib_retr(p, POP3S)

    # -- openssl s_client and gnutls-cli, driven with a dialogue --

    def imap_dialogue(self, c):
        """Inside TLS: CAPABILITY, LOGIN, EXAMINE, the big FETCH, LOGOUT."""
        caps = imap_capabilities(c.ok("CAPABILITY").untagged[0])
        self.assertNotIn("STARTTLS", caps)
        self.assertNotIn("LOGINDISABLED", caps)
        c.ok(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
        c.ok("EXAMINE INBOX")
        r = c.ok(f"UID FETCH {big_uid()} (BODY.PEEK[])")
        self.assertEqual(len(r.literals), 1, r)
        r2 = c.ok("LOGOUT")
        self.assertTrue(r2.untagged and r2.untagged[0].startswith("* BYE"), r2)
        return r.literals[0]

    def pop3_dialogue(self, c):
        caps = pop3_capabilities(c.capa())
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        c.ok(f"USER {MAIL_USER}")
        c.ok(f"PASS {MAIL_PASSWORD}")
        c.ok(f"RETR {big_seq()}")
        got = b"\r\n".join(c.multi()) + b"\r\n"
        c.ok("QUIT")
        return got

    def openssl(self, listener, starttls):
        host, port = SL.addr(listener)
        proto = PROTO[listener]
        cmd = ["openssl", "s_client", "-connect", f"{host}:{port}",
               "-bind", f"{OPENSSL}:0", "-quiet"]
        if starttls:
            cmd += ["-starttls", proto]
        cls = ImapInteractive if proto == "imap" else Pop3Interactive
        before = len(SL.conn_logs())
        with cls(cmd, timeout=15) as c:
            if not starttls:
                greeting = c.greeting()
                self.assertRegex(greeting, rf"^(\* OK|\+OK)\b.* ?{HOSTNAME}\b")
            got = self.imap_dialogue(c) if proto == "imap" else self.pop3_dialogue(c)
            self.assertEqual(c.wait(), 0, c.stderr())
        self.assert_big(got, f"openssl s_client {proto}")
        self.assert_session(*self.new_conn(listener, before, OPENSSL), listener)

    def test_openssl_starttls_imap(self):
        self.openssl(IMAP, starttls=True)

    def test_openssl_starttls_pop3(self):
        self.openssl(POP3L, starttls=True)

    def test_openssl_implicit_imap(self):
        self.openssl(IMAPS, starttls=False)

    def test_openssl_implicit_pop3(self):
        self.openssl(POP3S, starttls=False)

    def gnutls(self, listener):
        """gnutls-cli does the STARTTLS dialogue itself, then prints
        "- Simple Client Mode:" and relays stdin/stdout."""
        host, port = SL.addr(listener)
        proto = PROTO[listener]
        before = len(SL.conn_logs())
        cls = ImapInteractive if proto == "imap" else Pop3Interactive
        with cls(["gnutls-cli", "--insecure", f"--starttls-proto={proto}",
                  "-p", port, host], timeout=15) as c:
            marker = b"- Simple Client Mode:\n\n"
            while marker not in c.buf:
                chunk = c._recv()
                self.assertTrue(chunk, f"gnutls-cli ended: {c.buf!r} {c.stderr()}")
                c.buf += chunk
            preamble, c.buf = c.buf.split(marker, 1)
            self.assertIn(b"- Handshake was completed", preamble)
            got = self.imap_dialogue(c) if proto == "imap" else self.pop3_dialogue(c)
            c.proc.stdin.close()
            c.wait()
        self.assert_big(got, f"gnutls-cli {proto}")
        self.assert_session(*self.new_conn(listener, before), listener)

    def test_gnutls_cli_starttls_imap(self):
        self.gnutls(IMAP)

    def test_gnutls_cli_starttls_pop3(self):
        self.gnutls(POP3L)

    # -- fetchmail --

    def fetchmail(self, listener, ssl_line):
        """fetchmail (keep, fetchall) delivers every message of the INBOX
        to an MDA that writes one file each; the big one must be among them,
        intact (fetchmail adds a Received: header and stores LF line ends)."""
        host, port = SL.addr(listener)
        proto = PROTO[listener].upper()
        home = scratch() / unique("fetchmail")
        home.mkdir()
        rc_file = home / "fetchmailrc"
        rc_file.write_text(
            "set no syslog\n"
            f"poll {host} service {port} protocol {proto} auth password\n"
            f'  user "{MAIL_USER}" there with password "{MAIL_PASSWORD}" is "root" here\n'
            f"  {ssl_line} no sslcertck keep fetchall\n"
            f'  mda "cat > {home}/msg.$$"\n')
        rc_file.chmod(0o600)
        before = len(SL.conn_logs())
        rc, out = run(["fetchmail", "-f", rc_file, "-N", "--idfile", home / "ids",
                       "--pidfile", home / "pid"], timeout=60, env={"HOME": str(home)})
        self.assertEqual(rc, 0, out)        # 0: messages were retrieved
        copies = [Path(f).read_bytes() for f in glob.glob(f"{home}/msg.*")]
        mine = [d for d in copies if f"Message-ID: {BIG_ID}".encode() in d]
        self.assertEqual(len(mine), 1, f"copies of {BIG_ID} among {len(copies)} delivered")
        got = mine[0]
        self.assertIsNone(compare_message(BIG, got))
        self.assert_big(got[len(got) - len(BIG.replace(b"\r\n", b"\n")):].replace(b"\n", b"\r\n"),
                        f"fetchmail {proto}")
        self.assertEqual(sha256(mime_payload(got)), BIG_PAYLOAD, "the decoded body")
        # TLS or not: sluice's line and Dovecot's "secured" tell.
        self.assert_session(*self.new_conn(listener, before), listener)

    def test_fetchmail_imap_starttls(self):
        # An explicit sslproto without `ssl` makes fetchmail insist on STARTTLS.
        self.fetchmail(IMAP, 'sslproto "TLS1.2+"')

    def test_fetchmail_imaps(self):
        self.fetchmail(IMAPS, "ssl")

    def test_fetchmail_pop3_stls(self):
        self.fetchmail(POP3L, 'sslproto "TLS1.2+"')

    def test_fetchmail_pop3s(self):
        self.fetchmail(POP3S, "ssl")


# ---------------------------------------------------------------- protocol ---

class ImapProtocol(MailboxCase):
    """IMAP transcripts: what the client sends, what it must get back."""

    def connect(self, listener=IMAP, source=RAW, sluice=None, tls=False):
        c = Imap((sluice or SL).addr(listener), source=source, tls=tls, timeout=15)
        self.addCleanup(c.close)
        return c

    def test_greeting_and_capability_before_and_after_tls(self):
        base, tls_caps = backend_imap_base(), backend_imap_tls()
        c = self.connect()
        greeting = c.greeting()
        self.assertRegex(greeting, rf"^\* OK \[CAPABILITY [^\]]*\] {HOSTNAME}( |$)")
        self.assertEqual(imap_capabilities(greeting), base | {"STARTTLS"}, greeting)
        r = c.ok("CAPABILITY", tag="A001")
        self.assertEqual(len(r.untagged), 1, r)
        self.assertEqual(imap_capabilities(r.untagged[0]), base | {"STARTTLS"}, r)
        self.assertTrue(r.tagged.startswith("A001 OK"), r)      # the tag is kept
        r = c.ok("NOOP", tag="x.7")
        self.assertEqual(r.untagged, [], r)
        self.assertTrue(r.tagged.startswith("x.7 OK"), r)
        r = c.ok("ID NIL", tag="id1")
        self.assertEqual(r.untagged, ["* ID NIL"], r)
        c.starttls()
        r = c.ok("CAPABILITY")
        self.assertEqual(imap_capabilities(r.untagged[0]), tls_caps, r)
        r = c.cmd("STARTTLS", tag="again")
        self.assertEqual(r.status, "BAD", r)        # no second handshake
        c.ok("NOOP")                                # still the same TLS session
        r = c.ok(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
        # Dovecot's greeting was swallowed: LOGIN's answer is its OK alone.
        self.assertEqual(r.untagged, [], r)
        self.assertRegex(r.tagged, r"^\S+ OK \[CAPABILITY IMAP4rev1 .*\] Logged in")
        c.ok("SELECT INBOX")
        r = c.ok("LOGOUT", tag="bye")
        self.assertTrue(r.untagged[0].startswith("* BYE"), r)
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_session(RAW, c.local[1], IMAP)

    def test_implicit_tls_greeting(self):
        c = self.connect(IMAPS, tls=True)
        greeting = c.greeting()
        self.assertRegex(greeting, rf"^\* OK \[CAPABILITY [^\]]*\] {HOSTNAME}( |$)")
        self.assertEqual(imap_capabilities(greeting), backend_imap_tls(), greeting)
        self.assertEqual(c.cmd("STARTTLS").status, "BAD")
        c.ok(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
        c.ok("LOGOUT")
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_session(RAW, c.local[1], IMAPS)

    def test_commands_answered_before_tls(self):
        c = self.connect()
        c.greeting()
        r = c.ok("NOOP", tag="n1")
        self.assertEqual((r.untagged, r.tagged[:6]), ([], "n1 OK "), r)
        r = c.ok('ID ("name" "sluice-test" "version" "1")', tag="i1")
        self.assertEqual(r.untagged, ["* ID NIL"], r)
        for command in ("SELECT INBOX", "EXAMINE INBOX", "LIST \"\" *", "FETCH 1 BODY[]",
                        "FROBNICATE", "ENABLE QRESYNC"):
            with self.subTest(command=command):
                r = c.cmd(command, tag="q9")
                self.assertEqual(r.status, "BAD", r)
                self.assertEqual(r.untagged, [], r)
        c.send(b"\r\n")                             # a line without a tag
        text, _ = c.logical()
        self.assertRegex(text, r"^\* BAD\b")
        c.ok("NOOP")
        r = c.ok("LOGOUT", tag="z")
        self.assertEqual(len(r.untagged), 1, r)
        self.assertRegex(r.untagged[0], r"^\* BYE\b")
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_conn_log(RAW, c.local[1], IMAP, tls=False)
        self.assertEqual([l for l in DV.login_lines(RAW, c.local[1], since=self.dv_since)], [],
                         "Dovecot was contacted for commands sluice answers")

    def test_pipelined_commands_are_answered_in_order(self):
        c = self.connect()
        c.greeting()
        c.send(b"a NOOP\r\nb CAPABILITY\r\nc ID NIL\r\nd BOGUS\r\ne NOOP\r\n")
        a, b, cc, d, e = (c.response(t) for t in "abcde")
        self.assertEqual((a.status, a.untagged), ("OK", []))
        self.assertEqual(b.status, "OK")
        self.assertEqual(len(b.untagged), 1)
        self.assertRegex(b.untagged[0], r"^\* CAPABILITY ")
        self.assertEqual((cc.status, cc.untagged), ("OK", ["* ID NIL"]))
        self.assertEqual((d.status, d.untagged), ("BAD", []))
        self.assertEqual((e.status, e.untagged), ("OK", []))
        # Same after TLS, through to Dovecot.
        c.starttls()
        c.send(f"f LOGIN {MAIL_USER} {MAIL_PASSWORD}\r\ng EXAMINE INBOX\r\n"
               f"h UID FETCH {big_uid()} (UID)\r\ni LOGOUT\r\n".encode())
        f, g, h, i = (c.response(t) for t in "fghi")
        self.assertEqual([x.status for x in (f, g, h, i)], ["OK"] * 4, (f, g, h, i))
        self.assertTrue(any(f"UID {big_uid()}" in l for l in h.untagged), h)
        self.assertRegex(i.untagged[0], r"^\* BYE\b")
        self.assert_session(RAW, c.local[1], IMAP)

    def test_bytes_pipelined_after_starttls_are_discarded(self):
        """Rule 2.1: a command sent with STARTTLS, before the handshake,
        is never executed inside TLS."""
        c = self.connect()
        c.greeting()
        c.send(f"a STARTTLS\r\nb LOGIN {MAIL_USER} {MAIL_PASSWORD}\r\n".encode())
        r = c.response("a")
        self.assertEqual(r.status, "OK", r)
        c.starttls_handshake()
        r = c.cmd("NOOP", tag="c")
        self.assertEqual((r.status, r.untagged), ("OK", []),
                         f"an answer to the injected LOGIN? {r}")
        r = c.cmd("SELECT INBOX", tag="d")        # not logged in: refused
        self.assertNotEqual(r.status, "OK", r)
        c.ok("LOGOUT")
        c.closed_by_peer()
        self.assertFalse([l for l in DV.login_lines(RAW, c.local[1], since=self.dv_since) if "Login: " in l],
                         "the injected LOGIN was executed")


class Pop3Protocol(MailboxCase):
    """POP3 transcripts."""

    def connect(self, listener=POP3L, source=RAW, sluice=None, tls=False):
        c = Pop3((sluice or SL).addr(listener), source=source, tls=tls, timeout=15)
        self.addCleanup(c.close)
        return c

    def test_greeting_and_capa_before_and_after_tls(self):
        backend = dovecot_pop3_capabilities()
        self.assertIn("USER", backend)
        c = self.connect()
        self.assertRegex(c.greeting(), rf"^\+OK {HOSTNAME}( |$)")
        before = pop3_capabilities(c.capa())
        # starttls listener: the plaintext path is open, so USER/SASL may stay.
        self.assertEqual(set(before), set(backend) | {"STLS"}, before)
        self.assertTrue(c.cmd("NOOP").startswith("+OK"))
        c.starttls()
        after = pop3_capabilities(c.capa())
        self.assertEqual(after, backend, "CAPA inside TLS: Dovecot's, no STLS")
        self.assertTrue(c.cmd("STLS").startswith("-ERR"))
        # Dovecot's greeting was swallowed: USER gets Dovecot's bare +OK.
        self.assertEqual(c.ok(f"USER {MAIL_USER}"), "+OK")
        self.assertRegex(c.ok(f"PASS {MAIL_PASSWORD}"), r"^\+OK Logged in")
        self.assertRegex(c.ok("STAT"), r"^\+OK \d+ \d+")
        c.ok("QUIT")
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_session(RAW, c.local[1], POP3L)

    def test_implicit_tls_greeting(self):
        backend = dovecot_pop3_capabilities()
        c = self.connect(POP3S, tls=True)
        self.assertRegex(c.greeting(), rf"^\+OK {HOSTNAME}( |$)")
        self.assertEqual(pop3_capabilities(c.capa()), backend)
        self.assertTrue(c.cmd("STLS").startswith("-ERR"))
        c.ok(f"USER {MAIL_USER}")
        c.ok(f"PASS {MAIL_PASSWORD}")
        c.ok("QUIT")
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_session(RAW, c.local[1], POP3S)

    def test_commands_answered_before_tls(self):
        c = self.connect()
        c.greeting()
        self.assertEqual(c.cmd("NOOP")[:3], "+OK")
        for command in ("STAT", "LIST", "RETR 1", "FROBNICATE"):
            with self.subTest(command=command):
                self.assertTrue(c.cmd(command).startswith("-ERR"))
        c.ok("QUIT")
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_conn_log(RAW, c.local[1], POP3L, tls=False)
        self.assertEqual(DV.login_lines(RAW, c.local[1], since=self.dv_since), [])

    def test_pipelined_commands_are_answered_in_order(self):
        c = self.connect()
        c.greeting()
        c.send(b"NOOP\r\nCAPA\r\nFROBNICATE\r\nNOOP\r\n")
        self.assertTrue(c.status().startswith("+OK"))
        self.assertTrue(c.status().startswith("+OK"))
        self.assertIn(b"STLS", c.multi())
        self.assertTrue(c.status().startswith("-ERR"))
        self.assertTrue(c.status().startswith("+OK"))
        c.starttls()
        c.send(f"USER {MAIL_USER}\r\nPASS {MAIL_PASSWORD}\r\nSTAT\r\nQUIT\r\n".encode())
        for what in ("USER", "PASS", "STAT", "QUIT"):
            self.assertTrue(c.status().startswith("+OK"), what)
        self.assert_session(RAW, c.local[1], POP3L)

    def test_bytes_pipelined_after_stls_are_discarded(self):
        c = self.connect()
        c.greeting()
        c.send(f"STLS\r\nUSER {MAIL_USER}\r\n".encode())
        self.assertTrue(c.status().startswith("+OK"))
        c.starttls_handshake()
        # The first answer inside TLS is CAPA's, not the injected USER's.
        c.send(b"CAPA\r\n")
        self.assertTrue(c.status().startswith("+OK"))
        lines = c.multi()
        self.assertFalse([l for l in lines if l.startswith((b"+OK", b"-ERR"))],
                         f"an answer to the injected USER? {lines}")
        self.assertIn(b"USER", lines)
        # USER was never given: PASS alone must fail.
        self.assertTrue(c.cmd(f"PASS {MAIL_PASSWORD}").startswith("-ERR"))
        c.ok("QUIT")
        c.closed_by_peer()
        self.assertFalse([l for l in DV.login_lines(RAW, c.local[1], since=self.dv_since) if "Login: " in l])


# -------------------------------------------------- tls: required, plaintext ---

class Required(MailboxCase):
    """`tls: required` on the IMAP and POP3 listeners: no login before TLS,
    and Dovecot never hears of such a client."""

    @classmethod
    def setUpClass(cls):
        cls.sl = Sluice(variant(41000, tls="required"), "required").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def test_imap_login_refused_before_tls(self):
        base = backend_imap_base()
        c = Imap(self.sl.addr(IMAP), source=RAW)
        self.addCleanup(c.close)
        greeting = c.greeting()
        self.assertRegex(greeting, rf"^\* OK \[CAPABILITY [^\]]*\] {HOSTNAME}( |$)")
        self.assertEqual(imap_capabilities(greeting), base | {"STARTTLS", "LOGINDISABLED"})
        r = c.ok("CAPABILITY")
        self.assertEqual(imap_capabilities(r.untagged[0]), base | {"STARTTLS", "LOGINDISABLED"})
        for command in (f"LOGIN {MAIL_USER} {MAIL_PASSWORD}",
                        "AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=",
                        "AUTHENTICATE PLAIN",
                        "AUTHENTICATE LOGIN",
                        b"LOGIN {3+}\r\nbob {6+}\r\nsecret"):
            with self.subTest(command=command):
                r = c.cmd(command, tag="L1")
                self.assertEqual(r.status, "NO", r)
                self.assertRegex(r.tagged, r"^L1 NO \[PRIVACYREQUIRED\]")
        c.ok("NOOP")
        self.assertEqual(c.ok("ID NIL").untagged, ["* ID NIL"])
        c.ok("LOGOUT")
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_conn_log(RAW, c.local[1], IMAP, tls=False, sluice=self.sl)
        self.assertEqual(DV.login_lines(RAW, c.local[1], since=self.dv_since), [],
                         "Dovecot was contacted before TLS")
        # With TLS, the same listener logs in.
        port = self.imaplib_session(self.sl)
        self.assert_session(BAD, port, IMAP, sluice=self.sl)

    def test_pop3_login_refused_before_tls(self):
        backend = dovecot_pop3_capabilities()
        c = Pop3(self.sl.addr(POP3L), source=RAW)
        self.addCleanup(c.close)
        self.assertRegex(c.greeting(), rf"^\+OK {HOSTNAME}( |$)")
        caps = pop3_capabilities(c.capa())
        self.assertEqual(set(caps), set(backend) - {"USER", "SASL"} | {"STLS"}, caps)
        for command in (f"USER {MAIL_USER}", f"PASS {MAIL_PASSWORD}", "AUTH PLAIN",
                        "AUTH PLAIN AGJvYgBzZWNyZXQ=",
                        "APOP bob c4c9334bac560ecc979e58001b3e22fb"):
            with self.subTest(command=command):
                self.assertRegex(c.cmd(command), r"^-ERR \[AUTH\]")
        self.assertTrue(c.cmd("NOOP").startswith("+OK"))
        c.ok("QUIT")
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_conn_log(RAW, c.local[1], POP3L, tls=False, sluice=self.sl)
        self.assertEqual(DV.login_lines(RAW, c.local[1], since=self.dv_since), [],
                         "Dovecot was contacted before TLS")
        # After STLS: USER and SASL are back, and the login works.
        c = Pop3(self.sl.addr(POP3L), source=RAW)
        self.addCleanup(c.close)
        c.greeting()
        c.starttls()
        self.assertEqual(pop3_capabilities(c.capa()), backend)
        c.ok(f"USER {MAIL_USER}")
        c.ok(f"PASS {MAIL_PASSWORD}")
        c.ok("QUIT")
        c.closed_by_peer()
        self.assert_session(RAW, c.local[1], POP3L, sluice=self.sl)


class PlaintextPath(MailboxCase):
    """On the `tls: starttls` listeners a login before TLS goes to Dovecot,
    which decides: 127.0.0.99 may log in without TLS (and Dovecot logs it
    as not secured), any other address is refused by Dovecot."""

    def test_imap_allowed_address_logs_in_without_tls(self):
        c = Imap(SL.addr(IMAP), source=PLAIN, timeout=30)
        self.addCleanup(c.close)
        c.greeting()
        c.ok(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
        c.ok("EXAMINE INBOX")
        r = c.ok(f"UID FETCH {big_uid()} (BODY.PEEK[])")
        self.assert_big(r.literals[0], "plaintext IMAP")
        c.ok("LOGOUT")
        c.closed_by_peer()
        self.assert_session(PLAIN, c.local[1], IMAP, tls=False)

    def test_imap_other_address_is_refused_by_dovecot(self):
        c = Imap(SL.addr(IMAP), source=DENIED)
        self.addCleanup(c.close)
        c.greeting()
        r = c.cmd(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}", tag="L")
        self.assertEqual(r.status, "NO", r)
        self.assertIn("PRIVACYREQUIRED", r.tagged)
        r = c.cmd("AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ=", tag="A")
        self.assertEqual(r.status, "NO", r)
        DV.refused(DENIED, c.local[1])
        c.cmd("LOGOUT")
        c.closed_by_peer()
        self.assertFalse([l for l in DV.login_lines(DENIED, c.local[1], since=self.dv_since) if "Login: " in l])

    def test_pop3_allowed_address_logs_in_without_tls(self):
        c = Pop3(SL.addr(POP3L), source=PLAIN, timeout=30)
        self.addCleanup(c.close)
        c.greeting()
        c.ok(f"USER {MAIL_USER}")
        c.ok(f"PASS {MAIL_PASSWORD}")
        c.ok(f"RETR {big_seq()}")
        self.assert_big(b"\r\n".join(c.multi()) + b"\r\n", "plaintext POP3")
        c.ok("QUIT")
        c.closed_by_peer()
        self.assert_session(PLAIN, c.local[1], POP3L, tls=False)

    def test_pop3_other_address_is_refused_by_dovecot(self):
        c = Pop3(SL.addr(POP3L), source=DENIED)
        self.addCleanup(c.close)
        c.greeting()
        user = c.cmd(f"USER {MAIL_USER}")
        if user.startswith("+OK"):      # Dovecot may refuse USER or only PASS
            self.assertRegex(c.cmd(f"PASS {MAIL_PASSWORD}"), r"^-ERR \[AUTH\]")
        else:
            self.assertRegex(user, r"^-ERR \[AUTH\]")
        DV.refused(DENIED, c.local[1])
        c.cmd("QUIT")
        c.closed_by_peer()
        self.assertFalse([l for l in DV.login_lines(DENIED, c.local[1], since=self.dv_since) if "Login: " in l])


# -------------------------------------------------------------------- IDLE ---

class Idle(MailboxCase):

    def read_until(self, c, pattern, timeout, seen):
        """Read response lines until one matches; all are added to seen."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                self.fail(f"no line matching {pattern!r} within {timeout} s; got {seen}")
            c.sock.settimeout(left)
            try:
                text, _ = c.logical()
            except AssertionError as e:
                if "no reply within" in str(e):
                    self.fail(f"no line matching {pattern!r} within {timeout} s; got {seen}")
                raise
            seen.append(text)
            if re.search(pattern, text):
                return text

    def test_idle_session_sees_new_mail(self):
        c = Imap(SL.addr(IMAP), source=IDLER, timeout=15)
        self.addCleanup(c.close)
        c.greeting()
        c.starttls()
        c.ok(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
        r = c.ok("SELECT INBOX")
        exists = [int(m.group(1)) for l in r.untagged
                  for m in [re.match(r"^\* (\d+) EXISTS", l)] if m]
        self.assertEqual(len(exists), 1, r)
        c.send(b"i IDLE\r\n")
        text, _ = c.logical()
        self.assertTrue(text.startswith("+ "), text)
        start, seen = time.monotonic(), []
        # Dovecot's keepalive (imap_idle_notify_interval = 3 secs) comes
        # through sluice while the client says nothing.
        self.read_until(c, r"^\* OK Still here", 10, seen)
        tag = unique("idle")
        DV.append(MAIL_USER, "INBOX", make_message(tag))
        self.read_until(c, rf"^\* {exists[0] + 1} EXISTS", 15, seen)
        # Stay idle a while longer: the session must not be cut.
        while time.monotonic() - start < 7:
            self.read_until(c, r"^\* ", 10, seen)
        c.send(b"DONE\r\n")
        r = c.response("i")
        self.assertEqual(r.status, "OK", (r, seen))
        self.assertGreaterEqual(time.monotonic() - start, 7)
        r = c.ok(f"UID FETCH {DV.uid_of(MAIL_USER, 'INBOX', message_id(tag))} "
                 "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        self.assertIn(message_id(tag).encode(), r.literals[0])
        r = c.ok("LOGOUT")
        self.assertRegex(r.untagged[0], r"^\* BYE\b")
        self.assertEqual(c.closed_by_peer(), b"")
        self.assert_session(IDLER, c.local[1], IMAP)


# --------------------------------------------------------------- bad input ---

class BadInput(MailboxCase):
    """Hostile or broken clients; after each, sluice still serves."""

    def imap(self, listener=IMAP, greeting=True):
        c = Imap(SL.addr(listener), source=BAD)
        self.addCleanup(c.close)
        if greeting:
            c.greeting()
        return c

    def pop3(self, listener=POP3L, greeting=True):
        c = Pop3(SL.addr(listener), source=BAD)
        self.addCleanup(c.close)
        if greeting:
            self.assertTrue(c.greeting().startswith("+OK"))
        return c

    def imap_continues_or_closed(self, c):
        try:
            r = c.cmd("NOOP", tag="after")
        except Closed:
            return
        self.assertEqual(r.status, "OK", r)

    def pop3_continues_or_closed(self, c):
        try:
            text = c.cmd("NOOP")
        except Closed:
            return
        self.assertTrue(text.startswith("+OK"), text)

    # -- IMAP --

    def assert_too_long(self, c):
        """A line over 8192 bytes: `* BAD` and the session goes on, or
        `* BYE` and a close with nothing after it."""
        text, _ = c.logical()
        self.assertRegex(text, r"^\* (BAD|BYE)\b")
        if text.startswith("* BYE"):
            self.assertEqual(c.closed_by_peer(), b"")
        else:
            self.imap_continues_or_closed(c)

    def test_imap_overlong_line(self):
        c = self.imap()
        # Under the 8192-byte limit: a normal command.
        r = c.cmd(b'ID ("name" "' + b"y" * 7900 + b'")', tag="short")
        self.assertEqual((r.status, r.untagged), ("OK", ["* ID NIL"]), r)
        c.send(b"long NOOP " + b"x" * 100_000 + b"\r\n")
        self.assert_too_long(c)
        c = self.imap()
        c.send(b"long2 NOOP " + b"x" * 9000 + b"\r\n")
        self.assert_too_long(c)
        self.assert_still_serves()

    def test_imap_binary_garbage(self):
        garbage = bytearray(random.Random(0x5100CE).randbytes(16384))
        garbage[0] = ord("X")               # not a TLS record (0x16)
        garbage = bytes(garbage).replace(b"{", b"(")    # no literal announcements
        c = self.imap()
        c.send(garbage + b"\r\nzz LOGOUT\r\n")
        lines = []
        try:
            while True:
                text, _ = c.logical()
                lines.append(text)
                if text.startswith("zz "):
                    break
        except Closed:
            pass
        self.assertFalse([l for l in imap_ok_lines(lines) if not l.startswith("zz ")],
                         f"garbage got OK replies: {lines[:20]}")
        c.closed_by_peer(15)
        self.assert_still_serves()

    def test_imap_nul_bytes(self):
        c = self.imap()
        c.send(b"n NO\x00OP\r\n")
        text, _ = c.logical()
        self.assertRegex(text, r"^(\*|n) BAD\b")     # the tag may not be trusted
        self.imap_continues_or_closed(c)
        c = self.imap()
        c.send(b"\x00\x00\x00\x00\r\n")
        text, _ = c.logical()
        self.assertRegex(text, r"^\S+ BAD\b")
        self.imap_continues_or_closed(c)
        self.assert_still_serves()

    def test_imap_literal_containing_starttls(self):
        """A literal's bytes are data, never a command: STARTTLS inside one
        starts nothing."""
        c = self.imap()
        # Non-synchronizing literal (LITERAL+) in a command sluice refuses.
        c.send(b"a BOGUS {10+}\r\nSTARTTLS\r\n\r\n")
        r = c.response("a")
        self.assertEqual((r.status, r.untagged), ("BAD", []), r)
        # In a command sluice answers; the literal looks like a tagged command.
        c.send(b'b ID ("name" {12+}\r\nc STARTTLS\r\n)\r\n')
        r = c.response("b")
        self.assertEqual((r.status, r.untagged), ("OK", ["* ID NIL"]), r)
        # Still plaintext: a NOOP is answered in clear, and nothing for "c".
        r = c.ok("NOOP", tag="d")
        self.assertEqual(r.untagged, [], r)
        # Synchronizing literal: sluice may invite it (+) or refuse at once.
        c.send(b"e BOGUS {10}\r\n")
        text, _ = c.logical()
        if text.startswith("+"):
            c.send(b"STARTTLS\r\n\r\n")
            r = c.response("e")
            self.assertEqual(r.status, "BAD", r)
        else:
            self.assertRegex(text, r"^e BAD\b")
        r = c.ok("NOOP", tag="f")
        self.assertEqual(r.untagged, [], r)
        c.starttls()                # a real STARTTLS still works afterwards
        c.ok(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
        c.ok("LOGOUT")
        self.assert_session(BAD, c.local[1], IMAP)

    def test_imap_oversized_literal(self):
        c = self.imap()
        c.send(b"a LOGIN {999999999+}\r\n")
        rest = c.closed_by_peer()
        self.assertRegex(rest, rb"^\* BYE\b", rest)
        self.assertNotIn(b"a OK", rest)
        self.assert_conn_log(BAD, c.local[1], IMAP, tls=False)
        self.assert_still_serves()

    def test_imap_unterminated_literal_then_close(self):
        c = self.imap()
        c.send(b"a LOGIN {100+}\r\nbob")
        c.close()
        self.assert_conn_log(BAD, c.local[1], IMAP, tls=False)
        # LOGIN before TLS may go to Dovecot (plaintext path); no login.
        self.assertFalse([l for l in DV.login_lines(BAD, c.local[1], since=self.dv_since) if "Login: " in l])
        c = self.imap(IMAPS, greeting=False)
        c.starttls_handshake()
        c.greeting()
        c.send(b"a LOGIN {100+}\r\nbob")
        c.close()
        SL.conn_log(BAD, c.local[1])
        self.assert_still_serves()

    def test_imap_client_vanishes_mid_handshake(self):
        hello = client_hello()
        for listener in (IMAP, IMAPS):
            with self.subTest(listener=listener):
                c = self.imap(listener, greeting=listener == IMAP)
                if listener == IMAP:
                    c.ok("STARTTLS")
                c.send(hello[:len(hello) // 2])
                c.close(reset=True)
                self.assert_conn_log(BAD, c.local[1], listener, tls=None, result="error")
        self.assert_still_serves()

    def test_imap_garbage_instead_of_client_hello(self):
        c = self.imap()
        c.ok("STARTTLS")
        c.send(b"a LOGIN bob secret\r\n" * 8)
        rest = c.closed_by_peer()
        # A clean close: nothing, or a TLS alert record; no IMAP text.
        self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
        self.assert_conn_log(BAD, c.local[1], IMAP, tls=None, result="error")
        self.assertEqual(DV.login_lines(BAD, c.local[1], since=self.dv_since), [])
        self.assert_still_serves()

    # -- POP3 --

    def test_pop3_overlong_line(self):
        c = self.pop3()
        c.send(b"NOOP " + b"x" * 100_000 + b"\r\n")
        self.assertTrue(c.status().startswith("-ERR"))
        self.pop3_continues_or_closed(c)
        self.assert_still_serves(proto="pop3")

    def test_pop3_binary_garbage(self):
        garbage = bytearray(random.Random(0x90B3).randbytes(16384))
        garbage[0] = ord("X")
        c = self.pop3()
        c.send(bytes(garbage) + b"\r\nQUIT\r\n")
        lines = []
        try:
            while True:
                lines.append(c.raw_line())
        except (Closed, AssertionError):
            pass
        oks = [l for l in lines if l.startswith(b"+OK")]
        # At most the reply to the final QUIT.
        self.assertLessEqual(len(oks), 1, f"garbage got +OK replies: {lines[:20]}")
        c.closed_by_peer(15)
        self.assert_still_serves(proto="pop3")

    def test_pop3_nul_bytes(self):
        c = self.pop3()
        self.assertTrue(c.cmd(b"NO\x00OP").startswith("-ERR"))
        self.pop3_continues_or_closed(c)
        c = self.pop3()
        self.assertTrue(c.cmd(b"USER b\x00b").startswith("-ERR"))
        self.pop3_continues_or_closed(c)
        self.assertEqual(DV.login_lines(BAD, c.local[1], since=self.dv_since), [])
        self.assert_still_serves(proto="pop3")

    def test_pop3_client_vanishes_mid_handshake(self):
        hello = client_hello()
        for listener in (POP3L, POP3S):
            with self.subTest(listener=listener):
                c = self.pop3(listener, greeting=listener == POP3L)
                if listener == POP3L:
                    c.ok("STLS")
                c.send(hello[:len(hello) // 2])
                c.close(reset=True)
                self.assert_conn_log(BAD, c.local[1], listener, tls=None, result="error")
        self.assert_still_serves(proto="pop3")

    def test_pop3_garbage_instead_of_client_hello(self):
        c = self.pop3()
        c.ok("STLS")
        c.send(b"USER bob\r\nPASS secret\r\n" * 8)
        rest = c.closed_by_peer()
        self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
        self.assert_conn_log(BAD, c.local[1], POP3L, tls=None, result="error")
        self.assertEqual(DV.login_lines(BAD, c.local[1], since=self.dv_since), [])
        self.assert_still_serves(proto="pop3")


# ---------------------------------------------------------------- timeouts ---

class Timeouts(MailboxCase):
    """Short timeouts (2 s of plaintext silence, 2 s for the handshake)."""

    @classmethod
    def setUpClass(cls):
        cfg = variant(42000, timeouts={"plaintext": 2, "handshake": 2, "idle": 600})
        cls.sl = Sluice(cfg, "mailbox-timeouts").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def timed_close(self, c):
        start = time.monotonic()
        rest = c.closed_by_peer(15)
        return rest, time.monotonic() - start

    def test_silent_imap_client_gets_bye(self):
        c = Imap(self.sl.addr(IMAP), source=BAD, timeout=15)
        self.addCleanup(c.close)
        c.greeting()
        rest, waited = self.timed_close(c)
        self.assertRegex(rest, rb"^\* BYE\b", rest)
        self.assertGreater(waited, 1.5)
        self.assertLess(waited, 10)
        self.assert_conn_log(BAD, c.local[1], IMAP, tls=False, result="error",
                             sluice=self.sl)
        self.assert_still_serves(self.sl)

    def test_silent_pop3_client_gets_err(self):
        c = Pop3(self.sl.addr(POP3L), source=BAD, timeout=15)
        self.addCleanup(c.close)
        c.greeting()
        rest, waited = self.timed_close(c)
        self.assertRegex(rest, rb"^-ERR\b", rest)
        self.assertGreater(waited, 1.5)
        self.assertLess(waited, 10)
        self.assert_conn_log(BAD, c.local[1], POP3L, tls=False, result="error",
                             sluice=self.sl)
        self.assert_still_serves(self.sl, proto="pop3")

    def test_stalled_handshake_is_closed(self):
        hello = client_hello()
        for listener, cls, verb in ((IMAP, Imap, "a STARTTLS"), (POP3L, Pop3, "STLS")):
            with self.subTest(listener=listener):
                c = cls(self.sl.addr(listener), source=BAD, timeout=15)
                self.addCleanup(c.close)
                c.greeting()
                c.send(verb.encode() + b"\r\n")
                self.assertRegex(c.raw_line(), rb"^(a OK|\+OK)\b")
                c.send(hello[:len(hello) // 2])     # and then nothing
                rest, waited = self.timed_close(c)
                self.assertLess(waited, 10)
                self.assertTrue(rest == b"" or rest[:1] == b"\x15", rest)
                self.assert_conn_log(BAD, c.local[1], listener, tls=None, result="error",
                                     sluice=self.sl)

    def test_silent_client_on_implicit_tls_is_closed(self):
        for listener in (IMAPS, POP3S):
            with self.subTest(listener=listener):
                c = Imap(self.sl.addr(listener), source=BAD, timeout=15)
                self.addCleanup(c.close)
                rest, waited = self.timed_close(c)
                self.assertLess(waited, 10)
                self.assertEqual(rest, b"")     # no plaintext greeting on 993/995
        self.assert_still_serves(self.sl)


# -------------------------------------------------------- backend failures ---

class BackendFailure(MailboxCase):
    """While Dovecot is away the client gets `* BYE`/-ERR or a close, never
    a false OK; when it is back, logins work again."""

    def assert_imap_refused(self, c, command):
        """command gets a close, at most after `* BYE` lines; no OK."""
        try:
            r = c.cmd(command, tag="L")
        except Closed:
            lines = c.partial
        else:
            self.fail(f"{command!r} while Dovecot is down: a tagged answer {r}")
        self.assertFalse(imap_ok_lines(lines), lines)
        self.assertFalse([l for l in lines if not l.startswith("* BYE")], lines)

    def assert_pop3_refused(self, c, command):
        try:
            text = c.cmd(command)
        except Closed:
            return
        self.assertTrue(text.startswith("-ERR"), f"{command!r} while Dovecot is down: {text!r}")

    def wait_for_login(self, deadline=40):
        """Like a mail client: retry until a normal IMAP and POP3 login
        through sluice works again."""
        end = time.monotonic() + deadline
        for proto in ("imap", "pop3"):
            while True:
                try:
                    port = (self.imaplib_session() if proto == "imap"
                            else self.poplib_session())
                    break
                except (OSError, EOFError, AssertionError, imaplib.IMAP4.error,
                        poplib.error_proto):
                    if time.monotonic() > end:
                        raise
                    time.sleep(0.5)
            self.assert_session(BAD, port, IMAP if proto == "imap" else POP3L)

    def test_dovecot_stopped_then_back(self):
        DV.stop()
        self.addCleanup(lambda: DV.running() or DV.start())
        clients = []
        with self.subTest("IMAP: STARTTLS, then LOGIN"):
            c = Imap(SL.addr(IMAP), source=BAD, timeout=15)
            self.addCleanup(c.close)
            c.greeting()
            c.starttls()
            self.assert_imap_refused(c, f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
            clients.append((c, IMAP))
        with self.subTest("IMAP: implicit TLS"):
            c = Imap(SL.addr(IMAPS), source=BAD, tls=True, timeout=15)
            self.addCleanup(c.close)
            try:
                greeting = c.greeting()
            except Closed:
                greeting = None
            if greeting is not None:
                self.assertNotRegex(greeting, r"^\* OK .*Dovecot")
                if greeting.startswith("* OK"):
                    self.assert_imap_refused(c, f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
                else:
                    self.assertRegex(greeting, r"^\* BYE\b")
            clients.append((c, IMAPS))
        with self.subTest("POP3: STLS, then USER"):
            c = Pop3(SL.addr(POP3L), source=BAD, timeout=15)
            self.addCleanup(c.close)
            c.greeting()
            c.starttls()
            self.assert_pop3_refused(c, f"USER {MAIL_USER}")
            self.assert_pop3_refused(c, f"PASS {MAIL_PASSWORD}")
            clients.append((c, POP3L))
        with self.subTest("POP3: implicit TLS"):
            c = Pop3(SL.addr(POP3S), source=BAD, tls=True, timeout=15)
            self.addCleanup(c.close)
            try:
                greeting = c.greeting()
            except Closed:
                greeting = None
            if greeting is not None and greeting.startswith("+OK"):
                self.assert_pop3_refused(c, f"USER {MAIL_USER}")
                self.assert_pop3_refused(c, f"PASS {MAIL_PASSWORD}")
            clients.append((c, POP3S))
        for c, listener in clients:
            c.close()
            line = self.assert_conn_log(BAD, c.local[1], listener, tls=None, result="error")
            self.assertTrue(line["reason"], line)
        DV.start()
        self.wait_for_login()

    def test_dovecot_session_dies(self):
        """Dovecot's imap/pop3 process is killed mid-session: the next
        command gets a close (or `* BYE`/-ERR), never OK."""
        c = Imap(SL.addr(IMAP), source=BAD, timeout=15)
        self.addCleanup(c.close)
        c.greeting()
        c.starttls()
        c.ok(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}")
        c.ok("SELECT INBOX")
        p = Pop3(SL.addr(POP3L), source=BAD, timeout=15)
        self.addCleanup(p.close)
        p.greeting()
        p.starttls()
        p.ok(f"USER {MAIL_USER}")
        p.ok(f"PASS {MAIL_PASSWORD}")
        DV.kill_sessions()
        try:
            r = c.cmd("NOOP", tag="N")
            self.fail(f"NOOP after Dovecot's imap died: {r}")
        except Closed:
            self.assertFalse(imap_ok_lines(c.partial), c.partial)
        try:
            text = p.cmd("STAT")
            self.assertTrue(text.startswith("-ERR"), text)
        except Closed:
            pass
        self.assert_conn_log(BAD, c.local[1], IMAP, tls=True)
        self.assert_conn_log(BAD, p.local[1], POP3L, tls=True)
        self.wait_for_login()


if __name__ == "__main__":
    unittest.main(verbosity=2)
