"""tls/hello against real clients: the test records its own corpus.

Each test starts a Recorder, a TCP listener on 127.0.0.1 that keeps the first
bytes one client sends (until a whole ClientHello is in, or the client goes
quiet) and closes; then it runs one client, told to offer something
(`openssl s_client` across versions, ciphers, groups, signature algorithms,
SNI, ALPN, the fallback SCSV, a resumption; `gnutls-cli` priority strings;
`curl`; Python's ssl module). hello_dump (build/tests/tools/hello_dump, or
under $SLUICE_BUILD_DIR) must report exactly what the client was told to send.

Every recording is then mangled: cut short at each length (HELLO_MORE, never
a crash), and each byte of each length field flipped (a rejection with a
reason; "more" where a record or handshake length grew past the data).

Only the standard library; a missing client fails (never skips) its test.
"""

import concurrent.futures
import json
import os
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest
from pathlib import Path

from harness import REPO, listening, run, tool, wait_until

BUILD = Path(os.environ.get("SLUICE_BUILD_DIR") or REPO / "build")
HELLO_DUMP = BUILD / "tests" / "tools" / "hello_dump"
LOCAL = "127.0.0.1"
SCSVS = {0x00ff, 0x5600}        # TLS_EMPTY_RENEGOTIATION_INFO_SCSV, TLS_FALLBACK_SCSV
# OpenSSL 3 refuses TLS 1.0/1.1 below security level 0, whatever openssl.cnf says.
OLD_TLS = {"OPENSSL_CONF": "/dev/null"}


def setUpModule():
    if not os.access(HELLO_DUMP, os.X_OK):
        raise AssertionError(f"{HELLO_DUMP} is not built (ninja -C {BUILD})")


# ------------------------------------------------------------- recording ---

def hello_complete(data):
    """A whole ClientHello is in data (TLS records), or data is not TLS
    records at all (then whatever came is the recording)."""
    if not data or data[0] != 0x16:
        return bool(data)
    msg, pos = b"", 0
    while pos + 5 <= len(data):
        rlen = int.from_bytes(data[pos + 3:pos + 5], "big")
        msg += data[pos + 5:pos + 5 + rlen]
        pos += 5 + rlen
    return len(msg) >= 4 and len(msg) >= 4 + int.from_bytes(msg[1:4], "big")


class Recorder:
    """Listens on 127.0.0.1 (a free port), accepts one client, keeps what it
    sends first, closes. Use: with Recorder() as r: <client to r.port>;
    then r.data."""

    def __init__(self, quiet=3.0, timeout=30.0):
        self.sock = socket.socket()
        self.sock.bind((LOCAL, 0))
        self.sock.listen(1)
        self.sock.settimeout(timeout)
        self.port = self.sock.getsockname()[1]
        self.quiet, self.data, self.error = quiet, b"", None
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.thread.join(40)
        self.sock.close()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError as e:
            self.error = f"no client connected: {e}"
            return
        with conn:
            conn.settimeout(self.quiet)
            try:
                while not hello_complete(self.data) and len(self.data) < 1 << 20:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    self.data += chunk
            except socket.timeout:
                pass            # the client went quiet: keep what came

    def result(self, client_output=""):
        if self.error or not self.data:
            raise AssertionError(f"nothing recorded ({self.error or 'client sent nothing'});"
                                 f" client said:\n{client_output}")
        return self.data


def record(cmd, env=None, timeout=30):
    """Run a client against a fresh Recorder ("PORT" in cmd is its port);
    returns the bytes it sent first. The client fails when we close: fine."""
    with Recorder() as r:
        rc, out = run([str(c).replace("PORT", str(r.port)) for c in cmd], input=b"",
                      timeout=timeout, env=env)
    return r.result(out)


def record_python(ctx, server_hostname=None):
    """What Python's ssl module sends for ctx."""
    with Recorder() as r:
        with socket.create_connection((LOCAL, r.port), timeout=10) as s:
            try:
                ctx.wrap_socket(s, server_hostname=server_hostname)
            except (ssl.SSLError, OSError):
                pass
    return r.result()


# ----------------------------------------------------------------- dumping ---

def dump(data):
    """hello_dump's JSON for data; a crash, an error or noise fails."""
    p = subprocess.run([str(HELLO_DUMP), "--raw"], input=data, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20)
    if p.returncode not in (0, 1) or p.stderr:
        raise AssertionError(f"hello_dump exit {p.returncode} on {data.hex()}:"
                             f" {p.stderr.decode(errors='replace')}")
    j = json.loads(p.stdout)
    if (p.returncode == 0) != (j["result"] == "ok"):
        raise AssertionError(f"exit {p.returncode} with result {j['result']}")
    return j


def dump_many(inputs):
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(dump, inputs))


