"""Session-ticket keys (issue 11): rings pushed on the dataplane socket,
their windows, and the key files a fleet shares.

- Rotation: a ring pushed with a new sealing key still opens the tickets of
  the key before it (TLS 1.2 and 1.3, real `openssl s_client -sess_out /
  -sess_in`), and the resumed session gets a ticket of the new key; once a
  key has left the ring its tickets give a full handshake.
- Windows: a ticket sealed by a key past its not_after is not resumed; with
  no pushed key left that may seal, sluice seals with a key of its own and
  says so.
- Key files: HAProxy's tls-ticket-keys format seals with the penultimate
  line (checked against the same key in nginx's format); a key file that
  group or others may read is refused by `sluice --check`, at start and at
  reload, naming the file, the line, the key and the reason.

`tickets_show` never shows key material. The pushes are what sluice-control
sends (control/tickets.c); here Python sends them on the socket directly.
"""

import base64
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

from harness import REPO, Sluice, run, scratch, sluice_bin, wait_until

BASE = 40400          # listener ports: BASE + n (clear of the other tests' ranges)
BUILD = Path(os.environ.get("SLUICE_BUILD_DIR") or REPO / "build")
TK_RING = BUILD / "tests" / "tools" / "tk_ring"     # control/tickets.c from stdin
NAME = "mail.example.test"


def config(port, **top):
    cfg = {"hostname": NAME, "cores": 2, "workers": 2,
           "backends": [{"name": "pf", "protocol": "smtp", "proxy": "none",
                         "servers": ["127.0.0.1:10025"]}],
           "listeners": [{"name": "smtps", "address": f"127.0.0.1:{BASE + port}",
                          "protocol": "smtp", "tls": "implicit", "backend": "pf"}]}
    cfg.update(top)
    return cfg


def s_client(addr, *args, sess_in=None, sess_out=None):
    """openssl s_client to an implicit-TLS SMTP listener, QUIT after the
    banner: (output, "New"/"Reused"/None)."""
    cmd = ["openssl", "s_client", "-connect", f"{addr[0]}:{addr[1]}", "-ign_eof"]
    if sess_in:
        cmd += ["-sess_in", str(sess_in)]
    if sess_out:
        cmd += ["-sess_out", str(sess_out)]
    rc, out = run(cmd + list(args), input=b"QUIT\r\n", timeout=20)
    m = re.search(r"^(New|Reused), ", out, re.M)
    return out, m.group(1) if m else None


def ticket_name(out):
    """The key name (hex) of the last ticket s_client printed: a ticket's
    first 16 bytes (RFC 5077 4)."""
    dumps = re.findall(r"TLS session ticket:\n\s*0000 - ([0-9a-f -]{47})", out)
    return dumps[-1].replace(" ", "").replace("-", "") if dumps else None


def key(not_before, not_after):
    """A key as sluice-control pushes it: hex name, HMAC and AES-256 keys."""
    return {"name": os.urandom(16).hex(), "hmac": os.urandom(32).hex(),
            "aes": os.urandom(32).hex(), "not_before": not_before, "not_after": not_after}


