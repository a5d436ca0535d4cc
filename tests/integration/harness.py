"""Integration-test harness: real Postfix and Dovecot backends and a real
sluice.

Only the standard library and python3-yaml. Everything a test starts is
stopped by the same object; every wait is bounded.

    pf = Postfix(); pf.start()
    sl = Sluice(load_example("mail-front.yaml")); sl.start()
    ... drive clients, then pf.maildir_messages(), pf.client_of(msgid), ...
    sl.stop(); pf.stop()

    dv = Dovecot(); dv.start(); uid = dv.append("bob", "INBOX", message)
    ... IMAP/POP3 clients through sluice, then dv.login(ip, port)["secured"]
    dv.stop()

Scratch files live under $SLUICE_TEST_SCRATCH (default /tmp/sluice-it): the
Postfix instance in postfix/ and the Dovecot one in dovecot/ (each wiped
when the next run starts it), sluice's configs and stderr next to them (kept
a day, for post-mortems). /tmp rather than the checkout, because the
backends' unprivileged users (postfix, dovenull, 65534) must be able to reach
the queue and the Maildirs, and a checkout under /root is closed to them.
"""

import atexit
import base64
import copy
import hashlib
import imaplib
import itertools
import os
import poplib
import random
import re
import select
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

# sluice refuses YAML aliases (issue 12: an alias bomb); PyYAML writes one
# (&id001 ... *id001) wherever a test put the same dict or list twice in a
# configuration. Every configuration the tests write is written out.
yaml.SafeDumper.ignore_aliases = lambda self, data: True

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SCRATCH = Path(os.environ.get("SLUICE_TEST_SCRATCH")
               or Path(tempfile.gettempdir()) / "sluice-it")
EXAMPLES = REPO / "firmware-config" / "examples"

POSTFIX_PLAIN = ("127.0.0.1", 10025)   # plain SMTP
POSTFIX_PROXY = ("127.0.0.1", 10026)   # expects a PROXY header first
SENDER = "sender@client.test"


# Client source ports. Each test names its client by (address, port) in
# what sluice, Postfix and Dovecot log; with ephemeral ports a port comes
# round again over a run and an earlier connection's line would answer for
# a later one. So test clients bind ports handed out once per run, in order,
# from a range outside the kernel's ephemeral range and the test listeners.
SOURCE_PORTS = range(12000, 20000)


