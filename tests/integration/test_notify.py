"""systemd's service notifications (sd_notify(3)) from sluice and
sluice-control, as a Type=notify unit (debian/sluice.service) gets them:
the test binds the AF_UNIX datagram socket that systemd would, passes it
as NOTIFY_SOCKET, and reads what arrives.

- sluice: READY=1 arrives once its listener accepts (a connection made the
  moment it arrives gets the banner); a sluice that cannot bind sends no
  READY; SIGHUP gives RELOADING=1 then READY=1 (STATUS= names the
  generation, or why a bad file was refused); SIGTERM gives STOPPING=1 at
  once and sluice exits 0; a drain from the control socket says STATUS=
  draining, undrain takes it back, and STOPPING=1 comes only when such a
  drain ends the process; WATCHDOG_USEC gets WATCHDOG=1 often enough,
  and none while a core is stuck (one thread stopped with ptrace).
- sluice-control: READY=1 once its admin socket accepts; SIGHUP gives
  RELOADING=1 then READY=1; SIGTERM gives STOPPING=1.

Without NOTIFY_SOCKET (every other test) nothing is sent and nothing
changes.
"""

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from harness import Sluice, SluiceControl, scratch, sluice_bin, stop_all, wait_until

BASE = 43500                  # this module's ports: 43500-43509


class NotifySocket:
    """What systemd holds: a datagram socket; each datagram is one message
    of NAME=VALUE lines. A thread reads them as they come and keeps each
    with its arrival time; on_ready, if set, runs in that thread the moment
    a READY=1 arrives (so that it sees the world as systemd would then)."""

    def __init__(self, tag):
        self.dir = scratch() / f"notify-{os.getpid()}-{tag}"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.path = str(self.dir / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.msgs = []                  # [(time, {name: value})]
        self.on_ready = None
        self.ready_checks = []          # what on_ready returned, in order
        self.lock = threading.Lock()
        self.stop = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def env(self, **more):
        return {"NOTIFY_SOCKET": self.path, **more}

    def _read(self):
        while not self.stop:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            if fields.get("READY") == "1" and self.on_ready:
                self.ready_checks.append(self.on_ready())
            with self.lock:
                self.msgs.append((time.monotonic(), fields))

    def messages(self):
        with self.lock:
            return [m for _, m in self.msgs]

    def count(self, name, value="1"):
        return sum(1 for m in self.messages() if m.get(name) == value)

    def wait(self, name, value="1", after=0, timeout=15):
        """The first message with name=value past the first `after`
        messages; fails naming what did arrive."""
        def find():
            for m in self.messages()[after:]:
                if m.get(name) == value:
                    return m
            return None
        try:
            return wait_until(find, timeout, f"{name}={value} on NOTIFY_SOCKET")
        except AssertionError as e:
            raise AssertionError(f"{e}; what arrived: {self.messages()}") from None

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def banner(addr, timeout=5):
    """The first line a new connection to addr gets, or the error."""
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            return s.recv(200).decode(errors="replace")
    except OSError as e:
        return f"error: {e}"


PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT = 17, 0x4206, 0x4207
__WALL = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]


