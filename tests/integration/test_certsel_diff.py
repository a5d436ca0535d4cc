"""Differential test: tls/certsel against real handshakes through sluice.

A few hundred client configurations, drawn from a fixed seed (versions,
TLS 1.2 cipher lists, TLS 1.3 suites, groups, signature algorithms, SNI),
each against cert sets of different shapes and the three policies. For each
one `openssl s_client` makes a real handshake through sluice, by way of a
relay in the test that keeps the ClientHello it passes on; `sluice explain`
then gives certsel's verdict on exactly that ClientHello (the certificate,
or the rule that fails). They must agree:

- explain names a certificate  <=>  the handshake succeeds, and sluice's log
  line names the same certificate (cert=KIND);
- explain names a failing rule  <=>  the handshake fails, and sluice's log
  line gives the same rule as its reason;

and sluice's certsel_disagree counter stays 0 (it counts the handshakes
where OpenSSL did otherwise than certsel chose). Configurations for which
OpenSSL's client sends no ClientHello at all (it refuses, say, TLS 1.3 with
only SHA-1 signature schemes) are counted apart; at least 300 handshakes
are compared.

The clients run with OPENSSL_CONF=/dev/null and @SECLEVEL=0, so that they
send exactly the lists they are given (Debian's openssl.cnf would drop
SHA-1 schemes and old versions from them first).
"""

import os
import random
import re
import socket
import tempfile
import threading
import unittest
from pathlib import Path

import pki
from harness import Sluice, run, scratch, sluice_bin, wait_until

SEED = int(os.environ.get("SLUICE_DIFF_SEED", "20261122"))
CASES = int(os.environ.get("SLUICE_DIFF_CASES", "440"))
MIN_COMPARED = int(os.environ.get("SLUICE_DIFF_MIN", "300"))
NAME = "mail.example.test"
BASE = 39500

TLS12 = ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
         "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
         "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
         "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA", "AES128-GCM-SHA256",
         "AES128-SHA", "AES256-SHA", "DHE-RSA-AES128-GCM-SHA256"]
TLS13 = ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"]
GROUPS = ["X25519", "P-256", "P-384", "P-521", "X448"]
SIGALGS = ["ecdsa_secp256r1_sha256", "ecdsa_secp384r1_sha384", "ecdsa_secp521r1_sha512",
           "rsa_pss_rsae_sha256", "rsa_pss_rsae_sha384", "rsa_pkcs1_sha256",
           "rsa_pkcs1_sha384", "ed25519", "rsa_pkcs1_sha1", "ecdsa_sha1"]
OSSL_SIGALG = {"ecdsa_sha1": "ECDSA+SHA1"}   # OpenSSL 3.0's list has no such name
VERSIONS = {  # s_client flags, explain --versions
    "1.3": (["-tls1_3"], "tls1.3"),
    "1.2": (["-tls1_2"], "tls1.2"),
    "1.2+1.3": (["-no_tls1", "-no_tls1_1"], "tls1.2,tls1.3"),
    "1.0": (["-tls1"], "tls1.0"),
    "1.1": (["-tls1_1"], "tls1.1"),
}

# Cert set shapes (key types), each on listeners under each policy.
SHAPES = {"all": ["p256", "ed25519", "p384", "rsa"], "p384-rsa": ["p384", "rsa"],
          "p384": ["p384"], "rsa": ["rsa"], "p256-ed25519": ["p256", "ed25519"],
          "ed25519": ["ed25519"]}
POLICIES = ["intermediate", "modern", "legacy"]


def sample(rng, pool, lo=1, hi=None):
    """A random non-empty sub-list of pool, in a random order."""
    k = rng.randint(lo, hi or len(pool))
    return rng.sample(pool, k)


def client_cases(n, seed):
    rng = random.Random(seed)
    for i in range(n):
        case = {
            "version": rng.choice(["1.3", "1.2", "1.2+1.3", "1.2+1.3", "1.2", "1.0", "1.1"]),
            "ciphers": sample(rng, TLS12, 1, 6),
            "suites": sample(rng, TLS13, 1, 3),
            "groups": sample(rng, GROUPS, 1, 3),
            "sigalgs": sample(rng, SIGALGS, 1, 5),
            "sni": rng.random() < 0.7,
            "shape": rng.choice(list(SHAPES)),
            "policy": rng.choice(POLICIES),
        }
        # TLS 1.0 and 1.1 have no AEAD suites: a client told to offer only
        # those would not even connect.
        if case["version"] in ("1.0", "1.1") and not any(
                c.endswith("-SHA") for c in case["ciphers"]):
            case["ciphers"].append(rng.choice([c for c in TLS12 if c.endswith("-SHA")]))
        yield case