def client_source(ip="127.0.0.1"):
    """(ip, port) for a test client's source_address: a port no other test
    client of this run has used (a counter in SCRATCH, shared by the test
    processes) and that is free now."""
    import fcntl
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with open(SCRATCH / "source-ports", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        n = int(f.read().strip() or 0)
        for _ in range(len(SOURCE_PORTS)):
            port = SOURCE_PORTS[n % len(SOURCE_PORTS)]
            n += 1
            with socket.socket() as probe:
                try:
                    probe.bind((ip, port))
                except OSError:
                    continue
            break
        else:
            raise AssertionError(f"no free source port for {ip}")
        f.seek(0)
        f.truncate()
        f.write(str(n))
    return (ip, port)


# Everything started and not yet stopped, stopped at exit whatever happens
# (a failing setUpModule, an interrupted run).
_running = []


@atexit.register
def _stop_everything():
    for obj in reversed(_running[:]):
        try:
            obj.stop()
        except Exception:
            pass


def stop_all(*procs):
    """A tearDownModule: stop each of procs that was started (None: not),
    in order, every one even when an earlier one raised; sluice first, so
    that its stop fails the module if it crashed or exits non-zero."""
    procs = [p for p in procs if p]
    if not procs:
        return
    try:
        procs[0].stop()
    finally:
        stop_all(*procs[1:])


# ---------------------------------------------------------------- waiting ---

class WaitTimeout(AssertionError):
    """A bounded wait ran out: a test failure, not an error."""


def poll(fn, timeout, interval=0.05):
    """Call fn() until it returns something true or timeout seconds pass.
    Returns the last value (true on success, false on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def wait_until(fn, timeout, what):
    """Like poll(), but a timeout fails the test, naming what was awaited."""
    value = poll(fn, timeout)
    if not value:
        raise WaitTimeout(f"gave up after {timeout} s waiting for {what}")
    return value


# ------------------------------------------------------- processes, ports ---

def tool(name):
    """Absolute path of a command-line tool; a missing tool fails the test
    (it must be installed, never skipped)."""
    path = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/sbin") / name)
         if p.exists()), None)
    if not path:
        raise AssertionError(f"required tool {name!r} is not installed")
    return path


def run(cmd, input=None, timeout=30, env=None):
    """Run a client to completion. Returns (exit code, stdout+stderr as text);
    a client that hangs past timeout is killed and fails the test."""
    cmd = [str(c) for c in cmd]
    cmd[0] = tool(cmd[0])
    try:
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout,
                           env=None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired as e:
        out = (e.output or b"").decode(errors="replace")
        raise AssertionError(f"{shlex.join(cmd)} still running after {timeout} s;"
                             f" output so far:\n{out}") from None
    return p.returncode, p.stdout.decode(errors="replace")


def _listen_sockets():
    """[(ip, port, inode)] of the TCP sockets in LISTEN state, IPv4 and
    IPv6."""
    out = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            f = open(name)
        except FileNotFoundError:       # no IPv6 in this kernel
            continue
        with f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[3] != "0A":                   # TCP_LISTEN
                    continue
                addr, port = fields[1].split(":")
                raw = bytes.fromhex(addr)
                # each 32-bit word in the host's (little-endian) order
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                ip = (socket.inet_ntoa(raw) if len(raw) == 4
                      else socket.inet_ntop(socket.AF_INET6, raw))
                out.append((ip, int(port, 16), fields[9]))
    return out


def listening(host, port):
    """True if some socket listens on host:port (or on the wildcard): the
    kernel then completes connections, so connecting would succeed, without
    the log noise of a probe connection."""
    return any(p == port and ip in (host, "0.0.0.0", "::") for ip, p, _ in _listen_sockets())


def listener_pids(port):
    """PIDs of the processes holding a listening socket on port."""
    inodes = {f"socket:[{ino}]" for _, p, ino in _listen_sockets() if p == port}
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in inodes for fd in fd_dir.iterdir()):
                pids.add(int(fd_dir.parent.name))
        except OSError:
            continue
    return sorted(pids)


def _proc_env(pid):
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(kv.split("=", 1) for kv in raw.decode(errors="replace").split("\0")
                if "=" in kv)


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def _session_pids(sid):
    """All processes of session sid (Postfix's master runs setsid())."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:
            pids.append(int(d.name))
    return pids


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------- backends ---

class _LogFile:
    """A backend's own log, read by tests: the class names the file
    (_logpath) and what to call it in a timeout's message (_logname)."""

    def log(self, since=0):
        """Text of the log (from byte offset since)."""
        try:
            with open(self._logpath, "rb") as f:
                f.seek(since)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_mark(self):
        """An offset for log(since=...): only what is logged from now on."""
        try:
            return self._logpath.stat().st_size
        except OSError:
            return 0

    def wait_log(self, pattern, timeout=10, since=0):
        """Wait until the log (from since) matches regex pattern; returns the
        match."""
        return wait_until(lambda: re.search(pattern, self.log(since), re.M),
                          timeout, f"{self._logname} line matching {pattern!r}")


# ----------------------------------------------------------------- Postfix ---

class Postfix(_LogFile):
    """The reference Postfix (tests/integration/backends/*.cf.in) in a
    scratch folder: 127.0.0.1:10025 plain, 10026 expecting PROXY; every
    @test.local recipient lands in one Maildir, mail/inbox/new."""

    run_in = ()    # words before each postfix(1) command (ip netns exec NS)

    def __init__(self, dir=None):
        self.dir = Path(dir or SCRATCH / "postfix")
        self.etc = self.dir / "etc"
        self.spool = self.dir / "spool"
        self.inbox = self.dir / "mail" / "inbox" / "new"
        self.maillog = self.dir / "maillog"
        self._logpath, self._logname = self.maillog, "maillog"
        self._rendered = False

    # -- life cycle --

    def start(self, timeout=20):
        """Start Postfix (the first time: on a freshly rendered folder, after
        stopping whatever an aborted run left behind). Returns when both
        ports accept (returns self); on failure raises with Postfix's own
        complaints."""
        if not self._rendered:
            self._stop_stale()
            self._render()
            self._rendered = True
            self._postfix("check")
        self._postfix("start")
        if self not in _running:
            _running.append(self)
        if not poll(self._listening, timeout):
            raise RuntimeError(f"Postfix did not listen on {self.ports_text} within "
                               f"{timeout} s; maillog:\n{self.log()[-3000:]}")
        return self

    ports_text = "10025/10026"

    def _listening(self):
        """Postfix is ready: its ports accept."""
        return all(listening(*a) for a in (POSTFIX_PLAIN, POSTFIX_PROXY))

    def stop(self, timeout=15):
        """postfix stop, then kill -9 whatever of its session is left."""
        if self in _running:
            _running.remove(self)
        pid = self.master_pid()
        if pid is None:
            return
        self._postfix("stop", check=False)
        poll(lambda: not _alive(pid), timeout)
        for p in _session_pids(pid):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not any(_alive(p) for p in _session_pids(pid)),
                   timeout, "Postfix processes to exit")
        wait_until(self._ports_closed, timeout, "Postfix ports to close")

    def _ports_closed(self):
        """Nothing listens on this instance's ports any more."""
        return not any(listening(*a) for a in (POSTFIX_PLAIN, POSTFIX_PROXY))

    def master_pid(self):
        """PID of this instance's master(8), or None if it is not running."""
        try:
            pid = int((self.spool / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if _alive(pid) and _proc_env(pid).get("MAIL_CONFIG") == str(self.etc):
            return pid
        return None

    def _stop_stale(self):
        """Stop a Postfix left running by an aborted run: ours (same folder),
        or another harness instance under SCRATCH holding our ports. Anything
        else on the ports is not ours to kill: fail and name it."""
        self.stop()
        for _, port in (POSTFIX_PLAIN, POSTFIX_PROXY):
            for pid in listener_pids(port):
                master = os.getsid(pid)
                conf = _proc_env(master).get("MAIL_CONFIG", "")
                if conf.startswith(str(SCRATCH) + "/") and _alive(master):
                    Postfix(Path(conf).parent).stop()
                else:
                    raise RuntimeError(
                        f"127.0.0.1:{port} is in use by pid {pid} ({_cmdline(pid)}),"
                        " which this harness did not start; stop it first")

    def _render(self):
        if self.dir.exists():
            shutil.rmtree(self.dir)
        for d in (self.etc, self.spool, self.dir / "data", self.dir / "mail"):
            d.mkdir(parents=True, mode=0o755)
        os.chmod(self.dir, 0o755)
        os.chmod(self.dir.parent, 0o755)
        for name in ("main.cf", "master.cf"):
            text = (HERE / "backends" / f"postfix-{name}.in").read_text()
            (self.etc / name).write_text(text.replace("@DIR@", str(self.dir)))
        # The backend's own STARTTLS certificate (main.cf offers STARTTLS).
        subprocess.run([tool("openssl"), "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-days", "30", "-subj", "/CN=backend.test",
                        "-keyout", self.etc / "backend-key.pem",
                        "-out", self.etc / "backend-cert.pem"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.chown(self.dir / "data", "postfix")
        os.chown(self.dir / "mail", 65534, 65534)

    def _postfix(self, *args, check=True):
        """Run `postfix -c ETC ARGS` under script(1): postfix only writes its
        errors to a terminal (else to syslog, which may not exist here)."""
        cmd = shlex.join([*self.run_in, tool("postfix"), "-c", str(self.etc), *args])
        p = subprocess.run([tool("script"), "-qec", cmd, "/dev/null"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if check and p.returncode != 0:
            raise RuntimeError(f"{cmd} exited {p.returncode}:\n"
                               f"{p.stdout.decode(errors='replace')}\n"
                               f"maillog:\n{self.log()[-3000:]}")
        return p

    # -- observations --

    # (log, log_mark, wait_log: _LogFile's, on the maillog)

    def maildir_messages(self, containing=None, count=1, timeout=10):
        """[(filename, bytes)] of the delivered messages, oldest first, only
        those containing the bytes `containing` if given. Waits up to timeout
        for at least `count` of them (count=0: no wait), then returns what
        there is."""
        def read():
            out = []
            for p in sorted(self.inbox.glob("*")) if self.inbox.is_dir() else []:
                data = p.read_bytes()
                if containing is None or containing in data:
                    out.append((p.name, data))
            return out
        if count:
            poll(lambda: len(read()) >= count, timeout)
        return read()

    def queue_empty(self):
        """True if no message is being received or delivered."""
        return not any(f for d in ("incoming", "active", "maildrop")
                       for f in (self.spool / d).rglob("*") if f.is_file())

    def wait_session_end(self, ip, port, timeout=15, since=0):
        """Wait until smtpd logged the end of the session of client ip:port
        and the queue is empty: after that, nothing of it will still land."""
        self.wait_log(rf"disconnect from \S+\[{re.escape(ip)}\]:{port}\b", timeout, since)
        wait_until(self.queue_empty, timeout, "the Postfix queue to drain")

    def client_of(self, message_id, timeout=10):
        """(ip, port) of the SMTP client that Postfix recorded for the message
        with this Message-ID: the address sluice passed in PROXY v2."""
        mid = re.escape(message_id.strip("<>"))
        def find():
            text = self.log()
            m = re.search(rf"cleanup\[\d+\]: (\w+): message-id=<{mid}>", text)
            if not m:
                return None
            c = re.search(rf"smtpd\[\d+\]: {m.group(1)}: client=\S+?\[([\d.]+)\]:(\d+)", text)
            return c and (c.group(1), int(c.group(2)))
        return wait_until(find, timeout, f"the client of {message_id} in the maillog")

    def sessions(self, ip, port=None):
        """maillog lines of smtpd sessions from ip (and port)."""
        tail = rf":{port}\b" if port is not None else r":\d+"
        return re.findall(rf"^.*smtpd\[\d+\]: .*\[{re.escape(ip)}\]{tail}.*$",
                          self.log(), re.M)

    # -- faults --

    def kill_smtpd(self, timeout=10):
        """kill -9 every smtpd of this instance (a backend dying mid-session).
        Returns their pids once they are gone."""
        master = self.master_pid()
        assert master, "Postfix is not running"
        pids = [p for p in _session_pids(master)
                if Path(f"/proc/{p}/comm").read_text().strip() == "smtpd"]
        for p in pids:
            os.kill(p, signal.SIGKILL)
        wait_until(lambda: not any(_alive(p) for p in pids), timeout, "smtpd to die")
        return pids


# ----------------------------------------------------------------- Dovecot ---

DOVECOT_IMAP = ("127.0.0.1", 10143)         # plain IMAP
DOVECOT_POP3 = ("127.0.0.1", 10110)         # plain POP3
DOVECOT_IMAP_PROXY = ("127.0.0.1", 10144)   # IMAP, expects a PROXY header first
DOVECOT_POP3_PROXY = ("127.0.0.1", 10111)   # POP3, expects a PROXY header first
DOVECOT_PORTS = (DOVECOT_IMAP, DOVECOT_POP3, DOVECOT_IMAP_PROXY, DOVECOT_POP3_PROXY)
MAIL_USER, MAIL_PASSWORD = "bob", "secret"
# The one client address that Dovecot lets log in without TLS (dovecot.conf.in).
PLAINTEXT_ALLOWED = "127.0.0.99"


class Dovecot(_LogFile):
    """The reference Dovecot (tests/integration/backends/dovecot.conf.in) in
    a scratch folder: 127.0.0.1:10143 (IMAP) and 10110 (POP3) plain, 10144
    and 10111 expecting PROXY; one user bob:secret, Maildir under
    mail/bob/Maildir; disable_plaintext_auth = yes except for clients from
    127.0.0.99. The login log lines carry rip=, rport= and whether the login
    was secured (see login())."""

    run_in = ()    # words before each dovecot(1) command (ip netns exec NS)

    def __init__(self, dir=None):
        self.dir = Path(dir or SCRATCH / "dovecot")
        self.conf = self.dir / "dovecot.conf"
        self.logfile = self.dir / "dovecot.log"
        self._logpath, self._logname = self.logfile, "dovecot.log"
        self.pidfile = self.dir / "run" / "master.pid"
        self._rendered = False

    # -- life cycle --

    def start(self, timeout=20):
        """Start Dovecot (the first time: on a freshly rendered folder, after
        stopping whatever an aborted run left behind). Returns when all four
        ports accept (returns self); on failure raises with Dovecot's own
        complaints."""
        if not self._rendered:
            self._stop_stale()
            self._render()
            self._rendered = True
            # Fails on any config error (dovecot names file, line and key).
            self._dovecot("-n")
        self._dovecot()
        if self not in _running:
            _running.append(self)
        if not poll(self._listening, timeout):
            raise RuntimeError(f"Dovecot did not listen on {self.ports_text} within "
                               f"{timeout} s; log:\n{self.log()[-3000:]}")
        return self

    ports_text = str(DOVECOT_PORTS)

    def _listening(self):
        """Dovecot is ready: its ports accept."""
        return all(listening(*a) for a in DOVECOT_PORTS)

    def stop(self, timeout=15):
        """SIGTERM to the master, then kill -9 whatever of its session is
        left; returns when the ports are closed."""
        if self in _running:
            _running.remove(self)
        pid = self.master_pid()
        if pid is None:
            return
        _stop_dovecot_master(pid, timeout, self._ports_closed)

    def _ports_closed(self):
        """Nothing listens on this instance's ports any more."""
        return not any(listening(*a) for a in DOVECOT_PORTS)

    def running(self):
        return self.master_pid() is not None

    def master_pid(self):
        """PID of this instance's master, or None if it is not running."""
        try:
            pid = int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if _alive(pid) and _dovecot_conf_of(pid) == str(self.conf):
            return pid
        return None

    def _stop_stale(self):
        """Stop a Dovecot left running by an aborted run: ours (same folder),
        or another harness instance under SCRATCH holding our ports. Anything
        else on the ports is not ours to kill: fail and name it."""
        self.stop()
        for _, port in DOVECOT_PORTS:
            for pid in listener_pids(port):
                master = os.getsid(pid)
                conf = _dovecot_conf_of(master) or ""
                if conf.startswith(str(SCRATCH) + "/") and _alive(master):
                    _stop_dovecot_master(master, 15)
                else:
                    raise RuntimeError(
                        f"127.0.0.1:{port} is in use by pid {pid} ({_cmdline(pid)}),"
                        " which this harness did not start; stop it first")

    def _render(self):
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True, mode=0o755)
        os.chmod(self.dir, 0o755)
        os.chmod(self.dir.parent, 0o755)
        text = (HERE / "backends" / "dovecot.conf.in").read_text()
        self.conf.write_text(text.replace("@DIR@", str(self.dir)))
        (self.dir / "users").write_text(
            f"{MAIL_USER}:{{PLAIN}}{MAIL_PASSWORD}:65534:65534::"
            f"{self.dir}/mail/{MAIL_USER}::\n")
        home = self.dir / "mail" / MAIL_USER
        home.mkdir(parents=True)
        for d in (home.parent, home):
            os.chown(d, 65534, 65534)

    def _dovecot(self, *args):
        """Run `dovecot -c CONF ARGS` (the master daemonizes: this returns
        once it runs, or with its start-up errors)."""
        cmd = [*self.run_in, tool("dovecot"), "-c", str(self.conf), *args]
        # A file, not a pipe: the daemonized master keeps its stdout open.
        with tempfile.TemporaryFile() as out:
            p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                               stderr=subprocess.STDOUT, timeout=60)
            out.seek(0)
            text = out.read().decode(errors="replace")
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(cmd)} exited {p.returncode}:\n{text}\n"
                               f"log:\n{self.log()[-3000:]}")
        return text

    def doveadm(self, *args, input=None, timeout=60):
        """Run `doveadm -c CONF ARGS`; returns its stdout, fails with its
        output on a non-zero exit."""
        cmd = [tool("doveadm"), "-c", str(self.conf), *map(str, args)]
        p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError(f"{shlex.join(cmd)} exited {p.returncode}:\n"
                                 f"{p.stderr.decode(errors='replace')}")
        return p.stdout.decode(errors="replace")

    # -- mail --

    def append(self, user, mailbox, data):
        """Store the message (bytes, CRLF or LF line ends) in user's mailbox
        with `doveadm save`, as the user's uid; returns its IMAP UID. IMAP
        and POP3 serve it back with CRLF line ends."""
        tag = re.search(rb"(?im)^Message-ID:\s*(<[^>\r\n]+>)", data)
        assert tag, "append() needs a message with a Message-ID"
        self.doveadm("save", "-u", user, "-m", mailbox, input=data)
        return self.uid_of(user, mailbox, tag.group(1).decode())

    def uid_of(self, user, mailbox, msgid):
        """IMAP UID of the (newest) message with this Message-ID."""
        out = self.doveadm("fetch", "-u", user, "uid", "mailbox", mailbox,
                           "header", "message-id", msgid)
        uids = [int(u) for u in re.findall(r"(?m)^uid: (\d+)", out)]
        assert uids, f"no message {msgid} in {user}'s {mailbox}"
        return uids[-1]

    def seq_of(self, user, mailbox, msgid):
        """Sequence number of the message with this Message-ID: its POP3
        message number, as long as no earlier message is expunged."""
        out = self.doveadm("fetch", "-u", user, "seq", "mailbox", mailbox,
                           "header", "message-id", msgid)
        seqs = [int(u) for u in re.findall(r"(?m)^seq: (\d+)", out)]
        assert seqs, f"no message {msgid} in {user}'s {mailbox}"
        return seqs[-1]

    def message_count(self, user="bob", mailbox="INBOX"):
        out = self.doveadm("mailbox", "status", "-u", user, "messages", mailbox)
        return int(out.split("=", 1)[1])

    # -- observations --

    # (log, log_mark, wait_log: _LogFile's, on dovecot.log)

    def login_lines(self, ip, port=None, since=0):
        """The imap-login/pop3-login lines (logins, failures, disconnects)
        of the client ip(:port) as Dovecot knew it: through a PROXY port,
        the address and port in the header."""
        tail = rf", rport={port}," if port is not None else r", rport=\d+,"
        return re.findall(rf"^.* (?:imap|pop3)-login: .*\brip={re.escape(ip)}{tail}.*$",
                          self.log(since), re.M)

    def login(self, ip, port=None, timeout=10, since=0):
        """The successful login of client ip(:port), waited for: a dict with
        proto (imap, pop3), user, method, rip, rport, lip, lport, real_rip
        (the peer of Dovecot's socket: sluice) and secured (True when the
        session was TLS: Dovecot's own, or the PROXY v2 SSL TLV)."""
        def find():
            lines = [l for l in self.login_lines(ip, port, since)
                     if re.search(r"-login: Info: Login: ", l)]
            return lines[-1] if lines else None
        line = wait_until(find, timeout,
                          f"Dovecot's login line for rip={ip} rport={port or '*'}")
        return parse_login(line)

    def refused(self, ip, port=None, timeout=10, since=0):
        """Wait for Dovecot's 'Plaintext authentication disabled' line of
        client ip(:port); returns it."""
        def find():
            lines = [l for l in self.login_lines(ip, port, since)
                     if "Plaintext authentication disabled" in l]
            return lines[-1] if lines else None
        return wait_until(find, timeout,
                          f"Dovecot refusing plaintext auth of rip={ip} rport={port or '*'}")

    def kill_sessions(self, proto=("imap", "pop3"), timeout=10):
        """kill -9 every imap/pop3 mail process of this instance (a backend
        dying mid-session). Returns their pids once they are gone."""
        master = self.master_pid()
        assert master, "Dovecot is not running"
        pids = [p for p in _session_pids(master)
                if _comm(p) in proto]
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda: not any(_alive(p) for p in pids), timeout,
                   "Dovecot's mail processes to die")
        return pids


def parse_login(line):
    """A Dovecot login line ("...-login: Info: Login: user=<bob>, method=PLAIN,
    rip=..., rport=..., ..., secured, secured=<secured>, ...") as a dict."""
    m = re.search(r" (imap|pop3)-login: Info: Login: (.*)$", line)
    assert m, f"not a Dovecot login line: {line!r}"
    out = {"proto": m.group(1), "line": line}
    for item in m.group(2).split(", "):
        k, sep, v = item.partition("=")
        if sep:
            out[k] = v[1:-1] if v.startswith("<") and v.endswith(">") else v
    out["rport"] = int(out["rport"])
    out["secured"] = out.get("secured") == "secured"
    return out


def _comm(pid):
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _dovecot_conf_of(pid):
    """The config file of a Dovecot master ("dovecot -c FILE"), or None."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") \
        if Path(f"/proc/{pid}/cmdline").exists() else []
    argv = [a.decode(errors="replace") for a in argv]
    if not argv or Path(argv[0]).name != "dovecot" or "-c" not in argv[:-1]:
        return None
    return argv[argv.index("-c") + 1]


def _stop_dovecot_master(pid, timeout, ports_closed=None):
    """SIGTERM to a Dovecot master, then SIGKILL to its session; returns
    when the processes are gone and the ports are closed (ports_closed()
    says so; by default the shared instance's ports on loopback)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    poll(lambda: not _alive(pid), timeout)
    for p in _session_pids(pid):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not any(_alive(p) for p in _session_pids(pid)),
               timeout, "Dovecot processes to exit")
    wait_until(ports_closed or (lambda: not any(listening(*a) for a in DOVECOT_PORTS)),
               timeout, "Dovecot ports to close")


def proxy_v2_header(src, dst, ssl_version=None):
    """A PROXY protocol v2 header (TCP over IPv4) for client src=(ip, port)
    talking to dst=(ip, port); with ssl_version (e.g. "TLSv1.3") it carries
    PP2_TYPE_SSL with the PP2_CLIENT_SSL flag, as sluice sends after TLS."""
    tlv = b""
    if ssl_version:
        sub = b"\x21" + len(ssl_version).to_bytes(2, "big") + ssl_version.encode()
        value = b"\x01" + (0).to_bytes(4, "big") + sub      # client, verify
        tlv = b"\x20" + len(value).to_bytes(2, "big") + value
    body = (socket.inet_aton(src[0]) + socket.inet_aton(dst[0])
            + src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big") + tlv)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x11"
            + len(body).to_bytes(2, "big") + body)


# ------------------------------------------------------------------ sluice ---

def sluice_bin():
    return os.environ.get("SLUICE_BIN") or str(REPO / "build" / "dataplane" / "sluice")


def load_example(name="mail-front.yaml"):
    """An example config from firmware-config/examples as a dict, for tests
    to adjust (timeouts, servers, addresses) before Sluice(...)."""
    with open(EXAMPLES / name) as f:
        return yaml.safe_load(f)


def shifted(cfg, port_offset):
    """A deep copy of config cfg with every listener's port moved up by
    port_offset (2525 -> 2525 + offset; below the ephemeral range), for a
    test's own sluice next to the module's."""
    cfg = copy.deepcopy(cfg)
    for listener in cfg["listeners"]:
        host, port = listener["address"].rsplit(":", 1)
        listener["address"] = f"{host}:{int(port) + port_offset}"
    return cfg


def _addr(s):
    host, port = s.rsplit(":", 1)
    return host.strip("[]"), int(port)


_instances = itertools.count(1)


def scratch():
    """SCRATCH, created; files older than a day (configs, logs and messages
    of earlier runs) are removed on the first call of a process."""
    if not getattr(scratch, "done", False):
        SCRATCH.mkdir(parents=True, exist_ok=True)
        for f in SCRATCH.iterdir():
            if f.is_file() and time.time() - f.stat().st_mtime > 86400:
                f.unlink()
        scratch.done = True
    return SCRATCH


def _test_defaults(config):
    """What every test's sluice gets unless its config says otherwise."""
    # The tests start sluice as root and read what it writes as root: it
    # keeps root on purpose (test_privileges runs it as a user).
    if "user" not in config:
        config.setdefault("run_as_root", True)
    # The tests' clients come from loopback addresses (source_address()
    # spreads them over 127.0.0.0/8), and delivery loops open hundreds of
    # sessions a minute: exempt from the per-address limits, which
    # test_limits and the stress rig test with limits of their own.
    if "limits" not in config and not any("limits" in l for l in config.get("listeners", [])):
        config["limits"] = {"exempt": ["127.0.0.0/8"]}


class Sluice:
    """sluice in the foreground on a config (a dict, written to a scratch
    file, or the path of a file), stderr captured to a file."""

    run_in = ()    # words before the command (ip netns exec NS)

    def __init__(self, config, name="sluice"):
        self.name = f"{name}-{os.getpid()}-{next(_instances)}"
        if isinstance(config, dict):
            # Each instance its own control socket (docs/control.md), so
            # that tests can ask it and instances never share one.
            config.setdefault("control", {}).setdefault(
                "dataplane_socket", str(scratch() / f"{self.name}.dp.sock"))
            _test_defaults(config)
            self.config = config
            self.path = scratch() / f"{self.name}.yaml"
            self.path.write_text(yaml.safe_dump(config, sort_keys=False))
        else:
            self.path = Path(config)
            self.config = yaml.safe_load(self.path.read_text())
        self.ctl_path = (self.config.get("control") or {}).get(
            "dataplane_socket", "/run/sluice/dataplane.sock")
        self.stderr_path = scratch() / f"{self.name}.stderr"
        self.listeners = {l["name"]: _addr(l["address"]) for l in self.config["listeners"]}
        self.proc = None

    def addr(self, listener):
        """(host, port) of the listener with that name."""
        return self.listeners[listener]

    def start(self, timeout=30, env=None):
        """Start sluice; returns when every listener accepts and sluice has
        logged that it started (its cores run, the backends were probed).
        Fails if a port is already taken or sluice exits first (with its
        stderr). env: variables added to sluice's environment."""
        binary = sluice_bin()
        assert os.access(binary, os.X_OK), \
            f"{binary} does not exist: build first (meson compile -C build) or set SLUICE_BIN"
        for host, port in self.listeners.values():
            if listening(host, port):
                _stop_stale_sluice(port)
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([*self.run_in, binary, "-c", str(self.path)],
                                     stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        _running.append(self)
        up = poll(lambda: self.proc.poll() is not None
                  or (self._accepting() and " started: " in self.log_text()), timeout)
        if self.proc.poll() is not None:
            raise AssertionError(f"sluice exited with {self.proc.returncode} at start:\n"
                                 + self.log_text()[-3000:])
        if not up:
            self._kill()
            raise AssertionError(f"sluice did not listen on {list(self.listeners.values())}"
                                 f" within {timeout} s:\n" + self.log_text()[-3000:])
        return self

    def _accepting(self):
        """Every listener accepts (a subclass in a namespace looks there)."""
        return all(listening(*a) for a in self.listeners.values())

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def ctl(self, cmd, timeout=10, **args):
        """One request on sluice's control socket (docs/control.md): the
        answer as a dict ({"ok": ..., ...})."""
        import json
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(self.ctl_path)
            s.sendall(json.dumps(dict(cmd=cmd, **args)).encode() + b"\n")
            return read_json_line(s)

    def rewrite(self, config):
        """Write config (a dict) over this instance's file (for reloads)."""
        config.setdefault("control", {}).setdefault("dataplane_socket", self.ctl_path)
        _test_defaults(config)
        self.config = config
        self.listeners = {l["name"]: _addr(l["address"]) for l in config["listeners"]}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        os.replace(tmp, self.path)

    def replace_if_dead(self):
        """The tearDown of a module whose tests share one sluice: when the
        test crashed it, a new process on the same config takes its place
        (its own stderr file; the dead one's stays) and the test fails with
        the dead one's error ("sluice died by signal ..." + its log)."""
        if self.running():
            return
        err = None
        try:
            self.stop()
        except AssertionError as e:
            err = e
        self.stderr_path = scratch() / f"{self.name}.{next(_instances)}.stderr"
        self.start()
        if err:
            raise err

    def stop(self, timeout=15):
        """SIGTERM and wait. Fails if sluice had crashed (died by a signal or
        exited non-zero), or if it does not exit in time (then killed)."""
        if self.proc is None:
            return
        _running.remove(self)
        proc, self.proc = self.proc, None
        already = proc.poll()
        if already is None:
            # SIGTERM drains (idle sessions get their goodbye, busy ones
            # may finish until control.drain_deadline); a test's leftover
            # busy session need not hold the teardown: after a few seconds
            # a second SIGTERM stops at once.
            proc.send_signal(signal.SIGTERM)
            try:
                try:
                    proc.wait(min(5, timeout))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                raise AssertionError(f"sluice ignored SIGTERM for {timeout} s:\n"
                                     + self.log_text()[-3000:])
            finally:
                self._err.close()
        else:
            self._err.close()
        if proc.returncode != 0:
            when = "before SIGTERM" if already is not None else "on SIGTERM"
            raise AssertionError(f"sluice {_exit_str(proc.returncode)} {when}:\n"
                                 + self.log_text()[-3000:])

    def _kill(self, proc=None):
        proc = proc or self.proc
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)

    def log_text(self):
        try:
            return self.stderr_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def log_lines(self):
        """sluice's stderr, as complete lines: a line still being written
        when the file is read (a read can see part of a write) is left for
        the next look."""
        return self.log_text().split("\n")[:-1]

    def counters(self, timeout=10):
        """sluice's counters, from the line SIGUSR1 makes it log."""
        def lines():
            return [l for l in self.log_lines() if "counters: " in l]
        before = len(lines())
        os.kill(self.proc.pid, signal.SIGUSR1)
        wait_until(lambda: len(lines()) > before, timeout,
                   "sluice's counters line after SIGUSR1")
        line = lines()[-1]
        return {k: int(v) for k, v in
                re.findall(r"(\w+)=(\d+)", line.split("counters: ", 1)[1])}

    def conn_logs(self):
        """The per-connection lines (key=value, with client= and listener=)
        as dicts."""
        return [kv for kv in map(parse_kv, self.log_lines())
                if "client" in kv and "listener" in kv]

    def conn_log(self, ip, port=None, timeout=10, listener=None, after=None):
        """The per-connection line of client ip(:port), once it is written
        (at close). With port=None the client's latest one. Two connections
        in a row from one address can get the same source port, and the
        first one's line must not stand in for the second's: with
        listener, only that listener's lines; with after (len(conn_logs())
        before the connection was made), only lines written since."""
        def find():
            found = [kv for kv in self.conn_logs()[after or 0:]
                     if _addr(kv["client"])[0] == ip
                     and (port is None or _addr(kv["client"])[1] == port)
                     and (listener is None or kv["listener"] == listener)]
            return found[-1] if found else None
        return wait_until(find, timeout,
                          f"sluice's connection log line for client={ip}:{port or '*'}")


def build_has(feature):
    """True if the build under test was configured with HAVE_<FEATURE> (its
    sluice-build.h): the ASAN build has no jemalloc, for one."""
    build = os.environ.get("SLUICE_BUILD_DIR") or str(REPO / "build")
    text = (Path(build) / "sluice-build.h").read_text()
    return re.search(rf"^#define HAVE_{feature.upper()} 1$", text, re.M) is not None


def control_bin(name):
    """control/NAME of the build under test (sluice-control, sluicectl)."""
    build = os.environ.get("SLUICE_BUILD_DIR") or str(REPO / "build")
    return str(Path(build) / "control" / name)


class SluiceControl:
    """sluice-control beside a running Sluice, on the same configuration
    file (control.socket set in it: a folder of its own under SCRATCH, made
    0755 first so that a test can let another user reach the socket), and
    sluicectl against it. kill() is SIGKILL, start() again re-attaches."""

    run_in = ()    # words before the command (ip netns exec NS)

    def __init__(self, sluice, **control):
        self.sluice = sluice
        self.dir = scratch() / f"{sluice.name}.ctl"
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(mode=0o755)
        os.chmod(self.dir, 0o755)
        self.socket = str(self.dir / "control.sock")
        cfg = copy.deepcopy(sluice.config)
        cfg.setdefault("control", {}).update({"socket": self.socket, **control})
        sluice.rewrite(cfg)
        self.stderr_path = scratch() / f"{sluice.name}.control.stderr"
        self.stderr_path.write_bytes(b"")
        self.proc = None
        self._err = None

    def start(self, timeout=20, env=None):
        """Start sluice-control; returns once it has logged that it attached
        to the dataplane (one more such line than before). env: variables
        added to its environment."""
        binary = control_bin("sluice-control")
        assert os.access(binary, os.X_OK), f"{binary} does not exist: build first"
        before = self.log_text().count("attached to dataplane pid ")
        self._err = open(self.stderr_path, "ab")
        self.proc = subprocess.Popen([*self.run_in, binary, "-c", str(self.sluice.path)],
                                     stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        _running.append(self)
        up = poll(lambda: self.proc.poll() is not None
                  or self.log_text().count("attached to dataplane pid ") > before, timeout)
        if self.proc.poll() is not None:
            raise AssertionError(f"sluice-control exited with {self.proc.returncode} at "
                                 f"start:\n" + self.log_text()[-3000:])
        if not up:
            self.kill()
            raise AssertionError(f"sluice-control did not attach within {timeout} s:\n"
                                 + self.log_text()[-3000:])
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL: nothing to clean up for it (it holds no session)."""
        if self.proc is None:
            return
        _running.remove(self)
        proc, self.proc = self.proc, None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
        self._err.close()

    def stop(self, timeout=10):
        """SIGTERM and wait; fails if it had crashed or exits non-zero."""
        if self.proc is None:
            return
        _running.remove(self)
        proc, self.proc = self.proc, None
        already = proc.poll()
        if already is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
                raise AssertionError(f"sluice-control ignored SIGTERM for {timeout} s")
            finally:
                self._err.close()
        else:
            self._err.close()
        if proc.returncode != 0:
            raise AssertionError(f"sluice-control {_exit_str(proc.returncode)}:\n"
                                 + self.log_text()[-3000:])

    def log_text(self):
        try:
            return self.stderr_path.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    def ctl(self, *args, user=None, groups=True, timeout=60):
        """sluicectl -s SOCKET ARGS: (exit code, stdout, stderr). user: run
        it as that (user, group) with setpriv, e.g. ("nobody", "nogroup"),
        with the user's supplementary groups (groups=False: none)."""
        cmd = [control_bin("sluicectl"), "-s", self.socket, *map(str, args)]
        if user:
            cmd = [tool("setpriv"), f"--reuid={user[0]}", f"--regid={user[1]}",
                   "--init-groups" if groups else "--clear-groups", *cmd]
        try:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{shlex.join(cmd)} still running after {timeout} s") from None
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")

    def json(self, *args, **kw):
        """sluicectl -j ARGS: (exit code, the answer as a dict)."""
        import json
        rc, out, err = self.ctl("-j", *args, **kw)
        try:
            return rc, json.loads(out)
        except ValueError:
            raise AssertionError(f"sluicectl -j {args}: not JSON (exit {rc}):\n{out}\n{err}")


def read_json_line(sock):
    """One answer line of a control socket (docs/control.md), as a dict."""
    import json
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return json.loads(buf)


def _stop_stale_sluice(port):
    """A sluice left by an aborted run (its config under SCRATCH) holding
    port is stopped; anything else there fails the test, named."""
    for pid in listener_pids(port):
        cmd = _cmdline(pid)
        if Path(cmd.split()[0]).name == "sluice" and f" {SCRATCH}/" in cmd:
            os.kill(pid, signal.SIGTERM)
            if not poll(lambda: not _alive(pid), 10):
                os.kill(pid, signal.SIGKILL)
        else:
            raise AssertionError(f"127.0.0.1:{port} is in use by pid {pid} ({cmd})")
    wait_until(lambda: not listener_pids(port), 10, f"port {port} to be free")


def _exit_str(rc):
    if rc < 0:
        return f"died by signal {signal.Signals(-rc).name}"
    return f"exited with status {rc}"


def parse_kv(line):
    """key=value pairs of a log line; values may be "double quoted"."""
    out = {}
    for k, v in re.findall(r'(?:^|\s)([\w.-]+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        out[k] = v[1:-1] if v.startswith('"') else v
    return out


# ------------------------------------------------------- messages, clients ---

_seq = itertools.count(1)


def unique(label="m"):
    """A token no other message of any run shares: for recipients and ids."""
    return f"{label}-{os.getpid()}-{time.time_ns() // 1000 % 10**10}-{next(_seq)}"


def recipient(tag):
    return f"{tag}@test.local"


def message_id(tag):
    return f"<{tag}@client.test>"


def make_message(tag, rcpt=None, body=None):
    """An RFC 5322 message with CRLF line ends, identified by tag (in the
    Message-ID and the Subject). The default body has a line starting with a
    dot (tests transparency), a blank line, a tab and a long line."""
    rcpt = rcpt or recipient(tag)
    if body is None:
        body = ("Hello from the sluice integration tests.\r\n"
                ".this line starts with a dot\r\n"
                "\r\n"
                "tab\tseparated\tand trailing space \r\n"
                + "0123456789" * 30 + "\r\n"
                "-- \r\nend\r\n")
    head = (f"From: Test Sender <{SENDER}>\r\n"
            f"To: <{rcpt}>\r\n"
            f"Subject: sluice test {tag}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: {message_id(tag)}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n"
            "\r\n")
    return (head + body).encode()


def dot_stuff(msg):
    """DATA transparency (RFC 5321 4.5.2) plus the terminating dot line."""
    out = re.sub(rb"(?m)^\.", b"..", msg)
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out + b".\r\n"


TRACE_HEADERS = (b"return-path:", b"delivered-to:", b"x-original-to:", b"received:")


def compare_message(sent, delivered):
    """None if the delivered Maildir file is the sent message (CRLF stored
    as LF) preceded only by the trace headers Postfix adds (Return-Path,
    Delivered-To, X-Original-To, Received); else what differs."""
    expected = sent.replace(b"\r\n", b"\n")
    if not delivered.endswith(expected):
        # Find where they part, to show it.
        body = delivered
        start = delivered.find(expected.split(b"\n", 1)[0])
        if start >= 0:
            body = delivered[start:]
        i = next((i for i, (a, b) in enumerate(zip(body, expected)) if a != b),
                 min(len(body), len(expected)))
        return (f"delivered message differs from the sent one at byte {i}:\n"
                f"  sent:      {expected[max(0, i - 60):i + 60]!r}\n"
                f"  delivered: {body[max(0, i - 60):i + 60]!r}")
    prefix = delivered[:-len(expected)]
    lines = prefix.split(b"\n")[:-1] if prefix else []
    current = None
    for line in lines:
        if line[:1] in (b" ", b"\t") and current:
            continue
        current = next((h for h in TRACE_HEADERS if line.lower().startswith(h)), None)
        if current is None:
            return f"unexpected line before the sent message: {line!r}"
    if not any(l.lower().startswith(b"received:") for l in lines):
        return "no Received: header added by Postfix"
    return None


def received_ip(delivered):
    """The client address in Postfix's Received: header."""
    m = re.search(rb"^Received: from .*?\[([\d.]+)\]", delivered, re.M | re.S)
    return m and m.group(1).decode()


def assert_conn_log(case, sluice, ip, port, listener, tls, result=None):
    """In TestCase case: sluice's key=value line for the connection of
    ip:port names listener; tls True (a TLS version), False (none) or None
    (not checked); result "ok", "error" (anything else) or None (not
    checked). Returns the line."""
    # by listener too: a source port can come again on another listener
    # (a line of the wrong listener only is a timeout here, still a failure)
    line = sluice.conn_log(ip, port, listener=listener)
    case.assertEqual(line["listener"], listener, line)
    case.assertIn("tls", line)
    if tls:
        case.assertRegex(line["tls"], r"^TLSv1(\.[0-3])?$", line)
    elif tls is False:
        case.assertEqual(line["tls"], "none", line)
    case.assertIn("reason", line)
    if result == "ok":
        case.assertEqual(line.get("result"), "ok", line)
    elif result == "error":
        case.assertNotIn(line.get("result"), ("ok", "", None), line)
    return line


def no_verify_context():
    """A TLS client context that trusts anything (sluice's certificate is
    generated at start-up and self-signed)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Closed(AssertionError):
    """The server closed the connection where a reply was expected."""


class Replies:
    """SMTP reply parsing over some byte source (self._recv)."""

    buf = b""

    def reply(self):
        """One complete (multi-line) reply: (code, [text lines]). Raises
        Closed if the server closes first."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self._recv()
                if not chunk:
                    raise Closed(f"connection closed; partial reply {self.buf!r} after {lines}")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode(errors="replace")
            lines.append(text)
            if not re.match(r"\d{3}[ -]", text):
                raise AssertionError(f"not an SMTP reply line: {text!r}")
            if text[3] == " ":
                return int(text[:3]), lines

    def cmd(self, line):
        """Send one command line (CRLF added) and return its reply."""
        self.send(line.encode() + b"\r\n" if isinstance(line, str) else line)
        return self.reply()

    def expect(self, line, code):
        """Send a command and require the reply code; returns the lines."""
        got, lines = self.cmd(line)
        if got != code:
            raise AssertionError(f"{line!r}: expected {code}, got {lines}")
        return lines


class Smtp(Replies):
    """A raw SMTP client for transcripts: sends exactly the given bytes and
    reads replies as (code, [lines]). Can switch to TLS in place."""

    def __init__(self, addr, source=None, tls=False, timeout=10):
        self.sock = socket.create_connection(
            addr, timeout=timeout, source_address=client_source(source or "127.0.0.1"))
        self.local = self.sock.getsockname()       # (ip, port) sluice sees
        self.buf = b""
        if tls:
            self.starttls_handshake()

    def _recv(self):
        try:
            return self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return b""
        except socket.timeout:
            raise AssertionError(f"no reply within {self.sock.gettimeout()} s;"
                                 f" pending {self.buf!r}") from None

    def send(self, data):
        try:
            self.sock.sendall(data)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError) as e:
            raise Closed(f"connection closed while sending: {e}") from None

    def starttls_handshake(self, ctx=None):
        """TLS handshake on the connection as it is (after `220` to STARTTLS,
        or at once for implicit TLS)."""
        assert not self.buf, f"bytes pending before TLS: {self.buf!r}"
        self.sock = (ctx or no_verify_context()).wrap_socket(self.sock)

    def starttls(self, ctx=None):
        """STARTTLS, its 220, then the handshake."""
        self.expect("STARTTLS", 220)
        self.starttls_handshake(ctx)

    def closed_by_peer(self, timeout=10):
        """Wait for the server to close; returns what it sent meanwhile.
        Fails if the connection is still open after timeout."""
        self.sock.settimeout(timeout)
        data, deadline = self.buf, time.monotonic() + timeout
        self.buf = b""
        while time.monotonic() < deadline:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
                return data
            if not chunk:
                return data
            data += chunk
        raise AssertionError(f"connection still open after {timeout} s; got {data!r}")

    def close(self, reset=False):
        """Close; reset=True sends an RST (a client that vanishes)."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


class Interactive(Replies):
    """A command-line client (openssl s_client -quiet) driven over pipes:
    what is written to its stdin goes to the server, replies are read from
    its stdout. Its stderr goes to a file (certificate chatter)."""

    def __init__(self, cmd, timeout=10):
        cmd = [str(c) for c in cmd]
        cmd[0] = tool(cmd[0])
        self.argv, self.timeout = cmd, timeout
        self.errfile = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.errfile, bufsize=0)

    def _recv(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
        if not ready:
            raise AssertionError(f"no reply within {self.timeout} s from {self.argv[0]};"
                                 f" stderr:\n{self.stderr()}")
        return os.read(self.proc.stdout.fileno(), 65536)

    def send(self, data):
        self.proc.stdin.write(data)

    def stderr(self):
        self.errfile.seek(0)
        return self.errfile.read().decode(errors="replace")

    def wait(self, timeout=10):
        """Exit status once the client has ended (the server closed)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.argv[0]} still running after {timeout} s") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.errfile):
            f.close()


def ehlo_keywords(lines):
    """The capability lines of an EHLO reply (without the greeting line),
    upper-cased, as a set."""
    return {l[4:].strip().upper() for l in lines[1:]}


def backend_capabilities():
    """What Postfix itself answers to EHLO (asked on its plain port)."""
    with Smtp(POSTFIX_PLAIN) as c:
        c.reply()
        caps = ehlo_keywords(c.expect("EHLO client.test", 250))
        c.expect("QUIT", 221)
    return caps


def posttls_finger_env():
    """posttls-finger reads a main.cf; give it a minimal one of its own."""
    d = scratch() / "posttls-finger"
    d.mkdir(parents=True, exist_ok=True)
    (d / "main.cf").write_text("compatibility_level = 3.6\n")
    return {"MAIL_CONFIG": str(d)}


def client_hello():
    """The bytes of a real TLS ClientHello (from Python's ssl module)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = no_verify_context().wrap_bio(incoming, outgoing, server_hostname="mail-front.test")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


# ------------------------------------------------------ IMAP, POP3 clients ---

class ImapResponse:
    """A tagged IMAP response and what came before it: status (OK, NO,
    BAD), tagged (the tagged line), untagged (the lines before it, literal
    data shown as {n}), literals (the literal data, in order)."""

    def __init__(self, tag, tagged, untagged, literals):
        self.tag, self.tagged, self.untagged, self.literals = tag, tagged, untagged, literals
        rest = tagged[len(tag) + 1:]
        self.status = rest.split(" ", 1)[0].upper()

    @property
    def lines(self):
        return self.untagged + [self.tagged]

    def __repr__(self):
        shown = [l if len(l) < 300 else l[:300] + "..." for l in self.lines]
        return f"<IMAP {self.status}: {shown}>"


class ImapReplies:
    """IMAP response parsing over some byte source (self._recv), literals
    included: a raw IMAP client for transcripts (Imap) or for a
    command-line client driven over pipes (ImapInteractive)."""

    buf = b""
    _tags = itertools.count(1)

    def _fill(self, what):
        chunk = self._recv()
        if not chunk:
            raise Closed(f"connection closed waiting for {what}; pending {self.buf[:300]!r}")
        self.buf += chunk

    def raw_line(self):
        """One line as sent, without its CRLF (bytes)."""
        while b"\r\n" not in self.buf:
            self._fill("a line")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n):
        try:
            while len(self.buf) < n:
                self._fill(f"{n} bytes of a literal")
        except AssertionError as e:
            raise type(e)(f"{e} (had {len(self.buf)} of the {n} bytes of a literal)") from None
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def logical(self):
        """One response line with its literals: (text, [literal bytes]);
        in text each literal stays as its {n} announcement."""
        text, literals = "", []
        while True:
            line = self.raw_line()
            text += line.decode(errors="replace")
            m = re.search(rb"\{(\d+)\}$", line)
            if not m:
                return text, literals
            literals.append(self.read_exact(int(m.group(1))))

    def greeting(self):
        """The server's greeting line (must be untagged)."""
        text, _ = self.logical()
        if not text.startswith("* "):
            raise AssertionError(f"not an IMAP greeting: {text!r}")
        return text

    def new_tag(self):
        return f"t{next(self._tags)}"

    def response(self, tag):
        """Lines up to the tagged response of tag. A close first raises
        Closed; what came until then is kept in self.partial."""
        untagged, literals = [], []
        self.partial = untagged
        while True:
            text, lits = self.logical()
            literals += lits
            if text.startswith(tag + " "):
                return ImapResponse(tag, text, untagged, literals)
            untagged.append(text)

    def cmd(self, command, tag=None):
        """Send `TAG COMMAND` (str or bytes; CRLF added) and return its
        ImapResponse."""
        tag = tag or self.new_tag()
        if isinstance(command, str):
            command = command.encode()
        self.send(tag.encode() + b" " + command + b"\r\n")
        return self.response(tag)

    def ok(self, command, tag=None):
        """A command that must succeed; returns its ImapResponse."""
        r = self.cmd(command, tag)
        if r.status != "OK":
            raise AssertionError(f"{command!r}: expected OK, got {r}")
        return r

    def starttls(self, ctx=None):
        """STARTTLS, its OK, then the handshake."""
        r = self.ok("STARTTLS")
        self.starttls_handshake(ctx)
        return r


class Pop3Replies:
    """POP3 reply parsing over some byte source (self._recv)."""

    buf = b""

    def raw_line(self):
        while b"\r\n" not in self.buf:
            chunk = self._recv()
            if not chunk:
                raise Closed(f"connection closed; partial line {self.buf[:300]!r}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def status(self):
        """One status line (+OK ... or -ERR ...), as text."""
        text = self.raw_line().decode(errors="replace")
        if not re.match(r"^(\+OK|-ERR)( |$)", text):
            raise AssertionError(f"not a POP3 status line: {text!r}")
        return text

    greeting = status

    def multi(self):
        """The lines of a multi-line answer up to the final dot, dot
        stuffing removed (bytes)."""
        lines = []
        while True:
            line = self.raw_line()
            if line == b".":
                return lines
            lines.append(line[1:] if line.startswith(b".") else line)

    def cmd(self, command):
        """Send one command (CRLF added); returns its status line."""
        if isinstance(command, str):
            command = command.encode()
        self.send(command + b"\r\n")
        return self.status()

    def ok(self, command):
        text = self.cmd(command)
        if not text.startswith("+OK"):
            raise AssertionError(f"{command!r}: expected +OK, got {text!r}")
        return text

    def capa(self):
        """CAPA: the capability lines, as text."""
        self.ok("CAPA")
        return [l.decode(errors="replace") for l in self.multi()]

    def starttls(self, ctx=None):
        r = self.ok("STLS")
        self.starttls_handshake(ctx)
        return r


class _ShortPending:
    """Smtp._recv's timeout message shows the pending bytes, which may be
    megabytes here (a message being read): show their size and start."""

    def _recv(self):
        try:
            return super()._recv()
        except AssertionError:
            if len(self.buf) <= 300:
                raise
            raise AssertionError(f"no reply within {self.sock.gettimeout()} s;"
                                 f" {len(self.buf)} bytes pending, starting"
                                 f" {self.buf[:200]!r}") from None


class Imap(ImapReplies, _ShortPending, Smtp):
    """A raw IMAP client (the socket handling of Smtp): sends exactly the
    given bytes, reads responses with their literals, can switch to TLS."""


class Pop3(Pop3Replies, _ShortPending, Smtp):
    """A raw POP3 client (the socket handling of Smtp)."""


class ImapInteractive(ImapReplies, Interactive):
    """openssl s_client / gnutls-cli carrying an IMAP dialogue."""


class Pop3Interactive(Pop3Replies, Interactive):
    """openssl s_client / gnutls-cli carrying a POP3 dialogue."""


def imap_capabilities(text):
    """The capability atoms in `* CAPABILITY ...` or `[CAPABILITY ...]`,
    upper-cased, as a set."""
    m = re.search(r"(?:^\* |\[)CAPABILITY ([^\]]*)", text, re.I)
    if not m:
        raise AssertionError(f"no capability list in {text!r}")
    return {a.upper() for a in m.group(1).split()}


def pop3_capabilities(lines):
    """CAPA lines as {keyword: arguments}, keyword upper-cased."""
    out = {}
    for line in lines:
        word, _, args = line.strip().partition(" ")
        out[word.upper()] = args
    return out


def dovecot_imap_capabilities(addr=DOVECOT_IMAP):
    """What Dovecot itself advertises before login (greeting), asked on its
    plain port from 127.0.0.1: a loopback client talking to itself counts
    as secured for Dovecot, so this is the list a TLS client gets."""
    with Imap(addr) as c:
        caps = imap_capabilities(c.greeting())
        c.ok("LOGOUT")
    return caps


def dovecot_pop3_capabilities(addr=DOVECOT_POP3):
    """Dovecot's CAPA before login (as secured, like above)."""
    with Pop3(addr) as c:
        c.greeting()
        caps = pop3_capabilities(c.capa())
        c.ok("QUIT")
    return caps


class _SourceMixin:
    """imaplib's and poplib's clients bound to a source address (neither
    has such an argument before Python 3.14): host, port, source, then the
    library's own keyword arguments (timeout, ssl_context, context)."""

    def __init__(self, host, port, source=None, timeout=30, **kw):
        self._source = source
        super().__init__(host, port, timeout=timeout, **kw)

    def _plain_socket(self, timeout):
        return socket.create_connection(
            (self.host, self.port), timeout,
            source_address=client_source(self._source or "127.0.0.1"))

    def _create_socket(self, timeout):
        return self._plain_socket(timeout)


class IMAP4(_SourceMixin, imaplib.IMAP4):
    """imaplib.IMAP4 bound to a source address."""


class IMAP4_SSL(_SourceMixin, imaplib.IMAP4_SSL):
    def _create_socket(self, timeout):
        return self.ssl_context.wrap_socket(self._plain_socket(timeout),
                                            server_hostname=self.host)


class POP3(_SourceMixin, poplib.POP3):
    """poplib.POP3 bound to a source address."""


class POP3_SSL(_SourceMixin, poplib.POP3_SSL):
    def _create_socket(self, timeout):
        return self.context.wrap_socket(self._plain_socket(timeout),
                                        server_hostname=self.host)


def big_message(tag, size=10 * 1024 * 1024, seed=None):
    """(message, payload): an RFC 5322 + MIME message with CRLF line ends,
    Message-ID <tag@client.test>, whose body is `size` random bytes
    (payload), base64-encoded in 76-character lines."""
    payload = random.Random(seed if seed is not None else tag).randbytes(size)
    body = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    head = (f"From: Test Sender <{SENDER}>\r\n"
            f"To: <bob@test.local>\r\n"
            f"Subject: sluice big message {tag}\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            f"Message-ID: {message_id(tag)}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: application/octet-stream; name=\"random.bin\"\r\n"
            "Content-Transfer-Encoding: base64\r\n"
            "\r\n").encode()
    return head + body, payload


def mime_payload(message):
    """The decoded body of a message made by big_message() (CRLF or LF)."""
    sep = re.search(rb"\r?\n\r?\n", message)
    assert sep, "no end of header"
    return base64.b64decode(message[sep.end():])


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def main(argv):
    """python3 harness.py postfix-start DIR | postfix-stop DIR

    Start (or stop) the reference Postfix in DIR and leave it running: the
    local backend of the Quick start in README.md."""
    if len(argv) != 3 or argv[1] not in ("postfix-start", "postfix-stop"):
        print(main.__doc__.strip())
        return 2
    pf = Postfix(argv[2])
    if argv[1] == "postfix-stop":
        pf.stop()
        return 0
    pf.start()
    _running.remove(pf)  # outlive this script
    print(f"Postfix runs in {pf.dir}: 127.0.0.1:10025 plain, 127.0.0.1:10026 PROXY; "
          f"mail for @test.local lands in {pf.inbox}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main(sys.argv))