class Rings(unittest.TestCase):
    """Rings pushed on the dataplane socket (the `tickets` command)."""

    @classmethod
    def setUpClass(cls):
        cls.d = Path(tempfile.mkdtemp(prefix="tickets-", dir=scratch()))

    def start(self, name, port, **top):
        sl = Sluice(config(port, **top), name).start()
        self.addCleanup(lambda: sl.stop() if sl.running() else None)
        return sl

    def push(self, sl, keys):
        ans = sl.ctl("tickets", keys=keys)
        self.assertTrue(ans.get("ok"), ans)
        self.assertEqual(ans["n"], len(keys), ans)
        return ans

    def test_rotation_keeps_tickets_of_the_key_before(self):
        sl = self.start("tk-rot", 0)
        now = int(time.time())
        ring = [key(now - 60, now + 3600)]
        self.push(sl, ring)
        for version in ("-tls1_2", "-tls1_3"):
            with self.subTest(version=version):
                a = ring[0]
                t_a, t_b = self.d / f"a{version}", self.d / f"b{version}"
                out, kind = s_client(sl.addr("smtps"), version, sess_out=t_a)
                self.assertEqual(kind, "New")
                self.assertEqual(ticket_name(out), a["name"], "sealed by the sealing key")
                # The next ring: B seals, A still opens.
                b = key(now - 30, now + 3600)
                self.push(sl, [b, a])
                out, kind = s_client(sl.addr("smtps"), version, sess_in=t_a, sess_out=t_b)
                self.assertEqual(kind, "Reused", "a ticket of the key before the rotation")
                # Opened with a key that does not seal: renewed with B.
                self.assertEqual(ticket_name(out), b["name"], "the ticket renewed with B")
                # A leaves the ring: its tickets give a full handshake.
                ring = [key(now - 10, now + 3600), b]
                self.push(sl, ring)
                self.assertEqual(s_client(sl.addr("smtps"), version, sess_in=t_a)[1], "New",
                                 "a ticket of a key no longer in the ring")
                if version == "-tls1_3":    # s_client keeps a TLS 1.2 renewal in memory only
                    self.assertEqual(s_client(sl.addr("smtps"), version, sess_in=t_b)[1],
                                     "Reused", "the ticket renewed at the resumption")
        show = sl.ctl("tickets_show")
        self.assertTrue(show["ok"], show)
        self.assertEqual(show["source"], "sluice-control", show)
        self.assertEqual([k["name"] for k in show["keys"]], [k["name"] for k in ring], show)
        self.assertEqual([k["sealing"] for k in show["keys"]], [True, False], show)
        text = json.dumps(show)
        for k in ring:
            self.assertNotIn(k["hmac"], text)
            self.assertNotIn(k["aes"], text)

    def test_next_key_pushed_ahead_seals_by_the_clock(self):
        """sluice-control pushes the next window's key before its time:
        sluice opens its tickets at once and seals with it from its
        not_before on, by its clock alone."""
        sl = self.start("tk-next", 1)
        now = int(time.time())
        nxt, cur = key(now + 3, now + 3600), key(now - 60, now + 3600)
        self.push(sl, [nxt, cur])
        show = sl.ctl("tickets_show")
        self.assertEqual([k["sealing"] for k in show["keys"]], [False, True], show)
        t = self.d / "next"
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_out=t)[1], "New")
        time.sleep(max(0, now + 4 - time.time()))
        show = sl.ctl("tickets_show")
        self.assertEqual([k["sealing"] for k in show["keys"]], [True, False], show)
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_in=t)[1], "Reused")

    def test_a_key_past_its_window_opens_nothing(self):
        """A ticket sealed by a key past its not_after gives a full
        handshake; with no pushed key left that may seal, sluice makes one
        of its own (and logs it) and resumption works again."""
        sl = self.start("tk-exp", 2)
        now = int(time.time())
        self.push(sl, [key(now - 60, now + 3)])
        for version in ("-tls1_2", "-tls1_3"):
            self.assertEqual(s_client(sl.addr("smtps"), version,
                                      sess_out=self.d / f"exp{version}")[1], "New")
        wait_until(lambda: "no key from sluice-control may seal" in sl.log_text(), 10,
                   "sluice to seal with a key of its own")
        self.assertGreaterEqual(time.time(), now + 3)
        for version in ("-tls1_2", "-tls1_3"):
            with self.subTest(version=version):
                self.assertEqual(s_client(sl.addr("smtps"), version,
                                          sess_in=self.d / f"exp{version}")[1], "New",
                                 "a ticket of a key past its window")
        show = sl.ctl("tickets_show")
        self.assertEqual(show["source"], "sluice", show)
        t = self.d / "own"
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_out=t)[1], "New")
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_in=t)[1], "Reused")

    def test_a_reload_that_changes_tickets_needs_a_restart(self):
        """Where keys come from and their windows are set at start-up: a
        reload that changes them is refused and says so."""
        sl = self.start("tk-rl", 4)
        cfg = config(4, tickets={"rotate": 7200})
        sl.rewrite(cfg)
        os.kill(sl.proc.pid, signal.SIGHUP)
        st = wait_until(lambda: (lambda s: s if (s["last_reload"] or {}).get("time") else None)(
            sl.ctl("status")), 10, "the reload to be recorded")
        self.assertFalse(st["last_reload"]["ok"], st)
        self.assertRegex(st["last_reload"]["error"], r":\d+: tickets: changed: .*restart to apply")

    def test_bad_pushes_change_nothing(self):
        sl = self.start("tk-bad", 3)
        now = int(time.time())
        t = self.d / "bad"
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_out=t)[1], "New")
        good = key(now - 10, now + 600)
        for keys, reason in (
                ([], "an array of 1 to"),
                ([dict(good, hmac="zz")], "keys[0].hmac"),
                ([dict(good, name=good["name"][:30])], "keys[0].name"),
                ([good, dict(key(now - 5, now + 600), name=good["name"])], "the same name"),
                ([key(now + 100, now + 600)], "no key may seal"),
                ([key(now - 10, now - 20)], "not after not_before")):
            with self.subTest(reason=reason):
                ans = sl.ctl("tickets", keys=keys)
                self.assertFalse(ans["ok"], ans)
                self.assertIn(reason, ans["error"])
        # The dataplane's own key still seals and opens.
        self.assertEqual(sl.ctl("tickets_show")["source"], "sluice")
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_in=t)[1], "Reused")


