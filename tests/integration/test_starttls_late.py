"""STARTTLS after plaintext commands went to the backend (DESIGN.md §2,
rule 7): real clients against sluice in front of a real Postfix and Dovecot.

One Postfix, one Dovecot and one sluice on firmware-config/examples/
mail-front.yaml serve the module:
    smtp   127.0.0.1:2525  tls: starttls  (plaintext mail allowed)
    imap   127.0.0.1:2143  tls: starttls  (LOGIN before TLS goes to Dovecot)
    pop3   127.0.0.1:2110  tls: starttls  (USER/PASS before TLS go to Dovecot)

Where the protocol allows STARTTLS (SMTP outside a mail transaction, RFC 3207
4.2; IMAP before login, RFC 9051 6.2.1; POP3 in the AUTHORIZATION state,
RFC 2595 4) it works after plaintext commands: sluice ends the plaintext
backend connection (QUIT/LOGOUT), answers the STARTTLS itself, runs the
handshake and opens the backend again with the PROXY v2 SSL TLV, so Dovecot
logs the login inside TLS as secured. Where it does not, the client gets the
protocol's error in pipelining order and the session goes on in plaintext.
Dovecot lets 127.0.0.99 (PLAINTEXT_ALLOWED) log in without TLS: that is how
the tests reach the authenticated state in plaintext.
"""

import imaplib
import smtplib
import unittest

from harness import (MAIL_PASSWORD, MAIL_USER, PLAINTEXT_ALLOWED, SENDER, Dovecot, IMAP4,
                     Imap, Pop3, Postfix, Sluice, Smtp, client_source, compare_message,
                     load_example, make_message, message_id, no_verify_context, recipient,
                     unique, wait_until, stop_all)

FRONT = load_example("mail-front.yaml")
SMTP, IMAP, POP3 = "smtp", "imap", "pop3"

# One loopback source address per kind of client.
SMTPLIB, RAW_SMTP, IMAPLIB, RAW_IMAP, RAW_POP3 = (f"127.0.0.{i}" for i in range(51, 56))
PLAIN = PLAINTEXT_ALLOWED           # Dovecot allows plaintext logins from it

PF = DV = SL = None


def quietly(fn):
    """A cleanup that may find its object already closed."""
    def call():
        try:
            fn()
        except (OSError, EOFError, imaplib.IMAP4.error):
            pass
    return call


def setUpModule():
    global PF, DV, SL
    PF = Postfix().start()
    DV = Dovecot().start()
    SL = Sluice(FRONT, "late").start()


def tearDownModule():
    stop_all(SL, DV, PF)


class LateCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.dv_since = DV.log_mark()
        self.pf_since = len(PF.log())

    def conn_log(self, ip, port):
        return SL.conn_log(ip, port)

    def assert_tls_session(self, ip, port, listener):
        """sluice's line for the connection: TLS through STARTTLS, ended ok."""
        line = self.conn_log(ip, port)
        self.assertEqual(line["listener"], listener, line)
        self.assertRegex(line["tls"], r"^TLSv1\.[23]$", line)
        self.assertEqual(line["starttls"], "yes", line)
        self.assertEqual(line.get("result"), "ok", line)
        return line

    def assert_delivered(self, tag, msg, ip, port):
        """One copy landed, byte for byte, from ip:port as Postfix saw it."""
        mid = message_id(tag)
        copies = PF.maildir_messages(mid.encode(), count=1, timeout=15)
        wait_until(PF.queue_empty, 15, "the Postfix queue to drain")
        copies = PF.maildir_messages(mid.encode(), count=0)
        self.assertEqual(len(copies), 1, f"copies of {mid}")
        self.assertIsNone(compare_message(msg, copies[0][1]))
        self.assertEqual(PF.client_of(mid), (ip, port), "client in Postfix's log (PROXY v2)")

    def postfix_sessions(self, ip, port):
        """Postfix's connect/disconnect lines of the client ip:port, this test."""
        return [l for l in PF.log()[self.pf_since:].splitlines()
                if f"[{ip}]:{port}" in l and ("connect from" in l)]


# -------------------------------------------------------------------- SMTP ---

