"""Running without root (issue 12, docs/operations.md "Running without
root").

- Started as root with neither `user:` nor `run_as_root: true`, sluice
  refuses to start, naming both keys, and binds nothing.
- With `user: nobody`, once started every thread of sluice runs as nobody
  with no capability (effective, permitted, bounding), NoNewPrivs set, and
  the process is not dumpable (its /proc files then belong to root); a
  message still goes through STARTTLS to Postfix.
- With `run_as_root: true` it stays root with CAP_NET_BIND_SERVICE only
  (and the bounding set cut alike), NoNewPrivs set.
- tickets.key_file (issue 12, finding 5): with `user: nobody`, a key file
  that nobody does not own is refused at start, naming the key and the
  fix; one it owns loads, and when a change cannot be re-read (root took
  the file) sluice says so once, loudly, and counts it (tickets_show's
  file_errors).
"""

import base64
import os
import pwd
import re
import subprocess
import tempfile
import time
import unittest
from pathlib import Path

import yaml

from harness import (SENDER, Postfix, Sluice, Smtp, dot_stuff, listening, load_example,
                     make_message, poll, recipient, scratch, shifted, sluice_bin, stop_all,
                     unique)

BASE = 40800           # listener ports: BASE + n
CAP_NET_BIND_SERVICE = 10

PF = None


def setUpModule():
    global PF
    PF = Postfix().start()


def tearDownModule():
    stop_all(PF)


def config(port, **top):
    """mail-front.yaml with only its smtp listener, on BASE + port."""
    cfg = load_example("mail-front.yaml")
    cfg["listeners"] = [l for l in cfg["listeners"] if l["name"] == "smtp"]
    cfg = shifted(cfg, BASE + port - 2525)
    cfg.update(top)
    return cfg


def status(pid):
    """/proc/PID/status as a dict, and the owner of the file."""
    path = Path(f"/proc/{pid}/status")
    fields = dict(re.findall(r"^(\w+):\s*(.*)$", path.read_text(), re.M))
    return fields, path.stat().st_uid


def threads(pid):
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))


def task_status(pid, tid):
    return dict(re.findall(r"^(\w+):\s*(.*)$",
                           Path(f"/proc/{pid}/task/{tid}/status").read_text(), re.M))


