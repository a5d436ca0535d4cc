"""Cert sets and resumption (DESIGN.md section 4).

- Loading: every broken certificate file an operator meets is refused by
  `sluice --check` with the file, line, key and the reason, and nothing
  starts: a key of another certificate, an expired or not yet valid
  certificate, a chain out of order, a file that cannot be read or does not
  exist, a key type sluice does not serve, two certificates of one key type
  in a set, a configured name a certificate does not cover.
- Serving: a set of RSA, ECDSA P-256, P-384 and Ed25519 for the same names
  gives each client a certificate it can use; SNI picks the set.
- Resumption: tickets and session IDs resume on any core and any worker,
  across a restart with a shared ticket key file, and across ticket key
  rotation while the old key may still be in use.

sluice talks to no backend here: the sessions end at QUIT, before one is
needed.
"""

import copy
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import pki
from harness import Sluice, client_source, run, scratch, sluice_bin, wait_until

CLIENT = "127.0.0.41"
BASE = 39000          # listener ports: BASE + n (clear of the other tests' ranges)
NAME = "mail.example.test"


def config(listeners, **top):
    cfg = {"hostname": NAME, "cores": 2, "workers": 2,
           "backends": [{"name": "pf", "protocol": "smtp", "proxy": "none",
                         "servers": ["127.0.0.1:10025"]}],
           "listeners": listeners}
    cfg.update(top)
    return cfg


def listener(name, port, **kw):
    l = {"name": name, "address": f"127.0.0.1:{BASE + port}", "protocol": "smtp",
         "tls": "implicit", "backend": "pf"}
    l.update(kw)
    return l


def check(cfg):
    """sluice --check on cfg: (exit code, output)."""
    path = scratch() / f"certs-check-{os.getpid()}.yaml"
    import yaml
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return run([sluice_bin(), "--check", "-c", path])


def s_client(addr, *args, sess_in=None, sess_out=None, servername=None):
    """openssl s_client to an implicit-TLS SMTP listener, QUIT after the
    banner: (exit code, output, "New"/"Reused"/None)."""
    cmd = ["openssl", "s_client", "-connect", f"{addr[0]}:{addr[1]}", "-ign_eof"]
    if servername:
        cmd += ["-servername", servername]
    if sess_in:
        cmd += ["-sess_in", str(sess_in)]
    if sess_out:
        cmd += ["-sess_out", str(sess_out)]
    cmd += list(args)
    rc, out = run(cmd, input=b"QUIT\r\n", timeout=20)
    m = re.search(r"^(New|Reused), ", out, re.M)
    return rc, out, m.group(1) if m else None


