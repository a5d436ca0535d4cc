"""sluice-control and sluicectl (issue 11, docs/control.md): a real sluice,
a real sluice-control beside it, sluicectl as root, as a member of the admin
group and as nobody, and SMTP STARTTLS deliveries into a real Postfix.

- sluicectl status, stats (summed, per core) and -j answer, parse, and exit
  as docs/operations.md says; every verb of control/verbs.def has --help
  and a bash completion; usage errors exit 2, no sluice-control exits 3.
- The admin socket: 0660 group admin_group; a peer that is neither root nor
  in the group is refused by SO_PEERCRED even when the file's mode would let
  it connect (it runs as nobody), and logged; a member of the group is
  served.
- A slow, silent or garbage-sending client never holds up another.
- reload: a good renewal is served at once; the renewals operators get
  wrong (a key of another certificate, a key file under the wrong name, an
  expired certificate, a YAML syntax error) are refused with file, line,
  key and reason, the old certificate is still served, and status shows
  the failed reload. SIGHUP to sluice-control reloads too.
- certs stage/check/commit/abort and policy stage: a staged certificate is
  validated, committed atomically to the files (mode kept) and served; a
  set without a certificate of the new one's key type is refused by name;
  a listener's policy line is edited with its comment kept.
- health, drain and undrain through sluicectl: health exits 1 while a
  drain holds a transaction open, 0 again after undrain; the message lands.
- tickets show and rotate: sluice-control's ring is the dataplane's, a
  ticket from before a rotation resumes after it.
- kill -9 of sluice-control under a delivery loop: every delivery
  succeeds, it restarts, re-attaches and logs it.
"""

import os
import re
import smtplib
import socket
import stat
import subprocess
import threading
import time
import unittest
from pathlib import Path

from cryptography import x509

import pki
from harness import (REPO, SENDER, build_has, Postfix, Sluice, SluiceControl, client_hello, client_source,
                     control_bin, make_message, no_verify_context, recipient, run, scratch, stop_all, tool,
                     read_json_line, unique, wait_until)

CLIENT = "127.0.0.81"
BASE = 40300
NAME = "mail.example.test"
GROUP = "sluicetestadm"       # made for this module, removed after
MEMBER = ("daemon", "daemon")  # put in GROUP
OUTSIDER = ("nobody", "nogroup")

PF = None


def setUpModule():
    global PF
    subprocess.run([tool("groupdel"), GROUP], stderr=subprocess.DEVNULL)
    subprocess.run([tool("groupadd"), GROUP], check=True)
    subprocess.run([tool("gpasswd"), "-a", MEMBER[0], GROUP], check=True,
                   stdout=subprocess.DEVNULL)
    PF = Postfix().start()


def tearDownModule():
    try:
        stop_all(PF)
    finally:
        subprocess.run([tool("groupdel"), GROUP])


def serial_of(sock):
    return x509.load_der_x509_certificate(sock.getpeercert(binary_form=True)).serial_number


def serial_file(path):
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number


def verbs():
    """control/verbs.def's verbs: [(words, args)]."""
    text = (REPO / "control" / "verbs.def").read_text()
    return re.findall(r'^V\(\w+, "([^"]+)", "[^"]*", \w+, \w+,\s*"([^"]*)"', text, re.M)


def json_text(v):
    import json
    return json.dumps(v)


def deliver(addr, tag):
    """One SMTP STARTTLS delivery; the certificate's serial."""
    with smtplib.SMTP(*addr, local_hostname="client.test", source_address=client_source(CLIENT),
                      timeout=20) as s:
        s.starttls(context=no_verify_context())
        serial = serial_of(s.sock)
        refused = s.sendmail(SENDER, [recipient(tag)], make_message(tag))
        assert refused == {}, refused
    return serial


class Deliveries:
    """Deliveries without pause in a thread, each (tag, error or None)."""

    def __init__(self, addr):
        self.addr, self.stop, self.results = addr, threading.Event(), []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            tag = unique("ctl")
            try:
                deliver(self.addr, tag)
                self.results.append((tag, None))
            except Exception as e:  # recorded and asserted on
                self.results.append((tag, f"{type(e).__name__}: {e}"))

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(60)


