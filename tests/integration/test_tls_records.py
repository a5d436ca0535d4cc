"""TLS records after the handshake, and how a TLS session ends (RFC 8446
5, 4.6.3, 6; RFC 5246 6.2, 7.2), against sluice in front of a real Postfix.

The client is Python's ssl for the handshake, over a MemoryBIO pair and a
real socket, so that the test sees every record it sends and may rewrite
them (a TLS 1.2 Finished split over two records). After the handshake the
test seals and opens the records itself with the traffic secrets Python's
key log gives (class RawTls): that is what lets it put data and
close_notify in one TCP write, fragment a KeyUpdate, send records over the
size limits, tamper with one, and see every record sluice sends back
(close_notify, alerts, its KeyUpdate).

Each scenario asserts what the client gets (the alert, close_notify and
then the TCP close, the replies) and, where mail moves, that Postfix
delivered it; resumption is checked with `openssl s_client -sess_out /
-sess_in` and Python's session reuse.

sluice runs mail-front.yaml shifted by PORT_OFFSET: submissions (implicit
TLS) on 127.0.0.1:26465, smtp (STARTTLS) on 26525.
"""

import hmac
import os
import socket
import ssl
import struct
import time
import unittest

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from harness import (SENDER, Closed, Postfix, Replies, Sluice, client_source, compare_message,
                     dot_stuff, load_example, make_message, message_id, recipient, run,
                     scratch, unique, stop_all, shifted)

PORT_OFFSET = 24000
CLIENT = "127.0.0.61"
SUBMISSIONS, SMTP = "submissions", "smtp"

# Content types and alerts (RFC 8446 5.1, 6).
CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
CLOSE_NOTIFY, UNEXPECTED_MESSAGE, BAD_RECORD_MAC, RECORD_OVERFLOW = 0, 10, 20, 22
ILLEGAL_PARAMETER, DECODE_ERROR, NO_RENEGOTIATION = 47, 50, 100
KEY_UPDATE, NEW_SESSION_TICKET, FINISHED = 24, 4, 20
MAX_PLAIN = 2 ** 14
# Where a record rule is checked: each TLS version, before the backend and
# in the relay.
EVERY_PLACE = [(version, in_relay) for version in ("1.3", "1.2") for in_relay in (False, True)]

PF = None
SL = None


def setUpModule():
    global PF, SL
    PF = Postfix().start()
    SL = Sluice(config(), "records").start()


def tearDownModule():
    stop_all(SL, PF)


def config():
    return shifted(load_example("mail-front.yaml"), PORT_OFFSET)


# ------------------------------------------------- key schedule, records ---

def hkdf_expand_label(hash_name, secret, label, length):
    """HKDF-Expand-Label(secret, label, "", length) (RFC 8446 7.1)."""
    full = b"tls13 " + label
    info = struct.pack(">HB", length, len(full)) + full + b"\x00"
    out, t, i = b"", b"", 1
    while len(out) < length:
        t = hmac.new(secret, t + info + bytes([i]), hash_name).digest()
        out += t
        i += 1
    return out[:length]


def tls12_prf(hash_name, secret, label, seed, length):
    """TLS 1.2's PRF, P_hash (RFC 5246 5)."""
    seed = label + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


def records(data):
    """Split whole records off data: ([(type, body)], the rest)."""
    out = []
    while len(data) >= 5:
        n = int.from_bytes(data[3:5], "big")
        if len(data) < 5 + n:
            break
        out.append((data[0], data[5:5 + n]))
        data = data[5 + n:]
    return out, data


def header(ctype, n):
    return bytes([ctype, 3, 3]) + n.to_bytes(2, "big")


class Direction:
    """One direction's AEAD key, IV and sequence number."""

    def __init__(self, aead, key, iv, secret=None):
        self.aead, self.key, self.iv, self.secret = aead, key, iv, secret
        self.box = aead(key)
        self.seq = 0