def codes(values):
    return [int(v, 16) for v in values]


# ----------------------------------------------------------- length fields ---

def length_fields(data):
    """(wire offsets of its bytes, what) of every length field of a recorded
    ClientHello that tls/hello checks: the record and handshake headers, the
    body's vectors, each extension's length and the lists inside those
    extensions it parses. An independent, trusting walk: the recording is
    known good."""
    fields, msg, where, pos = [], b"", [], 0
    while pos + 5 <= len(data) and not (len(msg) >= 4 and
                                        len(msg) >= 4 + int.from_bytes(msg[1:4], "big")):
        fields.append(([pos + 3, pos + 4], "record length"))
        rlen = int.from_bytes(data[pos + 3:pos + 5], "big")
        where += range(pos + 5, pos + 5 + rlen)
        msg += data[pos + 5:pos + 5 + rlen]
        pos += 5 + rlen

    def u8(o):
        return msg[o]

    def u16(o):
        return int.from_bytes(msg[o:o + 2], "big")

    def field(o, width, what):
        fields.append(([where[o + i] for i in range(width)], what))

    field(1, 3, "handshake length")
    p = 4 + 2 + 32
    field(p, 1, "session_id")
    p += 1 + u8(p)
    field(p, 2, "cipher_suites")
    p += 2 + u16(p)
    field(p, 1, "compression_methods")
    p += 1 + u8(p)
    if p == len(msg):
        return fields
    field(p, 2, "extensions")
    end, p = p + 2 + u16(p), p + 2
    while p < end:
        t, n, d = u16(p), u16(p + 2), p + 4
        field(p + 2, 2, f"extension 0x{t:04x}")
        q = d
        if t == 0:                          # server_name
            field(q, 2, "server_name list")
            q += 2
            while q < d + n:
                field(q + 1, 2, "host_name")
                q += 3 + u16(q + 1)
        elif t in (10, 13, 50):             # groups, signature algorithms
            field(q, 2, f"0x{t:04x} list")
        elif t in (11, 43, 45, 0xff01):     # 1-byte lists
            field(q, 1, f"0x{t:04x} list")
        elif t == 16:                       # ALPN
            field(q, 2, "ALPN list")
            q += 2
            while q < d + n:
                field(q, 1, "protocol name")
                q += 1 + u8(q)
        elif t == 51:                       # key_share
            field(q, 2, "key_share list")
            q += 2
            while q < d + n:
                field(q + 2, 2, "key_exchange")
                q += 4 + u16(q + 2)
        elif t == 41:                       # pre_shared_key
            field(q, 2, "identities")
            ids_end, q = q + 2 + u16(q), q + 2
            while q < ids_end:
                field(q, 2, "identity")
                q += 2 + u16(q) + 4
            field(q, 2, "binders")
            q += 2
            while q < d + n:
                field(q, 1, "binder")
                q += 1 + u8(q)
        p = d + n
    return fields


# ------------------------------------------------------------------ tests ---