class BadCertificates(unittest.TestCase):
    """Each broken file is refused by --check with its reason."""

    @classmethod
    def setUpClass(cls):
        cls.d = Path(tempfile.mkdtemp(prefix="certs-", dir=scratch()))
        cls.rsa = pki.leaf(cls.d, "rsa")
        cls.p256 = pki.leaf(cls.d, "p256")

    def refused(self, certs, reason, where="listeners[0].certs[0]", **kw):
        rc, out = check(config([listener("smtps", 0, certs=certs, **kw)]))
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, rf"certs-check-\d+\.yaml:\d+: {re.escape(where)}: ", out)
        self.assertRegex(out, reason, out)
        return out

    def test_good_files_pass(self):
        rc, out = check(config([listener("smtps", 0, certs=[self.rsa, self.p256])]))
        self.assertEqual(rc, 0, out)
        self.assertIn(": ok: 1 listeners", out)

    def test_key_of_another_certificate(self):
        other = pki.leaf(self.d, "rsa", names=("other.example.test",))
        entry = {"cert": self.rsa["cert"], "key": other["key"]}
        self.refused([entry], rf"{re.escape(other['key'])}: key does not match the certificate")

    def test_expired(self):
        e = pki.leaf(self.d, "p256", names=("expired.example.test",),
                     not_before=pki.NOW - 400 * pki.DAY, not_after=pki.NOW - 30 * pki.DAY)
        self.refused([e], rf"{re.escape(e['cert'])}: expired on \d{{4}}-\d\d-\d\d")

    def test_not_yet_valid(self):
        e = pki.leaf(self.d, "p256", names=("future.example.test",),
                     not_before=pki.NOW + 30 * pki.DAY, not_after=pki.NOW + 400 * pki.DAY)
        self.refused([e], r": not valid before \d{4}-\d\d-\d\d")

    def test_chain_in_wrong_order(self):
        good, reversed_, misordered, _ = pki.chain(self.d, "p256")
        rc, out = check(config([listener("smtps", 0, certs=[good])]))
        self.assertEqual(rc, 0, out)
        self.refused([reversed_], r"(key does not match|the chain is not in order)")
        self.refused([misordered], r"the chain is not in order: certificate 2 of the file "
                                   r"does not sign the one before it")

    def test_unreadable_and_missing(self):
        self.refused([{"cert": str(self.d), "key": self.rsa["key"]}],
                     rf"{re.escape(str(self.d))}: cannot read certificate: Is a directory")
        missing = str(self.d / "nope.crt")
        self.refused([{"cert": missing, "key": self.rsa["key"]}],
                     rf"{re.escape(missing)}: cannot read certificate: No such file or directory")
        self.refused([{"cert": self.rsa["cert"], "key": str(self.d / "nope.key")}],
                     r"nope.key: cannot read key: No such file or directory")

    def test_not_pem(self):
        junk = self.d / "junk.crt"
        junk.write_text("this is not a certificate\n")
        self.refused([{"cert": str(junk), "key": self.rsa["key"]}],
                     r"junk.crt: no PEM certificate in file")

    def test_key_types_sluice_does_not_serve(self):
        for kind, word in (("ed448", "ed448"), ("rsa1024", "1024-bit RSA key")):
            with self.subTest(kind=kind):
                self.refused([pki.leaf(self.d, kind)], word)

    def test_two_certificates_of_one_type(self):
        other = pki.leaf(self.d, "rsa", names=("two.example.test",))
        self.refused([self.rsa, other], r"a second rsa certificate \(the first is .*\); a "
                     r"cert set holds one per key type", where="listeners[0].certs[1]")

    def test_name_not_covered(self):
        cfg = config([listener("smtps", 0, cert_sets=["mail"])],
                     cert_sets=[{"name": "mail", "names": [NAME, "imap.example.test"],
                                 "certs": [self.rsa]}])
        rc, out = check(cfg)
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"cert_sets\[0\]\.certs\[0\]: .*: does not cover the name "
                              r"imap\.example\.test of its cert set")

    def test_unknown_cert_set(self):
        rc, out = check(config([listener("smtps", 0, cert_sets=["nope"])]))
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"listeners\[0\]\.cert_sets\[0\]: no cert set named 'nope'")

    def test_bad_ticket_key_file(self):
        bad = self.d / "ticket.key"
        bad.write_bytes(os.urandom(79))
        bad.chmod(0o600)    # a key file group or others can read is refused first
        rc, out = check(config([listener("smtps", 0)], tickets={"key_file": str(bad)}))
        self.assertNotEqual(rc, 0, out)
        self.assertIn("tickets.key_file: " + str(bad) + ": 79 bytes; expected 80 per key", out)


