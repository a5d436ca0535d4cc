"""Inline handshakes (workers: 0, issue 14): no TLS worker thread; each core
runs the handshake steps it posted, through the same job code a worker
runs. One sluice on mail-front.yaml with `cores: 2, workers: 0`, the
listeners on this module's ports, real Postfix and Dovecot behind:

    smtp 43200, submission 43201, submissions 43202 (implicit),
    imap 43203, imaps 43204, pop3 43205, pop3s 43206

- it runs inline: `status` says workers 0, no `sl-tls` thread exists, the
  start line says so;
- SMTP with STARTTLS and with implicit TLS delivers into Postfix; IMAP
  with STARTTLS and implicit TLS logs in to Dovecot; POP3S too;
- resumption: a TLS 1.3 ticket, a TLS 1.2 ticket and a TLS 1.2 session ID
  are resumed (openssl s_client -sess_out / -sess_in);
- a quirk: Outlook mobile's second STARTTLS is answered and the delivery
  lands;
- more handshakes at once than a core runs in one pass (16): every one is
  served, each with its two steps counted;
- a client that vanishes mid-handshake does not stop the core.

The flood defences in inline mode (a gone client's step skipped, the
per-address handshake rate, stress mode) are in test_limits.py
(HandshakeFloodInline, CoreFullInline).
"""

import imaplib
import poplib
import re
import smtplib
import socket
import ssl
import threading
import unittest
from pathlib import Path

from harness import (MAIL_PASSWORD, MAIL_USER, SENDER, Dovecot, Postfix, Sluice, client_source,
                     load_example, make_message, message_id, no_verify_context, recipient,
                     run, scratch, stop_all, unique, wait_until)

PORTS = {"smtp": 43200, "submission": 43201, "submissions": 43202, "imap": 43203,
         "imaps": 43204, "pop3": 43205, "pop3s": 43206}
CLIENT = "127.0.0.43"
PF = DV = SL = None


def inline_config():
    cfg = load_example("mail-front.yaml")
    cfg["cores"], cfg["workers"] = 2, 0
    for l in cfg["listeners"]:
        l["address"] = f"127.0.0.1:{PORTS[l['name']]}"
    return cfg


def setUpModule():
    global PF, DV, SL
    PF = Postfix().start()
    DV = Dovecot().start()
    SL = Sluice(inline_config(), "inline").start()


def tearDownModule():
    stop_all(SL, DV, PF)


def counters():
    return SL.ctl("stats")["counters"]


def s_client(listener, *args, sess_in=None, sess_out=None):
    """openssl s_client to an implicit-TLS listener, QUIT after the
    greeting: (output, "New"/"Reused"/None)."""
    host, port = SL.addr(listener)
    cmd = ["openssl", "s_client", "-connect", f"{host}:{port}", "-ign_eof"]
    if sess_in:
        cmd += ["-sess_in", str(sess_in)]
    if sess_out:
        cmd += ["-sess_out", str(sess_out)]
    rc, out = run(cmd + list(args), input=b"QUIT\r\n", timeout=20)
    m = re.search(r"^(New|Reused), ", out, re.M)
    return out, m.group(1) if m else None


class InlineCase(unittest.TestCase):
    def tearDown(self):
        SL.replace_if_dead()

    def assert_delivered(self, tag):
        got = PF.maildir_messages(message_id(tag).encode(), count=1, timeout=20)
        self.assertEqual(len(got), 1, f"message {tag} not in Postfix's maildir")


class RunsInline(InlineCase):
    def test_no_worker_thread(self):
        st = SL.ctl("status")
        self.assertEqual((st["cores"], st["workers"]), (2, 0), st)
        names = sorted(Path(t, "comm").read_text().strip()
                       for t in Path(f"/proc/{SL.proc.pid}/task").iterdir())
        self.assertFalse([n for n in names if n.startswith("sl-tls")], names)
        self.assertEqual(len([n for n in names if n.startswith("sl-core")]), 2, names)
        self.assertIn("0 TLS workers (handshakes inline on the cores)", SL.log_text())


class Delivery(InlineCase):
    def test_smtp_starttls(self):
        for listener in ("smtp", "submission"):
            with self.subTest(listener=listener):
                tag = unique("inline-starttls")
                with smtplib.SMTP(*SL.addr(listener), local_hostname="client.test",
                                  source_address=client_source(CLIENT), timeout=15) as s:
                    port = s.sock.getsockname()[1]
                    s.starttls(context=no_verify_context())
                    s.ehlo()
                    self.assertFalse(s.has_extn("starttls"), s.esmtp_features)
                    self.assertEqual(s.sendmail(SENDER, [recipient(tag)], make_message(tag)), {})
                self.assert_delivered(tag)
                line = SL.conn_log(CLIENT, port)
                self.assertEqual((line["tls"], line["result"]), ("TLSv1.3", "ok"), line)

    def test_smtp_implicit_tls(self):
        tag = unique("inline-implicit")
        with smtplib.SMTP_SSL(*SL.addr("submissions"), local_hostname="client.test",
                              source_address=client_source(CLIENT), timeout=15,
                              context=no_verify_context()) as s:
            self.assertEqual(s.sendmail(SENDER, [recipient(tag)], make_message(tag)), {})
        self.assert_delivered(tag)

    def test_imap_starttls_and_implicit(self):
        m = imaplib.IMAP4(*SL.addr("imap"), timeout=15)
        self.addCleanup(m.sock.close)
        m.starttls(ssl_context=no_verify_context())
        self.assertEqual(m.login(MAIL_USER, MAIL_PASSWORD)[0], "OK")
        self.assertEqual(m.select("INBOX")[0], "OK")
        self.assertEqual(m.logout()[0], "BYE")
        m = imaplib.IMAP4_SSL(*SL.addr("imaps"), ssl_context=no_verify_context(), timeout=15)
        self.addCleanup(m.sock.close)
        self.assertEqual(m.login(MAIL_USER, MAIL_PASSWORD)[0], "OK")
        self.assertEqual(m.logout()[0], "BYE")

    def test_pop3_implicit(self):
        p = poplib.POP3_SSL(*SL.addr("pop3s"), context=no_verify_context(), timeout=15)
        self.addCleanup(p.close)
        p.user(MAIL_USER)
        self.assertTrue(p.pass_(MAIL_PASSWORD).startswith(b"+OK"))
        p.quit()


