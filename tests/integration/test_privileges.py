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
"""

import os
import pwd
import re
import subprocess
import unittest
from pathlib import Path

import yaml

from harness import (SENDER, Postfix, Sluice, Smtp, dot_stuff, listening, load_example,
                     make_message, recipient, scratch, shifted, sluice_bin, stop_all, unique)

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


if __name__ == "__main__":
    unittest.main()