class Privileges(unittest.TestCase):
    maxDiff = None

    def start(self, name, cfg):
        sl = Sluice(cfg, name).start()
        self.addCleanup(lambda: sl.stop() if sl.running() else None)
        return sl

    def deliver(self, sl):
        """One message through STARTTLS; it lands in Postfix's Maildir."""
        tag = unique("priv")
        msg = make_message(tag)
        c = Smtp(sl.addr("smtp"))
        self.assertEqual(c.reply()[0], 220)
        c.expect("EHLO client.test", 250)
        c.starttls()
        c.expect("EHLO client.test", 250)
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect(f"RCPT TO:<{recipient(tag)}>", 250)
        c.expect("DATA", 354)
        c.send(dot_stuff(msg))
        self.assertEqual(c.reply()[0], 250)
        c.expect("QUIT", 221)
        c.sock.close()
        self.assertEqual(len(PF.maildir_messages(containing=tag.encode())), 1,
                         "the message went through sluice to Postfix")

    def test_root_without_user_is_refused(self):
        self.assertEqual(os.geteuid(), 0, "the integration tests run as root")
        cfg = config(0)
        cfg["control"] = {"dataplane_socket": str(scratch() / f"priv-{os.getpid()}.dp.sock")}
        path = scratch() / f"priv-root-{os.getpid()}.yaml"
        path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        r = subprocess.run([sluice_bin(), "-c", str(path)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 1, err)
        self.assertIn(f"sluice: {path}: user: not set, and sluice was started as root", err)
        self.assertIn("Set `user: NAME`", err)
        self.assertIn("`run_as_root: true`", err)
        self.assertNotIn(" started: ", err)
        self.assertFalse(listening("127.0.0.1", BASE), "nothing was bound")
        # --check validates the file alone: the same file passes it.
        r = subprocess.run([sluice_bin(), "--check", "-c", str(path)],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_user_nobody(self):
        nobody = pwd.getpwnam("nobody")
        sl = self.start("priv-nobody", config(1, user="nobody"))
        pid = sl.proc.pid
        st, owner = status(pid)
        self.assertEqual(st["Uid"].split(), [str(nobody.pw_uid)] * 4)
        self.assertEqual(st["Gid"].split(), [str(nobody.pw_gid)] * 4)
        self.assertEqual(st["NoNewPrivs"], "1")
        for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            self.assertEqual(int(st[k], 16), 0, f"{k} {st[k]}")
        # Not dumpable: the kernel gives its /proc files to root, not to
        # the process's own user (proc(5), PR_SET_DUMPABLE).
        self.assertEqual(owner, 0, "/proc/PID/status belongs to root: not dumpable")
        # Every thread (cores, TLS workers, control, probes) alike.
        tids = threads(pid)
        self.assertGreater(len(tids), 3)
        for tid in tids:
            t = task_status(pid, tid)
            self.assertEqual(t["Uid"].split()[0], str(nobody.pw_uid), tid)
            self.assertEqual(int(t["CapEff"], 16), 0, f"thread {tid} {t['Name']}")
            self.assertEqual(int(t["CapPrm"], 16), 0, f"thread {tid} {t['Name']}")
            self.assertEqual(t["NoNewPrivs"], "1", f"thread {tid} {t['Name']}")
        self.deliver(sl)
        # The control socket made as root still answers (its owner: root).
        self.assertTrue(sl.ctl("status").get("ok"))
        sl.stop()

    def test_run_as_root_keeps_only_binding(self):
        sl = self.start("priv-root", config(2, run_as_root=True))
        pid = sl.proc.pid
        st, _ = status(pid)
        self.assertEqual(st["Uid"].split(), ["0"] * 4)
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(int(st["CapBnd"], 16), 1 << CAP_NET_BIND_SERVICE, st["CapBnd"])
        for tid in threads(pid):
            t = task_status(pid, tid)
            self.assertIn(int(t["CapEff"], 16), (0, 1 << CAP_NET_BIND_SERVICE),
                          f"thread {tid} {t['Name']}: {t['CapEff']}")
            self.assertEqual(t["NoNewPrivs"], "1", f"thread {tid} {t['Name']}")
        self.assertEqual(int(st["CapEff"], 16), 1 << CAP_NET_BIND_SERVICE)
        self.deliver(sl)
        sl.stop()


def key_lines(n=3):
    """HAProxy's tls-ticket-keys: n base64 lines of 80 random bytes."""
    return "".join(base64.b64encode(os.urandom(80)).decode() + "\n" for _ in range(n))


class TicketKeyFile(unittest.TestCase):
    """tickets.key_file and the user sluice runs as."""

    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="priv-tk-", dir=scratch()))
        self.dir.chmod(0o755)           # nobody may reach what it owns here
        self.path = self.dir / "tickets.key"
        self.path.write_text(key_lines())
        self.path.chmod(0o600)
        self.nobody = pwd.getpwnam("nobody")

    def config(self, port):
        return config(port, user="nobody", tickets={"key_file": str(self.path)})

    def test_key_file_of_root_refused_for_user(self):
        os.chown(self.path, 0, 0)
        sl = Sluice(self.config(10), "priv-tk-root")
        r = subprocess.run([sluice_bin(), "-c", str(sl.path)], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 1, err)
        self.assertRegex(err, rf"sluice: {re.escape(str(sl.path))}:\d+: tickets.key_file: "
                         rf"{re.escape(str(self.path))} belongs to uid 0, but sluice runs as "
                         r"user 'nobody'")
        self.assertIn(f"chown nobody {self.path}", err)
        self.assertIn("sluice-control make and push the keys", err)
        self.assertNotIn(" started: ", err)

    def test_reread_failure_is_loud_and_counted(self):
        os.chown(self.path, self.nobody.pw_uid, self.nobody.pw_gid)
        sl = Sluice(self.config(11), "priv-tk-user").start()
        self.addCleanup(lambda: sl.stop() if sl.running() else None)
        show = sl.ctl("tickets_show")
        self.assertEqual(show.get("source"), "key_file", show)
        self.assertEqual(show.get("file_errors"), 0, show)
        # Root takes the file and rotates it: nobody cannot read it.
        os.chown(self.path, 0, 0)
        self.path.write_text(key_lines())
        said = lambda: [l for l in sl.log_lines() if "cannot re-read" in l]
        poll(said, 10)
        self.assertEqual(len(said()), 1, sl.log_text()[-2000:])
        self.assertIn(f"tickets.key_file: cannot re-read it as uid {self.nobody.pw_uid}: "
                      f"{self.path}: cannot read: Permission denied; key rotation has "
                      "stopped", said()[0])
        time.sleep(2.5)                 # more ticks: still said once, counted once
        self.assertEqual(len(said()), 1)
        self.assertGreaterEqual(sl.ctl("tickets_show").get("file_errors", 0), 1)
        sl.stop()


if __name__ == "__main__":
    unittest.main()