class RawTls(Replies):
    """A TLS client whose records after the handshake are the test's own.

    conn = RawTls(addr, version="1.3")      # TCP, then Python's handshake
    conn.send(conn.seal(APPLICATION_DATA, b"EHLO x\\r\\n"))
    conn.reply()                            # SMTP replies (harness.Replies)
    conn.events                             # every record sluice sent, opened
    """

    def __init__(self, addr, version="1.3", starttls=False, rewrite=None, timeout=10):
        self.sock = socket.create_connection(addr, timeout=timeout,
                                             source_address=client_source(CLIENT))
        self.local = self.sock.getsockname()
        self.version = version
        self.buf = b""               # application data not yet read as replies
        self.wire = b""              # server bytes not yet a whole record
        self.events = []             # ("data", bytes) ("alert", level, desc)
                                     # ("keyupdate", requested) ("ticket",) ("eof",)
        self.eof = False
        if starttls:
            self._starttls()
        self._handshake(rewrite)

    # ---- the handshake, by Python's ssl

    def _starttls(self):
        """The plaintext opening of SMTP up to STARTTLS's 220."""
        plain = _PlainSmtp(self.sock)
        assert plain.reply()[0] == 220
        plain.expect("EHLO client.test", 250)
        plain.expect("STARTTLS", 220)

    def _handshake(self, rewrite):
        keylog = scratch() / f"keylog-{os.getpid()}-{self.local[1]}-{time.time_ns()}"
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.keylog_filename = str(keylog)
        v = ssl.TLSVersion.TLSv1_3 if self.version == "1.3" else ssl.TLSVersion.TLSv1_2
        ctx.minimum_version = ctx.maximum_version = v
        if self.version == "1.2":
            ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
            ctx.options |= ssl.OP_NO_TICKET
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out)
        self.server_bytes = b""      # the server's handshake bytes, for its random
        while True:
            try:
                obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            data = out.read()
            if data and rewrite:
                data = rewrite(self, data, keylog)
            if data:
                self.sock.sendall(data)
            if done:
                break
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("sluice closed during the handshake")
            self.server_bytes += chunk
            inc.write(chunk)
        self.cipher = obj.cipher()[0]
        self._keys(keylog)
        keylog.unlink()
        # What Python did not read (sluice's first records) is ours.
        self.wire = inc.read()
        self._drain()

    def _keys(self, keylog):
        secrets = {}
        for line in keylog.read_text().splitlines():
            f = line.split()
            if len(f) == 3:
                secrets[f[0]] = (bytes.fromhex(f[1]), bytes.fromhex(f[2]))
        if self.version == "1.3":
            self.hash = "sha384" if self.cipher.endswith("SHA384") else "sha256"
            self.aead = ChaCha20Poly1305 if "CHACHA" in self.cipher else AESGCM
            self.key_len = 16 if "AES_128" in self.cipher else 32
            self.wr = self._dir13(secrets["CLIENT_TRAFFIC_SECRET_0"][1])
            self.rd = self._dir13(secrets["SERVER_TRAFFIC_SECRET_0"][1])
        else:
            client_random, master = secrets["CLIENT_RANDOM"]
            assert "AES128-GCM" in self.cipher, self.cipher
            self.key_block(master, client_random)
            self.wr.seq = self.rd.seq = 1   # each side's Finished was record 0

    def key_block(self, master, client_random):
        """TLS 1.2 AES-128-GCM keys (RFC 5246 6.3, RFC 5288 3)."""
        kb = tls12_prf("sha256", master, b"key expansion",
                       _server_random(self.server_bytes) + client_random, 40)
        self.wr = Direction(AESGCM, kb[0:16], kb[32:36])
        self.rd = Direction(AESGCM, kb[16:32], kb[36:40])

    def _dir13(self, secret):
        return Direction(self.aead, hkdf_expand_label(self.hash, secret, b"key", self.key_len),
                         hkdf_expand_label(self.hash, secret, b"iv", 12), secret)

    def next_keys(self, d):
        """The next generation of a TLS 1.3 direction's keys (RFC 8446 7.2)."""
        n = len(d.secret)
        return self._dir13(hkdf_expand_label(self.hash, d.secret, b"traffic upd", n))

    # ---- records, sealed and opened here

    @staticmethod
    def _nonce13(d):
        return bytes(a ^ b for a, b in zip(d.iv, d.seq.to_bytes(12, "big")))

    def seal(self, ctype, content, pad=0):
        """One record of ctype with content (TLS 1.3: pad zeros after the
        inner type), under the client's current keys."""
        d = self.wr
        if self.version == "1.3":
            inner = content + bytes([ctype]) + bytes(pad)
            hdr = header(APPLICATION_DATA, len(inner) + 16)
            body = d.box.encrypt(self._nonce13(d), inner, hdr)
        else:
            explicit = d.seq.to_bytes(8, "big")
            aad = explicit + bytes([ctype, 3, 3]) + len(content).to_bytes(2, "big")
            body = explicit + d.box.encrypt(d.iv + explicit, content, aad)
            hdr = header(ctype, len(body))
        d.seq += 1
        return hdr + body

    def open(self, ctype, body):
        """(content type, content) of a record sluice sent."""
        d = self.rd
        if self.version == "1.3":
            if ctype != APPLICATION_DATA:
                return ctype, body          # a plaintext alert
            inner = d.box.decrypt(self._nonce13(d), body, header(ctype, len(body)))
            inner = inner.rstrip(b"\x00")
            ctype, content = inner[-1], inner[:-1]
        else:
            explicit = body[:8]
            aad = d.seq.to_bytes(8, "big") + bytes([ctype, 3, 3]) + \
                (len(body) - 24).to_bytes(2, "big")
            content = d.box.decrypt(d.iv + explicit, body[8:], aad)
        d.seq += 1
        return ctype, content

    def send(self, data):
        """Bytes (whole records, made with seal()) in one TCP write."""
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError) as e:
            raise Closed(f"connection closed while sending: {e}") from None

    def write(self, data):
        """Application data in records of at most 2^14 bytes, one write."""
        self.send(b"".join(self.seal(APPLICATION_DATA, data[i:i + MAX_PLAIN])
                           for i in range(0, len(data), MAX_PLAIN)))

    def pump(self):
        """Read once from the socket; open what came. False at EOF."""
        if self.eof:
            return False
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        except socket.timeout:
            raise AssertionError(f"nothing from sluice within {self.sock.gettimeout()} s;"
                                 f" so far {self.events}") from None
        if not chunk:
            self.eof = True
            self.events.append(("eof",))
            return False
        self.wire += chunk
        self._drain()
        return True

    def _drain(self):
        recs, self.wire = records(self.wire)
        for ctype, body in recs:
            ctype, content = self.open(ctype, body)
            if ctype == APPLICATION_DATA:
                self.events.append(("data", content))
                self.buf += content
            elif ctype == ALERT:
                self.events.append(("alert", content[0], content[1]))
            elif ctype == HANDSHAKE:
                self._post_handshake(content)
            else:
                self.events.append(("record", ctype, content))

    def _post_handshake(self, msgs):
        while msgs:
            mtype, n = msgs[0], int.from_bytes(msgs[1:4], "big")
            body, msgs = msgs[4:4 + n], msgs[4 + n:]
            if mtype == KEY_UPDATE:
                self.events.append(("keyupdate", body[0]))
                self.rd = self.next_keys(self.rd)
            elif mtype == NEW_SESSION_TICKET:
                self.events.append(("ticket",))
            else:
                self.events.append(("handshake", mtype))

    def _recv(self):
        """For Replies: application data, b"" once the stream ends."""
        before = len(self.buf)
        while len(self.buf) == before:
            if self.closed_tls() or not self.pump():
                return b""
        data, self.buf = self.buf, b""
        return data

    def closed_tls(self):
        """Did sluice send close_notify or a fatal alert? (A warning such
        as no_renegotiation ends nothing.)"""
        return any(e[0] == "alert" and (e[1] == 2 or e[2] == CLOSE_NOTIFY)
                   for e in self.events)

    def until_eof(self, timeout=10):
        """Read until sluice closes TCP; the events after the last
        application data. Fails if it is still open after timeout."""
        deadline = time.monotonic() + timeout
        self.sock.settimeout(timeout)
        while self.pump():
            if time.monotonic() > deadline:
                raise AssertionError(f"still open after {timeout} s: {self.events}")
        return self.events

    def alerts(self):
        return [(e[1], e[2]) for e in self.events if e[0] == "alert"]

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


