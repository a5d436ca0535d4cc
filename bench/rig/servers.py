"""The servers under test: sluice and its peers, each started from its
configuration in bench/peers/ on the bench ports, and told apart by which
of their processes count.

Ports (127.0.0.1, inside the bench's network namespace):
    7025 / 7143 / 7110   the sink: SMTP, IMAP, POP3 (PROXY v1/v2 optional)
    7587 / 7465          SMTP with STARTTLS / implicit TLS
    7243 / 7993          IMAP with STARTTLS / implicit TLS
    7210 / 7995          POP3 with STLS / implicit TLS
    7080                 nginx's own auth_http
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from . import procs

PEERS = Path(__file__).resolve().parent.parent / "peers"

SMTP_STARTTLS, SMTPS, IMAP_STARTTLS, IMAPS = 7587, 7465, 7243, 7993
SINK_SMTP, SINK_IMAP, SINK_POP3 = 7025, 7143, 7110

# Which port each workload uses on a server that speaks SMTP.
SMTP_PORTS = {"handshake": SMTPS, "resume": SMTPS, "idle": SMTPS, "bulk": SMTPS,
              "smtp": SMTP_STARTTLS, "imap": IMAP_STARTTLS}


def first_line(cmd, starts=""):
    """First line a command prints (stdout or stderr) that starts with
    `starts`, or '?'."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=10, stdin=subprocess.DEVNULL)
        lines = [l for l in p.stdout.decode(errors="replace").splitlines()
                 if l.strip() and l.startswith(starts)]
        return lines[0].strip() if lines else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


class Server:
    """One server under test. Subclasses set name, label, kind (the workload
    families it serves) and start(); `na` maps workloads to why not."""

    name = label = "?"
    na = {}
    ports = SMTP_PORTS
    host = "127.0.0.1"          # where the load generator connects
    client_prefix = []          # how it is started there (a namespace)

    def __init__(self, rig):
        self.rig = rig
        self.dir = rig.scratch / self.name
        self.proc = None
        self.cert = None

    # -- helpers --

    def render(self, template, out, cert, extra=None):
        c = self.rig.certs[cert]
        text = (PEERS / template).read_text()
        for k, v in {"@DIR@": str(self.dir), "@CERT@": str(c["cert"]),
                     "@KEY@": str(c["key"]), "@COMBINED@": str(c["combined"]),
                     "@WORKERS@": str(self.rig.workers), **(extra or {})}.items():
            text = text.replace(k, v)
        left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
        if left:  # a placeholder no one filled: say so, not a YAML error later
            raise RuntimeError(f"{template}: {', '.join(left)} not given")
        out.write_text(text)
        return out

    def fresh_dir(self):
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)

    def spawn(self, cmd, listen=(SMTPS,), timeout=30):
        """Start cmd in its own session on the server CPUs; wait for its
        ports. A server that exits or does not listen fails with its log."""
        self.log = self.dir / "stderr.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(self.rig.server_pin + [str(c) for c in cmd],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         start_new_session=True, cwd=self.dir)
        if not procs.wait_listening(listen, timeout, lambda: self.proc.poll() is None):
            tail = self.log.read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"{self.label} did not start (ports {list(listen)}):\n{tail}")

    def stop(self):
        """SIGTERM to the session we started, then SIGKILL what is left of it
        (by pid: only processes of that session)."""
        if self.proc is None:
            return
        sid, self.proc = self.proc.pid, self.proc_stop(self.proc)
        left = lambda: procs.session_pids(sid)  # noqa: E731
        procs.wait_gone(left, 10)
        procs.end_all(left, (signal.SIGKILL,))

    @staticmethod
    def proc_stop(proc):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        return None

    def counted_pids(self):
        """The processes whose CPU and memory are the server's."""
        return procs.session_pids(self.proc.pid) if self.proc else []

    def sample(self):
        """Anything besides /proc CPU to read around a measured run."""
        return None

    def account(self, before, after, r):
        """Turn two sample()s into figures of r (the native stack's)."""

    def port(self, workload):
        return self.ports[workload]

    def version(self):
        return "?"


