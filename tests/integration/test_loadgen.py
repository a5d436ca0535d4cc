"""sluice-loadgen (docs/loadgen.md) against real mail servers.

The module starts the harness's Postfix (127.0.0.1:10025, STARTTLS offered
with its own certificate), a Dovecot of its own doing TLS itself (the
harness's configuration with `ssl = yes`, a certificate chained to a test
root for dovecot-lg.test, on this file's ports) and a sluice in front of
the Postfix:
    43025  sluice   smtp        tls: starttls
    43087  sluice   submission  tls: required
    43043  Dovecot  IMAP        STARTTLS (143 style)
    43093  Dovecot  IMAPS       implicit (993 style)
    43010  Dovecot  POP3        STLS (110 style)
    43095  Dovecot  POP3S       implicit (995 style)
    43026  a second Postfix: submission with SMTP AUTH through Dovecot's SASL
    43099  nothing listens (connect refused)
bob's INBOX holds one message, so that the imap workload fetches it and
pop3 retrieves it (RETR 1). Every run is bounded by --count (or a short
--duration) and --timeout.
"""

import json
import re
import subprocess
import unittest
from pathlib import Path

import pki
from harness import (MAIL_USER, REPO, Dovecot, Postfix, Sluice, listening, load_example,
                     poll, recipient, scratch, stop_all, unique)

LOADGEN = REPO / "build" / "bench" / "sluice-loadgen"
PF_PLAIN = 10025
SL_SMTP, SL_SUBMISSION = 43025, 43087
IMAP, IMAPS, POP3, POP3S = 43043, 43093, 43010, 43095
CLOSED = 43099
NAME = "dovecot-lg.test"

SUBMIT = 43026
PF = DV = SL = PFA = None
ROOT = None         # the test root's PEM (Dovecot's chain ends there)


class TlsDovecot(Dovecot):
    """The harness's Dovecot on this module's ports, with TLS of its own:
    STARTTLS on the plain listeners, implicit on imaps and pop3s; plaintext
    logins refused (as in the harness's file)."""

    PORTS = (IMAP, IMAPS, POP3, POP3S)

    def __init__(self, cert):
        super().__init__(scratch() / "dovecot-lg")
        self.cert = cert

    def _render(self):
        super()._render()
        text = self.conf.read_text()
        for old, new in (("port = 10143", f"port = {IMAP}"), ("port = 10110", f"port = {POP3}"),
                         ("port = 10144", "port = 43044"), ("port = 10111", "port = 43011"),
                         ("instance_name = dovecot-test", "instance_name = dovecot-lg")):
            assert old in text, old
            text = text.replace(old, new)
        text = text.replace("inet_listener imaps {\n    port = 0\n",
                            f"inet_listener imaps {{\n    address = 127.0.0.1\n"
                            f"    port = {IMAPS}\n    ssl = yes\n")
        text = text.replace("inet_listener pop3s {\n    port = 0\n",
                            f"inet_listener pop3s {{\n    address = 127.0.0.1\n"
                            f"    port = {POP3S}\n    ssl = yes\n")
        assert f"port = {IMAPS}" in text and f"port = {POP3S}" in text
        # the SASL socket for PostfixAuth (Postfix's smtpd runs as postfix)
        text += "service auth {\n  unix_listener auth-postfix {\n    mode = 0666\n  }\n}\n"
        text = text.replace("ssl = no\n", f"ssl = yes\nssl_cert = <{self.cert['cert']}\n"
                                          f"ssl_key = <{self.cert['key']}\n")
        self.conf.write_text(text)

    def _stop_stale(self):
        self.stop()

    ports_text = str(PORTS)

    def _listening(self):
        return all(listening("127.0.0.1", p) for p in self.PORTS)

    def _ports_closed(self):
        return not any(listening("127.0.0.1", p) for p in self.PORTS)