class _PlainSmtp(Replies):
    """The plaintext part of a STARTTLS session, on the same socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _recv(self):
        return self.sock.recv(4096)

    def send(self, data):
        self.sock.sendall(data)


def _server_random(data):
    """The random of the ServerHello in the server's first bytes."""
    recs, _ = records(data)
    hs = b"".join(body for ctype, body in recs if ctype == HANDSHAKE)
    assert hs[0] == 2, f"not a ServerHello: {hs[:8]!r}"
    return hs[6:38]


def split_finished(conn, data, keylog):
    """rewrite= for a TLS 1.2 handshake: the client's Finished, sealed by
    Python as one record, goes as two (8 + 8 bytes of the 16-byte message,
    RFC 5246 6.2.1 allows handshake messages over several records). The
    client's records after it start at sequence number 2."""
    recs, rest = records(data)
    assert not rest
    if not any(t == CHANGE_CIPHER_SPEC for t, _ in recs):
        return data
    client_random, master = next(
        (bytes.fromhex(f[1]), bytes.fromhex(f[2])) for f in
        (l.split() for l in keylog.read_text().splitlines()) if f[:1] == ["CLIENT_RANDOM"])
    conn.key_block(master, client_random)
    out, after_ccs = b"", False
    for ctype, body in recs:
        if ctype == HANDSHAKE and after_ccs:
            # The Finished, under the new keys at sequence 0.
            aad = (0).to_bytes(8, "big") + bytes([HANDSHAKE, 3, 3]) + \
                (len(body) - 24).to_bytes(2, "big")
            fin = conn.wr.box.decrypt(conn.wr.iv + body[:8], body[8:], aad)
            assert fin[0] == FINISHED and len(fin) == 16, fin
            conn.wr.seq = 0
            out += conn.seal(HANDSHAKE, fin[:8]) + conn.seal(HANDSHAKE, fin[8:])
            conn.split_done = True
        else:
            out += header(ctype, len(body)) + body
        after_ccs = after_ccs or ctype == CHANGE_CIPHER_SPEC
    return out