class CertSets(unittest.TestCase):
    """Four key types for the same names: each client gets one it can use."""

    @classmethod
    def setUpClass(cls):
        d = Path(tempfile.mkdtemp(prefix="sets-", dir=scratch()))
        cls.all = [pki.leaf(d, k) for k in ("rsa", "p256", "p384", "ed25519")]
        other = pki.leaf(d, "p256", names=("imap.example.test", "*.imap.example.test"))
        cfg = config([listener("smtps", 1, cert_sets=["mail", "imap"])],
                     cert_sets=[{"name": "mail", "names": [NAME], "certs": cls.all},
                                {"name": "imap", "certs": [other]}])
        cls.sl = Sluice(cfg, "certsets").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def served(self, *args, servername=NAME):
        rc, out, _ = s_client(self.sl.addr("smtps"), *args, servername=servername)
        self.assertIn("220 ", out)
        m = re.search(r"^Peer signature type: (\S+)", out, re.M)
        k = re.search(r"^Server public key is (\d+) bit", out, re.M)
        s = re.search(r"^subject=.*CN ?= ?(\S+)", out, re.M)
        return (m.group(1) if m else None, int(k.group(1)) if k else None,
                s.group(1) if s else None)

    def test_each_client_gets_a_certificate_it_can_use(self):
        cases = [
            (["-tls1_3"], ("ECDSA", 256)),   # cheapest signer first
            (["-tls1_3", "-sigalgs", "ed25519"], ("ed25519", 256)),
            (["-tls1_3", "-sigalgs", "ecdsa_secp384r1_sha384"], ("ECDSA", 384)),
            (["-tls1_3", "-sigalgs", "rsa_pss_rsae_sha256"], ("RSA-PSS", 2048)),
            (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], ("RSA-PSS", 2048)),
            (["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"], ("ECDSA", 256)),
        ]
        for args, (sig, bits) in cases:
            with self.subTest(args=args):
                got_sig, got_bits, cn = self.served(*args)
                self.assertEqual((got_sig, got_bits), (sig, bits))
                self.assertEqual(cn, NAME)

    def test_sni_picks_the_set(self):
        _, _, cn = self.served("-tls1_3", servername="imap.example.test")
        self.assertEqual(cn, "imap.example.test")
        _, _, cn = self.served("-tls1_3", servername="x.imap.example.test")
        self.assertEqual(cn, "imap.example.test")
        _, _, cn = self.served("-tls1_3", servername="unknown.example.test")
        self.assertEqual(cn, NAME)   # the listener's first set is the default


