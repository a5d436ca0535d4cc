"""TLS from sluice to its backends (docs/configuration.md "Backend TLS"),
against real servers started here:

  - Postfix with implicit TLS on its side (smtpd_tls_wrappermode, a
    certificate for mx.backend.test from a test CA, PROXY v2 first): mail
    lands through sluice, verified by the CA file and the name, and by a pin;
  - Dovecot with ssl on its imaps listener (PROXY v2 first): a login
    through sluice, secured;
  - resumption: a server's next session resumes the TLS session it gave
    the last one;
  - a client certificate (client_cert, client_key) that Postfix, asking
    for one, verifies against the test CA;
  - a wrong certificate (a pin of another key; a name the certificate does
    not carry): the client gets 421, counted and logged, no fallback tried;
  - STARTTLS to the same Postfix (its PROXY port offers it) and to
    Dovecot's IMAP and POP3 (STARTTLS, STLS);
  - tls: on against a Postfix port that offers no STARTTLS: plaintext,
    counted; tls: required there: 421, logged;
  - a probe's new reason for a server that stays down is logged again
    (refused, then a certificate that fails verification);
  - an intolerant server: a TLS 1.2-only Postfix port behind a small proxy
    here that closes any connection whose ClientHello carries TLS 1.3's
    supported_versions. The first session gets there by the fallback (the
    normal hello dropped, the conservative one through), the next one
    straight by the conservative hello while the server is remembered
    (fallback_memory); counters and log lines say which;
  - clients that reset while their backend's handshake is under way.

The handshake's steps are jobs for a TLS worker (workers: 1, BackendTls);
BackendTlsInline runs every scenario again with workers: 0, where the core
runs the same jobs itself.
"""

import base64
import hashlib
import os
import shutil
import smtplib
import socket
import struct
import threading
import time
import unittest
from pathlib import Path

from cryptography.hazmat.primitives import serialization

import pki
from harness import (SENDER, Dovecot, MAIL_USER, MAIL_PASSWORD, IMAP4_SSL, Postfix, Sluice,
                     Smtp, make_message, message_id, no_verify_context, recipient, scratch,
                     stop_all, unique, wait_until, SCRATCH)

CLIENT = "127.0.0.61"
GONE_CLIENT = "127.0.0.62"   # test_clients_gone_during_backend_handshake's resets
PF_TLS = 43611        # Postfix, implicit TLS, PROXY v2 first
PF_TLS12 = 43612      # Postfix, implicit TLS 1.2 only, no PROXY
DC_IMAPS = 43613      # Dovecot imaps, PROXY v2 first
PF_NOTLS = 43614      # Postfix without STARTTLS, PROXY v2 first
PF_CCERT = 43615      # Postfix, implicit TLS, asks for a client certificate
PF_WRONG = 43616      # Postfix, STARTTLS, a certificate for another name, PROXY v2 first
INTOLERANT = 43620    # the proxy in front of PF_TLS12
NAME = "mx.backend.test"

PF = DC = PKI = None


def spki_pin(cert):
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Pki:
    """A test CA, the backends' certificate for NAME signed by it, and an
    unrelated key's pin."""

    def __init__(self, d):
        d = Path(d)
        d.mkdir(parents=True, exist_ok=True)
        ca_k, k = pki.key("p256"), pki.key("p256")
        self.ca = pki.cert(ca_k, ["sluice backend test CA"], ca=True)
        self.leaf = pki.cert(k, [NAME], issuer=(self.ca, ca_k))
        self.ca_file = str(d / "backend-ca.pem")
        Path(self.ca_file).write_bytes(pki.pem_cert(self.ca))
        self.pair = pki.write_pair(d, "backend", [self.leaf], k)
        os.chmod(self.pair["key"], 0o644)   # Postfix's and Dovecot's readers
        self.pin = spki_pin(self.leaf)
        self.other_pin = spki_pin(pki.cert(pki.key("p256"), [NAME]))
        # the same CA's certificate for a name sluice does not ask for
        wk = pki.key("p256")
        self.wrong = pki.write_pair(d, "backend-wrong",
                                    [pki.cert(wk, ["wrong.backend.test"],
                                              issuer=(self.ca, ca_k))], wk)
        os.chmod(self.wrong["key"], 0o644)
        # sluice's client certificate, from the same CA
        ck = pki.key("p256")
        self.client = pki.write_pair(d, "sluice-client",
                                     [pki.cert(ck, ["sluice.client.test"],
                                               issuer=(self.ca, ca_k))], ck)