class Control(unittest.TestCase):
    """One sluice and one sluice-control for the class; each test leaves the
    certificate files and the configuration as it found them."""

    @classmethod
    def setUpClass(cls):
        cls.d = scratch() / f"control-{os.getpid()}"
        cls.d.mkdir(parents=True, exist_ok=True)
        cls.old = pki.leaf(cls.d / "old", "p256", names=(NAME,))
        cls.live = {"cert": str(cls.d / "live.crt"), "key": str(cls.d / "live.key")}
        cls.install(cls.old)
        cfg = {
            "hostname": NAME, "cores": 2, "workers": 1,
            "backends": [{"name": "pf", "protocol": "smtp", "proxy": "v2",
                          "servers": ["127.0.0.1:10026"]}],
            "cert_sets": [{"name": "mail", "certs": [dict(cls.live)]}],
            "listeners": [
                {"name": "smtp", "address": f"127.0.0.1:{BASE}", "protocol": "smtp",
                 "tls": "starttls", "backend": "pf", "cert_sets": ["mail"]},
                {"name": "smtps", "address": f"127.0.0.1:{BASE + 1}", "protocol": "smtp",
                 "tls": "implicit", "backend": "pf", "cert_sets": ["mail"],
                 "policy": "intermediate"},
            ],
        }
        cls.sl = Sluice(cfg).start()
        cls.sc = SluiceControl(cls.sl, admin_group=GROUP)
        # A comment on the policy line, which policy stage must keep.
        text = cls.sl.path.read_text()
        cls.sl.path.write_text(text.replace("policy: intermediate",
                                            "policy: intermediate   # reviewed"))
        cls.yaml = cls.sl.path.read_text()
        cls.sc.start()

    @classmethod
    def tearDownClass(cls):
        stop_all(cls.sc, cls.sl)

    @classmethod
    def install(cls, pair, key_from=None):
        for part, src in (("cert", pair["cert"]), ("key", (key_from or pair)["key"])):
            tmp = Path(cls.live[part] + ".tmp")
            tmp.write_bytes(Path(src).read_bytes())
            os.chmod(tmp, 0o640 if part == "key" else 0o644)
            os.replace(tmp, cls.live[part])

    def setUp(self):
        self.assertTrue(self.sl.running())
        if not self.sc.running():
            self.sc.start()

    def tearDown(self):
        # Back to the first certificate and file, served (a reload that
        # changes nothing else).
        self.sc.ctl("certs", "abort")
        self.install(self.old)
        self.sl.path.write_text(self.yaml)
        rc, out, err = self.sc.ctl("reload")
        self.assertEqual(rc, 0, err)

    def served_serial(self, listener="smtp"):
        return deliver(self.sl.addr(listener), unique("probe"))

    # ------------------------------------------------------------ verbs ---

    def test_status_and_stats(self):
        rc, out, err = self.sc.ctl("status")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^sluice \S+  pid \d+  up \S+  generation \d+", out)
        self.assertRegex(out, r"sluice-control: pid \d+, up \S+, attached, config "
                         + re.escape(str(self.sl.path)))
        self.assertRegex(out, rf"(?m)^smtp\s+127\.0\.0\.1:{BASE}\s+smtp\s+starttls\s+")
        self.assertRegex(out, r"(?m)^pf\s+127\.0\.0\.1:10026\s+up$")
        rc, st = self.sc.json("status")
        self.assertEqual(rc, 0)
        self.assertTrue(st["ok"])
        self.assertEqual(st["pid"], self.sl.proc.pid)
        self.assertTrue(st["control"]["attached"])
        self.assertEqual(st["control"]["pid"], self.sc.proc.pid)
        self.assertEqual({l["name"] for l in st["listeners"]}, {"smtp", "smtps"})
        # the allocator's own figures beside the bounded tables that fill
        mem = st["memory"]
        if build_has("jemalloc"):
            a = mem["allocator"]
            self.assertGreater(a["allocated"], 1 << 20, mem)    # certificates, tables
            self.assertLessEqual(a["allocated"], a["active"], mem)
            self.assertLessEqual(a["active"], a["mapped"], mem)
        else:                                   # the ASAN build: the allocator cannot tell
            self.assertNotIn("allocator", mem)
        self.assertGreaterEqual(mem["session_cache"]["entries"], 0, mem)
        self.assertEqual(mem["session_cache"]["entries"] == 0,
                         mem["session_cache"]["bytes"] == 0, mem)

        self.served_serial()
        rc, s = self.sc.json("stats")
        self.assertEqual(rc, 0)
        self.assertGreaterEqual(s["counters"]["conn_accepted"], 1)
        rc, s = self.sc.json("stats", "--per-core")
        self.assertEqual(rc, 0)
        self.assertEqual(len(s["cores"]), 2)
        self.assertEqual(sum(c["conn_accepted"] for c in s["cores"]),
                         self.sc.json("stats")[1]["counters"]["conn_accepted"])
        rc, out, err = self.sc.ctl("stats")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^conn_accepted\s+\d+$")
        rc, out, err = self.sc.ctl("stats", "--per-core")
        self.assertRegex(out, r"(?m)^COUNTER\s+core0\s+core1$")

    def test_session_cache_holds_tls12_sessions_only(self):
        """The session-ID cache keeps what a client can resume by ID: a
        TLS 1.2 session, not the TLS 1.3 ones OpenSSL also reports (their
        tickets are stateless). Before, every TLS 1.3 handshake took an
        entry, and the cache grew with each."""
        def entries():
            rc, st = self.sc.json("status")
            self.assertEqual(rc, 0)
            return st["memory"]["session_cache"]["entries"]

        def s_client(*args):
            p = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{BASE + 1}",
                                "-servername", NAME, *args], input=b"", timeout=20,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            return p.stdout.decode(errors="replace")

        n0 = entries()
        out = s_client("-tls1_3")
        self.assertIn("TLSv1.3", out)
        self.assertEqual(entries(), n0, "a TLS 1.3 session took a session-ID cache entry")
        sess = self.d / "tls12.sess"
        out = s_client("-tls1_2", "-no_ticket", "-sess_out", str(sess))
        self.assertIn("TLSv1.2", out)
        wait_until(lambda: entries() == n0 + 1, 5, "the TLS 1.2 session in the cache")
        out = s_client("-tls1_2", "-no_ticket", "-sess_in", str(sess))
        self.assertIn("Reused, TLSv1.2", out)

    def test_help_usage_and_exit_codes(self):
        rc, out, err = self.sc.ctl("--help")
        self.assertEqual(rc, 0)
        vs = verbs()
        self.assertGreaterEqual(len(vs), 15)
        for words, args in vs:
            self.assertIn(f"  {words}", out)
            rc, o, e = self.sc.ctl(*words.split(), "--help")
            self.assertEqual(rc, 0, f"{words} --help: {e}")
            self.assertIn(f"sluicectl [-s SOCKET | -c CONFIG] [-j] {words}", o)
        self.assertEqual(self.sc.ctl("frobnicate")[0], 2)
        self.assertEqual(self.sc.ctl("certs", "stage", "mail")[0], 2)     # no --cert
        self.assertEqual(self.sc.ctl("drain", "--deadline", "soon")[0], 2)
        self.assertEqual(self.sc.ctl("status", "extra")[0], 2)
        rc, out = run([control_bin("sluicectl"), "-s", str(self.d / "none.sock"), "status"])
        self.assertEqual(rc, 3, out)
        self.assertIn("cannot reach sluice-control", out)
        # -c CONFIG finds control.socket in the configuration.
        rc, out = run([control_bin("sluicectl"), "-c", self.sl.path, "status"])
        self.assertEqual(rc, 0, out)
        # A refusal is 1, with the reason.
        rc, out, err = self.sc.ctl("certs", "commit")
        self.assertEqual(rc, 1)
        self.assertIn("nothing is staged", err)

    def test_bash_completion(self):
        script = Path(control_bin("sluicectl.bash"))
        self.assertTrue(script.exists(), "the build makes control/sluicectl.bash")

        def complete(*words):
            line = " ".join(["sluicectl", *words])
            prog = (f"source {script}; COMP_WORDS=(sluicectl {' '.join(words)}); "
                    f"COMP_CWORD={len(words)}; COMP_LINE='{line}'; _sluicectl; "
                    'printf "%s\\n" "${COMPREPLY[@]}"')
            p = subprocess.run(["bash", "-c", prog], stdout=subprocess.PIPE, text=True,
                               timeout=10)
            return set(p.stdout.split())
        firsts = complete("")
        for words, args in verbs():
            w = words.split()
            self.assertIn(w[0], firsts)
            if len(w) == 2:
                self.assertIn(w[1], complete(w[0], ""))
            opts = set(re.findall(r"--[\w-]+", args))
            self.assertLessEqual(opts, complete(*w, "--"), words)
        self.assertEqual(complete("-j", "cer"), {"certs"})
        self.assertEqual(complete("tickets", "r"), {"rotate"})

    def test_explain(self):
        """explain against the running configuration: a real hello (hex,
        split over arguments or from stdin) gets the set's P-256 certificate;
        a TLS 1.2 hello offering only P-384 gets none, with the rule."""
        hexed = client_hello().hex()
        rc, out, err = self.sc.ctl("explain", hexed[:40], hexed[40:], "--listener", "smtps")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^listener smtps, policy intermediate, cert set mail\n")
        self.assertRegex(out, r"verdict: cert 0 ecdsa-p256")
        p = subprocess.run([control_bin("sluicectl"), "-s", self.sc.socket, "-j", "explain", "-"],
                           input=hexed.encode(), stdout=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0)
        import json
        self.assertTrue(json.loads(p.stdout)["succeeds"])
        rc, out = run([control_bin("sluicectl"), "-s", self.sc.socket, "explain", "zz"])
        self.assertEqual(rc, 1, out)
        self.assertIn("not a hex byte", out)

    # ----------------------------------------------------- admin socket ---

    def test_socket_mode_and_peers(self):
        st = os.stat(self.sc.socket)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        import grp
        self.assertEqual(st.st_gid, grp.getgrnam(GROUP).gr_gid)
        # A member of admin_group is served.
        rc, out, err = self.sc.ctl("status", user=MEMBER)
        self.assertEqual(rc, 0, err)
        self.assertIn("attached", out)
        # nobody cannot even open the socket (its mode) ...
        rc, out, err = self.sc.ctl("status", user=OUTSIDER)
        self.assertEqual(rc, 3, err)
        self.assertIn("Permission denied", err)
        # ... and when the mode lets it, SO_PEERCRED refuses it.
        os.chmod(self.sc.socket, 0o666)
        try:
            rc, out, err = self.sc.ctl("status", user=OUTSIDER)
            rc2, out2, err2 = self.sc.ctl("reload", user=OUTSIDER)
            # Membership is the group database's (getgrouplist), not only
            # the groups the process runs with.
            rc3, out3, err3 = self.sc.ctl("status", user=MEMBER, groups=False)
        finally:
            os.chmod(self.sc.socket, 0o660)
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"permission denied: uid \d+ is neither root nor in group "
                         + GROUP)
        self.assertEqual(rc2, 1, err2)
        self.assertEqual(rc3, 0, err3)
        self.assertRegex(self.sc.log_text(), r"admin socket: refused uid \d+ pid \d+: "
                         r"permission denied")

    def test_bad_and_slow_clients(self):
        def raw():
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(10)
            s.connect(self.sc.socket)
            return s

        answer = read_json_line
        silent, half = raw(), raw()
        half.sendall(b'{"cmd": "sta')
        # A client that sends and never reads: its answers pile up in its
        # own buffer only.
        greedy = raw()
        greedy.sendall(b'{"cmd": "certs_list"}\n' * 2000)
        t0 = time.monotonic()
        rc, out, err = self.sc.ctl("status")
        self.assertEqual(rc, 0, err)
        self.assertLess(time.monotonic() - t0, 3)
        # Many at once, beside them: every one answered.
        procs = [subprocess.Popen([control_bin("sluicectl"), "-s", self.sc.socket, "-j",
                                   "stats" if i % 2 else "status"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE) for i in range(24)]
        for p in procs:
            out, err = p.communicate(timeout=30)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn(b'"ok": true', out)
        with raw() as s:
            s.sendall(b"this is not json\n")
            a = answer(s)
            self.assertFalse(a["ok"])
            self.assertIn("not JSON", a["error"])
            s.sendall(b'{"nocmd": 1}\n')
            self.assertIn('no "cmd"', answer(s)["error"])
            s.sendall(b'{"cmd": "frobnicate"}\n')
            self.assertIn("unknown cmd", answer(s)["error"])
            s.sendall(b'{"cmd": "certs_list"}\n')
            self.assertTrue(answer(s)["ok"])
        # The silent and the half-line clients are dropped after 5 s.
        silent.settimeout(10)
        self.assertEqual(silent.recv(10), b"")
        half.settimeout(10)
        self.assertEqual(half.recv(10), b"")
        for s in (silent, half, greedy):
            s.close()
        self.assertEqual(self.sc.ctl("status")[0], 0)
        self.assertTrue(self.sc.running())

    # ----------------------------------------------------------- reload ---

    def test_reload_good(self):
        new = pki.leaf(self.d / "new", "p256", names=(NAME,))
        self.assertEqual(self.served_serial(), serial_file(self.old["cert"]))
        gen = self.sc.json("status")[1]["generation"]
        self.install(new)
        rc, out, err = self.sc.ctl("reload")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out.strip(), f"reloaded: generation {gen + 1}")
        self.assertEqual(self.served_serial(), serial_file(new["cert"]))
        rc, st = self.sc.json("status")
        self.assertTrue(st["control"]["last_reload"]["ok"])
        self.assertEqual(st["generation"], gen + 1)
        # certs list shows the new certificate, from the file it came from.
        rc, cl = self.sc.json("certs", "list")
        mail = next(s for s in cl["sets"] if s["name"] == "mail")
        self.assertEqual([(c["kind"], c["source"], c["names"]) for c in mail["certs"]],
                         [("ecdsa-p256", self.live["cert"], [NAME])])
        self.assertEqual(set(mail["listeners"]), {"smtp", "smtps"})
        rc, out, err = self.sc.ctl("certs", "list")
        self.assertRegex(out, r"(?m)^mail\s+ecdsa-p256\s+\d{4}-\d\d-\d\d \S+\s+36\d\s+"
                         + re.escape(NAME) + r"\s+" + re.escape(self.live["cert"]) + "$")

    def test_reload_by_sighup(self):
        new = pki.leaf(self.d / "hup", "p256", names=(NAME,))
        self.install(new)
        os.kill(self.sc.proc.pid, 1)
        wait_until(lambda: self.served_serial() == serial_file(new["cert"]), 15,
                   "the new certificate after SIGHUP to sluice-control")
        self.assertRegex(self.sc.log_text(), r"SIGHUP: reloading")

    def refused(self, pattern):
        old = serial_file(self.old["cert"])
        gen = self.sc.json("status")[1]["generation"]
        failed = self.sc.json("status")[1]["control"]["reloads_failed"]
        rc, out, err = self.sc.ctl("reload")
        self.assertEqual(rc, 1, out)
        self.assertRegex(err, pattern)
        self.assertEqual(self.served_serial(), old)
        rc, st = self.sc.json("status")
        self.assertEqual(st["generation"], gen, "nothing changed")
        self.assertFalse(st["control"]["last_reload"]["ok"])
        self.assertRegex(st["control"]["last_reload"]["error"], pattern)
        self.assertEqual(st["control"]["reloads_failed"], failed + 1)
        rc, out, err = self.sc.ctl("status")
        self.assertRegex(out, r"last reload: FAILED at \S+ \S+: " + pattern)
        self.assertRegex(self.sc.log_text(), r"reload refused, nothing changed: " + pattern)

    def certs_line(self):
        return rf"{re.escape(str(self.sl.path))}:\d+: cert_sets\[0\]\.certs\[0\]: "

    def test_reload_key_of_another_certificate(self):
        new = pki.leaf(self.d / "new2", "p256", names=(NAME,))
        self.install(new, key_from=self.old)
        self.refused(self.certs_line() + re.escape(self.live["key"]) +
                     ": key does not match the certificate")

    def test_reload_misnamed_key_file(self):
        new = pki.leaf(self.d / "new3", "p256", names=(NAME,))
        self.install(new)
        os.replace(self.live["key"], self.live["key"] + ".new")
        self.refused(self.certs_line() + re.escape(self.live["key"]) +
                     ": cannot read key: No such file or directory")

    def test_reload_expired_certificate(self):
        expired = pki.leaf(self.d / "expired", "p256", names=(NAME,),
                           not_before=pki.NOW - 400 * pki.DAY, not_after=pki.NOW - pki.DAY)
        self.install(expired)
        self.refused(self.certs_line() + re.escape(self.live["cert"]) + r": expired on ")

    def test_reload_yaml_syntax_error(self):
        self.sl.path.write_text(self.yaml.replace("listeners:", "listeners: [\n", 1))
        self.refused(rf"{re.escape(str(self.sl.path))}:\d+")

    # ------------------------------------------------- staged changes ---

    def test_certs_stage_commit(self):
        new = pki.leaf(self.d / "staged", "p256", names=(NAME,))
        old_serial = serial_file(self.old["cert"])
        rc, out, err = self.sc.ctl("certs", "stage", "mail", "--cert", new["cert"],
                                   "--key", new["key"])
        self.assertEqual(rc, 0, err)
        self.assertIn("staged: cert set mail: ecdsa-p256 certificate " + self.live["cert"], out)
        # Staged is not served, and a second change waits for this one.
        self.assertEqual(self.served_serial(), old_serial)
        rc, out, err = self.sc.ctl("policy", "stage", "smtps", "modern")
        self.assertEqual(rc, 1)
        self.assertIn("a change is already staged", err)
        rc, st = self.sc.json("status")
        self.assertIn("cert set mail", st["control"]["staged"])
        rc, chk = self.sc.json("certs", "check")
        self.assertEqual(rc, 0)
        self.assertTrue(chk["valid"])
        rc, out, err = self.sc.ctl("certs", "commit")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"committed: cert set mail: .*\ngeneration \d+")
        self.assertEqual(self.served_serial(), serial_file(new["cert"]))
        # Written back: the live files hold the new ones, modes kept, no
        # .tmp left.
        self.assertEqual(Path(self.live["cert"]).read_bytes(), Path(new["cert"]).read_bytes())
        self.assertEqual(Path(self.live["key"]).read_bytes(), Path(new["key"]).read_bytes())
        self.assertEqual(stat.S_IMODE(os.stat(self.live["key"]).st_mode), 0o640)
        self.assertEqual(stat.S_IMODE(os.stat(self.live["cert"]).st_mode), 0o644)
        self.assertFalse(Path(self.live["key"] + ".tmp").exists())
        self.assertIsNone(self.sc.json("status")[1]["control"]["staged"])

    def test_commit_under_load(self):
        """Deliveries without pause across a commit: every one succeeds and
        lands once; a second after the commit every new handshake shows the
        new certificate."""
        new = pki.leaf(self.d / "underload", "p256", names=(NAME,))
        old_serial, new_serial = serial_file(self.old["cert"]), serial_file(new["cert"])
        self.assertEqual(self.sc.ctl("certs", "stage", "mail", "--cert", new["cert"],
                                     "--key", new["key"])[0], 0)
        serials = []

        def probe():
            serials.append((time.monotonic(), self.served_serial()))
        with Deliveries(self.sl.addr("smtp")) as load:
            wait_until(lambda: len(load.results) >= 3, 30, "deliveries before the commit")
            rc, out, err = self.sc.ctl("certs", "commit")
            t_done = time.monotonic()
            self.assertEqual(rc, 0, err)
            n = len(load.results)
            wait_until(lambda: len(load.results) >= n + 5, 30, "deliveries after the commit")
            time.sleep(max(0, t_done + 1.0 - time.monotonic()))
            for _ in range(3):
                probe()
        self.assertEqual([r for r in load.results if r[1]], [], "every delivery succeeds")
        self.assertEqual({s for t, s in serials}, {new_serial})
        self.assertNotEqual(old_serial, new_serial)
        for tag, _ in load.results:
            got = PF.maildir_messages(containing=f"Message-ID: <{tag}@".encode(), timeout=30)
            self.assertEqual(len(got), 1, f"{tag}: delivered {len(got)} times")

    def test_certs_stage_refused(self):
        rsa = pki.leaf(self.d / "rsa", "rsa", names=(NAME,))
        rc, out, err = self.sc.ctl("certs", "stage", "mail", "--cert", rsa["cert"],
                                   "--key", rsa["key"])
        self.assertEqual(rc, 1)
        self.assertIn("cert set mail has no rsa-2048 certificate to replace (it holds: "
                      "ecdsa-p256 " + self.live["cert"] + ")", err)
        rc, out, err = self.sc.ctl("certs", "stage", "nosuch", "--cert", rsa["cert"],
                                   "--key", rsa["key"])
        self.assertEqual(rc, 1)
        self.assertIn("no cert set named nosuch", err)
        # A key of another certificate: refused when staged, nothing staged.
        other = pki.leaf(self.d / "other", "p256", names=(NAME,))
        rc, out, err = self.sc.ctl("certs", "stage", "mail", "--cert", other["cert"],
                                   "--key", self.old["key"])
        self.assertEqual(rc, 1)
        self.assertRegex(err, r"refused, nothing staged .*key does not match the certificate")
        self.assertEqual(self.sc.ctl("certs", "check")[0], 1)
        # abort drops a staged change; the files were never touched.
        good = pki.leaf(self.d / "aborted", "p256", names=(NAME,))
        self.assertEqual(self.sc.ctl("certs", "stage", "mail", "--cert", good["cert"],
                                     "--key", good["key"])[0], 0)
        self.assertEqual(self.sc.ctl("certs", "abort")[0], 0)
        self.assertEqual(self.sc.ctl("certs", "commit")[0], 1)
        self.assertEqual(serial_file(self.live["cert"]), serial_file(self.old["cert"]))

    def test_policy_stage_commit(self):
        rc, out, err = self.sc.ctl("policy", "stage", "smtps", "modern")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"listener smtps: policy intermediate -> modern")
        rc, out, err = self.sc.ctl("policy", "commit")
        self.assertEqual(rc, 0, err)
        text = self.sl.path.read_text()
        self.assertIn("policy: modern   # reviewed", text)
        self.assertEqual(text, self.yaml.replace("policy: intermediate", "policy: modern"))
        # Served: TLS 1.2 is refused on smtps now, TLS 1.3 still works.
        addr = self.sl.addr("smtps")
        rc, out = run(["openssl", "s_client", "-connect", f"{addr[0]}:{addr[1]}", "-ign_eof", "-tls1_2"],
                      input=b"QUIT\r\n", timeout=20)
        self.assertNotEqual(rc, 0, out)
        rc, out = run(["openssl", "s_client", "-connect", f"{addr[0]}:{addr[1]}", "-ign_eof", "-tls1_3"],
                      input=b"QUIT\r\n", timeout=20)
        self.assertEqual(rc, 0, out)
        # The other listener has no policy line: refused, naming what to do.
        rc, out, err = self.sc.ctl("policy", "stage", "smtp", "legacy")
        self.assertEqual(rc, 1)
        self.assertIn("listener smtp (line", err)
        self.assertIn("has no policy: line of its own", err)
        rc, out, err = self.sc.ctl("policy", "stage", "smtps", "weak")
        self.assertEqual(rc, 1)
        self.assertIn("no policy named weak", err)

    def test_dataplane_restart(self):
        """sluice restarted under a running sluice-control: it says so,
        answers that the dataplane is not attached meanwhile (exit 1), and
        attaches to the new process by itself."""
        old_pid = self.sl.proc.pid
        self.sl.stop()
        wait_until(lambda: f"lost the dataplane (pid {old_pid})" in self.sc.log_text(), 10,
                   "sluice-control to notice the dataplane left")
        rc, out, err = self.sc.ctl("status")
        self.assertEqual(rc, 1, out)
        self.assertIn("the dataplane is not attached", err)
        rc, out, err = self.sc.ctl("reload")
        self.assertEqual(rc, 1)
        self.assertIn("nothing changed: the dataplane is not attached", err)
        self.sl.start()
        wait_until(lambda: f"attached to dataplane pid {self.sl.proc.pid} generation 1 "
                   in self.sc.log_text(), 10, "sluice-control to attach to the new sluice")
        rc, st = self.sc.json("status")
        self.assertEqual(rc, 0)
        self.assertEqual(st["pid"], self.sl.proc.pid)
        self.assertTrue(self.sc.running())

    def test_health_drain_undrain(self):
        """health exits 0 only while serving and not draining: a drain with
        a transaction open (it keeps the dataplane draining until it ends),
        health 1, undrain, health 0; the transaction lands."""
        rc, out, err = self.sc.ctl("health")
        self.assertEqual((rc, out), (0, "serving, not draining\n"), err)
        tag = unique("drain")
        s = smtplib.SMTP(*self.sl.addr("smtp"), local_hostname="client.test",
                         source_address=client_source(CLIENT), timeout=20)
        try:
            s.starttls(context=no_verify_context())
            s.ehlo("client.test")
            self.assertEqual(s.mail(SENDER)[0], 250)
            self.assertEqual(s.rcpt(recipient(tag))[0], 250)
            self.assertEqual(s.docmd("DATA")[0], 354)
            msg = make_message(tag)
            s.send(msg[:10])
            rc, out, err = self.sc.ctl("drain", "--deadline", "1m")
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"^draining: \d+ sessions still open")
            rc, out, err = self.sc.ctl("health")
            self.assertEqual(rc, 1, out)
            self.assertIn("draining", out)
            rc, h = self.sc.json("health")
            self.assertEqual((h["serving"], h["draining"]), (False, True))
            rc, out, err = self.sc.ctl("undrain")
            self.assertEqual(rc, 0, err)
            rc, out, err = self.sc.ctl("health")
            self.assertEqual(rc, 0, out)
            s.send(msg[10:] + b".\r\n")
            code, text = s.getreply()
            self.assertEqual(code, 250, text)
            s.quit()
        finally:
            s.close()
        self.assertEqual(len(PF.maildir_messages(containing=f"Message-ID: <{tag}@".encode(),
                                                 timeout=30)), 1)
        self.assertEqual(self.sc.ctl("undrain")[0], 1, "not draining any more")

    # ---------------------------------------------------- ticket keys ---

    def s_client(self, *args):
        addr = self.sl.addr("smtps")
        rc, out = run(["openssl", "s_client", "-connect", f"{addr[0]}:{addr[1]}", "-ign_eof",
                       *map(str, args)], input=b"QUIT\r\n", timeout=20)
        m = re.search(r"^(New|Reused), ", out, re.M)
        return rc, out, m.group(1) if m else None

    def test_tickets_show_and_rotate(self):
        rc, show = self.sc.json("tickets", "show")
        self.assertEqual(rc, 0, show)
        self.assertEqual(show["source"], "sluice-control")
        names = [k["name"] for k in show["keys"]]
        self.assertEqual([k["name"] for k in show["dataplane"]["keys"]], names,
                         "the dataplane holds the ring sluice-control made")
        self.assertEqual(show["dataplane"]["source"], "sluice-control")
        self.assertNotIn("hmac", json_text(show))
        rc, out, err = self.sc.ctl("tickets", "show")
        self.assertRegex(out, r"(?m)^KEY\s+AGE\s+NOT_BEFORE\s+NOT_AFTER\s+SEALING$")
        # A ticket issued before a rotation still resumes after it.
        for version in ("-tls1_2", "-tls1_3"):
            sess = self.d / f"sess{version}"
            rc, out, kind = self.s_client(version, "-sess_out", sess)
            self.assertEqual((rc, kind), (0, "New"), out)
            rc, out, err = self.sc.ctl("tickets", "rotate")
            self.assertEqual(rc, 0, err)
            rc, now = self.sc.json("tickets", "show")
            sealing = [k["name"] for k in now["keys"] if k["sealing"]]
            self.assertEqual(len(sealing), 1)
            self.assertNotIn(sealing[0], names, "a new key seals")
            self.assertEqual([k["name"] for k in now["dataplane"]["keys"]],
                             [k["name"] for k in now["keys"]])
            names = [k["name"] for k in now["keys"]]
            rc, out, kind = self.s_client(version, "-sess_in", sess)
            self.assertEqual((rc, kind), (0, "Reused"), out)
        self.assertRegex(self.sc.log_text(), r"tickets rotate \(by uid 0 pid \d+\): a new "
                         r"sealing key")

    # ----------------------------------------------------- kill -9 ------

    def test_kill_under_load(self):
        dp_pid = self.sl.proc.pid
        with Deliveries(self.sl.addr("smtp")) as load:
            wait_until(lambda: len(load.results) >= 3, 30, "deliveries before the kill")
            self.sc.kill()
            n = len(load.results)
            wait_until(lambda: len(load.results) >= n + 3, 30, "deliveries without control")
            before = self.sc.log_text().count("attached to dataplane")
            self.sc.start()
            self.assertEqual(self.sc.log_text().count("attached to dataplane"), before + 1)
            self.assertEqual(self.sc.ctl("status")[0], 0)
            n = len(load.results)
            wait_until(lambda: len(load.results) >= n + 3, 30, "deliveries after the restart")
        self.assertEqual([r for r in load.results if r[1]], [], "every delivery succeeds")
        gen = self.sc.json("status")[1]["generation"]
        self.assertRegex(self.sc.log_text(),
                         rf"attached to dataplane pid {dp_pid} generation {gen} ")
        # The new process pushed its ticket keys on attaching.
        rc, show = self.sc.json("tickets", "show")
        self.assertEqual([k["name"] for k in show["dataplane"]["keys"]],
                         [k["name"] for k in show["keys"]])
        self.assertEqual(self.sl.proc.pid, dp_pid)
        for tag, _ in load.results:
            got = PF.maildir_messages(containing=f"Message-ID: <{tag}@".encode(), timeout=30)
            self.assertEqual(len(got), 1, f"{tag}: delivered {len(got)} times")


if __name__ == "__main__":
    unittest.main()