class Resumption(InlineCase):
    def test_resumed(self):
        cases = (("TLS 1.3 ticket", ["-tls1_3"]), ("TLS 1.2 ticket", ["-tls1_2"]),
                 ("TLS 1.2 session ID", ["-tls1_2", "-no_ticket"]))
        for what, args in cases:
            with self.subTest(what):
                sess = scratch() / f"{unique('inline-sess')}.pem"
                out, how = s_client("submissions", *args, sess_out=sess)
                self.assertEqual(how, "New", out[-2000:])
                # Both cores serve the listener (SO_REUSEPORT): whichever
                # core takes the next connection resumes it.
                for _ in range(4):
                    out, how = s_client("submissions", *args, sess_in=sess)
                    self.assertEqual(how, "Reused", out[-2000:])
                    self.assertIn("220 ", out)


class Quirks(InlineCase):
    def test_second_starttls_delivers(self):
        tag = unique("inline-outlook")
        s = socket.create_connection(SL.addr("submission"), timeout=10,
                                     source_address=client_source(CLIENT))
        self.addCleanup(s.close)
        f = s.makefile("rb")

        def reply():
            lines = [f.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(f.readline())
            return lines[-1]
        self.assertTrue(reply().startswith(b"220 "))
        s.sendall(b"EHLO client.test\r\n")
        reply()
        s.sendall(b"STARTTLS\r\n")
        self.assertTrue(reply().startswith(b"220 2.0.0"))
        s.sendall(b"STARTTLS\r\n")                 # Outlook mobile's second one
        self.assertTrue(reply().startswith(b"220 2.0.0"))
        t = no_verify_context().wrap_socket(s, server_hostname="mail-front.test")
        port = t.getsockname()[1]
        tf = t.makefile("rb")

        def treply():
            lines = [tf.readline()]
            while lines[-1][3:4] == b"-":
                lines.append(tf.readline())
            return lines[-1]
        for cmd, code in ((b"EHLO client.test", b"250"), (f"MAIL FROM:<{SENDER}>".encode(), b"250"),
                          (f"RCPT TO:<{recipient(tag)}>".encode(), b"250"), (b"DATA", b"354")):
            t.sendall(cmd + b"\r\n")
            self.assertTrue(treply().startswith(code), cmd)
        t.sendall(make_message(tag).replace(b"\r\n.", b"\r\n..") + b".\r\n")
        self.assertTrue(treply().startswith(b"250 "))
        t.sendall(b"QUIT\r\n")
        treply()
        t.close()
        self.assert_delivered(tag)
        line = SL.conn_log(CLIENT, port)
        self.assertEqual((line["quirks"], line["result"]), ("second-starttls", "ok"), line)


class ManyAtOnce(InlineCase):
    CLIENTS = 48   # three passes' batches of one core, at the least

    def test_all_served(self):
        before = counters()
        greeted, errors = [], []
        go = threading.Barrier(self.CLIENTS)

        def client(i):
            try:
                raw = socket.create_connection(SL.addr("submissions"), timeout=20,
                                               source_address=(f"127.0.3.{1 + i}", 0))
                go.wait(10)
                t = no_verify_context().wrap_socket(raw, server_hostname="mail-front.test")
                line = t.recv(4096)
                greeted.append(line.startswith(b"220 "))
                t.close()
            except (OSError, threading.BrokenBarrierError) as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(greeted, [True] * self.CLIENTS)
        wait_until(lambda: counters()["conn_closed"] >= before.get("conn_closed", 0) + self.CLIENTS,
                   20, "every connection closed")
        after = counters()
        ok = after["handshake_ok"] - before.get("handshake_ok", 0)
        jobs = after["handshake_jobs"] - before.get("handshake_jobs", 0)
        self.assertEqual(ok, self.CLIENTS, after)
        self.assertEqual(jobs, 2 * self.CLIENTS, after)   # the hello, the Finished
        self.assertEqual(after.get("worker_queue_full", 0), before.get("worker_queue_full", 0))

    def test_vanished_mid_handshake(self):
        """A client that sends its ClientHello, reads the server's flight
        and goes: the session ends as a failed handshake, the core goes on."""
        ctx = no_verify_context()
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname="mail-front.test")
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        s = socket.create_connection(SL.addr("submissions"), timeout=10,
                                     source_address=client_source(CLIENT))
        port = s.getsockname()[1]
        s.sendall(outgoing.read())
        self.assertTrue(s.recv(65536))           # ServerHello .. Finished
        s.close()
        line = SL.conn_log(CLIENT, port)
        self.assertEqual(line["result"], "tls-failed", line)
        tag = unique("inline-after")
        with smtplib.SMTP_SSL(*SL.addr("submissions"), local_hostname="client.test",
                              timeout=15, context=no_verify_context()) as c:
            self.assertEqual(c.sendmail(SENDER, [recipient(tag)], make_message(tag)), {})
        self.assert_delivered(tag)


if __name__ == "__main__":
    unittest.main()