class TlsPostfix(Postfix):
    """The reference Postfix plus two implicit-TLS ports with the test CA's
    certificate: PF_TLS (PROXY v2 first) and PF_TLS12 (TLS 1.2 only)."""

    ports_text = f"10025/10026/{PF_TLS}/{PF_TLS12}/{PF_NOTLS}/{PF_CCERT}/{PF_WRONG}"

    def __init__(self):
        super().__init__(SCRATCH / "postfix-btls")

    def _render(self):
        super()._render()
        shutil.copy(PKI.pair["cert"], self.etc / "backend-cert.pem")
        shutil.copy(PKI.pair["key"], self.etc / "backend-key.pem")
        with open(self.etc / "main.cf", "a") as f:
            f.write("smtpd_tls_loglevel = 1\n")   # "TLS connection established from"
        with open(self.etc / "master.cf", "a") as f:
            f.write(f"127.0.0.1:{PF_TLS} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes "
                    "-o smtpd_upstream_proxy_protocol=haproxy\n")
            f.write(f"127.0.0.1:{PF_TLS12} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes "
                    "-o smtpd_tls_protocols=!SSLv2,!SSLv3,!TLSv1,!TLSv1.1,!TLSv1.3\n")
            f.write(f"127.0.0.1:{PF_NOTLS} inet n - n - - smtpd -o smtpd_tls_security_level=none "
                    "-o smtpd_upstream_proxy_protocol=haproxy\n")
            # asks for a client certificate, verified against the test CA:
            # Postfix logs "Trusted TLS connection" for one it verified,
            # "Anonymous" when none came, and its Received: line names the
            # certificate's CN
            f.write(f"127.0.0.1:{PF_CCERT} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes "
                    "-o smtpd_upstream_proxy_protocol=haproxy -o smtpd_tls_ask_ccert=yes "
                    f"-o smtpd_tls_CAfile={PKI.ca_file} -o smtpd_tls_received_header=yes\n")
            # STARTTLS with a certificate for wrong.backend.test
            f.write(f"127.0.0.1:{PF_WRONG} inet n - n - - smtpd "
                    "-o smtpd_upstream_proxy_protocol=haproxy "
                    f"-o smtpd_tls_chain_files={PKI.wrong['key']},{PKI.wrong['cert']}\n")

    def _listening(self):
        from harness import listening
        return super()._listening() and all(listening("127.0.0.1", p)
                                            for p in (PF_TLS, PF_TLS12, PF_NOTLS, PF_CCERT,
                                                      PF_WRONG))


class TlsDovecot(Dovecot):
    """The reference Dovecot plus ssl on an imaps listener (PROXY v2 first)."""

    ports_text = f"Dovecot's and {DC_IMAPS}"

    def __init__(self):
        super().__init__(SCRATCH / "dovecot-btls")

    def _render(self):
        super()._render()
        text = self.conf.read_text()
        text = text.replace("ssl = no",
                            f"ssl = yes\nssl_cert = <{PKI.pair['cert']}\n"
                            f"ssl_key = <{PKI.pair['key']}")
        text = text.replace("  inet_listener imaps {\n    port = 0\n  }",
                            f"  inet_listener imaps {{\n    address = 127.0.0.1\n"
                            f"    port = {DC_IMAPS}\n    ssl = yes\n    haproxy = yes\n  }}", 1)
        self.conf.write_text(text)

    def _listening(self):
        from harness import listening
        return super()._listening() and listening("127.0.0.1", DC_IMAPS)