class ControlRing(unittest.TestCase):
    """sluice-control's ring (control/tickets.c, through tests/tools/tk_ring)
    pushed to a real sluice: what the daemon does each tick and on
    `sluicectl tickets rotate`."""

    def setUp(self):
        self.d = Path(tempfile.mkdtemp(prefix="tkring-", dir=scratch()))
        self.assertTrue(os.access(TK_RING, os.X_OK), f"{TK_RING}: build first")
        self.sl = Sluice(config(30), "tk-ring").start()
        self.addCleanup(lambda: self.sl.stop() if self.sl.running() else None)
        self.ring = subprocess.Popen([TK_RING, str(self.sl.path)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.ring.stdout.close)
        self.addCleanup(self.ring.wait, 10)
        self.addCleanup(self.ring.stdin.close)

    def ask(self, cmd):
        self.ring.stdin.write(cmd + "\n")
        self.ring.stdin.flush()
        return json.loads(self.ring.stdout.readline())

    def push(self):
        req = self.ask("request")
        self.assertEqual(req["cmd"], "tickets")
        ans = self.sl.ctl("tickets", keys=req["keys"])
        self.assertTrue(ans["ok"], ans)
        show, mine = self.sl.ctl("tickets_show"), self.ask("show")
        self.assertEqual(show["source"], "sluice-control", show)
        self.assertEqual([(k["name"], k["sealing"], k["not_after"]) for k in show["keys"]],
                         [(k["name"], k["sealing"], k["not_after"]) for k in mine["keys"]],
                         "the dataplane seals with the key sluice-control says")
        return next(k["name"] for k in mine["keys"] if k["sealing"])

    def test_rotations(self):
        self.assertEqual(self.ask("tick"), {"changed": True})
        sealing = self.push()
        self.assertEqual(self.ask("tick"), {"changed": False})
        tickets = {}
        for version in ("-tls1_2", "-tls1_3"):
            tickets[version] = self.d / f"t{version}"
            out, kind = s_client(self.sl.addr("smtps"), version, sess_out=tickets[version])
            self.assertEqual((kind, ticket_name(out)), ("New", sealing))
        self.assertEqual(self.ask("rotate"), {"rc": 0})
        rotated = self.push()
        self.assertNotEqual(rotated, sealing)
        for version, t in tickets.items():
            with self.subTest(version=version, after="one rotation"):
                out, kind = s_client(self.sl.addr("smtps"), version, sess_in=t)
                self.assertEqual((kind, ticket_name(out)), ("Reused", rotated),
                                 "resumed, and renewed with the new key")
        for _ in range(2):
            self.assertEqual(self.ask("rotate"), {"rc": 0})
        self.push()
        for version, t in tickets.items():
            with self.subTest(version=version, after="three rotations"):
                self.assertEqual(s_client(self.sl.addr("smtps"), version, sess_in=t)[1], "New",
                                 "a key out of the last control.ticket_keys (3)")


def haproxy_line(raw):
    return base64.b64encode(raw).decode() + "\n"


def nginx_key(raw80):
    """HAProxy's 80-byte key (name, AES, HMAC) in nginx's layout (name,
    HMAC, AES)."""
    return raw80[:16] + raw80[48:80] + raw80[16:48]


class KeyFiles(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.d = Path(tempfile.mkdtemp(prefix="tkfile-", dir=scratch()))

    def start(self, name, port, **top):
        sl = Sluice(config(port, **top), name).start()
        self.addCleanup(lambda: sl.stop() if sl.running() else None)
        return sl

    def write(self, name, data, mode=0o600):
        p = self.d / name
        p.write_bytes(data)
        p.chmod(mode)
        return p

    def test_haproxy_format_seals_with_the_penultimate_key(self):
        raws = [os.urandom(80) for _ in range(4)]
        hap = self.write("hap.keys", "".join(haproxy_line(r) for r in raws).encode())
        sl = self.start("tk-hap", 10, tickets={"key_file": str(hap)})
        t = self.d / "hap"
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_2", sess_out=t)[1], "New")
        sl.stop()
        # A box with only the penultimate key (nginx's layout) opens it: the
        # penultimate line sealed, and the AES and HMAC halves were read in
        # HAProxy's order.
        only = self.write("penultimate.key", nginx_key(raws[2]))
        sl2 = self.start("tk-hap2", 11, tickets={"key_file": str(only)})
        self.assertEqual(s_client(sl2.addr("smtps"), "-tls1_2", sess_in=t)[1], "Reused")
        sl2.stop()
        last = self.write("last.key", nginx_key(raws[3]))
        sl3 = self.start("tk-hap3", 12, tickets={"key_file": str(last)})
        self.assertEqual(s_client(sl3.addr("smtps"), "-tls1_2", sess_in=t)[1], "New",
                         "the last line opens tickets but does not seal")

    def test_haproxy_48_byte_keys(self):
        """AES-128 keys (48 bytes), as `openssl rand 48 | base64` makes."""
        raws = [os.urandom(48) for _ in range(3)]
        hap = self.write("hap48.keys", "".join(haproxy_line(r) for r in raws).encode())
        sl = self.start("tk-hap48", 13, tickets={"key_file": str(hap)})
        t = self.d / "hap48"
        for version in ("-tls1_2", "-tls1_3"):
            with self.subTest(version=version):
                self.assertEqual(s_client(sl.addr("smtps"), version, sess_out=t)[1], "New")
                self.assertEqual(s_client(sl.addr("smtps"), version, sess_in=t)[1], "Reused")

    def test_readable_by_others_is_refused(self):
        hap = self.write("open.keys", "".join(haproxy_line(os.urandom(80))
                                              for _ in range(3)).encode(), 0o644)
        cfg = config(14, tickets={"key_file": str(hap)})
        sl = Sluice(cfg, "tk-open")
        want = (rf"{re.escape(str(sl.path))}:\d+: tickets\.key_file: {re.escape(str(hap))}: "
                r"mode 0644: group or others may read it")
        rc, out = run([sluice_bin(), "--check", "-c", sl.path])
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, want)
        rc, out = run([sluice_bin(), "-c", sl.path], timeout=20)
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, want)
        hap.chmod(0o640)    # the group may read it: refused too
        rc, out = run([sluice_bin(), "--check", "-c", sl.path])
        self.assertNotEqual(rc, 0, out)
        self.assertIn("mode 0640: group or others may read it", out)
        hap.chmod(0o600)
        rc, out = run([sluice_bin(), "--check", "-c", sl.path])
        self.assertEqual(rc, 0, out)

    def test_refused_at_reload(self):
        """The key file turned readable while sluice runs: re-read on
        change and refused (the keys loaded before stay), and a reload
        (SIGHUP) is refused with the same reason."""
        hap = self.write("reload.keys", "".join(haproxy_line(os.urandom(80))
                                                for _ in range(3)).encode())
        sl = self.start("tk-reload", 15, tickets={"key_file": str(hap)})
        t = self.d / "reload"
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_out=t)[1], "New")
        hap.chmod(0o644)
        wait_until(lambda: "mode 0644: group or others may read it" in sl.log_text(), 10,
                   "sluice to notice the key file's mode")
        self.assertIn("the keys loaded before stay", sl.log_text())
        os.kill(sl.proc.pid, signal.SIGHUP)
        st = wait_until(lambda: (lambda s: s if (s["last_reload"] or {}).get("time") else None)(
            sl.ctl("status")), 10, "the reload to be recorded")
        self.assertFalse(st["last_reload"]["ok"], st)
        self.assertRegex(st["last_reload"]["error"],
                         r":\d+: tickets\.key_file: .*mode 0644: group or others may read it")
        self.assertEqual(s_client(sl.addr("smtps"), "-tls1_3", sess_in=t)[1], "Reused")

    def test_bad_haproxy_files(self):
        for name, text, reason in (
                ("two.keys", "".join(haproxy_line(os.urandom(80)) for _ in range(2)),
                 "2 keys; HAProxy's format needs at least 3"),
                ("mixed.keys", haproxy_line(os.urandom(80)) + haproxy_line(os.urandom(48))
                 + haproxy_line(os.urandom(80)), "line 2: a 48-byte key after 80-byte ones"),
                ("short.keys", "".join(haproxy_line(os.urandom(n)) for n in (80, 80, 79)),
                 "line 3: not a base64 key of 48 or 80 bytes")):
            with self.subTest(name=name):
                p = self.write(name, text.encode())
                rc, out = run([sluice_bin(), "--check", "-c",
                               Sluice(config(16, tickets={"key_file": str(p)}), "tk-bad").path])
                self.assertNotEqual(rc, 0, out)
                self.assertIn(f"tickets.key_file: {p}: {reason}", out)


if __name__ == "__main__":
    unittest.main()