class Sluice(Server):
    name, label = "sluice", "sluice"
    note = ("one process: `cores` dataplane threads and `workers` TLS threads, "
            "one each per server CPU; PROXY v2 to the sink")

    def start(self, cert):
        self.fresh_dir()
        cfg = self.render("sluice.yaml.in", self.dir / "sluice.yaml", cert,
                          {"@SLUICE_WORKERS@": str(self.rig.sluice_workers)})
        self.spawn([self.rig.sluice_bin, "-c", cfg],
                   listen=(SMTPS, SMTP_STARTTLS, IMAP_STARTTLS, IMAPS))
        # started = listening and the backends probed
        deadline = time.monotonic() + 10
        while " started: " not in self.log.read_text(errors="replace"):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("sluice did not log its start:\n"
                                   + self.log.read_text(errors="replace")[-2000:])
            time.sleep(0.05)

    def stop(self):
        """Stop sluice; an exit other than a clean one on SIGTERM, or a
        sanitizer report in its log, is recorded for the run's JSON."""
        proc = self.proc
        super().stop()
        if proc is None:
            return
        text = self.log.read_text(errors="replace")
        if proc.returncode != 0 or "Sanitizer" in text or "runtime error:" in text:
            self.rig.problems.append(f"sluice exited {proc.returncode}: " + text[-1500:])

    def version(self):
        return self.rig.sluice_rev


class Scraper(threading.Thread):
    """Prometheus's view of sluice every interval_s: the dataplane's
    `metrics` command on its socket (what sluice-control asks for each
    scrape), every sample of every counter checked against the last scrape
    (a counter never goes back, a line is never torn)."""

    SAMPLE = re.compile(r"^(\S+_total(?:\{[^}]*\})?) (\S+)$", re.M)

    def __init__(self, path, interval_s):
        super().__init__(daemon=True)
        self.path, self.interval_s = str(path), interval_s
        self.halt = threading.Event()
        self.scrapes, self.errors, self.backwards, self.bytes = 0, 0, [], 0
        self.last = {}

    def one(self):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.path)
            s.sendall(b'{"cmd": "metrics"}\n')
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    raise OSError("the dataplane closed the socket")
                buf += chunk
        ans = json.loads(buf)
        if not ans.get("ok"):
            raise OSError(f"metrics: {ans}")
        text = ans["text"]
        self.bytes = len(text)
        now = {k: float(v) for k, v in self.SAMPLE.findall(text)}
        for k, v in now.items():
            if v < self.last.get(k, 0) and len(self.backwards) < 20:
                self.backwards.append(f"{k}: {self.last[k]} -> {v}")
        self.last = now

    def run(self):
        while not self.halt.wait(self.interval_s):
            try:
                self.one()
                self.scrapes += 1
            except (OSError, ValueError):
                self.errors += 1

    def stop(self):
        self.halt.set()
        self.join(10)
        return {"scrapes": self.scrapes, "errors": self.errors,
                "backwards": self.backwards, "bytes": self.bytes}


class SluiceScraped(Sluice):
    """sluice as above, its metrics read every 100 ms while it works: the
    cost of being watched (issue 13), from alternating rows of one run.
    Not in the default run: `--servers sluice,sluice-scraped`."""
    name, label = "sluice-scraped", "sluice, metrics every 100 ms"
    note = Sluice.note + "; its dataplane's `metrics` read every 100 ms throughout"
    opt_in = True
    INTERVAL_S = 0.1

    def render(self, template, out, cert, extra=None):
        path = super().render(template, out, cert, extra)
        with open(path, "a") as f:
            f.write(f"control: {{dataplane_socket: \"{self.dir}/dp.sock\"}}\n")
        return path

    def start(self, cert):
        super().start(cert)
        self.scraper = Scraper(self.dir / "dp.sock", self.INTERVAL_S)
        self.scraper.start()

    def stop(self):
        sc = getattr(self, "scraper", None)
        if sc is not None:
            r = sc.stop()
            self.scraper = None
            self.scrape_stats = r
            if r["errors"] or r["backwards"] or not r["scrapes"]:
                self.rig.problems.append(f"sluice-scraped: {r}")
        super().stop()


class Nginx(Server):
    name, label = "nginx", "nginx-mail"
    note = ("nginx mail module: master + one worker per server CPU; smtp_auth none, "
            "auth_http served by its own http block (counted: it is nginx's design); "
            "PROXY v1 to the sink")

    def start(self, cert):
        self.fresh_dir()
        (self.dir / "tmp").mkdir()
        cfg = self.render("nginx.conf.in", self.dir / "nginx.conf", cert)
        self.spawn(["nginx", "-e", self.dir / "error.log", "-p", self.dir, "-c", cfg],
                   listen=(SMTPS, SMTP_STARTTLS, IMAP_STARTTLS, IMAPS, 7080))

    def version(self):
        return first_line(["nginx", "-v"]).replace("nginx version: ", "")


class Stunnel(Server):
    name, label = "stunnel", "stunnel"
    note = ("stunnel: one process, a thread per connection (no worker knob); "
            "`protocol = smtp`/`imap` for STARTTLS, `protocol = proxy` (PROXY v1) "
            "on the implicit-TLS services")

    def start(self, cert):
        self.fresh_dir()
        cfg = self.render("stunnel.conf.in", self.dir / "stunnel.conf", cert)
        self.spawn(["stunnel", cfg], listen=(SMTPS, SMTP_STARTTLS, IMAPS, IMAP_STARTTLS))

    def version(self):
        return first_line(["stunnel", "-version"], "stunnel ").split(" on ")[0]