class PostfixAuth(Postfix):
    """The harness's Postfix on 127.0.0.1:43026 (and 43027 for PROXY,
    unused), asking for SMTP AUTH after STARTTLS, checked by Dovecot
    (smtpd_sasl_type = dovecot): a port 587 as most sites run it."""

    def __init__(self, sasl_socket):
        super().__init__(scratch() / "postfix-lg")
        self.sasl_socket = sasl_socket

    def _render(self):
        super()._render()
        master = self.etc / "master.cf"
        text = master.read_text()
        assert "127.0.0.1:10025 " in text and "127.0.0.1:10026 " in text
        master.write_text(text.replace("127.0.0.1:10025 ", f"127.0.0.1:{SUBMIT} ")
                          .replace("127.0.0.1:10026 ", "127.0.0.1:43027 "))
        with open(self.etc / "main.cf", "a") as f:
            f.write(f"\nsmtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
                    f"smtpd_sasl_path = {self.sasl_socket}\nsmtpd_tls_auth_only = yes\n")

    def _stop_stale(self):
        self.stop()

    ports_text = f"{SUBMIT}/43027"

    def _listening(self):
        return listening("127.0.0.1", SUBMIT) and listening("127.0.0.1", 43027)

    def _ports_closed(self):
        return not listening("127.0.0.1", SUBMIT) and not listening("127.0.0.1", 43027)


def setUpModule():
    global PF, DV, SL, ROOT, PFA
    assert LOADGEN.exists(), f"{LOADGEN} does not exist: build first"
    assert not listening("127.0.0.1", CLOSED), f"something listens on {CLOSED}"
    certs = scratch() / "loadgen-pki"
    good, _, _, ROOT = pki.chain(certs, "p256", names=(NAME,))
    for f in certs.iterdir():
        f.chmod(0o644)
    PF = Postfix().start()
    DV = TlsDovecot(good).start()
    msg = (b"From: <a@client.test>\r\nTo: <bob@test.local>\r\nSubject: loadgen\r\n"
           b"Message-ID: <loadgen-inbox@client.test>\r\n\r\n" + b"x" * 4000 + b"\r\n")
    DV.append(MAIL_USER, "INBOX", msg)
    front = load_example("mail-front.yaml")
    front["backends"] = [b for b in front["backends"] if b["name"] == "postfix"]
    front["listeners"] = [l for l in front["listeners"] if l["name"] in ("smtp", "submission")]
    for l in front["listeners"]:
        l["address"] = f"127.0.0.1:{SL_SMTP if l['name'] == 'smtp' else SL_SUBMISSION}"
    SL = Sluice(front, "lg").start()
    PFA = PostfixAuth(DV.dir / "run" / "auth-postfix").start()


def tearDownModule():
    stop_all(SL, PFA, DV, PF)


def loadgen(*args, json_out=True, timeout=120):
    """Run sluice-loadgen; (exit status, parsed JSON or stdout text, stderr)."""
    cmd = [str(LOADGEN), *map(str, args)] + (["--json"] if json_out else [])
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, text=True, timeout=timeout)
    out = p.stdout
    if json_out and p.returncode in (0, 1):
        lines = [l for l in out.splitlines() if l.startswith("{")]
        assert lines, f"no JSON from {cmd}: rc {p.returncode}\n{out}\n{p.stderr}"
        out = json.loads(lines[-1])
    return p.returncode, out, p.stderr


def ok_run(case, r, n):
    """Assert a run of n ops all succeeded, exit status 0."""
    rc, out, err = r
    case.assertEqual((out["ops"], out["error_total"]), (n, 0),
                     f"first error: {out['first_error']}; stderr: {err[-500:]}")
    case.assertEqual(rc, 0, f"exit status with every op ok; stderr: {err[-500:]}")
    return out