def hello_records(data):
    """The TLS records that carry the first handshake message of data (the
    ClientHello), or None if it is not all there."""
    out, msg, at = b"", b"", 0
    while at + 5 <= len(data) and data[at] == 22:
        n = int.from_bytes(data[at + 3:at + 5], "big")
        if at + 5 + n > len(data):
            return None
        out += data[at:at + 5 + n]
        msg += data[at + 5:at + 5 + n]
        at += 5 + n
        if len(msg) >= 4 and len(msg) >= 4 + int.from_bytes(msg[1:4], "big"):
            return out
    return None


class Relay:
    """One connection passed on to (host, port), both ways; keeps the first
    bytes the client sent."""

    def __init__(self, target):
        self.lsn = socket.socket()
        self.lsn.bind(("127.0.0.1", 0))
        self.lsn.listen(1)
        self.addr = self.lsn.getsockname()
        self.target = target
        self.first = b""
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _pump(self, a, b, keep):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                if keep and len(self.first) < 65536:
                    self.first += data
                b.sendall(data)
        except OSError:
            pass
        try:
            b.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _run(self):
        c, _ = self.lsn.accept()
        s = socket.create_connection(self.target)
        t = threading.Thread(target=self._pump, args=(s, c, False), daemon=True)
        t.start()
        self._pump(c, s, True)
        t.join(10)
        c.close()
        s.close()
        self.lsn.close()

    def wait(self):
        self.thread.join(15)