def core_thread(pid, name):
    """The thread id of pid's thread called name (sluice names its cores)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().strip() == name:
                return int(tid)
    raise AssertionError(f"no thread {name} in process {pid}")


def _ptrace(req, tid):
    if _libc.ptrace(req, tid, None, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"ptrace({req:#x}, {tid}): {os.strerror(err)}")


def stop_thread(tid):
    """Stop one thread of a process, the others run on (ptrace's
    interrupt; a signal would stop them all)."""
    _ptrace(PTRACE_SEIZE, tid)
    _ptrace(PTRACE_INTERRUPT, tid)
    os.waitpid(tid, __WALL)


def resume_thread(tid):
    _ptrace(PTRACE_DETACH, tid)


def config(port, **more):
    return {
        "hostname": "mx.example.test", "cores": 1, "workers": 1,
        "backends": [{"name": "pf", "protocol": "smtp", "proxy": "v2",
                      "servers": ["127.0.0.1:10026"]}],
        "listeners": [{"name": "smtp", "address": f"127.0.0.1:{port}", "protocol": "smtp",
                       "tls": "starttls", "backend": "pf"}],
        "control": {"drain_deadline": 5},
        **more,
    }


class Dataplane(unittest.TestCase):
    def setUp(self):
        self.ns = NotifySocket(self.id().rsplit(".", 1)[-1])
        self.sl = None

    def tearDown(self):
        try:
            stop_all(*([self.sl] if self.sl else []))
        finally:
            self.ns.close()

    def start(self, port, **env):
        self.sl = Sluice(config(port))
        addr = self.sl.addr("smtp")
        self.ns.on_ready = lambda: banner(addr)
        self.sl.start(env=self.ns.env(**env))
        self.ns.wait("READY")
        return addr

    def test_ready_once_the_listener_accepts(self):
        # A start that fails (its port is taken) never says READY=1 ...
        taken = socket.socket()
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", BASE + 1))
        taken.listen(1)
        try:
            sl = Sluice(config(BASE + 1))   # the file only: started here, not by the harness
            p = subprocess.run([sluice_bin(), "-c", str(sl.path)], env={**os.environ,
                               **self.ns.env()}, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
            self.assertEqual(p.returncode, 1, p.stdout.decode(errors="replace"))
            self.assertIn(b"Address already in use", p.stdout)
        finally:
            taken.close()
        time.sleep(0.3)
        self.assertEqual(self.ns.count("READY"), 0,
                         f"READY=1 from a sluice that never listened: {self.ns.messages()}")
        # ... one that works says it once, when a connection gets the banner.
        self.start(BASE)
        self.assertEqual(self.ns.count("READY"), 1, self.ns.messages())
        self.assertEqual(len(self.ns.ready_checks), 1)
        self.assertTrue(self.ns.ready_checks[0].startswith("220 "),
                        f"a connection made when READY=1 arrived got "
                        f"{self.ns.ready_checks[0]!r}, not the banner")
        ready = [m for m in self.ns.messages() if m.get("READY") == "1"][0]
        self.assertIn("serving 1 listeners", ready.get("STATUS", ""), ready)

    def test_sighup_reloading_then_ready(self):
        self.start(BASE + 2)
        n = len(self.ns.messages())
        os.kill(self.sl.proc.pid, signal.SIGHUP)
        rel = self.ns.wait("RELOADING", after=n)
        self.assertIn("MONOTONIC_USEC", rel)
        i = self.ns.messages().index(rel)
        ready = self.ns.wait("READY", after=i + 1)
        self.assertIn("generation 2", ready.get("STATUS", ""), ready)
        self.assertIn("reloaded", ready.get("STATUS", ""), ready)

        # A file that does not load: READY=1 all the same (generation 2
        # keeps serving), and STATUS= says why.
        self.sl.path.write_text(self.sl.path.read_text().replace("tls: starttls",
                                                                 "tls: sometimes"))
        n = len(self.ns.messages())
        os.kill(self.sl.proc.pid, signal.SIGHUP)
        self.ns.wait("RELOADING", after=n)
        ready = self.ns.wait("READY", after=n + 1)
        self.assertIn("refused", ready.get("STATUS", ""), ready)
        self.assertIn("sometimes", ready.get("STATUS", ""), ready)
        self.assertTrue(banner(self.sl.addr("smtp")).startswith("220 "))

    def test_sigterm_stopping(self):
        self.start(BASE + 3)
        n = len(self.ns.messages())
        t0 = time.monotonic()
        self.sl.proc.send_signal(signal.SIGTERM)
        stop = self.ns.wait("STOPPING", after=n, timeout=5)
        self.assertLess(time.monotonic() - t0, 2, "STOPPING=1 came late")
        self.assertIn("draining (SIGTERM)", stop.get("STATUS", ""), stop)
        self.sl.proc.wait(15)
        self.sl.stop()              # exited already: fails unless with 0

    def test_control_drain_stops_only_at_its_end(self):
        self.start(BASE + 4)
        n = len(self.ns.messages())
        # An idle client in the middle of sluice's dialogue keeps nothing
        # open: the goodbye closes it. Undrain first, so the drain is taken
        # back: no STOPPING=1 for it.
        ans = self.sl.ctl("drain", deadline_s=30)
        self.assertTrue(ans.get("ok"), ans)
        wait_until(lambda: any("draining" in m.get("STATUS", "")
                               for m in self.ns.messages()[n:]), 5, "STATUS= draining")
        self.assertTrue(self.sl.ctl("undrain").get("ok"))
        wait_until(lambda: any("serving again" in m.get("STATUS", "")
                               for m in self.ns.messages()[n:]), 5, "STATUS= serving again")
        self.assertEqual(self.ns.count("STOPPING"), 0,
                         f"STOPPING=1 for a drain that was undone: {self.ns.messages()}")
        self.assertTrue(banner(self.sl.addr("smtp")).startswith("220 "))
        # A drain that runs to its end: STOPPING=1, then the exit.
        n = len(self.ns.messages())
        self.assertTrue(self.sl.ctl("drain", deadline_s=2).get("ok"))
        stop = self.ns.wait("STOPPING", after=n, timeout=10)
        self.assertIn("drained", stop.get("STATUS", ""), stop)
        self.sl.proc.wait(15)
        self.sl.stop()              # exited already: fails unless with 0

    def test_watchdog(self):
        self.start(BASE + 5, WATCHDOG_USEC="2000000")
        n = self.ns.count("WATCHDOG")
        time.sleep(3.2)
        self.assertGreaterEqual(self.ns.count("WATCHDOG") - n, 3,
                                f"WatchdogSec=2s wants a WATCHDOG=1 at least every "
                                f"second here: {self.ns.messages()}")

    def test_watchdog_stops_when_a_core_stalls(self):
        """A core stuck in one pass (here: stopped alone by ptrace, as a
        deadlock would hold it) stops the pings, with a STATUS= naming it;
        when it runs again, so do they."""
        self.start(BASE + 7, WATCHDOG_USEC="2000000")
        self.ns.wait("WATCHDOG")
        core = core_thread(self.sl.proc.pid, "sl-core0")
        stop_thread(core)
        try:
            wait_until(lambda: any("core 0 has not passed its loop" in m.get("STATUS", "")
                                   for m in self.ns.messages()), 5,
                       "STATUS= naming the stalled core")
            n = self.ns.count("WATCHDOG")
            time.sleep(2.5)
            self.assertEqual(self.ns.count("WATCHDOG"), n,
                             "WATCHDOG=1 went on while core 0 was stopped")
        finally:
            resume_thread(core)
        n = len(self.ns.messages())
        self.ns.wait("WATCHDOG", after=n, timeout=5)
        self.assertTrue(any("every core runs again" in m.get("STATUS", "")
                            for m in self.ns.messages()[n:]), self.ns.messages()[n:])

    def test_no_watchdog_without_watchdog_usec(self):
        self.start(BASE + 6)
        time.sleep(1.5)
        self.assertEqual(self.ns.count("WATCHDOG"), 0, self.ns.messages())


class Control(unittest.TestCase):
    def setUp(self):
        self.ns = NotifySocket(self.id().rsplit(".", 1)[-1])
        self.sl = Sluice(config(BASE + 8)).start()
        self.sc = SluiceControl(self.sl, metrics="off")

    def tearDown(self):
        try:
            stop_all(self.sc, self.sl)
        finally:
            self.ns.close()

    def admin_accepts(self):
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(self.sc.socket)
            return "accepts"
        except OSError as e:
            return f"error: {e}"

    def test_ready_reload_stopping(self):
        self.ns.on_ready = self.admin_accepts
        self.sc.start(env=self.ns.env())
        self.ns.wait("READY")
        self.assertEqual(self.ns.ready_checks[:1], ["accepts"],
                         "the admin socket did not accept when READY=1 arrived")
        wait_until(lambda: any("attached to the dataplane" in m.get("STATUS", "")
                               for m in self.ns.messages()), 10, "STATUS= attached")

        n = len(self.ns.messages())
        os.kill(self.sc.proc.pid, signal.SIGHUP)
        rel = self.ns.wait("RELOADING", after=n)
        i = self.ns.messages().index(rel)
        ready = self.ns.wait("READY", after=i + 1)
        self.assertIn("reloaded", ready.get("STATUS", ""), ready)
        rc, out, err = self.sc.ctl("reload")
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(self.ns.count("RELOADING"), 2)

        n = len(self.ns.messages())
        self.sc.proc.send_signal(signal.SIGTERM)
        self.ns.wait("STOPPING", after=n, timeout=5)
        self.sc.proc.wait(10)
        self.sc.stop()              # exited already: fails unless with 0
        self.assertTrue(self.sl.running(), "the dataplane stopped with sluice-control")


if __name__ == "__main__":
    unittest.main()
