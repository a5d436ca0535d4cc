"""Live reload (issue 11): certificates renewed while mail flows.

A client loop makes SMTP STARTTLS deliveries into a real Postfix through
sluice without pause while the certificate is swapped:

- by the files and SIGHUP (the dataplane re-reads its configuration);
- by the `load` command on the dataplane's control socket, with the
  configuration and the files' bytes in the request (what sluice-control
  sends: the dataplane reads no file).

Every delivery succeeds and lands once, a session open across the swap
finishes on its old certificate and its message lands, and within one
second new handshakes show the new certificate's serial. A bad renewal
(the key of another certificate, a key file under the wrong name, an
expired certificate, a YAML syntax error) is refused with file, line, key
and reason, the old certificate keeps serving, and status says the reload
failed. A change only a restart can apply (a new listener address) is
refused by name.
"""

import json
import os
import re
import signal
import smtplib
import threading
import time
import unittest
from pathlib import Path

from cryptography import x509

import pki
from harness import (SENDER, Postfix, Sluice, client_source, make_message, no_verify_context,
                     recipient, scratch, stop_all, unique, wait_until)

CLIENT = "127.0.0.71"
BASE = 40100
NAME = "mail.example.test"

PF = None


def setUpModule():
    global PF
    PF = Postfix().start()


def tearDownModule():
    stop_all(PF)


def serial_of(sock):
    return x509.load_der_x509_certificate(sock.getpeercert(binary_form=True)).serial_number


def serial_file(path):
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number


class Load:
    """Senders delivering one message per session without pause, each
    recording (handshake start, handshake end, serial, tag, error)."""

    def __init__(self, addr, senders=2):
        self.addr = addr
        self.stop = threading.Event()
        self.results = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(senders)]

    def one(self):
        tag = unique("reload")
        t0 = time.monotonic()
        serial = t1 = None
        try:
            with smtplib.SMTP(*self.addr, local_hostname="client.test",
                              source_address=client_source(CLIENT), timeout=20) as s:
                t0 = time.monotonic()
                s.starttls(context=no_verify_context())
                t1 = time.monotonic()
                serial = serial_of(s.sock)
                self.assertion = s.sendmail(SENDER, [recipient(tag)], make_message(tag))
                err = None if self.assertion == {} else f"refused {self.assertion}"
        except Exception as e:  # every failure is a finding: recorded, asserted on
            err = f"{type(e).__name__}: {e}"
        with self.lock:
            self.results.append((t0, t1, serial, tag, err))

    def run(self):
        while not self.stop.is_set():
            self.one()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(60)

    def count(self):
        with self.lock:
            return len(self.results)