class SmtpLate(LateCase):

    def test_smtplib_mail_rset_then_starttls_delivers(self):
        """MAIL in plaintext, RSET, STARTTLS: the upgrade works and the
        message goes through inside TLS (Postfix sees two sessions: the
        plaintext one ended with QUIT, then the TLS one)."""
        tag = unique("late")
        msg = make_message(tag)
        with smtplib.SMTP(*SL.addr(SMTP), local_hostname="client.test",
                          source_address=client_source(SMTPLIB), timeout=15) as s:
            port = s.sock.getsockname()[1]
            s.ehlo()
            self.assertEqual(s.mail(SENDER)[0], 250)       # goes to Postfix
            self.assertEqual(s.rset()[0], 250)
            s.starttls(context=no_verify_context())
            s.ehlo()
            self.assertNotIn("starttls", s.esmtp_features)  # rule 2.2
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        self.assert_delivered(tag, msg, SMTPLIB, port)
        self.assert_tls_session(SMTPLIB, port, SMTP)
        # The plaintext backend session was ended politely, then a new one.
        PF.wait_log(rf"disconnect from \S+\[{SMTPLIB}\]:{port}\b.* quit=1")
        wait_until(lambda: len([l for l in self.postfix_sessions(SMTPLIB, port)
                                if " connect from" in l]) == 2, 10,
                   "two Postfix sessions of the client")

    def test_starttls_inside_a_transaction_is_refused_then_works(self):
        """MAIL, then STARTTLS: 503 as Postfix says it, the transaction goes
        on in plaintext; after RSET the STARTTLS works."""
        tag = unique("txn")
        msg = make_message(tag)
        before = SL.counters()
        with smtplib.SMTP(*SL.addr(SMTP), local_hostname="client.test",
                          source_address=client_source(SMTPLIB), timeout=15) as s:
            port = s.sock.getsockname()[1]
            s.ehlo()
            self.assertEqual(s.mail(SENDER)[0], 250)
            code, text = s.docmd("STARTTLS")
            self.assertEqual(code, 503, text)
            self.assertEqual(text, b"5.5.1 Error: MAIL transaction in progress")
            # Still the same transaction, in plaintext, with Postfix.
            self.assertEqual(s.rcpt(recipient("txn-kept"))[0], 250)
            self.assertEqual(s.rset()[0], 250)
            s.starttls(context=no_verify_context())
            s.ehlo()
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], msg), {})
        self.assert_delivered(tag, msg, SMTPLIB, port)
        self.assert_tls_session(SMTPLIB, port, SMTP)
        after = SL.counters()
        self.assertEqual(after["starttls_not_now"] - before["starttls_not_now"], 1)
        self.assertEqual(after["starttls_late"] - before["starttls_late"], 1)

    def test_pipelined_replies_come_in_order(self):
        """MAIL and STARTTLS in one segment: Postfix's 250 first, then the
        503; then RSET, STARTTLS and a command in one segment: 250, 220, and
        the command behind the STARTTLS is discarded (rule 2.1)."""
        c = Smtp(SL.addr(SMTP), source=RAW_SMTP)
        self.addCleanup(c.close)
        self.assertEqual(c.reply()[0], 220)
        c.expect("EHLO client.test", 250)
        c.send(f"MAIL FROM:<{SENDER}>\r\nSTARTTLS\r\n".encode())
        self.assertEqual(c.reply()[0], 250)
        code, lines = c.reply()
        self.assertEqual(code, 503, lines)
        self.assertRegex(lines[-1], r"^503 5\.5\.1 ")
        c.send(f"RSET\r\nSTARTTLS\r\nMAIL FROM:<injected@client.test>\r\n".encode())
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 220)
        c.starttls_handshake()
        c.expect("EHLO client.test", 250)
        c.expect("NOOP", 250)           # nothing of the injected MAIL queued
        # Postfix never saw the injected MAIL: a RCPT has no transaction.
        code, lines = c.cmd(f"RCPT TO:<{recipient('inject')}>")
        self.assertEqual(code, 503, lines)
        c.expect("QUIT", 221)
        line = self.assert_tls_session(RAW_SMTP, c.local[1], SMTP)
        self.assertIn("pipelined-after-starttls", line["quirks"], line)


# -------------------------------------------------------------------- IMAP ---

