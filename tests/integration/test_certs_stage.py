"""Who would break (issue 11): a staged certificate or policy is checked
against the ClientHellos sluice recorded, and commit refuses a change that
breaks a recent client unless forced.

A real sluice serves cert set mail, one ECDSA P-256 certificate, with a
real sluice-control beside it. Real clients make handshakes: `openssl
s_client` as a Windows/Exchange sender's TLS 1.2 hello (P-256 only,
ECDSA+SHA256 and RSA+SHA256, two ECDHE AES128-GCM suites) and OpenSSL's own
TLS 1.3 hello. Then a P-384 certificate is staged in place of the P-256 one
(a renewal that changed curve):

- `sluicectl certs check` names the P-256-only fingerprint, its listener
  and its handshakes, and the reason in words (TLS 1.2 forbids an ECDSA
  certificate on a curve the client does not offer, RFC 8422 5.1); the
  TLS 1.3 client is not named;
- `sluicectl certs commit` refuses (exit 1) and changes nothing: the P-256
  certificate is still served;
- `sluicectl certs commit --force` commits: new handshakes show the P-384
  certificate, and the P-256-only client now fails, as the check said.

The same for `sluicectl policy stage LISTENER modern`: the TLS 1.2 client
is named (version_too_old), commit refuses, --force commits.
"""

import os
import re
import socket
import unittest
from pathlib import Path

from cryptography import x509

import pki
from harness import Sluice, SluiceControl, no_verify_context, run, scratch, stop_all, wait_until

BASE = 40400          # listener ports: BASE + n
NAME = "mail.example.test"
EXCHANGE = ["-tls1_2", "-groups", "P-256", "-sigalgs", "ECDSA+SHA256:RSA+SHA256",
            "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"]


def s_client(addr, args):
    """openssl s_client to an implicit-TLS listener, QUIT after the
    handshake: (handshake done, output)."""
    rc, out = run(["openssl", "s_client", "-connect", f"{addr[0]}:{addr[1]}",
                   "-servername", NAME, *args], input=b"QUIT\r\n", timeout=20)
    return bool(re.search(r"^(New|Reused), TLSv1\.[23], Cipher is (?!\(NONE\))", out, re.M)), out


def served_serial(addr):
    """The serial of the certificate a TLS 1.3 client gets."""
    with socket.create_connection(addr, timeout=10) as s:
        with no_verify_context().wrap_socket(s, server_hostname=NAME) as t:
            return x509.load_der_x509_certificate(t.getpeercert(binary_form=True)).serial_number


def serial_file(path):
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number