class CorpusCase(unittest.TestCase):
    maxDiff = None

    def hello(self, data, **want):
        """The recording parses, hello_dump's summary matches want, and the
        recording's mangled versions are handled; returns the summary."""
        j = dump(data)
        self.assertEqual(j["result"], "ok", j)
        self.assertEqual(j["consumed"], len(data))
        self.assertEqual(len(j["ja3_md5"]), 32)
        self.assertEqual(len(j["ja4"]), 36)
        self.assertRegex(j["ja4"], r"^t(13|12|11|10|s3)[di]\d{4}[0-9a-z]{2}_[0-9a-f]{12}_[0-9a-f]{12}$")
        self.check(j, **want)
        self.truncations(data)
        self.flips(data)
        return j

    def check(self, j, sni=False, alpn=None, ciphers=None, ciphers_include=(), groups=None,
              versions=None, legacy=None, version=None, sigalgs=None, key_shares_in_groups=True,
              flags=(), no_flags=()):
        """sni: the name, or None for none (False: not checked). ciphers: the
        suites offered, SCSVs aside, in order. versions: supported_versions
        exactly ([] for none)."""
        if sni is not False:
            self.assertEqual(j["sni"], sni)
            self.assertEqual("sni" in j["flags"], sni is not None)
            self.assertEqual(j["ja4"][3], "d" if sni else "i")
        if alpn is not None:
            self.assertEqual(j["alpn"], alpn)
            self.assertEqual(j["ja4"][8:10], alpn[0][0] + alpn[0][-1] if alpn else "00")
        offered = codes(j["ciphers"])
        self.assertEqual(len(offered), j["ciphers_n"])
        if ciphers is not None:
            self.assertEqual([c for c in offered if c not in SCSVS], ciphers)
        for c in ciphers_include:
            self.assertIn(c, offered)
        if groups is not None:
            self.assertEqual(codes(j["groups"]), groups)
        if key_shares_in_groups:
            self.assertLessEqual(set(codes(j["key_shares"])), set(codes(j["groups"])))
        if versions is not None:
            self.assertEqual(codes(j["versions"]), versions)
            self.assertEqual("supported_versions" in j["flags"], bool(versions))
        if legacy is not None:
            self.assertEqual(int(j["legacy_version"], 16), legacy)
        if version is not None:
            self.assertEqual(int(j["version"], 16), version)
            self.assertEqual(j["ja4"][1:3], {0x0304: "13", 0x0303: "12", 0x0302: "11",
                                             0x0301: "10"}[version])
        if sigalgs is not None:
            self.assertEqual(codes(j["sigalgs"]), sigalgs)
        for f in flags:
            self.assertIn(f, j["flags"])
        for f in no_flags:
            self.assertNotIn(f, j["flags"])
        # the JA3 string lists what was parsed (no GREASE from these clients)
        ja3 = j["ja3"].split(",")
        self.assertEqual(int(ja3[0]), int(j["legacy_version"], 16))
        self.assertEqual(ja3[1], "-".join(str(c) for c in offered))
        self.assertEqual(ja3[2], "-".join(str(e) for e in codes(j["extensions"])))
        self.assertEqual(ja3[3], "-".join(str(g) for g in codes(j["groups"])))

    def truncations(self, data):
        """Every proper prefix of a good hello: incomplete, never a crash."""
        for k, j in enumerate(dump_many([data[:k] for k in range(len(data))])):
            with self.subTest(cut=k):
                self.assertEqual(j["result"], "more", j)
                self.assertGreater(j["need"], k)

    def flips(self, data):
        """Each byte of each length field inverted: rejected with a reason;
        a record or handshake length may instead now ask for more bytes."""
        cases = []
        for offsets, what in length_fields(data):
            for o in offsets:
                bad = bytearray(data)
                bad[o] ^= 0xff
                cases.append((what, o, bytes(bad)))
        self.assertGreater(len(cases), 10)
        for (what, o, bad), j in zip(cases, dump_many([c[2] for c in cases])):
            with self.subTest(field=what, offset=o):
                allowed = ("bad", "more") if what in ("record length", "handshake length") \
                    else ("bad",)
                self.assertIn(j["result"], allowed, j)
                if j["result"] == "bad":
                    self.assertNotEqual(j["reason"], "internal", j)
                    self.assertTrue(j["explain"])
                    self.assertLessEqual(j["error_offset"], len(bad))