class CurveRule(unittest.TestCase):
    """A TLS 1.2 client (an old Exchange, say) that offers ECDHE-ECDSA and
    RSA suites but only secp256r1: a set of ECDSA P-384 and RSA serves it
    RSA; P-384 alone cannot serve it (RFC 8422 5.1), and both the log line
    and `sluice explain` say so in those words."""

    CLIENT = ["-tls1_2", "-groups", "P-256", "-sigalgs",
              "ecdsa_secp256r1_sha256:ecdsa_secp384r1_sha384:rsa_pkcs1_sha256:rsa_pss_rsae_sha256",
              "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"]

    @classmethod
    def setUpClass(cls):
        d = Path(tempfile.mkdtemp(prefix="curve-", dir=scratch()))
        p384, rsa = pki.leaf(d, "p384"), pki.leaf(d, "rsa")
        cfg = config([listener("both", 9, cert_sets=["p384-rsa"]),
                      listener("p384", 10, cert_sets=["p384"])],
                     cert_sets=[{"name": "p384-rsa", "certs": [p384, rsa]},
                                {"name": "p384", "certs": [p384]}])
        cls.sl = Sluice(cfg, "curve").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def line_of(self, listener, before):
        return wait_until(lambda: (lambda n: n[-1] if n else None)(
            [l for l in self.sl.conn_logs()[before:] if l["listener"] == listener]),
            10, "the connection's log line")

    def test_p384_and_rsa_serves_rsa(self):
        before = len(self.sl.conn_logs())
        rc, out, kind = s_client(self.sl.addr("both"), *self.CLIENT)
        self.assertIn("220 ", out)
        self.assertRegex(out, r"Cipher is ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(self.line_of("both", before)["cert"], "rsa-2048")

    def test_p384_alone_fails_on_the_curve_rule(self):
        before = len(self.sl.conn_logs())
        rc, out, kind = s_client(self.sl.addr("p384"), *self.CLIENT)
        self.assertNotIn("220 ", out)
        self.assertIn("alert handshake failure", out)
        line = self.line_of("p384", before)
        self.assertEqual(line["result"], "tls-failed", line)
        self.assertRegex(line["reason"], r"ecdsa_curve_not_offered: the client offers only "
                                         r"secp256r1; this ECDSA certificate is on secp384r1")
        self.assertEqual(self.sl.counters().get("certsel_ECDSA_CURVE_NOT_OFFERED", 0), 1)

    def test_explain_names_the_rule_and_the_fix(self):
        fields = ["--versions", "tls1.2", "--groups", "P-256",
                  "--sigalgs", "ecdsa_secp256r1_sha256,rsa_pkcs1_sha256",
                  "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256,ECDHE-RSA-AES128-GCM-SHA256"]
        rc, out = run([sluice_bin(), "explain", "-c", self.sl.path, "--listener", "p384",
                       *fields])
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"FAIL ecdsa_curve_not_offered \[RFC 8422 5\.1")
        self.assertIn("TLS 1.2 forbids it", out)
        self.assertIn("fix: add an RSA or a P-256 certificate", out)
        rc, out = run([sluice_bin(), "explain", "-c", self.sl.path, "--listener", "both",
                       *fields])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"verdict: cert 1 rsa-2048 .*ECDHE-RSA-AES128-GCM-SHA256")

    def test_explain_takes_wireshark_hex(self):
        """The same client's hello as Wireshark's hex dump (offsets, bytes,
        ASCII column), as an operator pastes it."""
        relay_hello = None
        import socket
        lsn = socket.socket()
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(1)
        port = lsn.getsockname()[1]
        p = subprocess.Popen(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                              *self.CLIENT], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        c, _ = lsn.accept()
        c.settimeout(5)
        relay_hello = c.recv(65536)
        c.close()
        lsn.close()
        p.wait(10)
        dump = "\n".join(
            f"{i:04x}   " + " ".join(f"{b:02x}" for b in relay_hello[i:i + 16]) + "   " +
            "".join(chr(b) if 32 <= b < 127 else "." for b in relay_hello[i:i + 16])
            for i in range(0, len(relay_hello), 16))
        r = subprocess.run([sluice_bin(), "explain", "-c", str(self.sl.path), "--listener",
                            "p384", "-"], input=dump.encode(), capture_output=True, timeout=20)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 1, out + r.stderr.decode())
        self.assertIn("ecdsa_curve_not_offered", out)


class Policies(unittest.TestCase):
    """A listener's policy, and another one for clients from listed
    networks: an old TLS 1.0 client on one network, TLS 1.2+ for the rest."""

    OLD = "127.0.0.42"      # the network with the legacy policy
    NEW = "127.0.0.43"

    @classmethod
    def setUpClass(cls):
        cfg = config([listener("smtps", 7, policy_by_network=[
                          {"networks": [f"{cls.OLD}/32", "192.0.2.0/24"], "policy": "legacy"}]),
                      listener("modern", 8, policy="modern")])
        cls.sl = Sluice(cfg, "policies").start()

    @classmethod
    def tearDownClass(cls):
        cls.sl.stop()

    def handshake(self, listener, source, version, ciphers=None):
        """A Python ssl client of one TLS version from source: (ok, the
        connection's log line)."""
        import socket
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ctx.maximum_version = version
        if ciphers:
            ctx.set_ciphers(ciphers)
        s = socket.create_connection(self.sl.addr(listener), timeout=10,
                                     source_address=client_source(source))
        port = s.getsockname()[1]
        try:
            with ctx.wrap_socket(s) as t:
                ok = t.recv(1024).startswith(b"220 ")
                t.sendall(b"QUIT\r\n")
                t.recv(1024)
        except (ssl.SSLError, ConnectionResetError):
            ok = False
        return ok, self.sl.conn_log(source, port)

    def test_legacy_network_gets_tls_1_0(self):
        import ssl
        ok, line = self.handshake("smtps", self.OLD, ssl.TLSVersion.TLSv1,
                                  "ECDHE-RSA-AES128-SHA:AES128-SHA:@SECLEVEL=0")
        self.assertTrue(ok, line)
        self.assertEqual((line["tls"], line["policy"]), ("TLSv1", "legacy"), line)

    def test_other_networks_do_not(self):
        import ssl
        ok, line = self.handshake("smtps", self.NEW, ssl.TLSVersion.TLSv1,
                                  "ECDHE-RSA-AES128-SHA:AES128-SHA:@SECLEVEL=0")
        self.assertFalse(ok, line)
        self.assertEqual((line["result"], line["policy"]), ("tls-failed", "intermediate"), line)
        ok, line = self.handshake("smtps", self.NEW, ssl.TLSVersion.TLSv1_2)
        self.assertTrue(ok, line)

    def test_modern_is_tls_1_3_only(self):
        import ssl
        ok, line = self.handshake("modern", self.NEW, ssl.TLSVersion.TLSv1_2)
        self.assertFalse(ok, line)
        ok, line = self.handshake("modern", self.NEW, ssl.TLSVersion.TLSv1_3)
        self.assertTrue(ok, line)
        self.assertEqual((line["tls"], line["policy"]), ("TLSv1.3", "modern"), line)


