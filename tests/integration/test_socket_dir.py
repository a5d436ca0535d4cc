"""The sockets' folder (docs/control.md, issue 15): a folder every user may
write lets any of them serve a socket of their own where sluice-control
looks for the dataplane's (and be sent the keys of the next reload), or
where sluicectl looks for sluice-control's. So:

- sluice refuses to start when control.dataplane_socket's folder is
  writable by others (0777, and 1777 too: the sticky bit does not stop a
  user from making the socket first), names the folder and the fix, and
  leaves no listener behind; with the folder 0750 it starts;
- sluice-control refuses to start when control.socket's folder is.
"""

import os
import shutil
import subprocess
import unittest

from harness import Sluice, control_bin, listening, scratch, sluice_bin, stop_all

BASE = 43520                  # this module's ports: 43520-43529


def config(port, dp_socket):
    return {
        "hostname": "mx.example.test", "cores": 1, "workers": 1,
        "backends": [{"name": "pf", "protocol": "smtp", "proxy": "v2",
                      "servers": ["127.0.0.1:10026"]}],
        "listeners": [{"name": "smtp", "address": f"127.0.0.1:{port}", "protocol": "smtp",
                       "tls": "starttls", "backend": "pf"}],
        "control": {"dataplane_socket": dp_socket},
    }


class SocketDir(unittest.TestCase):
    def setUp(self):
        self.dir = scratch() / f"sockdir-{os.getpid()}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.running = []

    def tearDown(self):
        try:
            stop_all(*self.running)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def folder(self, mode):
        d = self.dir / f"run-{mode:o}"
        d.mkdir()
        os.chmod(d, mode)
        return d

    def run_sluice(self, port, dp_socket):
        sl = Sluice(config(port, str(dp_socket)))   # the file; started here
        p = subprocess.run([sluice_bin(), "-c", str(sl.path)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        return p.returncode, p.stdout.decode(errors="replace")

    def test_dataplane_refuses_a_world_writable_folder(self):
        for i, mode in enumerate((0o777, 0o1777, 0o757)):
            with self.subTest(mode=f"{mode:04o}"):
                d = self.folder(mode)
                rc, out = self.run_sluice(BASE + i, d / "dataplane.sock")
                self.assertEqual(rc, 1, f"sluice started with its socket in a {mode:04o} "
                                 f"folder:\n{out[-2000:]}")
                self.assertIn(f"{d} is writable by every user (mode {mode:04o})", out)
                self.assertIn(f"chmod o-w {d}", out)
                self.assertFalse(listening("127.0.0.1", BASE + i),
                                 "a listener was left behind")
                self.assertFalse((d / "dataplane.sock").exists(), "the socket was made")

    def test_dataplane_starts_with_a_private_folder(self):
        d = self.folder(0o750)
        sl = Sluice(config(BASE + 5, str(d / "dataplane.sock"))).start()
        self.running.append(sl)
        self.assertTrue(sl.ctl("health").get("ok"))

    def test_control_refuses_a_world_writable_folder(self):
        sl = Sluice(config(BASE + 6, str(self.folder(0o750) / "dataplane.sock"))).start()
        self.running.append(sl)
        d = self.folder(0o777)
        cfg = dict(sl.config)
        cfg["control"] = {**cfg["control"], "socket": str(d / "control.sock"), "metrics": "off"}
        sl.rewrite(cfg)
        p = subprocess.run([control_bin("sluice-control"), "-c", str(sl.path)],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 1, out[-2000:])
        self.assertIn(f"control.socket: {d} is writable by every user (mode 0777)", out)
        self.assertFalse((d / "control.sock").exists())


if __name__ == "__main__":
    unittest.main()
