"""sluicectl top (issue 13, docs/operations.md): a real sluice, a real
sluice-control beside it, SMTP STARTTLS deliveries into a real Postfix, and
sluicectl top in a real tmux pane.

- In the pane (160x40): the alternate screen with the cursor hidden; after
  deliveries and a session held open, the listener's row and the session
  counts (open now, accepted) as the stats answer has them; a smaller
  window (SIGWINCH) gets a frame that fits it.
- q, Ctrl-C and SIGTERM each end it with the terminal given back: the
  main screen, the cursor shown, the line discipline as before (stty -g),
  the shell's prompt; exit 0 (q, Ctrl-C) or 143 (SIGTERM).
- Batch (-b, or stdout not a terminal): plain frames separated by a blank
  line, -n of them, no escape sequences; the second frame's rates are
  over the time between the reads.
"""

import json
import os
import re
import signal
import smtplib
import socket
import subprocess
import time
import unittest

from harness import (SENDER, Postfix, Sluice, SluiceControl, client_source, control_bin,
                     make_message, no_verify_context, read_json_line, recipient, scratch,
                     stop_all, tool, unique, wait_until)

CLIENT = "127.0.0.82"
BASE = 40200
NAME = "mail.example.test"
LISTENER = "topsmtp"

PF = None


def setUpModule():
    global PF
    PF = Postfix().start()


def tearDownModule():
    stop_all(PF)


def deliver(addr, tag):
    """One SMTP STARTTLS delivery through sluice, accepted by Postfix."""
    with smtplib.SMTP(*addr, local_hostname="client.test", source_address=client_source(CLIENT),
                      timeout=20) as s:
        s.starttls(context=no_verify_context())
        refused = s.sendmail(SENDER, [recipient(tag)], make_message(tag))
        assert refused == {}, refused