class Haproxy(Server):
    name, label = "haproxy", "HAProxy"
    na = {"smtp": "no mail STARTTLS in HAProxy (mode tcp, implicit TLS only)",
          "imap": "no mail STARTTLS in HAProxy (mode tcp, implicit TLS only)"}
    note = "HAProxy: one process, nbthread = server CPUs, mode tcp, PROXY v2 to the sink"

    def start(self, cert):
        self.fresh_dir()
        cfg = self.render("haproxy.cfg.in", self.dir / "haproxy.cfg", cert)
        self.spawn(["haproxy", "-db", "-f", cfg], listen=(SMTPS, IMAPS))

    def version(self):
        return first_line(["haproxy", "-v"]).split(" - ")[0].replace("HAProxy version ", "")


class Postfix(Server):
    name, label = "postfix", "Postfix TLS"
    na = {"imap": "Postfix speaks SMTP only"}
    counted = {"smtpd", "tlsmgr", "anvil", "master"}
    note = ("Postfix smtpd doing TLS itself (a process per session); counted: "
            "smtpd, tlsmgr, anvil, master; not cleanup/qmgr/delivery (mail is discarded)")

    def start(self, cert):
        self.fresh_dir()
        etc = self.dir / "etc"
        for d in (etc, self.dir / "spool", self.dir / "data"):
            d.mkdir(parents=True)
        self.render("postfix-main.cf.in", etc / "main.cf", cert)
        self.render("postfix-master.cf.in", etc / "master.cf", cert)
        shutil.chown(self.dir / "data", "postfix")
        for args in (["check"], ["start"]):
            p = subprocess.run(self.rig.server_pin + ["postfix", "-c", str(etc)] + args,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            if p.returncode != 0:
                raise RuntimeError(f"postfix {args[0]}: {p.stdout.decode(errors='replace')}"
                                   f"{self.maillog()[-2000:]}")
        self.master = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.master = int((self.dir / "spool/pid/master.pid").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
            if self.master and procs.wait_listening((SMTPS, SMTP_STARTTLS), 0.1):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("Postfix did not start:\n" + self.maillog()[-2000:])

    def maillog(self):
        try:
            return (self.dir / "maillog").read_text(errors="replace")
        except OSError:
            return ""

    def stop(self):
        master = getattr(self, "master", None)
        if not master:
            return
        subprocess.run(["postfix", "-c", str(self.dir / "etc"), "stop"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
        left = lambda: procs.session_pids(master)  # noqa: E731
        procs.wait_gone(left, 10)
        procs.end_all(left, (signal.SIGKILL,))
        self.master = None

    def counted_pids(self):
        return procs.session_pids(self.master, self.counted) if self.master else []

    def version(self):
        return "Postfix " + first_line(["postconf", "-d", "-h", "mail_version"])


class Dovecot(Server):
    name, label = "dovecot", "Dovecot TLS"
    ports = {"handshake": IMAPS, "resume": IMAPS, "idle": IMAPS, "imap": IMAP_STARTTLS}
    na = {"smtp": "Dovecot serves IMAP/POP3, not SMTP",
          "bulk": "the bulk workload is an SMTP transfer"}
    counted = {"imap-login"}
    note = ("Dovecot doing TLS itself: imap-login in high-performance mode "
            "(service_count = 0), one process per server CPU; counted: imap-login "
            "(its TLS, and the proxying of the whole session), not auth or imap")

    def start(self, cert):
        self.fresh_dir()
        cfg = self.render("dovecot.conf.in", self.dir / "dovecot.conf", cert)
        (self.dir / "users").write_text(f"bob:{{PLAIN}}secret:65534:65534::{self.dir}/mail/bob::\n")
        maildir = self.dir / "mail" / "bob" / "Maildir"
        for d in ("cur", "new", "tmp"):
            (maildir / d).mkdir(parents=True)
        (maildir / "cur" / "1700000000.M1P1.bench:2,S").write_bytes(self.rig.message)
        for root, dirs, files in os.walk(self.dir / "mail"):
            for n in [root] + [os.path.join(root, x) for x in dirs + files]:
                os.chown(n, 65534, 65534)
        self.spawn(["dovecot", "-F", "-c", cfg], listen=(IMAPS, IMAP_STARTTLS))

    def counted_pids(self):
        return procs.session_pids(self.proc.pid, self.counted) if self.proc else []

    def version(self):
        return "Dovecot " + first_line(["dovecot", "--version"])


ALL = [Sluice, SluiceScraped, Nginx, Stunnel, Haproxy, Postfix, Dovecot]