class Differential(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        d = Path(tempfile.mkdtemp(prefix="diff-", dir=scratch()))
        leaves = {k: pki.leaf(d, k, names=(NAME,)) for k in ("p256", "ed25519", "p384", "rsa")}
        sets, listeners, cls.listener = [], [], {}
        port = BASE
        for shape, kinds in SHAPES.items():
            sets.append({"name": shape, "certs": [leaves[k] for k in kinds]})
            for policy in POLICIES:
                name = f"{shape}-{policy}"
                listeners.append({"name": name, "address": f"127.0.0.1:{port}",
                                  "protocol": "smtp", "tls": "implicit", "backend": "pf",
                                  "cert_sets": [shape], "policy": policy})
                cls.listener[(shape, policy)] = name
                port += 1
        cfg = {"hostname": NAME, "cores": 2, "workers": 2,
               "backends": [{"name": "pf", "protocol": "smtp", "proxy": "none",
                             "servers": ["127.0.0.1:10025"]}],
               "cert_sets": sets, "listeners": listeners}
        cls.sl = Sluice(cfg, "diff").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def explain(self, hello, listener):
        rc, out = run([sluice_bin(), "explain", "-c", self.sl.path, "--listener", listener,
                       hello.hex()])
        self.assertIn(rc, (0, 1), out)
        m = re.search(r"^verdict: (?:cert \d+ (\S+) |FAIL \(.*?\) (\S+) )", out, re.M)
        self.assertTrue(m, out)
        return ("ok", m.group(1)) if m.group(1) else ("fail", m.group(2)), out

    def handshake(self, case, listener):
        relay = Relay(self.sl.addr(listener))
        host, port = relay.addr
        args = ["openssl", "s_client", "-connect", f"{host}:{port}", "-ign_eof",
                *VERSIONS[case["version"]][0],
                "-cipher", ":".join(case["ciphers"]) + ":@SECLEVEL=0",
                "-ciphersuites", ":".join(case["suites"]),
                "-groups", ":".join(case["groups"]),
                "-sigalgs", ":".join(OSSL_SIGALG.get(a, a) for a in case["sigalgs"])]
        args += ["-servername", NAME] if case["sni"] else ["-noservername"]
        before = len(self.sl.conn_logs())
        rc, out = run(args, input=b"QUIT\r\n", env={"OPENSSL_CONF": "/dev/null"})
        self.assertIn("CONNECTED(", out, f"s_client did not connect: {case}")
        relay.wait()
        hello = hello_records(relay.first)
        line = wait_until(lambda: (lambda new: new[-1] if new else None)(
            [l for l in self.sl.conn_logs()[before:] if l["listener"] == listener]),
            10, "sluice's log line of the handshake")
        return ("ok", line["cert"]) if "220 " in out and line["tls"] != "none" else \
            ("fail", line["reason"]), hello, line

    def test_certsel_agrees_with_openssl(self):
        mismatches = []
        counts = {"ok": 0, "fail": 0, "no hello": 0}
        for i, case in enumerate(client_cases(CASES, SEED)):
            listener = self.listener[(case["shape"], case["policy"])]
            (got, detail), hello, line = self.handshake(case, listener)
            if hello is None:
                # OpenSSL's client refused its own configuration.
                self.assertEqual(got, "fail", line)
                counts["no hello"] += 1
                continue
            (kind, what), explained = self.explain(hello, listener)
            counts[kind] += 1
            agree = kind == got and (what == detail if kind == "ok" else what + ":" in detail)
            if not agree:
                mismatches.append(f"case {i} {case} on {listener}:\n  explain: {kind} {what}\n"
                                  f"  handshake: {got} {detail}\n  hello: {hello.hex()}")
        self.assertEqual(mismatches, [], f"{len(mismatches)} of {CASES}:\n" +
                         "\n".join(mismatches[:10]))
        # Enough compared, and the draw covers both outcomes well.
        self.assertGreaterEqual(counts["ok"] + counts["fail"], MIN_COMPARED, counts)
        self.assertGreater(counts["ok"], MIN_COMPARED // 5, counts)
        self.assertGreater(counts["fail"], MIN_COMPARED // 10, counts)
        self.assertEqual(self.sl.counters().get("certsel_disagree", 0), 0)
        print(f"\ncertsel differential: {counts}", flush=True)


    def real_client(self, cmd, listener):
        """cmd (with HOST and PORT in it) through the relay to listener:
        (outcome of sluice's log line, the ClientHello, the line)."""
        relay = Relay(self.sl.addr(listener))
        host, port = relay.addr
        before = len(self.sl.conn_logs())
        run([str(c).replace("HOST", host).replace("PORT", str(port)) for c in cmd],
            input=b"QUIT\r\n", timeout=20)
        relay.wait()
        line = wait_until(lambda: (lambda new: new[-1] if new else None)(
            [l for l in self.sl.conn_logs()[before:] if l["listener"] == listener]),
            10, "sluice's log line of the handshake")
        got = ("ok", line["cert"]) if line["tls"] != "none" else ("fail", line["reason"])
        return got, hello_records(relay.first), line

    def test_other_real_clients(self):
        """GnuTLS, curl and Python's ssl module: their own ClientHellos,
        as captured, explained the way the handshake went."""
        gnutls = ["gnutls-cli", "--insecure", "--port", "PORT", "HOST"]
        clients = [
            gnutls + ["--priority", "NORMAL"],
            gnutls + ["--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-ECDHE-ECDSA"],
            gnutls + ["--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.2:-GROUP-ALL:+GROUP-SECP256R1"],
            gnutls + ["--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3:-SIGN-ALL:+SIGN-RSA-PSS-RSAE-SHA256"],
            gnutls + ["--priority", "NORMAL:-VERS-ALL:+VERS-TLS1.3:-SIGN-ALL:+SIGN-EdDSA-Ed25519"],
            ["curl", "-sk", "--max-time", "10", "smtps://HOST:PORT", "-X", "QUIT"],
            ["curl", "-sk", "--max-time", "10", "--tls-max", "1.2", "--ciphers",
             "ECDHE-RSA-AES128-GCM-SHA256", "smtps://HOST:PORT", "-X", "QUIT"],
            ["/usr/bin/python3", "-c",
             "import socket,ssl,sys; c=ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); "
             "c.check_hostname=False; c.verify_mode=ssl.CERT_NONE; "
             "s=c.wrap_socket(socket.create_connection((sys.argv[1],int(sys.argv[2])))); "
             "s.recv(100); s.sendall(b'QUIT\\r\\n'); s.recv(100)", "HOST", "PORT"],
        ]
        compared, outcomes = 0, set()
        for cmd in clients:
            for shape in ("all", "p384-rsa", "p384", "ed25519"):
                listener = self.listener[(shape, "intermediate")]
                with self.subTest(client=" ".join(cmd[:4]), shape=shape):
                    (got, detail), hello, line = self.real_client(cmd, listener)
                    self.assertIsNotNone(hello, line)
                    (kind, what), explained = self.explain(hello, listener)
                    self.assertEqual(kind, got, f"{explained}\n{line}")
                    if kind == "ok":
                        self.assertEqual(what, detail, explained)
                    else:
                        self.assertIn(what + ":", detail, explained)
                    compared += 1
                    outcomes.add(kind)
        self.assertEqual(compared, len(clients) * 4)
        self.assertEqual(outcomes, {"ok", "fail"})


if __name__ == "__main__":
    unittest.main()