class OpenSSL(CorpusCase):
    """openssl s_client, told what to offer."""

    def s_client(self, *args, env=None):
        return record(["openssl", "s_client", "-connect", f"{LOCAL}:PORT", *args], env=env)

    def test_tls1_0(self):
        data = self.s_client("-tls1", "-cipher", "DEFAULT@SECLEVEL=0", env=OLD_TLS)
        self.hello(data, legacy=0x0301, version=0x0301, versions=[], sni=None,
                   flags=["reneg_scsv"], no_flags=["fallback_scsv"])

    def test_tls1_1_fallback_scsv(self):
        data = self.s_client("-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0", "-fallback_scsv",
                             env=OLD_TLS)
        j = self.hello(data, legacy=0x0302, version=0x0302, versions=[],
                       ciphers_include=[0x5600], flags=["fallback_scsv"])
        self.assertEqual(j["ja3"].split(",")[0], "770")

    def test_tls1_2_ciphers_and_sni(self):
        data = self.s_client("-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256:AES256-SHA",
                             "-servername", "mx1.example.test")
        self.hello(data, sni="mx1.example.test", ciphers=[0xc02f, 0x0035], legacy=0x0303,
                   version=0x0303, versions=[], flags=["ems", "reneg_scsv"])

    def test_tls1_3_suites_and_groups(self):
        data = self.s_client("-tls1_3", "-ciphersuites",
                             "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
                             "-groups", "X25519:P-256", "-noservername")
        j = self.hello(data, sni=None, ciphers=[0x1302, 0x1303], groups=[0x001d, 0x0017],
                       versions=[0x0304], version=0x0304, flags=["key_share", "psk_modes"])
        self.assertEqual(codes(j["key_shares"]), [0x001d])

    def test_groups_secp384r1_only(self):
        data = self.s_client("-groups", "P-384", "-servername", "p384.example.test")
        j = self.hello(data, sni="p384.example.test", groups=[0x0018])
        self.assertEqual(codes(j["key_shares"]), [0x0018])

    def test_sigalgs_and_alpn(self):
        data = self.s_client("-sigalgs", "ECDSA+SHA256:RSA-PSS+SHA256", "-alpn", "smtp,imap",
                             "-servername", "mail.example.test")
        self.hello(data, sni="mail.example.test", alpn=["smtp", "imap"],
                   sigalgs=[0x0403, 0x0804], flags=["alpn"])

    def test_psk_resumption(self):
        """A second connection with a ticket from a real server: the hello
        carries pre_shared_key, last, with one identity and its binder."""
        with tempfile.TemporaryDirectory() as d:
            cert, key, sess = Path(d, "c.pem"), Path(d, "k.pem"), Path(d, "sess.pem")
            rc, out = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                           "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert,
                           "-subj", "/CN=psk.example.test", "-days", "1"])
            self.assertEqual(rc, 0, out)
            port = free_port()
            server = subprocess.Popen([tool("openssl"), "s_server", "-accept", f"{LOCAL}:{port}",
                                       "-cert", cert, "-key", key, "-naccept", "1", "-www",
                                       "-tls1_3"], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_until(lambda: listening(LOCAL, port), 10, f"openssl s_server on {port}")
                rc, out = run(["openssl", "s_client", "-connect", f"{LOCAL}:{port}",
                               "-servername", "psk.example.test", "-sess_out", sess,
                               "-ign_eof"], input=b"GET / HTTP/1.0\r\n\r\n")
                self.assertEqual(rc, 0, out)
                self.assertTrue(sess.exists(), out)
            finally:
                server.kill()
                server.wait()
            data = self.s_client("-sess_in", sess, "-servername", "psk.example.test")
        j = self.hello(data, sni="psk.example.test", version=0x0304,
                       flags=["psk", "psk_modes"])
        self.assertEqual(j["extensions"][-1], "0x0029")
        self.assertEqual(j["psk_identities"], 1)


class GnuTLS(CorpusCase):
    """gnutls-cli with priority strings."""

    def gnutls(self, priority, *args):
        return record(["gnutls-cli", "--insecure", "--port", "PORT", "--priority", priority,
                       *args, LOCAL])

    def test_tls1_2_priority(self):
        data = self.gnutls("NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:-KX-ALL:"
                           "+ECDHE-RSA:-GROUP-ALL:+GROUP-SECP384R1",
                           "--alpn", "smtp", "--sni-hostname", "gnutls.example.test")
        self.hello(data, sni="gnutls.example.test", alpn=["smtp"], ciphers=[0xc030],
                   groups=[0x0018], legacy=0x0303, version=0x0303, versions=[],
                   flags=["reneg_info", "ems"])

    def test_tls1_3_priority(self):
        data = self.gnutls("NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305:"
                           "-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1",
                           "--sni-hostname", "gnutls13.example.test")
        j = self.hello(data, sni="gnutls13.example.test", ciphers=[0x1303],
                       groups=[0x001d, 0x0017], versions=[0x0304], version=0x0304)
        self.assertTrue(j["key_shares"])


class Curl(CorpusCase):
    """curl (OpenSSL underneath) on https://."""

    def curl(self, *args, host="curl.example.test"):
        return record(["curl", "-sk", "--max-time", "10", *args,
                       "--resolve", f"{host}:PORT:{LOCAL}", f"https://{host}:PORT/"])

    def test_tls_max_1_2_ciphers(self):
        data = self.curl("--tlsv1.2", "--tls-max", "1.2", "--ciphers",
                         "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305")
        j = self.hello(data, sni="curl.example.test", ciphers=[0xc030, 0xcca9], versions=[],
                       version=0x0303)
        self.assertIn("http/1.1", j["alpn"])

    def test_tls1_3_http1(self):
        data = self.curl("--tlsv1.3", "--tls13-ciphers", "TLS_AES_128_GCM_SHA256", "--http1.1",
                         host="curl13.example.test")
        self.hello(data, sni="curl13.example.test", alpn=["http/1.1"], ciphers=[0x1301],
                   versions=[0x0304], version=0x0304)


class PythonSSL(CorpusCase):
    """Python's ssl module: set_ciphers, ALPN, version bounds, SNI."""

    def context(self, lo, hi):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version, ctx.maximum_version = lo, hi
        return ctx

    def test_tls1_2(self):
        ctx = self.context(ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305")
        ctx.set_alpn_protocols(["imap", "pop3"])
        data = record_python(ctx, "py.example.test")
        self.hello(data, sni="py.example.test", alpn=["imap", "pop3"],
                   ciphers=[0xc02b, 0xcca8], versions=[], version=0x0303)

    def test_tls1_3_no_sni(self):
        ctx = self.context(ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
        ctx.set_alpn_protocols(["smtp"])
        data = record_python(ctx)
        self.hello(data, sni=None, alpn=["smtp"], ciphers=[0x1302, 0x1303, 0x1301],
                   versions=[0x0304], version=0x0304)


def free_port():
    with socket.socket() as s:
        s.bind((LOCAL, 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    unittest.main()