class ImapLate(LateCase):

    def test_imaplib_login_refused_then_starttls_then_login(self):
        """LOGIN in plaintext goes to Dovecot, which refuses it; STARTTLS
        then works, and the LOGIN inside TLS is logged secured."""
        c = IMAP4(*SL.addr(IMAP), source=IMAPLIB)
        self.addCleanup(quietly(c.shutdown))
        port = c.sock.getsockname()[1]
        self.assertIn("STARTTLS", c.capabilities)
        with self.assertRaisesRegex(imaplib.IMAP4.error, "PRIVACYREQUIRED"):
            c.login(MAIL_USER, MAIL_PASSWORD)
        DV.refused(IMAPLIB, port, since=self.dv_since)
        c.starttls(ssl_context=no_verify_context())
        self.assertNotIn("STARTTLS", c.capabilities)        # rule 2.2
        self.assertEqual(c.login(MAIL_USER, MAIL_PASSWORD)[0], "OK")
        self.assertEqual(c.select("INBOX")[0], "OK")
        self.assertEqual(c.logout()[0], "BYE")
        login = DV.login(IMAPLIB, port, since=self.dv_since)
        self.assertTrue(login["secured"], login)
        self.assertEqual(login["proto"], "imap", login)
        self.assert_tls_session(IMAPLIB, port, IMAP)

    def test_starttls_after_login_is_refused(self):
        """From an address Dovecot lets log in without TLS: after the LOGIN,
        STARTTLS gets BAD (RFC 9051 6.2.1) and the session goes on."""
        c = IMAP4(*SL.addr(IMAP), source=PLAIN)
        self.addCleanup(quietly(c.shutdown))
        port = c.sock.getsockname()[1]
        self.assertEqual(c.login(MAIL_USER, MAIL_PASSWORD)[0], "OK")
        with self.assertRaises(imaplib.IMAP4.error):
            c.starttls(ssl_context=no_verify_context())
        self.assertEqual(c.select("INBOX")[0], "OK")
        self.assertEqual(c.noop()[0], "OK")
        self.assertEqual(c.logout()[0], "BYE")
        login = DV.login(PLAIN, port, since=self.dv_since)
        self.assertFalse(login["secured"], login)
        line = self.conn_log(PLAIN, port)
        self.assertEqual(line["tls"], "none", line)

    def test_raw_refusal_text_and_order(self):
        """The same with a raw client: the BAD carries the STARTTLS's tag and
        comes after the answer to the command pipelined before it."""
        c = Imap(SL.addr(IMAP), source=PLAIN)
        self.addCleanup(c.close)
        c.greeting()
        c.ok(f"LOGIN {MAIL_USER} {MAIL_PASSWORD}", tag="l1")
        c.send(b"n1 NOOP\r\ns1 STARTTLS\r\n")
        self.assertEqual(c.response("n1").status, "OK")
        r = c.response("s1")
        self.assertEqual(r.status, "BAD", r)
        c.ok("SELECT INBOX")
        c.ok("LOGOUT")


# -------------------------------------------------------------------- POP3 ---

class Pop3Late(LateCase):

    def test_user_then_stls_then_login(self):
        """USER goes to Dovecot, which refuses it in plaintext; STLS then
        works (RFC 2595 4), and USER/PASS inside TLS log in secured; the
        mailbox is readable. (poplib's stls() asks CAPA first, which after
        USER is Dovecot's, without STLS: a raw client drives this one.)"""
        c = Pop3(SL.addr(POP3), source=RAW_POP3)
        self.addCleanup(c.close)
        c.greeting()
        self.assertRegex(c.cmd(f"USER {MAIL_USER}"), r"^-ERR \[AUTH\] Plaintext")
        c.starttls()
        self.assertNotIn("STLS", c.capa())                   # rule 2.2
        c.ok(f"USER {MAIL_USER}")
        c.ok(f"PASS {MAIL_PASSWORD}")
        self.assertRegex(c.ok("STAT"), r"^\+OK \d+ \d+")
        c.ok("LIST")
        c.multi()
        c.ok("QUIT")
        login = DV.login(RAW_POP3, c.local[1], since=self.dv_since)
        self.assertTrue(login["secured"], login)
        self.assertEqual(login["proto"], "pop3", login)
        self.assert_tls_session(RAW_POP3, c.local[1], POP3)

    def test_stls_after_pass_is_refused(self):
        """From an address Dovecot lets log in without TLS: after PASS, STLS
        gets -ERR and the session goes on in the TRANSACTION state."""
        c = Pop3(SL.addr(POP3), source=PLAIN)
        self.addCleanup(c.close)
        c.greeting()
        c.ok(f"USER {MAIL_USER}")
        c.ok(f"PASS {MAIL_PASSWORD}")
        self.assertTrue(c.cmd("STLS").startswith("-ERR"))
        self.assertRegex(c.ok("STAT"), r"^\+OK \d+ \d+")
        c.ok("QUIT")
        login = DV.login(PLAIN, c.local[1], since=self.dv_since)
        self.assertFalse(login["secured"], login)


if __name__ == "__main__":
    unittest.main()