# ---------------------------------------------------------------- tests ---

class Case(unittest.TestCase):
    maxDiff = None

    def tearDown(self):
        # A test that crashed sluice fails itself; the next ones get a new one.
        SL.replace_if_dead()

    def conn(self, version="1.3", **kw):
        c = RawTls(SL.addr(SUBMISSIONS), version=version, **kw)
        self.addCleanup(c.close)
        return c

    def session(self, version, in_relay):
        """A greeted session on TLS version, moved into the relay (EHLO
        answered by the backend) when in_relay."""
        c = self.conn(version)
        self.greeted(c)
        if in_relay:
            self.relay(c)
        return c

    def greeted(self, c):
        code, lines = c.reply()
        self.assertEqual(code, 220, lines)
        self.assertIn("ESMTP", lines[0])

    def relay(self, c):
        """EHLO: the backend answers, the session relays from here."""
        c.write(b"EHLO client.test\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        self.assertNotIn("STARTTLS", " ".join(lines))

    def open_data(self, c, tag):
        """MAIL, RCPT and DATA: the backend waits for the message."""
        c.write(f"MAIL FROM:<{SENDER}>\r\n".encode())
        self.assertEqual(c.reply()[0], 250)
        c.write(f"RCPT TO:<{recipient(tag)}>\r\n".encode())
        self.assertEqual(c.reply()[0], 250)
        c.write(b"DATA\r\n")
        self.assertEqual(c.reply()[0], 354)

    def transaction(self, c, tag, msg=None):
        msg = msg or make_message(tag)
        self.open_data(c, tag)
        c.write(dot_stuff(msg))
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        return msg

    def assert_delivered(self, tag, sent, c):
        mid = message_id(tag).encode()
        copies = PF.maildir_messages(mid, count=1, timeout=15)
        self.assertEqual(len(copies), 1, f"copies of {mid}")
        self.assertIsNone(compare_message(sent, copies[0][1]))
        self.assertEqual(PF.client_of(message_id(tag))[0], CLIENT)

    def assert_close_notify_then_eof(self, c, timeout=10):
        """sluice's close_notify, then its TCP close, and nothing else."""
        events = c.until_eof(timeout)
        tail = [e for e in events if e[0] in ("alert", "eof", "record", "handshake")]
        self.assertEqual(tail, [("alert", 1, CLOSE_NOTIFY), ("eof",)], events)

    def assert_alert_then_eof(self, c, desc, timeout=10):
        """A fatal alert desc, then the TCP close; no close_notify."""
        events = c.until_eof(timeout)
        tail = [e for e in events if e[0] in ("alert", "eof")]
        self.assertEqual(tail, [("alert", 2, desc), ("eof",)], events)

    def log_line(self, c):
        """sluice's line for the connection, closed by the client first
        (else sluice writes it when its linger after the close ends)."""
        c.close()
        return SL.conn_log(CLIENT, c.local[1])


class CloseNotify(Case):
    """Every TLS session ends with close_notify both ways (RFC 8446 6.1,
    DESIGN.md §2 rule 8): the client's is answered once what is owed went
    out, and sluice sends its own when it closes first."""

    def test_data_and_close_notify_in_one_write(self):
        """The last command and close_notify in one TCP write: the command
        is relayed and answered, then sluice's close_notify and the close
        (not a hang until the idle timeout)."""
        c = self.conn()
        self.greeted(c)
        self.relay(c)
        tag = unique("cn-coalesced")
        msg = self.transaction(c, tag)
        c.send(c.seal(APPLICATION_DATA, b"NOOP\r\n") + c.seal(ALERT, b"\x01\x00"))
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        self.assert_close_notify_then_eof(c)
        self.assert_delivered(tag, msg, c)
        line = self.log_line(c)
        self.assertEqual(line["result"], "ok", line)

    def test_message_and_close_notify_in_one_write(self):
        """A whole message, its final dot and close_notify in one write
        (TLS 1.2): Postfix gets all of it, the 250 comes back, then
        close_notify."""
        c = self.conn("1.2")
        self.greeted(c)
        self.relay(c)
        tag = unique("cn-data")
        msg = make_message(tag)
        c.write(f"MAIL FROM:<{SENDER}>\r\n".encode())
        self.assertEqual(c.reply()[0], 250)
        c.write(f"RCPT TO:<{recipient(tag)}>\r\nDATA\r\n".encode())
        self.assertEqual(c.reply()[0], 250)
        self.assertEqual(c.reply()[0], 354)
        c.send(c.seal(APPLICATION_DATA, dot_stuff(msg)) + c.seal(ALERT, b"\x01\x00"))
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        self.assert_close_notify_then_eof(c)
        self.assert_delivered(tag, msg, c)

    def test_close_notify_alone_in_relay(self):
        c = self.conn("1.2")
        self.greeted(c)
        self.relay(c)
        c.send(c.seal(ALERT, b"\x01\x00"))
        self.assert_close_notify_then_eof(c)
        line = self.log_line(c)
        self.assertEqual(line["result"], "ok", line)

    def test_close_notify_before_the_backend(self):
        """Still in sluice's own dialogue (greeted, no EHLO yet)."""
        c = self.conn()
        self.greeted(c)
        c.write(b"NOOP\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.send(c.seal(ALERT, b"\x01\x00"))
        self.assert_close_notify_then_eof(c)
        line = self.log_line(c)
        self.assertEqual(line["result"], "ok", line)
        self.assertEqual(line["reason"], "client closed before the backend was needed", line)

    def test_close_notify_after_starttls(self):
        c = RawTls(SL.addr(SMTP), starttls=True)
        self.addCleanup(c.close)
        c.write(b"EHLO client.test\r\n")
        self.assertEqual(c.reply()[0], 250)
        c.send(c.seal(ALERT, b"\x01\x00"))
        self.assert_close_notify_then_eof(c)

    def test_sluice_closes_first_after_quit(self):
        """QUIT answered by sluice itself (before EHLO) and by Postfix (in
        the relay): 221, then close_notify, then the TCP close."""
        for version, in_relay in EVERY_PLACE:
            with self.subTest(version=version, relay=in_relay):
                c = self.session(version, in_relay)
                c.write(b"QUIT\r\n")
                code, lines = c.reply()
                self.assertEqual(code, 221, lines)
                self.assert_close_notify_then_eof(c)

    def test_client_vanishes_without_close_notify(self):
        """A TCP FIN without close_notify (common among mail clients) ends
        the session as a close, not an error."""
        c = self.conn()
        self.greeted(c)
        self.relay(c)
        c.sock.shutdown(socket.SHUT_WR)
        c.until_eof()
        line = self.log_line(c)
        self.assertEqual(line["result"], "ok", line)


class Fragmented(Case):
    """Handshake messages may span records (RFC 8446 5.1, RFC 5246
    6.2.1)."""

    def test_tls12_finished_in_two_records(self):
        """The client's Finished in two records: the records after it
        (sequence numbers from 2) open, and mail goes through."""
        c = self.conn("1.2", rewrite=split_finished)
        self.assertTrue(getattr(c, "split_done", False), "the Finished was not split")
        c.wr.seq = 2
        self.greeted(c)
        self.relay(c)
        tag = unique("fin-split")
        msg = self.transaction(c, tag)
        self.assert_delivered(tag, msg, c)

    def test_keyupdate_in_two_records(self):
        """A KeyUpdate split over two records is one KeyUpdate; the client
        writes under its new keys from there, and sluice reads them."""
        c = self.conn()
        self.greeted(c)
        self.relay(c)
        c.send(c.seal(HANDSHAKE, bytes([KEY_UPDATE, 0, 0])) + c.seal(HANDSHAKE, b"\x01\x00"))
        c.wr = c.next_keys(c.wr)
        tag = unique("ku-split")
        msg = self.transaction(c, tag)
        self.assert_delivered(tag, msg, c)
        self.assertNotIn("keyupdate", [e[0] for e in c.events], "none was requested")


class KeyUpdate(Case):
    """TLS 1.3 KeyUpdate (RFC 8446 4.6.3, 5.1)."""

    def test_requested_update_is_answered(self):
        """update_requested: sluice sends its own KeyUpdate before its next
        application data, which comes under its new keys."""
        c = self.conn()
        self.greeted(c)
        self.relay(c)
        c.send(c.seal(HANDSHAKE, bytes([KEY_UPDATE, 0, 0, 1, 1])))
        c.wr = c.next_keys(c.wr)
        c.write(b"NOOP\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        kinds = [e[0] for e in c.events]
        self.assertIn("keyupdate", kinds, c.events)
        ku = kinds.index("keyupdate")
        self.assertEqual(c.events[ku], ("keyupdate", 0), "update_not_requested in the answer")
        self.assertEqual(kinds[ku + 1:], ["data"], c.events)
        # And both sides go on under the new keys.
        tag = unique("ku-req")
        msg = self.transaction(c, tag)
        self.assert_delivered(tag, msg, c)

    def test_two_keyupdates_in_one_record(self):
        """Handshake messages must not span a key change (RFC 8446 5.1):
        two KeyUpdates in one record get unexpected_message."""
        c = self.conn()
        self.greeted(c)
        ku = bytes([KEY_UPDATE, 0, 0, 1, 0])
        c.send(c.seal(HANDSHAKE, ku + ku))
        self.assert_alert_then_eof(c, UNEXPECTED_MESSAGE)
        self.assertNotEqual(self.log_line(c)["result"], "ok")

    def test_malformed_keyupdate(self):
        """A KeyUpdate without its byte is a decode_error; one whose value
        is neither 0 nor 1, or one longer than a byte, an illegal_parameter
        (RFC 8446 4.6.3, 6.2; OpenSSL checks the length against the
        message's maximum before it parses)."""
        for body, alert in ((b"", DECODE_ERROR), (b"\x07", ILLEGAL_PARAMETER),
                            (b"\x00\x00", ILLEGAL_PARAMETER)):
            with self.subTest(body=body):
                c = self.conn()
                self.greeted(c)
                c.send(c.seal(HANDSHAKE, bytes([KEY_UPDATE]) + len(body).to_bytes(3, "big")
                              + body))
                self.assert_alert_then_eof(c, alert)


class RecordLimits(Case):
    """Record sizes (RFC 8446 5.1, 5.2; RFC 5246 6.2.1-6.2.3):
    record_overflow beyond them, and the largest legal record accepted."""

    def test_largest_tls13_record_accepted(self):
        """2^14 bytes of content plus padding to 2^14 + 256 of ciphertext:
        legal, and the message it carries is delivered."""
        c = self.conn()
        self.greeted(c)
        self.relay(c)
        tag = unique("rec-max")
        line = b"x" * 78 + b"\r\n"
        body = (line * (MAX_PLAIN // len(line) + 1))[:MAX_PLAIN - 2] + b"\r\n"
        msg = make_message(tag, body=body.decode())
        head, tail = msg[:len(msg) - MAX_PLAIN], msg[len(msg) - MAX_PLAIN:]
        self.open_data(c, tag)
        c.write(head)
        rec = c.seal(APPLICATION_DATA, tail, pad=256 - 1 - 16)
        self.assertEqual(len(rec) - 5, MAX_PLAIN + 256)
        c.send(rec + c.seal(APPLICATION_DATA, b".\r\n"))
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        self.assert_delivered(tag, msg, c)

    def test_tls13_ciphertext_over_limit(self):
        """A TLS 1.3 record of 2^14 + 256 + 1 bytes: record_overflow (the
        TLS 1.2 limit of 2^14 + 2048 does not apply)."""
        c = self.conn()
        self.greeted(c)
        c.send(header(APPLICATION_DATA, MAX_PLAIN + 257) + os.urandom(MAX_PLAIN + 257))
        self.assert_alert_then_eof(c, RECORD_OVERFLOW)

    def test_plaintext_over_2_14(self):
        """A record that opens to 2^14 + 1 bytes of content:
        record_overflow, in TLS 1.3 and TLS 1.2."""
        for version in ("1.3", "1.2"):
            with self.subTest(version=version):
                c = self.conn(version)
                self.greeted(c)
                c.send(c.seal(APPLICATION_DATA, b"x" * (MAX_PLAIN + 1)))
                self.assert_alert_then_eof(c, RECORD_OVERFLOW)
                line = self.log_line(c)
                self.assertEqual(line["result"], "error", line)

    def test_tls12_ciphertext_over_limit(self):
        """TLS 1.2: a record over 2^14 + 2048 bytes of ciphertext."""
        c = self.conn("1.2")
        self.greeted(c)
        c.send(header(APPLICATION_DATA, MAX_PLAIN + 2049) + os.urandom(MAX_PLAIN + 2049))
        self.assert_alert_then_eof(c, RECORD_OVERFLOW)


class FatalErrors(Case):
    """A record error is answered with its alert before the TCP close
    (RFC 8446 6.2, RFC 5246 7.2.2), never with a bare close."""

    def test_bad_record_mac(self):
        for version, in_relay in EVERY_PLACE:
            with self.subTest(version=version, relay=in_relay):
                c = self.session(version, in_relay)
                rec = bytearray(c.seal(APPLICATION_DATA, b"NOOP\r\n"))
                rec[-1] ^= 1                      # the tag
                c.send(bytes(rec))
                self.assert_alert_then_eof(c, BAD_RECORD_MAC)
                line = self.log_line(c)
                self.assertEqual(line["result"], "error", line)
                self.assertRegex(line["reason"], "^TLS read failed: ", line)

    def test_renegotiation_refused(self):
        """A ClientHello inside TLS 1.2: sluice's policies allow no
        renegotiation; the warning no_renegotiation (RFC 5246 7.2.2) says
        so, and the session goes on."""
        c = self.conn("1.2")
        self.greeted(c)
        hello = bytes([1, 0, 0, 4]) + b"\x03\x03\x00\x00"
        c.send(c.seal(HANDSHAKE, hello))
        c.write(b"NOOP\r\n")
        code, lines = c.reply()
        self.assertEqual(code, 250, lines)
        self.assertEqual(c.alerts(), [(1, NO_RENEGOTIATION)], c.events)


class Resumption(Case):
    """TLS 1.2 session-ID resumption (tickets off) when the client closed
    first: the session stays in the cache (RFC 5246 7.2.1)."""

    def s_client(self, *args):
        host, port = SL.addr(SUBMISSIONS)
        rc, out = run(["openssl", "s_client", "-connect", f"{host}:{port}", "-bind",
                       f"{CLIENT}:0", "-tls1_2", "-no_ticket", *args], input=b"", timeout=30)
        self.assertEqual(rc, 0, out)
        return out

    def test_s_client_resumes_after_closing_first(self):
        sess = scratch() / f"sess-{os.getpid()}-{time.time_ns()}.pem"
        self.addCleanup(lambda: sess.unlink(missing_ok=True))
        first = self.s_client("-sess_out", sess)   # stdin at EOF: the client closes first
        self.assertRegex(first, r"(?m)^New, TLSv1\.2, Cipher is", first)
        time.sleep(0.3)                                # sluice has freed that session
        again = self.s_client("-sess_in", sess)
        self.assertRegex(again, r"(?m)^Reused, TLSv1\.2, Cipher is", again)
        lines = [kv for kv in SL.conn_logs() if kv["client"].startswith(CLIENT + ":")]
        self.assertEqual(lines[-1].get("resumed"), "yes", lines[-1])

    def test_resumes_after_client_vanished(self):
        """The client leaves with a FIN, or a reset, and no close_notify:
        its session still resumes."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.options |= ssl.OP_NO_TICKET
        for how in ("fin", "reset"):
            with self.subTest(how=how):
                raw = socket.create_connection(SL.addr(SUBMISSIONS), timeout=10,
                                               source_address=client_source(CLIENT))
                s = ctx.wrap_socket(raw)
                self.assertFalse(s.session_reused)
                s.recv(4096)                       # the greeting
                session = s.session
                if how == "reset":
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()                          # no close_notify: Python does not send one
                time.sleep(0.3)
                raw2 = socket.create_connection(SL.addr(SUBMISSIONS), timeout=10,
                                                source_address=client_source(CLIENT))
                s2 = ctx.wrap_socket(raw2, session=session)
                self.addCleanup(s2.close)
                self.assertEqual(s2.recv(4096)[:4], b"220 ")
                self.assertTrue(s2.session_reused, f"not resumed after a {how}")
                s2.close()


if __name__ == "__main__":
    unittest.main()