class Pane:
    """A tmux server of its own (its socket under the scratch folder, no
    configuration file) with one window running an interactive bash."""

    def __init__(self, d, width=160, height=40):
        self.sock = str(d / "tmux.sock")
        self.tmux("kill-server", check=False)
        self.tmux("new-session", "-d", "-x", str(width), "-y", str(height), "-s", "top",
                  tool("bash") + " --norc --noprofile")
        self.shell_pid = int(self.fmt("#{pane_pid}"))

    def tmux(self, *args, check=True):
        p = subprocess.run([tool("tmux"), "-S", self.sock, "-f", "/dev/null", *args],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        if check and p.returncode:
            raise AssertionError(f"tmux {' '.join(args)}: {p.stderr.decode()}")
        return p.stdout.decode()

    def keys(self, *keys):
        self.tmux("send-keys", "-t", "top", *keys)

    def line(self, text):
        self.tmux("send-keys", "-t", "top", "-l", text)
        self.keys("Enter")

    def text(self):
        return self.tmux("capture-pane", "-p", "-t", "top")

    def fmt(self, f):
        return self.tmux("display-message", "-p", "-t", "top", f).strip()

    def resize(self, width, height):
        self.tmux("resize-window", "-t", "top", "-x", str(width), "-y", str(height))

    def close(self):
        self.tmux("kill-server", check=False)

    def wait_text(self, pattern, what, timeout=15):
        """The pane's text once it matches pattern (a regex, multiline)."""
        found = []

        def check():
            t = self.text()
            found[:] = [t]
            return re.search(pattern, t, re.M)
        try:
            wait_until(check, timeout, what)
        except AssertionError as e:
            raise AssertionError(f"{e}; the pane shows:\n{found[0] if found else ''}") from None
        return found[0]


class Top(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.d = scratch() / f"top-{os.getpid()}"
        cls.d.mkdir(parents=True, exist_ok=True)
        import pki
        cert = pki.leaf(cls.d / "mail", "p256", names=(NAME,))
        cfg = {
            "hostname": NAME, "cores": 2, "workers": 1,
            "backends": [{"name": "pf", "protocol": "smtp", "proxy": "v2",
                          "servers": ["127.0.0.1:10026"]}],
            "cert_sets": [{"name": "mail", "certs": [{"cert": str(cert["cert"]),
                                                      "key": str(cert["key"])}]}],
            "listeners": [
                {"name": LISTENER, "address": f"127.0.0.1:{BASE}", "protocol": "smtp",
                 "tls": "starttls", "backend": "pf", "cert_sets": ["mail"]},
            ],
        }
        cls.sl = Sluice(cfg).start()
        cls.sc = SluiceControl(cls.sl).start()

    @classmethod
    def tearDownClass(cls):
        stop_all(cls.sc, cls.sl)

    def setUp(self):
        self.assertTrue(self.sl.running())

    def request(self, req):
        """One request on the admin socket, its answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.sc.socket)
            s.sendall((json.dumps(req) + "\n").encode())
            return read_json_line(s)

    def top_cmd(self, *args):
        return f"{control_bin('sluicectl')} -s {self.sc.socket} top {' '.join(args)}"

    def start_top(self, pane, tag, *args):
        """sluicectl top in the pane between two stty -g; its frame shown."""
        before, after = self.d / f"{tag}.before", self.d / f"{tag}.after"
        for p in (before, after):
            p.unlink(missing_ok=True)
        pane.line(f"stty -g > {before}; {self.top_cmd(*args)}; echo top-exit=$?; "
                  f"stty -g > {after}")
        pane.wait_text(rf"^{LISTENER}\s+smtp\s+starttls\s", "top's first frame")
        self.assertEqual(pane.fmt("#{alternate_on}"), "1", "top draws on the alternate screen")
        self.assertEqual(pane.fmt("#{cursor_flag}"), "0", "top hides the cursor")
        return before, after

    def assert_terminal_back(self, pane, before, after, status):
        """top has exited with status, the terminal as it was before."""
        text = pane.wait_text(r"^top-exit=\d+", "top to exit and the shell to go on")
        self.assertIn(f"top-exit={status}", text)
        wait_until(lambda: after.exists() and after.read_text().endswith("\n"), 10,
                   "the shell's stty -g after top")
        self.assertEqual(after.read_text(), before.read_text(),
                         "the terminal's settings (stty -g) differ after top")
        self.assertEqual(pane.fmt("#{alternate_on}"), "0", "top left the alternate screen on")
        self.assertEqual(pane.fmt("#{cursor_flag}"), "1", "top left the cursor hidden")
        # The shell reads lines again, echoed, as before.
        pane.line("echo back-$((6 * 7))")
        pane.wait_text(r"^back-42$", "the shell to answer after top")

    def test_pane_shows_the_listener_and_its_sessions(self):
        pane = Pane(self.d)
        self.addCleanup(pane.close)
        before, after = self.start_top(pane, "pane")
        accepted_before = self.request({"cmd": "stats"})["counters"]["conn_accepted"]
        # A session held open after STARTTLS, and deliveries.
        held = smtplib.SMTP(*self.sl.addr(LISTENER), local_hostname="client.test",
                            source_address=client_source(CLIENT), timeout=20)
        self.addCleanup(held.close)
        held.starttls(context=no_verify_context())
        held.ehlo("client.test")
        tags = [unique("top") for _ in range(3)]
        for tag in tags:
            deliver(self.sl.addr(LISTENER), tag)
        for tag in tags:
            self.assertTrue(PF.maildir_messages(containing=tag.encode()), f"{tag} not delivered")
        # What the frame must show once it has read this: the counts.
        stats = self.request({"cmd": "stats", "per_listener": True})
        self.assertTrue(stats["ok"], stats)
        accepted = stats["counters"]["conn_accepted"]
        self.assertEqual(accepted, accepted_before + 4, "3 deliveries and one held")
        wait_until(lambda: self.request({"cmd": "status"})["sessions"] == 1, 10,
                   "the deliveries' sessions to close (one held)")
        if "listeners" in stats:
            # Per-listener counters (docs/control.md): the listener's own row.
            pane.wait_text(rf"^{LISTENER}\s+smtp\s+starttls\s+1\s+{accepted}\s",
                           f"{LISTENER}'s row: 1 session open, {accepted} accepted")
        else:
            # A dataplane without them: the name, and the counts in the all row.
            text = pane.wait_text(rf"^\(all\)\s+1\s+{accepted}\s",
                                  f"the all row: 1 session open, {accepted} accepted")
            self.assertRegex(text, rf"(?m)^{LISTENER}\s+smtp\s+starttls\s+-")
        text = pane.text()
        self.assertRegex(text, r"(?m)^sluice \S+  up \S+  generation \d+  draining no  "
                         r"sessions 1  cores 2")
        self.assertRegex(text, r"(?m)^pf\s+127\.0\.0\.1:10026\s+up$")
        self.assertRegex(text, r"(?m)^CORE\s+SESS\s+BUSY%\s+QUEUE\s+STRESS$")
        # each core's busy share and worker queue, from the dataplane's
        # per-core stats: numbers, never "-"
        for core in (0, 1):
            self.assertRegex(text, rf"(?m)^{core}\s+\d+\s+\d+\.\d\s+\d+\s+(yes|-)$")
        self.assertRegex(text, r"rates: per second over the last \d+\.\d s")
        # A smaller window: redrawn to fit it (SIGWINCH, TIOCGWINSZ).
        pane.resize(60, 10)
        text = pane.wait_text(r"^\.\.\. \d+ more lines", "a frame cut to 10 lines")
        lines = text.rstrip("\n").split("\n")
        self.assertLessEqual(len(lines), 10, text)
        self.assertTrue(all(len(l) <= 60 for l in lines), text)
        pane.resize(160, 40)
        pane.wait_text(r"^REFUSED BY THE LIMITS", "the whole frame again")
        held.quit()
        pane.keys("q")
        self.assert_terminal_back(pane, before, after, 0)

    def test_every_way_out_gives_the_terminal_back(self):
        pane = Pane(self.d)
        self.addCleanup(pane.close)
        for way, status in (("C-c", 0), ("SIGTERM", 128 + signal.SIGTERM),
                            ("SIGHUP", 128 + signal.SIGHUP)):
            with self.subTest(way=way):
                pane.line("clear")
                before, after = self.start_top(pane, way, "-d", "0.5")
                if way.startswith("SIG"):
                    # The shell's child is top: signal that pid only.
                    pids = subprocess.run([tool("pgrep"), "-P", str(pane.shell_pid)],
                                          stdout=subprocess.PIPE, text=True).stdout.split()
                    self.assertEqual(len(pids), 1, pids)
                    os.kill(int(pids[0]), getattr(signal, way))
                else:
                    pane.keys(way)
                self.assert_terminal_back(pane, before, after, status)
        # -n: it stops by itself after that many frames, terminal back too.
        pane.line("clear")
        before, after = self.start_top(pane, "n", "-d", "1", "-n", "3")
        self.assert_terminal_back(pane, before, after, 0)

    def test_batch(self):
        deliver(self.sl.addr(LISTENER), unique("topb"))
        t0 = time.monotonic()
        p = subprocess.run([control_bin("sluicectl"), "-s", self.sc.socket, "top", "-b", "-n", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        took = time.monotonic() - t0
        out = p.stdout.decode()
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        self.assertNotIn("\033", out, "batch output has no escape sequences")
        frames = re.split(r"\n\n(?=sluice )", out)
        self.assertEqual(len(frames), 2, out)
        self.assertGreaterEqual(took, 0.9, "two frames a second apart")
        for f in frames:
            self.assertRegex(f, r"^sluice \S+  up \S+  generation \d+  draining no  sessions \d+")
            self.assertRegex(f, rf"(?m)^{LISTENER}\s+smtp\s+starttls\s")
            self.assertRegex(f, r"(?m)^\(all\)\s+\d+\s+\d+\s")
        self.assertIn("averaged since the dataplane started", frames[0])
        self.assertRegex(frames[1], r"rates: per second over the last 1\.\d s")
        # stdout not a terminal: batch without -b; -d as asked.
        p = subprocess.run([control_bin("sluicectl"), "-s", self.sc.socket, "top", "-n", "3",
                            "-d", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode())
        out = p.stdout.decode()
        self.assertNotIn("\033", out)
        self.assertEqual(len(re.findall(r"(?m)^sluice ", out)), 3, out)
        self.assertRegex(out, r"over the last 0\.2 s")
        # Usage errors are 2; no sluice-control is 3, with the reason.
        for args in (("-d", "0"), ("-n", "0"), ("-x",), ("-d",)):
            p = subprocess.run([control_bin("sluicectl"), "-s", self.sc.socket, "top", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
            self.assertEqual(p.returncode, 2, (args, p.stderr))
        p = subprocess.run([control_bin("sluicectl"), "-s", str(self.d / "none.sock"), "top", "-b"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(p.returncode, 3)
        self.assertIn(b"cannot reach sluice-control", p.stderr)


if __name__ == "__main__":
    unittest.main()