def hello_offers_tls13(record):
    """Does this ClientHello record (one TLS record) carry supported_versions
    with TLS 1.3 (RFC 8446 4.2.1)?"""
    body = record[5:]
    if len(body) < 4 or body[0] != 1:
        return False
    p = 4 + 2 + 32
    p += 1 + body[p]                                  # session id
    p += 2 + struct.unpack("!H", body[p:p + 2])[0]    # cipher suites
    p += 1 + body[p]                                  # compression
    if p + 2 > len(body):
        return False
    end = p + 2 + struct.unpack("!H", body[p:p + 2])[0]
    p += 2
    while p + 4 <= end:
        typ, ln = struct.unpack("!HH", body[p:p + 4])
        data = body[p + 4:p + 4 + ln]
        if typ == 43:
            vers = [data[i:i + 2] for i in range(1, 1 + data[0], 2)]
            return b"\x03\x04" in vers
        p += 4 + ln
    return False


class IntolerantProxy:
    """A TLS-intolerant middlebox on INTOLERANT: reads the first record; a
    ClientHello offering TLS 1.3 gets the connection closed, anything else
    is relayed to upstream both ways. Counts what it did."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.dropped = self.passed = 0
        self.lsn = socket.socket()
        self.lsn.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsn.bind(("127.0.0.1", INTOLERANT))
        self.lsn.listen(16)
        self.stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.lsn.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(c,), daemon=True).start()

    @staticmethod
    def _read(s, n):
        b = b""
        while len(b) < n:
            d = s.recv(n - len(b))
            if not d:
                raise EOFError
            b += d
        return b

    def _one(self, c):
        try:
            head = self._read(c, 5)
            rec = head + self._read(c, struct.unpack("!H", head[3:5])[0])
            if head[0] == 22 and hello_offers_tls13(rec):
                self.dropped += 1
                c.close()
                return
            self.passed += 1
            u = socket.create_connection(self.upstream)
            u.sendall(rec)
        except (OSError, EOFError):
            c.close()
            return
        self._relay(c, u)

    def _relay(self, c, u):
        def pipe(a, b):
            try:
                while True:
                    d = a.recv(65536)
                    if not d:
                        break
                    b.sendall(d)
                b.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=pipe, args=(u, c), daemon=True)
        t.start()
        pipe(c, u)
        t.join(30)
        c.close()
        u.close()

    def stop(self):
        self.stopping = True
        try:
            # wakes the accept() blocked on it, which else keeps the
            # port bound for the next test's proxy
            self.lsn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsn.close()


def setUpModule():
    global PF, DC, PKI
    PKI = Pki(scratch() / "backend-tls")
    PF = TlsPostfix().start()
    DC = TlsDovecot().start()


def tearDownModule():
    stop_all(PF, DC)


def config(port, backends):
    """One listener per backend, ports from port up, implicit TLS to the
    client (sluice's own generated certificate)."""
    listeners = []
    for i, b in enumerate(backends):
        b.setdefault("health_interval", 3600)
        listeners.append({"name": b["name"], "address": f"127.0.0.1:{port + i}",
                          "protocol": b["protocol"], "tls": "implicit", "backend": b["name"]})
    return {"hostname": "mail-front.test", "cores": 1, "workers": 1, "log": "stderr",
            "backends": backends, "listeners": listeners}


def smtp_backend(name, **tls):
    b = {"name": name, "protocol": "smtp", "proxy": "v2",
         "servers": [f"127.0.0.1:{PF_TLS}"], "tls": "required", "tls_mode": "implicit"}
    b.update(tls)
    return b


def send_one(sluice, listener):
    """One message through sluice's listener; returns its tag and sluice's
    log line for the session."""
    tag = unique("btls")
    host, port = sluice.addr(listener)
    mark = len(sluice.conn_logs())
    with smtplib.SMTP_SSL(host, port, context=no_verify_context(), timeout=20,
                          source_address=(CLIENT, 0)) as s:
        src = s.sock.getsockname()[1]
        s.ehlo("client.test")
        s.sendmail(SENDER, [recipient(tag)], make_message(tag))
    return tag, sluice.conn_log(CLIENT, src, listener=listener, after=mark)


def landed(tag):
    """The message with tag's Message-ID, in Postfix's Maildir (bytes)."""
    return PF.maildir_messages(containing=message_id(tag).encode())[0][1]


def refused(sluice, listener):
    """What sluice says to a client that greets and sends EHLO, up to the
    close, and sluice's log line for the session."""
    host, port = sluice.addr(listener)
    import ssl
    mark = len(sluice.conn_logs())
    raw = socket.create_connection((host, port), timeout=20, source_address=(CLIENT, 0))
    src = raw.getsockname()[1]
    s = no_verify_context().wrap_socket(raw, server_hostname="mail-front.test")
    try:
        data = b""
        while b"\r\n" not in data:
            d = s.recv(4096)
            if not d:
                break
            data += d
        s.sendall(b"EHLO client.test\r\n")
        while True:
            try:
                d = s.recv(4096)
            except (ssl.SSLError, OSError):
                break
            if not d:
                break
            data += d
    finally:
        s.close()
    return data.decode(errors="replace"), sluice.conn_log(CLIENT, src, listener=listener,
                                                          after=mark)


class BackendTls(unittest.TestCase):
    """With a TLS worker: the backend handshake's steps are jobs the core
    posts to it (backend_tls_jobs)."""

    workers = 1

    def start(self, cfg, name):
        cfg["workers"] = self.workers
        sl = Sluice(cfg, f"{name}-w{self.workers}").start()
        self.addCleanup(sl.stop)
        return sl

    def test_postfix_verified_by_ca_and_by_pin(self):
        """Mail lands through implicit TLS to Postfix, verified by the CA
        file and the name, and by the pin; Postfix saw TLS and sluice's
        PROXY header (the client's address)."""
        sl = self.start(config(43630, [
            smtp_backend("by-ca", ca_file=PKI.ca_file, server_name=NAME),
            smtp_backend("by-pin", pin_sha256=PKI.pin)]), "btls-pf")
        for listener in ("by-ca", "by-pin"):
            since = PF.log_mark()
            tag, log = send_one(sl, listener)
            msg = landed(tag)
            self.assertIn(message_id(tag).encode(), msg)
            # Postfix's own trace: TLS on its side, the client's address
            self.assertIn(f"(unknown [{CLIENT}])\n\tby backend.test (Postfix) with ESMTPS".encode(),
                          msg)
            self.assertEqual(log["listener"], listener)
            self.assertEqual(log["backend_tls"], "TLSv1.3", log)
            self.assertEqual(log["backend_hello"], "normal", log)
            self.assertEqual(log["result"], "ok", log)
            # Postfix's side: a TLS connection from the client's address.
            wait_until(lambda: "Anonymous TLS connection established from" in PF.log(since)
                       and f"[{CLIENT}]" in PF.log(since), 10,
                       "Postfix's TLS line for the client's address")
        c = sl.counters()
        self.assertEqual(c.get("backend_tls_ok", 0), 2, c)
        self.assertEqual(c.get("backend_tls_fallback", 0), 0, c)
        # each handshake's steps went as jobs: the ClientHello, then the
        # server's flight (more if it came in pieces)
        self.assertGreaterEqual(c.get("backend_tls_jobs", 0), 2 * 2, c)

    def test_resumption(self):
        """A server's next session resumes the TLS session it gave the
        last one (no certificate sent or verified again); Postfix
        delivers each message. The backend probe never resumes."""
        sl = self.start(config(43697, [
            smtp_backend("resume", ca_file=PKI.ca_file, server_name=NAME)]), "btls-resume")
        logs = []
        for _ in range(3):
            tag, log = send_one(sl, "resume")
            self.assertIn(message_id(tag).encode(), landed(tag))
            self.assertEqual(log["result"], "ok", log)
            logs.append(log)
        self.assertEqual([l["backend_resumed"] for l in logs], ["no", "yes", "yes"], logs)
        self.assertTrue(all(l["backend_tls"] == "TLSv1.3" for l in logs), logs)
        c = sl.counters()
        self.assertEqual(c.get("backend_tls_ok", 0), 3, c)
        self.assertEqual(c.get("backend_tls_resumed", 0), 2, c)

    def test_client_certificate(self):
        """With client_cert and client_key, sluice shows Postfix its
        certificate: Postfix, asking for one, verifies it against the test
        CA ("Trusted TLS connection", the subject's name in its log); the
        same backend without them is an anonymous client there."""
        sl = self.start(config(43695, [
            smtp_backend("with-cert", servers=[f"127.0.0.1:{PF_CCERT}"], ca_file=PKI.ca_file,
                         server_name=NAME, client_cert=PKI.client["cert"],
                         client_key=PKI.client["key"]),
            smtp_backend("without", servers=[f"127.0.0.1:{PF_CCERT}"], ca_file=PKI.ca_file,
                         server_name=NAME)]), "btls-ccert")
        since = PF.log_mark()
        tag, log = send_one(sl, "with-cert")
        msg = landed(tag)
        self.assertIn(message_id(tag).encode(), msg)
        self.assertEqual(log["result"], "ok", log)
        # smtpd_tls_received_header: the client certificate's CN, verified
        self.assertRegex(msg.decode(errors="replace"),
                         r'\(Client CN "sluice\.client\.test", Issuer "sluice backend test CA"'
                         r' \(verified OK\)\)')
        wait_until(lambda: "Trusted TLS connection established from" in PF.log(since), 10,
                   "Postfix's line for a verified client certificate")
        text = PF.log(since)
        self.assertIn("client-signature ECDSA", text)
        self.assertNotIn("Anonymous TLS connection", text)
        since = PF.log_mark()
        tag, log = send_one(sl, "without")
        msg = landed(tag)
        self.assertIn(message_id(tag).encode(), msg)
        self.assertNotIn(b"Client CN", msg)
        wait_until(lambda: "Anonymous TLS connection established from" in PF.log(since), 10,
                   "Postfix's line for a client without a certificate")
        self.assertNotIn("Trusted TLS connection", PF.log(since))

    def test_dovecot_imaps(self):
        """An IMAP login through sluice to Dovecot's imaps listener: Dovecot
        logs it secured, from the client's address."""
        sl = self.start(config(43640, [
            {"name": "imaps", "protocol": "imap", "proxy": "v2",
             "servers": [f"127.0.0.1:{DC_IMAPS}"], "tls": "required", "tls_mode": "implicit",
             "ca_file": PKI.ca_file, "server_name": NAME}]), "btls-dc")
        host, port = sl.addr("imaps")
        since = DC.log_mark()
        m = IMAP4_SSL(host, port, source=CLIENT, ssl_context=no_verify_context())
        m.login(MAIL_USER, MAIL_PASSWORD)
        typ, _ = m.select("INBOX")
        self.assertEqual(typ, "OK")
        m.logout()
        login = DC.login(CLIENT, since=since)
        # %c and %{secured}: "TLS" for Dovecot's own TLS (harness.Dovecot)
        self.assertRegex(login["line"], r", TLS, secured=<TLS>")
        log = sl.conn_log(CLIENT)
        self.assertEqual(log["backend_tls"], "TLSv1.3", log)

    def test_postfix_starttls(self):
        """STARTTLS to Postfix's PROXY port: EHLO, STARTTLS, 220, the
        handshake verified by the CA file, EHLO again; mail lands."""
        sl = self.start(config(43670, [
            {"name": "st", "protocol": "smtp", "proxy": "v2",
             "servers": ["127.0.0.1:10026"], "tls": "required", "tls_mode": "starttls",
             "ca_file": PKI.ca_file, "server_name": NAME}]), "btls-st")
        since = PF.log_mark()
        tag, log = send_one(sl, "st")
        self.assertIn(b"with ESMTPS", landed(tag))
        self.assertEqual(log["backend_tls"], "TLSv1.3", log)
        self.assertEqual(log["result"], "ok", log)
        wait_until(lambda: "TLS connection established from" in PF.log(since)
                   and f"[{CLIENT}]" in PF.log(since), 10,
                   "Postfix's TLS line for the client's address")
        self.assertEqual(sl.counters().get("backend_tls_ok", 0), 1)

    def test_dovecot_starttls_imap_pop3(self):
        """STARTTLS to Dovecot's IMAP, STLS to its POP3: logins through
        sluice, Dovecot saw TLS."""
        sl = self.start(config(43675, [
            {"name": "imap", "protocol": "imap", "proxy": "v2",
             "servers": ["127.0.0.1:10144"], "tls": "required", "tls_mode": "starttls",
             "ca_file": PKI.ca_file, "server_name": NAME},
            {"name": "pop3", "protocol": "pop3", "proxy": "v2",
             "servers": ["127.0.0.1:10111"], "tls": "required", "tls_mode": "starttls",
             "ca_file": PKI.ca_file, "server_name": NAME}]), "btls-dcst")
        import poplib
        from harness import POP3_SSL
        host, port = sl.addr("imap")
        since = DC.log_mark()
        m = IMAP4_SSL(host, port, source=CLIENT, ssl_context=no_verify_context())
        m.login(MAIL_USER, MAIL_PASSWORD)
        m.logout()
        login = DC.login(CLIENT, since=since)
        self.assertEqual(login["proto"], "imap")
        self.assertRegex(login["line"], r", TLS, secured=<TLS>")
        self.assertEqual(sl.conn_log(CLIENT)["backend_tls"], "TLSv1.3")
        host, port = sl.addr("pop3")
        since = DC.log_mark()
        p = POP3_SSL(host, port, source=CLIENT, context=no_verify_context())
        p.user(MAIL_USER)
        p.pass_(MAIL_PASSWORD)
        p.quit()
        login = DC.login(CLIENT, since=since)
        self.assertEqual(login["proto"], "pop3")
        self.assertRegex(login["line"], r", TLS, secured=<TLS>")
        self.assertEqual(sl.counters().get("backend_tls_ok", 0), 2)

    def test_starttls_absent(self):
        """A Postfix port without STARTTLS: tls: on relays in plaintext,
        counted; tls: required refuses with 421, logged."""
        sl = self.start(config(43685, [
            {"name": "on", "protocol": "smtp", "proxy": "v2",
             "servers": [f"127.0.0.1:{PF_NOTLS}"], "tls": "on", "pin_sha256": PKI.pin},
            {"name": "req", "protocol": "smtp", "proxy": "v2",
             "servers": [f"127.0.0.1:{PF_NOTLS}"], "tls": "required", "pin_sha256": PKI.pin}]),
            "btls-absent")
        tag, log = send_one(sl, "on")
        msg = landed(tag)
        self.assertIn(f"(unknown [{CLIENT}])\n\tby backend.test (Postfix) with ESMTP id".encode(),
                      msg)
        self.assertEqual(log["backend_tls"], "none", log)
        self.assertEqual(log["result"], "ok", log)
        text, log = refused(sl, "req")
        self.assertIn("421 4.4.2", text)
        self.assertEqual(log["listener"], "req")
        self.assertIn("offers no STARTTLS", log["reason"])
        c = sl.counters()
        self.assertEqual(c.get("backend_tls_absent", 0), 1, c)
        self.assertEqual(c.get("backend_tls_failed", 0), 1, c)
        self.assertEqual(c.get("backend_tls_ok", 0), 0, c)

    def test_wrong_certificate_refused_without_fallback(self):
        """A pin of another key, and a name the certificate does not carry:
        421 to the client, counted as verification failures, logged, and
        no conservative retry."""
        sl = self.start(config(43650, [
            smtp_backend("bad-pin", pin_sha256=PKI.other_pin),
            smtp_backend("bad-name", ca_file=PKI.ca_file, server_name="other.backend.test")]),
            "btls-bad")
        for listener in ("bad-pin", "bad-name"):
            text, log = refused(sl, listener)
            self.assertIn("421 4.4.2", text)
            self.assertEqual(log["listener"], listener)
            self.assertEqual(log["result"], "backend-failed", log)
            self.assertIn("certificate verification failed", log["reason"], log)
        c = sl.counters()
        self.assertGreaterEqual(c.get("backend_tls_verify_failed", 0), 2, c)
        self.assertEqual(c.get("backend_tls_fallback", 0), 0, c)
        self.assertEqual(c.get("backend_tls_ok", 0), 0, c)
        self.assertNotIn("conservative hello", sl.log_text())

    def test_failover_past_a_wrong_certificate(self):
        """A pool of two STARTTLS servers, one showing a certificate for
        another name (its plaintext probe finds it up): a session that
        meets it first goes on to the other server, and the mail lands;
        the bad server is counted, logged, and skipped for a while, and
        never retried with a weaker hello."""
        sl = self.start(config(43660, [
            {"name": "pair", "protocol": "smtp", "proxy": "v2",
             "servers": [f"127.0.0.1:{PF_WRONG}", "127.0.0.1:10026"],
             "tls": "required", "tls_mode": "starttls",
             "ca_file": PKI.ca_file, "server_name": NAME}]), "btls-failover")
        # each session's first pick alternates with its id: of two, one
        # meets the wrong certificate first, once its skip has run out
        for i in range(2):
            if i:
                time.sleep(2.2)
            tag, log = send_one(sl, "pair")
            self.assertIn(b"with ESMTPS", landed(tag))
            self.assertEqual(log["result"], "ok", log)
            self.assertEqual(log["backend"], "127.0.0.1:10026", log)
            self.assertEqual(log["backend_tls"], "TLSv1.3", log)
            self.assertNotIn("certificate", log["reason"], log)   # not the first server's
        c = sl.counters()
        self.assertEqual(c.get("backend_tls_verify_failed", 0), 1, c)
        self.assertEqual(c.get("backend_tls_ok", 0), 2, c)
        self.assertEqual(c.get("backend_tls_fallback", 0), 0, c)
        self.assertEqual(c.get("backend_unavailable", 0), 0, c)
        self.assertIn(f"backend 127.0.0.1:{PF_WRONG}: TLS: certificate verification failed",
                      sl.log_text())
        self.assertNotIn("conservative hello", sl.log_text())

    def test_probe_logs_a_new_reason(self):
        """A server that stays down is logged again when the reason
        changes: first nothing listens (refused), then a TLS server there
        whose certificate fails verification; the probe says so."""
        port = 43698
        sl = self.start(config(43699, [
            smtp_backend("flip", servers=[f"127.0.0.1:{port}"], proxy="none",
                         ca_file=PKI.ca_file, server_name=NAME, health_interval=1)]),
            "btls-flip")
        head = f"backend flip 127.0.0.1:{port}: down: "
        wait_until(lambda: head + "connect: Connection refused" in sl.log_text(), 10,
                   "the probe finding nothing listening")
        import ssl
        pair = pki.leaf(scratch() / "backend-tls", "p256", names=("other.test",))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair["cert"], pair["key"])
        lsn = socket.create_server(("127.0.0.1", port))
        self.addCleanup(lsn.close)
        lsn.settimeout(0.5)
        stop = threading.Event()

        def serve():
            while not stop.is_set():
                try:
                    c, _ = lsn.accept()
                except OSError:
                    continue
                try:
                    ctx.wrap_socket(c, server_side=True).close()
                except (ssl.SSLError, OSError):
                    c.close()
        t = threading.Thread(target=serve, daemon=True)
        t.start()
        self.addCleanup(t.join, 5)
        self.addCleanup(stop.set)
        wait_until(lambda: head + "TLS: certificate verification failed" in sl.log_text(), 10,
                   "the probe's new reason logged")
        # once per reason: the same failure is not logged each round
        time.sleep(2.5)
        self.assertEqual(sl.log_text().count(head + "TLS: certificate verification failed"),
                         1, sl.log_text()[-2000:])

    def test_intolerant_server(self):
        """First session: the normal hello dropped, the fallback through;
        second: straight by the conservative hello (remembered); both mails
        land; the middlebox saw exactly one TLS 1.3 hello from sessions."""
        proxy = IntolerantProxy(("127.0.0.1", PF_TLS12))
        self.addCleanup(proxy.stop)
        sl = self.start(config(43660, [
            {"name": "old", "protocol": "smtp", "proxy": "none",
             "servers": [f"127.0.0.1:{INTOLERANT}"], "tls": "required", "tls_mode": "implicit",
             "pin_sha256": PKI.pin, "server_name": NAME, "fallback_memory": 600}]), "btls-old")
        # The start-up probe got through by the conservative hello without
        # recording it: sessions decide, count and log.
        dropped0 = proxy.dropped
        self.assertGreaterEqual(dropped0, 1)
        tag1, log1 = send_one(sl, "old")
        landed(tag1)
        self.assertEqual(log1["backend_hello"], "fallback", log1)
        self.assertEqual(log1["backend_tls"], "TLSv1.2", log1)
        self.assertEqual(proxy.dropped, dropped0 + 1)
        self.assertRegex(sl.log_text(), r"backend 127\.0\.0\.1:43620: TLS handshake failed "
                         r"\(connection closed after the ClientHello\): retrying with the "
                         r"conservative hello .*remembered for 600s")
        c = sl.counters()
        self.assertEqual(c.get("backend_tls_fallback", 0), 1, c)
        self.assertEqual(c.get("backend_tls_fallback_remembered", 0), 0, c)

        tag2, log2 = send_one(sl, "old")
        landed(tag2)
        self.assertEqual(log2["backend_hello"], "remembered", log2)
        self.assertEqual(log2["backend_tls"], "TLSv1.2", log2)
        self.assertEqual(proxy.dropped, dropped0 + 1, "no second TLS 1.3 hello")
        c = sl.counters()
        self.assertEqual(c.get("backend_tls_fallback", 0), 1, c)
        self.assertEqual(c.get("backend_tls_fallback_remembered", 0), 1, c)
        self.assertEqual(c.get("backend_tls_ok", 0), 2, c)

    def test_clients_gone_during_backend_handshake(self):
        """Clients that send EHLO (the backend is opened for it) and reset
        at once: sessions end while their backend's connect or handshake
        step is under way, some while the step is with the worker (freed
        when it comes back); every session is closed and counted, a normal
        one afterwards delivers, and sluice stops cleanly (the ASAN build:
        no leak, no use after free)."""
        sl = self.start(config(43690, [
            smtp_backend("gone", ca_file=PKI.ca_file, server_name=NAME)]), "btls-gone")
        host, port = sl.addr("gone")
        n = 40
        for _ in range(n):
            # from an address of their own: a reset frees its source port
            # at once, and the normal session's line is found by its port
            raw = socket.create_connection((host, port), timeout=20,
                                           source_address=(GONE_CLIENT, 0))
            s = no_verify_context().wrap_socket(raw, server_hostname="mail-front.test")
            s.recv(4096)                      # the greeting
            s.sendall(b"EHLO client.test\r\n")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()                         # a reset
        tag, log = send_one(sl, "gone")
        self.assertIn(message_id(tag).encode(), landed(tag))
        self.assertEqual(log["result"], "ok", log)
        wait_until(lambda: sl.counters().get("conn_closed", 0) == n + 1, 15,
                   "every session closed")
        c = sl.counters()
        self.assertEqual(c.get("conn_accepted", 0), n + 1, c)
        self.assertGreaterEqual(c.get("backend_tls_ok", 0), 1, c)


class BackendTlsInline(BackendTls):
    """The same scenarios with workers: 0: the core runs each backend
    handshake step itself, at the end of its pass, through the same jobs
    (tlsw_kick)."""

    workers = 0


if __name__ == "__main__":
    unittest.main()