class StagedCurveChange(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.d = scratch() / f"certs-stage-{os.getpid()}"
        cls.d.mkdir(parents=True, exist_ok=True)
        p256 = pki.leaf(cls.d / "p256", "p256", names=(NAME,))
        cls.live = {"cert": str(cls.d / "live.crt"), "key": str(cls.d / "live.key")}
        for part in ("cert", "key"):
            Path(cls.live[part]).write_bytes(Path(p256[part]).read_bytes())
            os.chmod(cls.live[part], 0o600 if part == "key" else 0o644)
        cls.p256 = p256
        cls.p384 = pki.leaf(cls.d / "p384", "p384", names=(NAME,))
        cfg = {
            "hostname": NAME, "cores": 2, "workers": 1,
            "backends": [{"name": "pf", "protocol": "smtp", "proxy": "none",
                          "servers": ["127.0.0.1:10025"]}],
            "cert_sets": [{"name": "mail", "names": [NAME], "certs": [dict(cls.live)]}],
            "listeners": [{"name": "smtps", "address": f"127.0.0.1:{BASE}", "protocol": "smtp",
                           "tls": "implicit", "backend": "pf", "cert_sets": ["mail"]}],
        }
        cls.sl = Sluice(cfg, name="certs-stage").start()
        cls.sc = SluiceControl(cls.sl).start()

    @classmethod
    def tearDownClass(cls):
        stop_all(cls.sc, cls.sl)

    def test_check_names_the_client_commit_refuses_force_commits(self):
        addr = self.sl.addr("smtps")
        for _ in range(3):
            ok, out = s_client(addr, EXCHANGE)
            self.assertTrue(ok, out)
        for _ in range(2):
            ok, out = s_client(addr, ["-tls1_3"])
            self.assertTrue(ok, out)
        old = serial_file(self.p256["cert"])
        self.assertEqual(served_serial(addr), old)

        # The dataplane's record: the Exchange fingerprint, by listener.
        def exchange_row():
            rows = [r for r in self.sl.ctl("hellos", since=3600)["hellos"]
                    if r["listener"] == "smtps" and r["ja4"].startswith("t12")]
            return rows[0] if rows and rows[0]["ok"] == 3 else None
        wait_until(exchange_row, 10, "the Exchange hellos recorded and done")
        ja4 = exchange_row()["ja4"]

        rc, out, err = self.sc.ctl("certs", "stage", "mail", "--cert", self.p384["cert"],
                                   "--key", self.p384["key"])
        self.assertEqual(rc, 0, err)

        # check: the P-256-only client is named, with its reason; not the
        # TLS 1.3 one.
        rc, out, err = self.sc.ctl("certs", "check")
        self.assertEqual(rc, 0, err)
        self.assertIn("BREAKS listener smtps: 1 fingerprint, 3 handshakes in the last 24 h, "
                      "would get no certificate: the client offers only secp256r1", out)
        self.assertIn(ja4, out)
        rc, chk = self.sc.json("certs", "check")
        self.assertEqual(rc, 0, chk)
        breaks = chk["impact"]["breaks"]
        self.assertEqual([b["ja4"] for b in breaks], [ja4])
        self.assertEqual(breaks[0]["listener"], "smtps")
        self.assertEqual(breaks[0]["count"], 3)
        self.assertEqual(breaks[0]["clients"], ["127.0.0.1"])
        self.assertEqual(breaks[0]["rule"], "ecdsa_curve_not_offered")
        self.assertFalse(chk["impact"]["ok"])
        self.assertTrue(any(c.get("change") == "replaced" and c["set"] == "mail"
                            for c in chk["impact"]["changes"]), chk["impact"]["changes"])

        # commit refuses, and nothing changes.
        rc, out, err = self.sc.ctl("certs", "commit")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("would break", out + err)
        self.assertEqual(served_serial(addr), old)
        self.assertEqual(serial_file(self.live["cert"]), old)

        # --force commits: new handshakes get the P-384 certificate, and the
        # P-256-only client fails as the check said.
        rc, out, err = self.sc.ctl("certs", "commit", "--force")
        self.assertEqual(rc, 0, out + err)
        new = serial_file(self.p384["cert"])
        wait_until(lambda: served_serial(addr) == new, 1.5, "the P-384 certificate served")
        self.assertEqual(serial_file(self.live["cert"]), new)
        ok, out = s_client(addr, EXCHANGE)
        self.assertFalse(ok, out)


class StagedPolicy(unittest.TestCase):
    """policy stage: modern (TLS 1.3 only) on a listener where the Exchange
    sender's TLS 1.2 hello was seen: check names it, commit refuses,
    --force commits."""

    @classmethod
    def setUpClass(cls):
        cfg = {
            "hostname": NAME, "cores": 2, "workers": 1,
            "backends": [{"name": "pf", "protocol": "smtp", "proxy": "none",
                          "servers": ["127.0.0.1:10025"]}],
            "listeners": [{"name": "smtps", "address": f"127.0.0.1:{BASE + 10}",
                           "protocol": "smtp", "tls": "implicit", "backend": "pf",
                           "policy": "intermediate"}],
        }
        cls.sl = Sluice(cfg, name="policy-stage").start()
        cls.sc = SluiceControl(cls.sl).start()

    @classmethod
    def tearDownClass(cls):
        stop_all(cls.sc, cls.sl)

    def test_check_names_the_tls12_client_commit_refuses_force_commits(self):
        addr = self.sl.addr("smtps")
        for _ in range(2):
            ok, out = s_client(addr, EXCHANGE)
            self.assertTrue(ok, out)
        ok, out = s_client(addr, ["-tls1_3"])
        self.assertTrue(ok, out)
        wait_until(lambda: sum(r["ok"] for r in self.sl.ctl("hellos")["hellos"]) >= 3, 10,
                   "the handshakes recorded")

        rc, out, err = self.sc.ctl("policy", "stage", "smtps", "modern")
        self.assertEqual(rc, 0, err)
        rc, chk = self.sc.json("policy", "check")
        self.assertEqual(rc, 0, chk)
        breaks = chk["impact"]["breaks"]
        self.assertEqual(len(breaks), 1, breaks)
        self.assertTrue(breaks[0]["ja4"].startswith("t12"), breaks)
        self.assertEqual((breaks[0]["count"], breaks[0]["policy_now"], breaks[0]["policy_after"],
                          breaks[0]["rule"]), (2, "intermediate", "modern", "version_too_old"))
        self.assertIn({"what": "policy", "listener": "smtps", "old": "intermediate",
                       "new": "modern", "old_rules": 0, "new_rules": 0}, chk["impact"]["changes"])

        rc, out, err = self.sc.ctl("policy", "commit")
        self.assertEqual(rc, 1, out + err)
        ok, out = s_client(addr, EXCHANGE)
        self.assertTrue(ok, "refused commit changed nothing:\n" + out)

        rc, out, err = self.sc.ctl("policy", "commit", "--force")
        self.assertEqual(rc, 0, out + err)
        self.assertIn("policy: modern", self.sl.path.read_text())
        wait_until(lambda: not s_client(addr, EXCHANGE)[0], 1.5, "TLS 1.2 refused")
        ok, out = s_client(addr, ["-tls1_3"])
        self.assertTrue(ok, out)


if __name__ == "__main__":
    unittest.main()