class Reload(unittest.TestCase):
    """One sluice per test, its certificate files in a folder of its own."""

    def setUp(self):
        self.d = scratch() / f"reload-{os.getpid()}-{self._testMethodName}"
        self.d.mkdir(parents=True, exist_ok=True)
        self.old = pki.leaf(self.d / "old", "p256", names=(NAME,))
        self.new = pki.leaf(self.d / "new", "p256", names=(NAME,))
        self.live = {"cert": str(self.d / "live.crt"), "key": str(self.d / "live.key")}
        self.install(self.old)
        self.cfg = {
            "hostname": NAME, "cores": 2, "workers": 2,
            "backends": [{"name": "pf", "protocol": "smtp", "proxy": "v2",
                          "servers": ["127.0.0.1:10026"]}],
            "listeners": [{"name": "smtp", "address": f"127.0.0.1:{BASE}", "protocol": "smtp",
                           "tls": "starttls", "backend": "pf", "certs": [dict(self.live)]}],
        }
        self.sl = Sluice(self.cfg).start()

    def tearDown(self):
        stop_all(self.sl)

    def install(self, pair, key_from=None):
        """Copy pair's files over the live ones, each by rename (as certbot
        and configuration management do)."""
        for part, src in (("cert", pair["cert"]), ("key", (key_from or pair)["key"])):
            tmp = Path(self.live[part] + ".tmp")
            tmp.write_bytes(Path(src).read_bytes())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.live[part])

    def served_serial(self):
        with smtplib.SMTP(*self.sl.addr("smtp"), local_hostname="client.test",
                          source_address=client_source(CLIENT), timeout=10) as s:
            s.starttls(context=no_verify_context())
            return serial_of(s.sock)

    def sighup_and_wait(self, ok):
        before = self.sl.ctl("status").get("last_reload") or {}
        n0 = before.get("reloads_ok", 0) + before.get("reloads_failed", 0)
        os.kill(self.sl.proc.pid, signal.SIGHUP)

        def done():
            st = self.sl.ctl("status").get("last_reload") or {}
            return st if st.get("reloads_ok", 0) + st.get("reloads_failed", 0) > n0 else None
        st = wait_until(done, 10, "the reload to be recorded in status")
        self.assertEqual(st["ok"], ok, st)
        return st

    def open_transaction(self):
        """A session inside TLS with MAIL, RCPT and DATA begun: open across
        the swap."""
        tag = unique("across")
        s = smtplib.SMTP(*self.sl.addr("smtp"), local_hostname="client.test",
                         source_address=client_source(CLIENT), timeout=20)
        s.starttls(context=no_verify_context())
        s.ehlo("client.test")
        serial = serial_of(s.sock)
        self.assertEqual(s.mail(SENDER)[0], 250)
        self.assertEqual(s.rcpt(recipient(tag))[0], 250)
        self.assertEqual(s.docmd("DATA")[0], 354)
        msg = make_message(tag)
        half = len(msg) // 2
        s.send(msg[:half])
        return s, tag, serial, msg[half:]

    def swap_under_load(self, swap):
        old_serial, new_serial = serial_file(self.old["cert"]), serial_file(self.new["cert"])
        self.assertEqual(self.served_serial(), old_serial)
        with Load(self.sl.addr("smtp")) as load:
            wait_until(lambda: load.count() >= 6, 30, "deliveries before the swap")
            s, tag, across_serial, rest = self.open_transaction()
            t_swap = time.monotonic()
            swap()
            t_done = time.monotonic()
            def after():
                with load.lock:
                    return len([r for r in load.results if r[0] > t_done + 1.0]) >= 10
            wait_until(after, 60, "10 deliveries begun more than a second after the swap")
            # The session opened before the swap finishes on its old certificate.
            s.send(rest + b".\r\n")
            code, text = s.getreply()
            self.assertEqual(code, 250, text)
            s.quit()
        self.assertEqual(across_serial, old_serial)
        errors = [r for r in load.results if r[4]]
        self.assertEqual(errors, [], "every session across the swap succeeds")
        # Within one second of the swap, every new handshake shows the new
        # certificate; none shows a third one.
        late = [r for r in load.results if r[0] > t_done + 1.0]
        self.assertTrue(late, "handshakes after the swap")
        self.assertEqual({r[2] for r in late}, {new_serial})
        self.assertLessEqual({r[2] for r in load.results}, {old_serial, new_serial})
        self.assertEqual(self.served_serial(), new_serial)
        first_new = min((r[0] for r in load.results if r[2] == new_serial), default=None)
        old_after = [r for r in load.results if r[0] > t_done and r[2] == old_serial]
        print(f"\n  {len(load.results)} deliveries, 0 failed; swap took "
              f"{(t_done - t_swap) * 1000:.1f} ms; first new-certificate handshake began "
              f"{(first_new - t_swap) * 1000:.1f} ms after it began; {len(old_after)} began "
              f"after it ended on the old certificate", end=" ", flush=True)
        # Every message acknowledged is in the Maildir, once.
        tags = [r[3] for r in load.results] + [tag]
        for t in tags:
            got = PF.maildir_messages(containing=f"Message-ID: <{t}@".encode(), timeout=30)
            self.assertEqual(len(got), 1, f"{t}: delivered {len(got)} times")
        return t_done - t_swap

    def test_files_and_sighup(self):
        def swap():
            self.install(self.new)
            self.sighup_and_wait(ok=True)
        self.swap_under_load(swap)
        st = self.sl.ctl("status")
        self.assertEqual(st["generation"], 2)
        self.assertRegex(self.sl.log_text(), r"reload from SIGHUP: generation 2 is serving")

    def test_load_from_control(self):
        """What sluice-control sends: the YAML and the files' bytes."""
        def swap():
            files = {}
            for part, src in (("cert", self.new["cert"]), ("key", self.new["key"])):
                files[self.live[part]] = {"data": Path(src).read_text(), "mode": 0o600,
                                          "uid": 0, "gid": 0}
            ans = self.sl.ctl("load", path=str(self.sl.path),
                              yaml=self.sl.path.read_text(), files=files)
            self.assertTrue(ans["ok"], ans)
            self.assertEqual(ans["generation"], 2)
        self.swap_under_load(swap)
        # The dataplane used the bytes it was sent: the files on disk still
        # hold the old certificate.
        self.assertEqual(serial_file(self.live["cert"]), serial_file(self.old["cert"]))

    def refused(self, pattern):
        """SIGHUP refuses the change with pattern; the old certificate still
        serves; status says so."""
        old_serial = serial_file(self.old["cert"])
        st = self.sighup_and_wait(ok=False)
        self.assertRegex(st["error"], pattern)
        self.assertRegex(self.sl.log_text(), r"reload from SIGHUP refused, generation 1 keeps "
                         r"serving: " + pattern)
        self.assertEqual(self.served_serial(), old_serial)
        self.assertEqual(self.sl.ctl("status")["generation"], 1)
        return st

    def certs_line(self):
        return rf"{re.escape(str(self.sl.path))}:\d+: listeners\[0\]\.certs\[0\]: "

    def test_key_of_another_certificate(self):
        self.install(self.new, key_from=self.old)
        self.refused(self.certs_line() + re.escape(self.live["key"]) +
                     ": key does not match the certificate")

    def test_key_file_under_the_wrong_name(self):
        self.install(self.new)
        os.replace(self.live["key"], self.live["key"] + ".new")
        self.refused(self.certs_line() + re.escape(self.live["key"]) +
                     ": cannot read key: No such file or directory")

    def test_expired_certificate(self):
        expired = pki.leaf(self.d / "expired", "p256", names=(NAME,),
                           not_before=pki.NOW - 400 * pki.DAY, not_after=pki.NOW - 1 * pki.DAY)
        self.install(expired)
        self.refused(self.certs_line() + re.escape(self.live["cert"]) + r": expired on ")

    def test_yaml_syntax_error(self):
        text = self.sl.path.read_text()
        self.sl.path.write_text(text.replace("listeners:", "listeners: [\n", 1))
        self.refused(rf"{re.escape(str(self.sl.path))}:\d+")

    def test_change_that_needs_a_restart(self):
        cfg = json.loads(json.dumps(self.cfg))
        cfg["backends"][0]["servers"] = ["127.0.0.1:10025"]
        self.sl.rewrite(cfg)
        self.refused(rf"{re.escape(str(self.sl.path))}:\d+: backends\[0\]: 'pf' changed: "
                     r"backend servers and their probes start with the process; restart to "
                     r"apply")
        cfg = json.loads(json.dumps(self.cfg))
        cfg["workers"] = 1
        self.sl.rewrite(cfg)
        self.refused(rf"{re.escape(str(self.sl.path))}: workers: 2 -> 1: the TLS workers "
                     r"start with the process; restart to apply")

    def test_listener_taken_by_another_process(self):
        """A new listener whose port is taken: refused by name; nothing
        changes, the old listener keeps serving."""
        import socket
        with socket.socket() as squatter:
            squatter.bind(("127.0.0.1", BASE + 2))
            squatter.listen()
            cfg = json.loads(json.dumps(self.cfg))
            cfg["listeners"].append(dict(cfg["listeners"][0], name="second",
                                         address=f"127.0.0.1:{BASE + 2}"))
            self.sl.rewrite(cfg)
            self.refused(rf"{re.escape(str(self.sl.path))}:\d+: listeners\[1\]\.address: "
                         rf"cannot listen on 127\.0\.0\.1:{BASE + 2}: Address already in use")

    def greeting(self, port):
        import socket
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.settimeout(10)
            return s.recv(512).decode()

    def test_listeners_added_removed_and_changed(self):
        """A reload adds a listener, changes one and removes one: sessions
        on the others go on untouched, a changed listener's open sessions
        finish on their old settings, a removed one refuses new
        connections within a second, and its open sessions finish."""
        import socket
        first = f"127.0.0.1:{BASE}"
        held, tag, _, rest = self.open_transaction()       # on the first listener
        plain = socket.create_connection(("127.0.0.1", BASE), timeout=10)
        self.assertIn(f"220 {NAME} ", plain.recv(512).decode())
        # 1. Add "second" (its own hostname); change the first's hostname.
        cfg = json.loads(json.dumps(self.cfg))
        cfg["listeners"][0]["hostname"] = "renamed.example.test"
        cfg["listeners"].append(dict(cfg["listeners"][0], name="second",
                                     address=f"127.0.0.1:{BASE + 3}",
                                     hostname="second.example.test"))
        self.sl.rewrite(cfg)
        self.sighup_and_wait(ok=True)
        self.assertRegex(self.sl.log_text(),
                         rf"reload: listener second 127\.0\.0\.1:{BASE + 3} added")
        self.assertIn("220 second.example.test ", self.greeting(BASE + 3))
        self.assertIn("220 renamed.example.test ", self.greeting(BASE))
        # The session opened before answers with the old settings.
        plain.sendall(b"EHLO client.test\r\n")
        self.assertIn(f"250-{NAME}", plain.recv(4096).decode())
        # 2. Remove the first listener.
        cfg = json.loads(json.dumps(cfg))
        cfg["listeners"] = cfg["listeners"][1:]
        self.sl.rewrite(cfg)
        self.sighup_and_wait(ok=True)
        self.assertRegex(self.sl.log_text(), rf"reload: listener smtp {re.escape(first)} removed")

        def refused():
            try:
                socket.create_connection(("127.0.0.1", BASE), timeout=2).close()
                return False
            except ConnectionRefusedError:
                return True
        wait_until(refused, 5, f"{first} to refuse connections")
        # Its open sessions finish: the plaintext one answers, the
        # transaction ends with 250 and lands.
        plain.sendall(b"NOOP\r\n")
        self.assertTrue(plain.recv(512).startswith(b"250"))
        plain.close()
        held.send(rest + b".\r\n")
        code, text = held.getreply()
        self.assertEqual(code, 250, text)
        held.quit()
        self.assertEqual(len(PF.maildir_messages(containing=f"<{tag}@".encode(), timeout=30)), 1)
        # The added listener delivers.
        tag2 = unique("second")
        with smtplib.SMTP("127.0.0.1", BASE + 3, local_hostname="client.test",
                          source_address=client_source(CLIENT), timeout=20) as s:
            s.starttls(context=no_verify_context())
            self.assertEqual(s.sendmail(SENDER, [recipient(tag2)], make_message(tag2)), {})
        self.assertEqual(len(PF.maildir_messages(containing=f"<{tag2}@".encode(),
                                                 timeout=30)), 1)
        self.assertEqual(self.sl.ctl("status")["generation"], 3)
        self.assertEqual([l["name"] for l in self.sl.ctl("status")["listeners"]], ["second"])

    def test_bad_load_from_control(self):
        """The dataplane checks what it is sent, whatever sent it."""
        files = {self.live["cert"]: {"data": Path(self.new["cert"]).read_text()},
                 self.live["key"]: {"data": Path(self.old["key"]).read_text()}}
        ans = self.sl.ctl("load", path=str(self.sl.path), yaml=self.sl.path.read_text(),
                          files=files)
        self.assertFalse(ans["ok"])
        self.assertRegex(ans["error"], self.certs_line() + ".*: key does not match")
        ans = self.sl.ctl("load", path=str(self.sl.path), yaml=self.sl.path.read_text(),
                          files={})
        self.assertFalse(ans["ok"])
        self.assertRegex(ans["error"], "cannot read certificate")
        self.assertEqual(self.sl.ctl("status")["generation"], 1)
        self.assertFalse(self.sl.ctl("status")["last_reload"]["ok"])
        self.assertEqual(self.served_serial(), serial_file(self.old["cert"]))


if __name__ == "__main__":
    unittest.main()