class Servers(unittest.TestCase):
    """Each protocol and TLS mode against the real server directly, and
    through sluice."""

    def test_postfix_smtp_starttls_delivers_every_message(self):
        tag = unique("lg")
        mark = PF.log_mark()
        out = ok_run(self, loadgen("--workload", "smtp", "--port", PF_PLAIN, "--tls", "starttls",
                                   "--count", 30, "--concurrency", 4, "--timeout", 30,
                                   "--from", "lg@client.test", "--to", recipient(tag),
                                   "--subject", tag, "--size", 2000, "--ehlo", "lg.client.test"),
                     30)
        self.assertEqual(out["messages_accepted"], 30)
        self.assertEqual((out["protocol"], out["tls_mode"]), ("smtp", "starttls"))
        got = PF.maildir_messages(tag.encode(), count=30, timeout=30)
        self.assertEqual(len(got), 30, "messages in the Maildir, one per 250 after DATA")
        # what the options said is what Postfix got, over STARTTLS
        self.assertIn(b"From: <lg@client.test>", got[0][1])
        self.assertIn(b"Received: from lg.client.test ", got[0][1])
        self.assertEqual(len(re.findall(r"disconnect from .* ehlo=2 starttls=1 mail=1 rcpt=1 "
                                        r"data=1 quit=1 commands=7", PF.log(mark))), 30)

    def dovecot_logins(self, proto, mark):
        """Dovecot's successful logins of bob since mark, over its own TLS."""
        return [l for l in DV.log(mark).splitlines()
                if f"{proto}-login: Info: Login: user=<bob>," in l and "secured=<TLS>" in l]

    def test_dovecot_imap_starttls_and_implicit(self):
        for mode, port in (("starttls", IMAP), ("implicit", IMAPS)):
            with self.subTest(mode=mode):
                mark = DV.log_mark()
                out = ok_run(self, loadgen("--workload", "imap", "--tls", mode, "--port", port,
                                           "--count", 12, "--concurrency", 3,
                                           "--user", "bob", "--password", "secret"), 12)
                self.assertEqual(out["tls_mode"], mode)
                self.assertTrue(poll(lambda: len(self.dovecot_logins("imap", mark)) >= 12, 10),
                                f"12 TLS logins in Dovecot's log: "
                                f"{len(self.dovecot_logins('imap', mark))}")

    def test_dovecot_pop3_stls_retrieves(self):
        mark = DV.log_mark()
        ok_run(self, loadgen("--workload", "pop3", "--tls", "starttls", "--port", POP3,
                             "--count", 10, "--concurrency", 2), 10)
        self.assertTrue(poll(lambda: len(self.dovecot_logins("pop3", mark)) >= 10, 10))
        # each session retrieved the one message (RETR 1), deleted nothing
        self.assertTrue(poll(lambda: len(re.findall(r"pop3\(bob\).*Disconnected: Logged out "
                                                    r"top=0/0, retr=1/\d+, del=0/1",
                                                    DV.log(mark))) >= 10, 10),
                        DV.log(mark)[-2000:])

    def test_dovecot_pop3s_implicit(self):
        ok_run(self, loadgen("--workload", "pop3", "--tls", "implicit", "--port", POP3S,
                             "--count", 5), 5)

    def test_handshake_over_starttls(self):
        """The handshake workload over STARTTLS needs the protocol: it says
        STARTTLS, shakes hands, and one harmless command proves the server
        got through its side."""
        for proto, port in (("imap", IMAP), ("pop3", POP3), ("smtp", PF_PLAIN)):
            with self.subTest(proto=proto):
                ok_run(self, loadgen("--workload", "handshake", "--tls", "starttls",
                                     "--protocol", proto, "--port", port, "--count", 5), 5)

    def test_through_sluice_smtp_starttls_resumes(self):
        tag = unique("lgr")
        out = ok_run(self, loadgen("--workload", "smtp", "--port", SL_SUBMISSION,
                                   "--tls", "starttls", "--resume", "--count", 30,
                                   "--concurrency", 2, "--to", recipient(tag),
                                   "--subject", tag), 30)
        self.assertTrue(out["resume"])
        self.assertGreater(out["resumed_fraction"], 0, "sessions resumed through sluice")
        self.assertEqual(out["messages_accepted"], 30)
        self.assertEqual(len(PF.maildir_messages(tag.encode(), count=30, timeout=30)), 30)

    def test_smtp_auth_on_submission(self):
        """--user on an SMTP workload: AUTH PLAIN after the EHLO that
        follows STARTTLS; Postfix (SASL by Dovecot) logs who logged in; a
        wrong password is an auth error."""
        tag = unique("lga")
        mark = PFA.log_mark()
        ok_run(self, loadgen("--workload", "smtp", "--port", SUBMIT, "--user", "bob",
                             "--password", "secret", "--to", recipient(tag), "--subject", tag,
                             "--count", 5, "--concurrency", 2), 5)
        self.assertEqual(len(re.findall(r"client=\S+, sasl_method=PLAIN, sasl_username=bob",
                                        PFA.log(mark))), 5, PFA.log(mark)[-2000:])
        self.assertEqual(len(PFA.maildir_messages(tag.encode(), count=5, timeout=30)), 5)
        rc, out, _ = loadgen("--workload", "smtp", "--port", SUBMIT, "--user", "bob",
                             "--password", "wrong", "--count", 2, "--timeout", 20)
        self.assertEqual(rc, 1)
        self.assertEqual((out["ops"], out["errors"]["auth"]), (0, 2), out["first_error"])
        self.assertRegex(out["first_errors"]["auth"], r"^SMTP reply: 535 ")

    def test_plaintext_sessions(self):
        """--tls none: SMTP in plaintext delivers; Dovecot refuses the
        plaintext login, which counts as auth (from another loopback
        address than its own: a client talking to itself is secured)."""
        tag = unique("lgp")
        mark = PF.log_mark()
        out = ok_run(self, loadgen("--workload", "smtp", "--tls", "none", "--port", PF_PLAIN,
                                   "--count", 3, "--to", recipient(tag), "--subject", tag), 3)
        self.assertEqual(out["tls_mode"], "none")
        self.assertEqual(len(PF.maildir_messages(tag.encode(), count=3, timeout=30)), 3)
        self.assertEqual(len(re.findall(r"disconnect from .* ehlo=1 mail=1 rcpt=1 data=1 "
                                        r"quit=1 commands=5", PF.log(mark))), 3)
        rc, out, _ = loadgen("--workload", "pop3", "--tls", "none", "--port", POP3, "--count", 2,
                             "--source", "127.0.0.41")
        self.assertEqual(rc, 1)
        self.assertEqual(out["errors"]["auth"], 2, out["first_error"])
        self.assertIn("Plaintext authentication disallowed", out["first_errors"]["auth"])

    def test_idle_after_starttls(self):
        """The idle workload holds IMAP connections before TLS, then after
        STARTTLS and a NOOP, going on at a line on stdin each time."""
        p = subprocess.Popen([str(LOADGEN), "--workload", "idle", "--tls", "starttls",
                              "--protocol", "imap", "--port", str(IMAP), "--count", "5",
                              "--json", "--timeout", "20"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            for phase in ("plain", "tls"):
                line = json.loads(p.stdout.readline())
                # released: client SSL objects given up (--idle-release only)
                self.assertEqual(line, {"phase": phase, "held": 5, "failed": 0, "released": 0})
                p.stdin.write("go\n")
                p.stdin.flush()
            final = json.loads(p.stdout.readline())
            self.assertEqual(p.wait(30), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            for f in (p.stdin, p.stdout, p.stderr):
                f.close()
        self.assertEqual((final["ops"], final["error_total"]), (5, 0), final["first_error"])

    def test_resume_only_when_asked(self):
        """Without --resume no session is offered; with it sluice resumes
        (the handshake workload over STARTTLS, as SMTP speaks it)."""
        args = ("--workload", "handshake", "--tls", "starttls", "--protocol", "smtp",
                "--port", SL_SUBMISSION, "--count", 10, "--concurrency", 1)
        out = ok_run(self, loadgen(*args), 10)
        self.assertEqual((out["resumed"], out["resume"]), (0, False))
        out = ok_run(self, loadgen(*args, "--resume"), 10)
        self.assertGreaterEqual(out["resumed"], 9, "every handshake after the first resumed")
        rc, text, _ = loadgen(*args, "--resume", json_out=False)
        self.assertRegex(text, r"(?m)^resumed: +\d+ of 10 \([\d.]+ %\)$")


class Verify(unittest.TestCase):
    """--verify, --ca, --servername against Dovecot's chain to the test root."""

    def test_not_verified_by_default(self):
        out = ok_run(self, loadgen("--workload", "handshake", "--port", IMAPS, "--count", 2), 2)
        self.assertFalse(out["verify"])
        rc, text, _ = loadgen("--workload", "handshake", "--port", IMAPS, "--count", 2,
                              json_out=False)
        self.assertIn("certificate:  not verified", text)

    def test_verified_with_the_right_root_and_name(self):
        out = ok_run(self, loadgen("--workload", "imap", "--tls", "implicit", "--port", IMAPS,
                                   "--count", 3, "--verify", "--ca", ROOT,
                                   "--servername", NAME), 3)
        self.assertTrue(out["verify"])

    def test_wrong_name_or_unknown_root_fails_as_verify(self):
        for what, args in (("wrong name", ["--ca", ROOT, "--servername", "other.test"]),
                           ("system roots", ["--servername", NAME])):
            with self.subTest(what):
                rc, out, _ = loadgen("--workload", "handshake", "--port", IMAPS, "--count", 3,
                                     "--verify", *args)
                self.assertEqual(rc, 1)
                self.assertEqual(out["errors"]["verify"], 3, out["first_error"])
                self.assertEqual(out["ops"], 0)
                self.assertIn("verify", out["first_errors"])


class Errors(unittest.TestCase):
    """One case per reason that can be provoked honestly; exit status 1."""

    def test_connect_refused(self):
        rc, out, _ = loadgen("--workload", "smtp", "--port", CLOSED, "--count", 4)
        self.assertEqual(rc, 1)
        self.assertEqual((out["ops"], out["errors"]["connect"]), (0, 4))
        self.assertIn("refused", out["first_errors"]["connect"].lower())

    def test_implicit_tls_to_a_plaintext_port(self):
        rc, out, _ = loadgen("--workload", "smtp", "--tls", "implicit", "--port", PF_PLAIN,
                             "--count", 3, "--timeout", 10)
        self.assertEqual(rc, 1)
        self.assertEqual((out["ops"], out["errors"]["tls"]), (0, 3), out["first_error"])

    def test_wrong_password(self):
        for wl, port in (("imap", IMAP), ("pop3", POP3)):
            with self.subTest(wl):
                rc, out, _ = loadgen("--workload", wl, "--port", port, "--count", 2,
                                     "--password", "wrong", "--timeout", 15)
                self.assertEqual(rc, 1)
                self.assertEqual((out["ops"], out["errors"]["auth"]), (0, 2), out["first_error"])

    def test_some_failed_summary_names_each_reason(self):
        rc, text, _ = loadgen("--workload", "pop3", "--port", POP3, "--count", 2,
                              "--user", "nobody", json_out=False, timeout=60)
        self.assertEqual(rc, 1)
        self.assertRegex(text, r"(?m)^errors: +2$")
        self.assertRegex(text, r"(?m)^  auth +2   first: POP3 reply: -ERR")


class Output(unittest.TestCase):
    """The summary, --json, the progress line, and usage errors."""

    def test_human_summary_by_default(self):
        rc, text, _ = loadgen("--workload", "pop3", "--tls", "implicit", "--port", POP3S,
                              "--count", 4, "--concurrency", 2, json_out=False)
        self.assertEqual(rc, 0)
        self.assertRaises(ValueError, json.loads, text)
        self.assertRegex(text, r"(?m)^sluice-loadgen: pop3 to 127\.0\.0\.1 port 43095, "
                               r"implicit TLS \(TLS 1\.2-1\.3\), closed loop, 2 in flight$")
        self.assertRegex(text, r"(?m)^operations: +4 succeeded, 0 failed, of 4 started in ")
        self.assertRegex(text, r"(?m)^latency: +p50 \S+ \S+, p90 \S+ \S+, p99 \S+ \S+, "
                               r"p99\.9 \S+ \S+, max \S+ \S+ \(from each op's start\)$")
        self.assertRegex(text, r"(?m)^client CPU: ")
        self.assertRegex(text, r"(?m)^errors: +none$")

    def test_json_has_the_rigs_keys(self):
        rc, out, _ = loadgen("--workload", "pop3", "--tls", "implicit", "--port", POP3S,
                             "--count", 3)
        self.assertEqual(rc, 0)
        for key in ("ops", "started", "error_total", "errors", "first_error", "duration_s",
                    "ops_per_s", "latency_us", "payload_bytes", "messages_accepted",
                    "messages_unanswered", "mib_per_s", "resumed", "resumed_fraction",
                    "client_cpu_s"):
            self.assertIn(key, out)
        self.assertEqual(set(out["latency_us"]), {"p50", "p90", "p99", "p999", "max", "mean"})
        self.assertLessEqual(out["latency_us"]["p50"], out["latency_us"]["max"])

    def test_progress_line_once_a_second(self):
        rc, out, err = loadgen("--workload", "handshake", "--port", IMAPS, "--rate", 10,
                               "--duration", 3.2, "--progress")
        self.assertEqual(rc, 0, err)
        lines = re.findall(r"(?m)^sluice-loadgen: +(\d+) s  ops (\d+)  ([\d.]+)/s  errors (\d+)"
                           r"  p50 \S+ \S+  p99 \S+ \S+  in flight \d+$", err)
        self.assertGreaterEqual(len(lines), 3, err)
        self.assertEqual([int(l[0]) for l in lines[:3]], [1, 2, 3])
        ops = [int(l[1]) for l in lines]
        self.assertEqual(ops, sorted(ops), "ops only grow")
        self.assertGreater(ops[-1], 0)
        # stderr is not a terminal here: no progress line unless asked
        rc, out, err = loadgen("--workload", "handshake", "--port", IMAPS, "--rate", 10,
                               "--duration", 1.5)
        self.assertEqual(rc, 0)
        self.assertNotIn(" ops ", err)

    def test_open_loop_runs_at_the_rate(self):
        rc, out, err = loadgen("--workload", "handshake", "--port", IMAPS, "--rate", 20,
                               "--duration", 2)
        self.assertEqual(rc, 0, err)
        self.assertEqual(out["mode"], "open")
        self.assertEqual(out["started"], 40)

    def test_bad_usage_exits_2_naming_the_option(self):
        for args, named in ((["--workload", "smtp", "--count", 1, "--rate", "abc"], "--rate"),
                            (["--workload", "smtp", "--count", 1, "--bogus"], "--bogus"),
                            (["--workload", "smtp", "--count", 1, "--tls", "maybe"], "--tls"),
                            (["--workload", "handshake", "--tls", "starttls", "--port", IMAP,
                              "--count", 1], "--tls"),
                            (["--workload", "pop3", "--port", POP3], "--duration"),
                            (["--count", 1], "--workload"),
                            (["--workload", "imap", "--count", 1, "--ca", "/nonexistent"],
                             "--ca"),
                            (["--workload", "idle", "--port", IMAPS], "--count"),
                            (["--workload", "smtp", "--protocol", "imap", "--count", 1],
                             "--protocol")):
            with self.subTest(args=args):
                rc, out, err = loadgen(*args, json_out=False)
                self.assertEqual(rc, 2, err)
                self.assertIn(named, err)
                self.assertEqual(out, "", "nothing on stdout")


if __name__ == "__main__":
    unittest.main()