class Resumption(unittest.TestCase):

    def setUp(self):
        self.d = Path(tempfile.mkdtemp(prefix="resume-", dir=scratch()))

    def start(self, name, port, **top):
        sl = Sluice(config([listener("smtps", port)], **top), name).start()
        self.addCleanup(lambda: sl.stop() if sl.running() else None)
        return sl

    def resume_many(self, sl, args, n=16):
        """A full handshake, then n resumptions from new source ports: the
        kinds ("New"/"Reused") and the cores that served them."""
        sess = self.d / f"sess-{'-'.join(args)}"
        rc, out, kind = s_client(sl.addr("smtps"), *args, sess_out=sess)
        self.assertEqual(kind, "New", out)
        kinds = []
        before = len(sl.conn_logs())
        for _ in range(n):
            rc, out, kind = s_client(sl.addr("smtps"), *args, sess_in=sess, sess_out=sess)
            kinds.append(kind)
        lines = wait_until(lambda: (lambda l: l if len(l) >= n else None)(sl.conn_logs()[before:]),
                           10, "the log lines of the resumptions")
        cores = {int(l["conn"], 16) >> 48 for l in lines}
        self.assertEqual({l["resumed"] for l in lines}, {"yes"}, lines)
        return kinds, cores

    def test_any_core_any_worker(self):
        sl = self.start("resume", 2)
        for args in (["-tls1_3"], ["-tls1_2"], ["-tls1_2", "-no_ticket"]):
            with self.subTest(args=args):
                kinds, cores = self.resume_many(sl, args)
                self.assertEqual(kinds, ["Reused"] * len(kinds))
                self.assertEqual(cores, {0, 1}, "all on one core: SO_REUSEPORT spread none")
        c = sl.counters()
        self.assertGreaterEqual(c.get("handshake_resumed", 0), 48, c)

    def test_tls13_resumption_hands_out_a_new_ticket(self):
        """A resumed TLS 1.3 session gets a fresh ticket, which resumes
        too: clients that use each ticket once (RFC 8446 C.4) resume every
        time, not every other time."""
        sl = self.start("resume-t13", 11)
        chain = [self.d / f"t{i}" for i in range(4)]
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_out=chain[0])[2], "New")
        for a, b in zip(chain, chain[1:]):
            rc, out, kind = s_client(sl.addr("smtps"), "-tls1_3", sess_in=a, sess_out=b)
            self.assertEqual(kind, "Reused", out)
            self.assertTrue(b.exists(), "no new ticket after the resumption")

    def test_restart_with_a_shared_key_file(self):
        keyfile = self.d / "ticket.key"
        keyfile.write_bytes(os.urandom(160))
        keyfile.chmod(0o600)
        sl = self.start("resume-a", 3, tickets={"key_file": str(keyfile)})
        sess = self.d / "sess"
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_out=sess)[2], "New")
        sl.stop()
        # Another sluice (a restart, or a second box) with the same file.
        sl2 = self.start("resume-b", 3, tickets={"key_file": str(keyfile)})
        self.assertEqual(s_client(sl2.addr("smtps"), "-tls1_3", sess_in=sess)[2], "Reused")
        sl2.stop()
        # Without the file, a restart forgets its keys.
        sl3 = self.start("resume-c", 3)
        self.assertEqual(s_client(sl3.addr("smtps"), "-tls1_3", sess_out=sess)[2], "New")
        sl3.stop()
        sl4 = self.start("resume-d", 3)
        self.assertEqual(s_client(sl4.addr("smtps"), "-tls1_3", sess_in=sess)[2], "New")

    def test_key_file_rewritten_while_running(self):
        """A fleet's cron writes a new key first: sluice seals with it and
        still opens tickets of the key now second."""
        keyfile = self.d / "ticket.key"
        old = os.urandom(80)
        keyfile.write_bytes(old)
        keyfile.chmod(0o600)
        sl = self.start("resume-f", 4, tickets={"key_file": str(keyfile)})
        sess = self.d / "sess"
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_2", sess_out=sess)[2], "New")
        mark = sl.log_text().count("key")
        tmp = self.d / "ticket.key.new"
        tmp.write_bytes(os.urandom(80) + old)
        tmp.chmod(0o600)
        os.replace(tmp, keyfile)
        wait_until(lambda: "2 keys loaded from" in sl.log_text(), 10,
                   "sluice to re-read the key file")
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_2", sess_in=sess)[2], "Reused")
        keyfile.write_bytes(os.urandom(80))     # the old key retired
        wait_until(lambda: sl.log_text().count("1 key loaded from") >= 1, 10,
                   "sluice to re-read the key file again")
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_2", "-no_ticket", sess_in=sess)[2],
                         "New")

    def test_rotation_keeps_recent_sessions(self):
        """rotate 60 s, lifetime 60 s: a key opens tickets for two more
        rotations (lifetime / rotate + 1), then it is gone. SIGUSR2 rotates
        at once (what an operator's `tickets rotate` does)."""
        sl = self.start("resume-r", 5, tickets={"rotate": 60, "lifetime": 60})
        sess = self.d / "sess"
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_out=sess)[2], "New")
        for n in (1, 2):
            os.kill(sl.proc.pid, signal.SIGUSR2)
            wait_until(lambda: sl.log_text().count("tickets: new key") >= n, 10, "rotation")
            self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_in=sess)[2], "Reused",
                             f"after {n} rotation(s)")
        os.kill(sl.proc.pid, signal.SIGUSR2)
        wait_until(lambda: sl.log_text().count("tickets: new key") >= 3, 10, "rotation")
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_in=sess)[2], "New",
                         "a ticket of a key three rotations old")

    def test_tickets_off(self):
        """tickets: {enabled: false} and session_cache: 0: nothing is
        handed out that could resume (and s_client keeps no session)."""
        sl = self.start("resume-off", 6, tickets={"enabled": False}, session_cache=0)
        for args in (["-tls1_2"], ["-tls1_3"]):
            sess = self.d / f"sess{args[0]}"
            rc, out, kind = s_client(sl.addr("smtps"), *args, sess_out=sess)
            self.assertEqual(kind, "New", out)
            self.assertNotIn("TLS session ticket:", out)
            if args == ["-tls1_2"]:
                self.assertRegex(out, r"Session-ID: *\n", out)
            self.assertFalse(sess.exists(), "s_client saved a resumable session")


if __name__ == "__main__":
    unittest.main()
