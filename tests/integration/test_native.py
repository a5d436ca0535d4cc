"""End to end on the native stack (DESIGN.md §6, issue 6): sluice with two
cores on two DPDK net_tap ports without hugepages, its own TCP/IP on both
sides, its backend probes and health checks over it too.

    client namespace                 sluice (root namespace)           backend namespace
    192.0.2.1 2001:db8:1::1  --tap-- port 0: 192.0.2.10 2001:db8:1::10
                                     port 1: 198.51.100.10 2001:db8:2::10 --tap-- 198.51.100.1 2001:db8:2::1
    swaks, openssl, curl,                                               Postfix, Dovecot
    smtplib, imaplib, poplib

The test makes the namespaces, moves each tap interface (the kernel's end of
a DPDK port) into its namespace, and removes everything afterwards, also on
failure. Real clients run in the client namespace (`ip netns exec`), real
Postfix and Dovecot in the backend namespace; nothing but sluice's stack
connects the two. The 10 MiB transfers run once clean and twice with
nftables dropping 3 % of the packets in the client namespace (an upload and
a download). NativeMemif adds a second sluice whose client side is a
net_memif port, with dpdk-testpmd as the memif server (see its comment).
One backend is reached with TLS (an implicit-TLS Postfix port verified by a
test CA): its probes and its sessions speak TLS over the native stack.

Run as root: cd tests/integration && python3 -m unittest test_native
(SLUICE_BIN names another binary; it must be built with DPDK.)
"""

import ast
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

# Our own scratch folder: the backends here are not the shared ones.
os.environ.setdefault("SLUICE_TEST_SCRATCH",
                      str(Path(tempfile.gettempdir()) / "sluice-native-it"))

import harness  # noqa: E402
import pki  # noqa: E402
from harness import (Sluice, big_message, scratch,  # noqa: E402
                     compare_message, make_message, message_id, poll, run,
                     sha256, mime_payload, unique, wait_until, MAIL_USER,
                     MAIL_PASSWORD)
from netns import NsDovecot, NsPostfix, in_ns, ns_listening, sh  # noqa: E402

TAG = str(os.getpid() % 100000)
NS_C, NS_B = f"slnc{TAG}", f"slnb{TAG}"          # namespaces
TAP_C, TAP_B = f"slc{TAG}", f"slb{TAG}"          # the ports' kernel ends
CLIENT4, CLIENT6 = "192.0.2.1", "2001:db8:1::1"
SLUICE4, SLUICE6 = "192.0.2.10", "2001:db8:1::10"
BACK4, BACK6 = "198.51.100.1", "2001:db8:2::1"
SLUICE_B4, SLUICE_B6 = "198.51.100.10", "2001:db8:2::10"
LOSS_PERCENT = 3
HEALTH_S = 2                 # the backends' health_interval
DEAD_PORT = 10099            # nothing listens there in the backend namespace
DEAD_LISTENER = 2525         # sluice's listener for that backend
BTLS_PORT = 10465            # Postfix, implicit TLS, PROXY v2 first (backend TLS)
BTLS_LISTENER = 2465         # sluice's listener for that backend
BTLS_NAME = "mx.backend.test"
LIVE_POOLS = {"pf": f"{BACK4}:10026", "pf6": f"[{BACK6}]:10026", "dv": f"{BACK4}:10144",
              "dv6": f"[{BACK6}]:10144", "pop": f"{BACK4}:10111",
              "pftls": f"{BACK4}:{BTLS_PORT}"}


class BackendPki:
    """A test CA and Postfix's certificate for BTLS_NAME from it: sluice
    verifies the backend by the CA file and the name."""

    def __init__(self):
        d = scratch() / "native-btls"
        d.mkdir(parents=True, exist_ok=True)
        ca_k, k = pki.key("p256"), pki.key("p256")
        ca = pki.cert(ca_k, ["sluice native backend CA"], ca=True)
        self.ca_file = str(d / "ca.pem")
        Path(self.ca_file).write_bytes(pki.pem_cert(ca))
        self.pair = pki.write_pair(d, "backend", [pki.cert(k, [BTLS_NAME], issuer=(ca, ca_k))], k)
        os.chmod(self.pair["key"], 0o644)   # Postfix's smtpd reads it


BPKI = BackendPki()


# ---------------------------------------------------------------- network ---

class Net:
    """The two namespaces and the taps moved into them."""

    def __init__(self):
        self.made = []

    def create(self):
        for ns in (NS_C, NS_B):
            sh("ip", "netns", "del", ns, check=False)     # left by a killed run
            sh("ip", "netns", "add", ns)
            self.made.append(ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def attach(self, timeout=20):
        """Move the taps sluice made into the namespaces and address them.
        The kernel's end gets its own MAC: net_tap gives it the port's."""
        wait_until(lambda: all(Path(f"/sys/class/net/{t}").exists() for t in (TAP_C, TAP_B)),
                   timeout, f"sluice's tap interfaces {TAP_C}, {TAP_B}")
        for tap, ns, mac, a4, a6 in ((TAP_C, NS_C, "02:00:00:00:0c:01", CLIENT4, CLIENT6),
                                     (TAP_B, NS_B, "02:00:00:00:0b:01", BACK4, BACK6)):
            sh("ip", "link", "set", tap, "netns", ns)
            sh("ip", "-n", ns, "link", "set", tap, "address", mac)
            sh("ip", "-n", ns, "link", "set", tap, "up")
            sh("ip", "-n", ns, "addr", "add", f"{a4}/24", "dev", tap)
            sh("ip", "-n", ns, "addr", "add", f"{a6}/64", "dev", tap, "nodad")

    def destroy(self):
        for ns in self.made:
            sh("ip", "netns", "del", ns, check=False)
        self.made = []


def loss(ns, percent, hooks=(("in", "input"), ("out", "output"))):
    """nftables in ns drops percent % of what enters and leaves (or the
    hooks given); returns the command that removes it."""
    table = f"slloss{TAG}"
    sh(*in_ns(ns, "nft", "add", "table", "inet", table))
    for chain, hook in hooks:
        sh(*in_ns(ns, "nft", "add", "chain", "inet", table, chain,
                  f"{{ type filter hook {hook} priority 0 ; }}"))
        sh(*in_ns(ns, "nft", "add", "rule", "inet", table, chain,
                  "numgen", "random", "mod", "100", "<", str(percent), "counter", "drop"))
    return lambda: sh(*in_ns(ns, "nft", "delete", "table", "inet", table), check=False)


def nft_drops(ns):
    out = sh(*in_ns(ns, "nft", "list", "table", "inet", f"slloss{TAG}"), check=False)
    return sum(int(n) for n in re.findall(r"packets (\d+)", out))


# ----------------------------------------------------------------- sluice ---

class NativeSluice(Sluice):
    """sluice whose listeners live in its own stack: ready when it logged
    that it started (the ports are up); the caller then wires the taps."""

    def start(self, timeout=30):
        binary = harness.sluice_bin()
        assert os.access(binary, os.X_OK), f"{binary} does not exist: build first"
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen([binary, "-c", str(self.path)],
                                     stdin=subprocess.DEVNULL, stdout=self._err,
                                     stderr=self._err, start_new_session=True)
        harness._running.append(self)
        up = poll(lambda: self.proc.poll() is not None or " started: " in self.log_text(),
                  timeout)
        if self.proc.poll() is not None:
            raise AssertionError(f"sluice exited with {self.proc.returncode} at start:\n"
                                 + self.log_text()[-3000:])
        if not up:
            self._kill()
            raise AssertionError("sluice did not start:\n" + self.log_text()[-3000:])
        return self


def config():
    servers = lambda port: [f"{BACK4}:{port}"]
    servers6 = lambda port: [f"[{BACK6}]:{port}"]
    return {
        "hostname": "mx.native.test",
        "cores": 2,
        "workers": 1,
        "timeouts": {"plaintext": 60, "handshake": 30, "idle": 120},
        # Probed over the native stack every HEALTH_S seconds: the first
        # round, before the taps are wired, finds every backend down.
        "backends": [dict(b, proxy="v2", health_interval=HEALTH_S, connect_timeout=2) for b in (
            {"name": "pf", "protocol": "smtp", "servers": servers(10026)},
            {"name": "pf6", "protocol": "smtp", "servers": servers6(10026)},
            {"name": "dv", "protocol": "imap", "servers": servers(10144)},
            {"name": "dv6", "protocol": "imap", "servers": servers6(10144)},
            {"name": "pop", "protocol": "pop3", "servers": servers(10111)},
            {"name": "dead", "protocol": "smtp", "servers": servers(DEAD_PORT)},
            # TLS to the backend over the native stack, probes included
            {"name": "pftls", "protocol": "smtp", "servers": servers(BTLS_PORT),
             "tls": "required", "tls_mode": "implicit", "ca_file": BPKI.ca_file,
             "server_name": BTLS_NAME},
        )],
        "listeners": [
            {"name": "smtp", "address": f"{SLUICE4}:25", "protocol": "smtp",
             "tls": "starttls", "backend": "pf"},
            {"name": "smtp6", "address": f"[{SLUICE6}]:25", "protocol": "smtp",
             "tls": "starttls", "backend": "pf6"},
            {"name": "smtps", "address": f"{SLUICE4}:465", "protocol": "smtp",
             "tls": "implicit", "backend": "pf"},
            # tls: required, no detect_implicit_ms: TLS-first detection on
            {"name": "submission", "address": f"{SLUICE4}:587", "protocol": "smtp",
             "tls": "required", "backend": "pf"},
            {"name": "imap", "address": f"{SLUICE4}:143", "protocol": "imap",
             "tls": "starttls", "backend": "dv"},
            {"name": "imap6", "address": f"[{SLUICE6}]:143", "protocol": "imap",
             "tls": "starttls", "backend": "dv6"},
            {"name": "pop3", "address": f"{SLUICE4}:110", "protocol": "pop3",
             "tls": "starttls", "backend": "pop"},
            {"name": "dead", "address": f"{SLUICE4}:{DEAD_LISTENER}", "protocol": "smtp",
             "tls": "starttls", "backend": "dead"},
            {"name": "smtps-btls", "address": f"{SLUICE4}:{BTLS_LISTENER}", "protocol": "smtp",
             "tls": "implicit", "backend": "pftls"},
        ],
        "native": {
            "eal": {"hugepages": False, "memory_mb": 256},
            "ports": [
                {"device": f"net_tap0,iface={TAP_C}", "ipv4": f"{SLUICE4}/24",
                 "ipv6": f"{SLUICE6}/64"},
                {"device": f"net_tap1,iface={TAP_B}", "ipv4": f"{SLUICE_B4}/24",
                 "ipv6": f"{SLUICE_B6}/64"},
            ],
            "idle_pause_us": 200,
        },
    }


class Rig:
    """What a module of native tests runs on, made by its setUpModule: the
    namespaces, sluice started from a config with its taps wired into them,
    more client addresses, the backends in theirs; ready once a client
    connects to sluice's native address and its probes found each of pools
    ({pool: server}) up. stop() removes it all, also after a failed start."""

    def __init__(self, backends):
        self.net = Net()
        self.backends = backends
        self.sluice = None

    def start(self, cfg, name, pools, client_addrs=()):
        """Make the rig; returns the running sluice."""
        try:
            self.net.create()
            self.sluice = NativeSluice(cfg, name).start()
            self.net.attach()
            for a in client_addrs:
                sh("ip", "-n", NS_C, "addr", "add", f"{a}/24", "dev", TAP_C)
            for b in self.backends:
                b.start()
            # The stack answers once the taps are wired: a TCP open shows it.
            wait_until(lambda: client_py("import socket; socket.create_connection"
                                         f"(('{SLUICE4}', 25), 2).close()")[0] == 0,
                       20, "a TCP connection to sluice's native address")
            # The health check finds the backends up once they run, and what
            # they advertise is what clients see before TLS from then on.
            wait_until(lambda: all(probed_up(n, a, self.sluice) for n, a in pools.items()),
                       4 * HEALTH_S + 10,
                       f"the native probes finding every backend up ({', '.join(pools)})")
        except BaseException:
            self.stop()
            raise
        return self.sluice

    def stop(self):
        for obj in (self.sluice, *self.backends):
            if obj is None:
                continue
            try:
                obj.stop()
            except Exception as e:             # keep cleaning; report below
                print(f"cleanup: {obj.__class__.__name__}: {e}", file=sys.stderr)
        self.sluice = None
        self.net.destroy()


class NsTlsPostfix(NsPostfix):
    """The namespace's Postfix plus an implicit-TLS port (PROXY v2 first)
    with BPKI's certificate."""

    def _render(self):
        super()._render()
        with open(self.etc / "master.cf", "a") as f:
            f.write(f"{BACK4}:{BTLS_PORT} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes "
                    "-o smtpd_upstream_proxy_protocol=haproxy "
                    f"-o smtpd_tls_chain_files={BPKI.pair['key']},{BPKI.pair['cert']}\n")

    def _listening(self):
        return super()._listening() and ns_listening(self.ns, BTLS_PORT)


PF = NsTlsPostfix(NS_B, (BACK4, BACK6))
DV = NsDovecot(NS_B, (BACK4, BACK6), (f"{SLUICE_B4}/32", f"{SLUICE_B6}/128"))
RIG = Rig((PF, DV))
SL = None


def setUpModule():
    global SL
    assert os.geteuid() == 0, "test_native needs root (namespaces, taps)"
    SL = RIG.start(config(), "native", LIVE_POOLS)


def tearDownModule():
    RIG.stop()


def probed_up(pool, addr, sl=None):
    """sluice (sl, or this module's) logged that its probe found server
    addr of pool up."""
    return re.search(rf"backend {pool} {re.escape(addr)}: up, \d+ capabilities",
                     (sl or SL).log_text()) is not None


def client(*cmd, timeout=60, input=None):
    """A client run in the client namespace: (exit code, output)."""
    return run(in_ns(NS_C, *cmd), timeout=timeout, input=input)


def client_py(code, timeout=120, ns=NS_C):
    """Python code run in the client namespace (or ns): (exit code, output)."""
    p = subprocess.run(in_ns(ns, sys.executable, "-c", code), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


def py_value(ns, code):
    """The value a Python snippet run in ns prints as its last line (a
    literal: dict, list, tuple)."""
    rc, out = client_py(code, timeout=60, ns=ns)
    assert rc == 0, out
    return ast.literal_eval(out.strip().splitlines()[-1])


# What a client sees before TLS, and what the backends themselves say
# (asked from inside the backend namespace on their plain ports: Postfix
# 10025, Dovecot 10143/10110, where a client on the server's own address
# counts as secured, like sluice's probe with its PROXY header).
SMTP_EHLO = """
import smtplib
s = smtplib.SMTP({host!r}, {port}, timeout=20)
s.ehlo("client.test")
print(repr({{k.upper(): v for k, v in s.esmtp_features.items()}}))
s.quit()
"""
IMAP_CAPS = """
import imaplib
m = imaplib.IMAP4({host!r}, {port}, timeout=20)
greeting = m.welcome.decode()
t, d = m.capability()
m.logout()
print(repr((greeting, d[0].decode())))
"""
POP3_CAPA = """
import poplib
p = poplib.POP3({host!r}, {port}, timeout=20)
print(repr(sorted(k.upper() for k in p.capa())))
p.quit()
"""


SEND_SCRIPT = r"""
import smtplib, ssl, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
t = time.monotonic()
with smtplib.SMTP(host, port, timeout=120) as s:
    s.ehlo("client.test")
    s.starttls(context=ctx)
    s.ehlo("client.test")
    s.sendmail("sender@client.test", ["bob@test.local"], data)
print(f"elapsed {time.monotonic() - t:.3f}")
"""


class NativeSmtp(unittest.TestCase):

    def deliver(self, mid):
        got = PF.maildir_messages(mid.encode(), count=1, timeout=30)
        self.assertEqual(len(got), 1, f"{mid} not delivered:\n{PF.log()[-2000:]}")
        return got[0][1]

    def test_swaks_starttls_ipv4(self):
        """swaks through STARTTLS on the IPv4 address: delivered, and
        Postfix saw the client's address in the PROXY header."""
        tag = unique("nat4")
        rc, out = client("swaks", "--server", SLUICE4, "--port", "25", "-tls",
                         "--ehlo", "client.test", "--from", "sender@client.test",
                         "--to", "bob@test.local", "--header", f"Message-ID: {message_id(tag)}",
                         "--body", "over the native stack")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"<~  220 .*TLS|TLS started")
        self.deliver(message_id(tag))
        self.assertEqual(PF.client_of(message_id(tag))[0], CLIENT4)
        kv = SL.conn_log(CLIENT4)
        self.assertEqual(kv["result"], "ok", kv)
        self.assertTrue(kv["tls"].startswith("TLS"), kv)
        self.assertEqual(kv["starttls"], "yes")

    def test_backend_tls_implicit(self):
        """TLS to the backend over the native stack: the probe found the
        implicit-TLS Postfix port up inside TLS (the rig waited for it),
        and mail through sluice lands there verified by the CA file and
        the name; the second session resumes the first's TLS session."""
        logs = []
        for i in range(2):
            tag = unique("natbtls")
            rc, out = client_py(
                "import smtplib, ssl\n"
                "ctx = ssl.create_default_context(); ctx.check_hostname = False\n"
                "ctx.verify_mode = ssl.CERT_NONE\n"
                f"s = smtplib.SMTP_SSL('{SLUICE4}', {BTLS_LISTENER}, context=ctx, timeout=30)\n"
                "print('port', s.sock.getsockname()[1])\n"
                "s.ehlo('client.test')\n"
                "s.sendmail('sender@client.test', ['bob@test.local'], "
                f"'Message-ID: {message_id(tag)}\\r\\nSubject: btls\\r\\n\\r\\nnative\\r\\n')\n"
                "s.quit()\n")
            self.assertEqual(rc, 0, out)
            msg = self.deliver(message_id(tag))
            # Postfix's own trace: TLS on its side, the client's address
            self.assertIn(f"[{CLIENT4}])\n\tby backend.test (Postfix) with ESMTPS".encode(), msg)
            port = int(re.search(r"port (\d+)", out).group(1))
            logs.append(SL.conn_log(CLIENT4, port))
        for kv in logs:
            self.assertEqual(kv["listener"], "smtps-btls", kv)
            self.assertEqual(kv["result"], "ok", kv)
            self.assertEqual(kv["backend_tls"], "TLSv1.3", kv)
            self.assertEqual(kv["backend_hello"], "normal", kv)
        self.assertEqual([kv["backend_resumed"] for kv in logs], ["no", "yes"], logs)
        self.assertTrue(probed_up("pftls", f"{BACK4}:{BTLS_PORT}"))

    def test_swaks_starttls_ipv6(self):
        """The same on IPv6, both sides: client and backend over IPv6."""
        tag = unique("nat6")
        rc, out = client("swaks", "--server", SLUICE6, "--port", "25", "-tls", "-6",
                         "--ehlo", "client.test", "--from", "sender@client.test",
                         "--to", "bob@test.local", "--header", f"Message-ID: {message_id(tag)}",
                         "--body", "over the native stack, IPv6")
        self.assertEqual(rc, 0, out)
        self.deliver(message_id(tag))
        m = PF.wait_log(rf"client=\S*\[{re.escape(CLIENT6)}\]", timeout=10)
        self.assertTrue(m)
        kv = SL.conn_log(CLIENT6)
        self.assertEqual(kv["result"], "ok", kv)
        self.assertEqual(kv["backend"], f"[{BACK6}]:10026")

    def test_openssl_starttls_smtp_and_implicit(self):
        """openssl s_client: STARTTLS on 25 and implicit TLS on 465."""
        rc, out = client("openssl", "s_client", "-starttls", "smtp", "-connect",
                         f"{SLUICE4}:25", "-brief", "-ign_eof",
                         input=b"QUIT\r\n", timeout=30)
        self.assertEqual(rc, 0, out)
        self.assertIn("Protocol version: TLSv1.3", out)
        self.assertRegex(out, r"(?m)^221 ")
        rc, out = client("openssl", "s_client", "-connect", f"{SLUICE4}:465", "-brief",
                         "-ign_eof", input=b"EHLO client.test\r\nQUIT\r\n", timeout=30)
        self.assertEqual(rc, 0, out)
        self.assertIn("Protocol version: TLSv1.3", out)
        self.assertRegex(out, r"(?m)^250[ -]")

    def test_tls_first_on_a_required_port(self):
        """iOS Mail's TLS first on 587: the greeting is held about two
        round trips that sluice's own TCP measured in the handshake, and a
        ClientHello in that time gets implicit TLS; a plaintext client is
        greeted after that hold, not after detect_implicit_ms' 200."""
        rc, out = client("openssl", "s_client", "-connect", f"{SLUICE4}:587", "-brief",
                         "-ign_eof", input=b"EHLO client.test\r\nQUIT\r\n", timeout=30)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^220 mx\.native\.test ESMTP")
        kv = wait_until(lambda: next((l for l in reversed(SL.conn_logs())
                                      if l["listener"] == "submission"), None), 10,
                        "the log line of s_client on submission")
        self.assertEqual(kv["quirks"], "implicit-tls-on-starttls-port", kv)
        self.assertEqual(kv["starttls"], "no", kv)
        rc, out = client_py(
            "import socket, time\n"
            f"s = socket.create_connection(('{SLUICE4}', 587), timeout=10)\n"
            "t = time.monotonic(); d = b''\n"
            "while b'\\r\\n' not in d:\n"
            "    d += s.recv(4096)\n"
            "print(d[:3], s.getsockname()[1], round((time.monotonic() - t) * 1000, 1))\n"
            "s.sendall(b'QUIT\\r\\n'); s.recv(4096)\n")
        self.assertEqual(rc, 0, out)
        greeting, cport, ms = out.split()[-3:]
        self.assertEqual(greeting, "b'220'", out)
        kv = SL.conn_log(CLIENT4, int(cport))
        print(f"\n  native stack, plaintext on submission (tls: required): greeting after "
              f"{ms} ms, hold_ms={kv['hold_ms']}", file=sys.stderr)
        self.assertTrue(1 <= int(kv["hold_ms"]) < 50, kv)
        self.assertLess(float(ms), 100)

    def big(self, label):
        """A 10 MiB message through STARTTLS from smtplib: intact; seconds."""
        tag = unique(label)
        msg, payload = big_message(tag)
        path = harness.scratch() / f"{tag}.eml"
        path.write_bytes(msg)
        script = harness.scratch() / "send_big.py"
        script.write_text(SEND_SCRIPT)
        try:
            p = subprocess.run(in_ns(NS_C, sys.executable, str(script), SLUICE4, "25",
                                     str(path)), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=300)
        finally:
            path.unlink()
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out + SL.log_text()[-2000:])
        delivered = self.deliver(message_id(tag))
        diff = compare_message(msg, delivered)
        if diff:                                  # kept for a post-mortem
            (harness.scratch() / f"{tag}.sent").write_bytes(msg)
            (harness.scratch() / f"{tag}.delivered").write_bytes(delivered)
        self.assertIsNone(diff)
        self.assertEqual(sha256(mime_payload(delivered)), sha256(payload))
        return float(re.search(r"elapsed ([\d.]+)", out).group(1))

    def test_10mib_starttls(self):
        """10 MiB through STARTTLS, arriving intact (sha256 of the payload)."""
        secs = self.big("big")
        print(f"\n  10 MiB via STARTTLS over the native stack: {secs:.2f} s", file=sys.stderr)

    def test_lossy_10mib_starttls(self):
        """The same with nftables dropping 3 % of the client's packets both
        ways: retransmissions recover every byte."""
        before = SL.counters()
        undo = loss(NS_C, LOSS_PERCENT)
        try:
            secs = self.big("lossy")
            dropped = nft_drops(NS_C)
        finally:
            undo()
        after = SL.counters()
        rexmit = after.get("net_tcp_retrans_segs", 0) - before.get("net_tcp_retrans_segs", 0)
        print(f"\n  10 MiB via STARTTLS, {LOSS_PERCENT} % loss: {secs:.2f} s, "
              f"{dropped} packets dropped by nftables, {rexmit} retransmissions",
              file=sys.stderr)
        self.assertGreater(dropped, 0, "nftables dropped nothing")


class NativeImapPop3(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tag = unique("imapnat")
        cls.msg = make_message(cls.tag)
        cls.uid = DV.append(MAIL_USER, "INBOX", cls.msg)

    def test_imaplib_starttls_ipv4_and_ipv6(self):
        """imaplib: STARTTLS, LOGIN, FETCH of a stored message, on both
        families; Dovecot saw the client's address and a secured login."""
        for host, ip in ((SLUICE4, CLIENT4), (SLUICE6, CLIENT6)):
            mark = DV.log_mark()
            code = (
                "import imaplib, ssl\n"
                "ctx = ssl.create_default_context(); ctx.check_hostname = False\n"
                "ctx.verify_mode = ssl.CERT_NONE\n"
                f"m = imaplib.IMAP4('{host}', 143, timeout=30)\n"
                "m.starttls(ssl_context=ctx)\n"
                f"m.login('{MAIL_USER}', '{MAIL_PASSWORD}')\n"
                "m.select('INBOX')\n"
                f"t, d = m.uid('FETCH', '{self.uid}', '(BODY.PEEK[])')\n"
                "import sys; sys.stdout.buffer.write(d[0][1])\n"
                "m.logout()\n")
            rc, out = client_py(code)
            self.assertEqual(rc, 0, out)
            self.assertIn(message_id(self.tag), out)
            login = DV.login(ip, since=mark)
            self.assertTrue(login["secured"], login)
            self.assertEqual(login["proto"], "imap")

    def test_lossy_10mib_download(self):
        """A 10 MiB message fetched over IMAP STARTTLS while nftables drops
        3 % of what reaches the client namespace: sluice's own data segments
        are lost on the way (drops on the client's output only make its
        kernel send again), so its retransmission and recovery deliver it
        intact."""
        tag = unique("lossydl")
        msg, payload = big_message(tag)
        uid = DV.append(MAIL_USER, "INBOX", msg)
        out = harness.scratch() / f"{tag}.fetched"
        code = (
            "import imaplib, ssl, sys, time\n"
            "ctx = ssl.create_default_context(); ctx.check_hostname = False\n"
            "ctx.verify_mode = ssl.CERT_NONE\n"
            "t = time.monotonic()\n"
            f"m = imaplib.IMAP4('{SLUICE4}', 143, timeout=120)\n"
            "m.starttls(ssl_context=ctx)\n"
            f"m.login('{MAIL_USER}', '{MAIL_PASSWORD}')\n"
            "m.select('INBOX', readonly=True)\n"
            f"typ, d = m.uid('FETCH', '{uid}', '(BODY.PEEK[])')\n"
            f"open('{out}', 'wb').write(d[0][1])\n"
            "m.logout()\n"
            "print(f'elapsed {time.monotonic() - t:.3f}')\n")
        before = SL.counters()
        undo = loss(NS_C, LOSS_PERCENT, hooks=(("in", "input"),))
        try:
            rc, text = client_py(code, timeout=300)
            dropped = nft_drops(NS_C)
        finally:
            undo()
        after = SL.counters()
        try:
            self.assertEqual(rc, 0, text + SL.log_text()[-2000:])
            self.assertEqual(sha256(mime_payload(out.read_bytes())), sha256(payload))
        finally:
            out.unlink(missing_ok=True)
        d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        secs = float(re.search(r"elapsed ([\d.]+)", text).group(1))
        print(f"\n  10 MiB via IMAP STARTTLS to the client, {LOSS_PERCENT} % loss: {secs:.2f} s, "
              f"{dropped} packets dropped by nftables, {d.get('net_tcp_retrans_segs', 0)} "
              f"retransmissions ({d.get('net_tcp_fast_retransmit', 0)} fast, "
              f"{d.get('net_tcp_rto', 0)} timeouts)", file=sys.stderr)
        self.assertGreater(dropped, 50, "nftables dropped (almost) nothing")
        self.assertGreater(d.get("net_tcp_retrans_segs", 0), 0, d)
        # Most losses are repaired from the client's SACKs, not by the
        # retransmission timer (before the RFC 6675 duplicate-ACK fix,
        # about 60 % were: 38 s for the 10 MiB). Usually some 10 RTOs for
        # 300 losses; once, on a loaded machine, 78 RTOs (178 fast
        # retransmits): without RACK-TLP a lost retransmission, or a loss
        # in the small window after an RTO, waits for the timer, and the
        # go-back-N after it resends what the client had SACKed. So the
        # claim is checked as stated (fast repairs outnumber timeouts),
        # not as a ratio that one bad run crosses.
        self.assertGreater(d.get("net_tcp_fast_retransmit", 0), d.get("net_tcp_rto", 0), d)

    def test_openssl_starttls_imap(self):
        rc, out = client("openssl", "s_client", "-starttls", "imap", "-connect",
                         f"{SLUICE4}:143", "-brief", "-ign_eof",
                         input=b"a LOGOUT\r\n", timeout=30)
        self.assertEqual(rc, 0, out)
        self.assertIn("Protocol version: TLSv1.3", out)
        self.assertRegex(out, r"(?m)^a OK")

    def test_curl_imap_starttls(self):
        """curl --ssl-reqd: STARTTLS, login and the UID of the message."""
        rc, out = client("curl", "-sS", "--ssl-reqd", "-k", "--max-time", "30",
                         "-u", f"{MAIL_USER}:{MAIL_PASSWORD}",
                         f"imap://{SLUICE4}:143/INBOX", "-X",
                         f"UID SEARCH HEADER Message-ID {message_id(self.tag)}")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, rf"SEARCH .*\b{self.uid}\b")

    def test_poplib_stls(self):
        rc, out = client_py(
            "import poplib, ssl\n"
            "ctx = ssl.create_default_context(); ctx.check_hostname = False\n"
            "ctx.verify_mode = ssl.CERT_NONE\n"
            f"p = poplib.POP3('{SLUICE4}', 110, timeout=30)\n"
            "p.stls(context=ctx)\n"
            f"p.user('{MAIL_USER}'); p.pass_('{MAIL_PASSWORD}')\n"
            "print('STAT', p.stat())\n"
            "p.quit()\n")
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"STAT \((\d+), \d+\)")
        self.assertGreaterEqual(int(re.search(r"STAT \((\d+)", out).group(1)), 1)


PARALLEL_SCRIPT = r"""
import smtplib, ssl, sys
from concurrent.futures import ThreadPoolExecutor
host, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE

def one(i):
    msg = (f"From: sender@client.test\r\nTo: bob@test.local\r\n"
           f"Message-ID: <{tag}-{i}@native.test>\r\nSubject: {tag} {i}\r\n\r\n"
           f"parallel delivery {i}\r\n")
    with smtplib.SMTP(host, 25, timeout=60) as s:
        s.ehlo("client.test")
        s.starttls(context=ctx)
        s.ehlo("client.test")
        s.sendmail("sender@client.test", ["bob@test.local"], msg)
    return i

with ThreadPoolExecutor(n) as ex:
    done = list(ex.map(one, range(n)))
print("sent", len(done))
"""


class NativeTwoCores(unittest.TestCase):
    """sluice runs this module on two cores. net_tap cannot take sluice's
    RSS key and table, so each port is in software spread: a core hashes
    the TCP frames its queue got and hands the other core's over."""

    PARALLEL = 40

    def test_parallel_starttls_on_both_cores(self):
        """40 smtplib STARTTLS deliveries at once: all delivered; both cores
        accepted sessions and opened backend connections, and no segment
        reached a core that did not hold its connection."""
        self.assertIn("software spread across cores", SL.log_text())
        tag = unique("par")
        before = SL.counters()
        rc, out = self.run_parallel(tag)
        self.assertEqual(rc, 0, out + SL.log_text()[-2000:])
        self.assertIn(f"sent {self.PARALLEL}", out)
        got = PF.maildir_messages(tag.encode(), count=self.PARALLEL, timeout=60)
        ids = {re.search(rb"Message-ID: <([^>]+)>", m).group(1) for _, m in got}
        self.assertEqual(ids, {f"{tag}-{i}@native.test".encode()
                               for i in range(self.PARALLEL)})
        after = SL.counters()
        d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        print(f"\n  {self.PARALLEL} parallel STARTTLS sessions: core 0 "
              f"{d['nat_core0_conns']}, core 1 {d['nat_core1_conns']}; backend opens "
              f"{d['nat_core0_backend_opens']} / {d['nat_core1_backend_opens']}; frames handed "
              f"over {d['nat_spread_out']}", file=sys.stderr)
        self.assertEqual(d["nat_core0_conns"] + d["nat_core1_conns"], self.PARALLEL, d)
        for k in (0, 1):
            self.assertGreater(d[f"nat_core{k}_conns"], 0, d)
            self.assertGreater(d[f"nat_core{k}_backend_opens"], 0, d)
        # Each backend connection's answers came back to the core that
        # opened it: one that landed elsewhere would be answered with RST.
        self.assertEqual(d.get("net_tcp_no_listener", 0), 0, d)
        self.assertEqual(d.get("backend_connect_fail", 0), 0, d)
        self.assertEqual(d.get("nat_spread_drops", 0), 0, d)
        self.assertGreater(d["nat_spread_out"], 0, d)

    def run_parallel(self, tag):
        script = harness.scratch() / "send_parallel.py"
        script.write_text(PARALLEL_SCRIPT)
        p = subprocess.run(in_ns(NS_C, sys.executable, str(script), SLUICE4, tag,
                                 str(self.PARALLEL)), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=180)
        return p.returncode, p.stdout.decode(errors="replace")


class NativeProbes(unittest.TestCase):
    """Backend probes and health checks over the native stack (core 0's
    TCP to the backend namespace; nothing else can reach it)."""

    def test_ehlo_before_tls_is_postfix_s(self):
        """Before TLS, sluice's EHLO is what Postfix advertises (its
        message_size_limit included) plus STARTTLS, never AUTH."""
        backend = py_value(NS_B, SMTP_EHLO.format(host=BACK4, port=10025))
        self.assertEqual(backend.get("SIZE"), "52428800", backend)
        for host in (SLUICE4, SLUICE6):
            seen = py_value(NS_C, SMTP_EHLO.format(host=host, port=25))
            self.assertEqual(seen.get("SIZE"), "52428800", seen)
            want = {k: v for k, v in backend.items() if k != "AUTH"}
            want["STARTTLS"] = ""
            self.assertEqual(seen, want, host)

    def test_imap_and_pop3_capabilities_before_tls_are_dovecot_s(self):
        """IMAP's greeting and CAPABILITY, and POP3's CAPA, before TLS:
        Dovecot's lists plus STARTTLS/STLS, without the AUTH= mechanisms."""
        _, caps = py_value(NS_B, IMAP_CAPS.format(host=BACK4, port=10143))
        dovecot = set(caps.upper().split()) - {"CAPABILITY", "STARTTLS", "LOGINDISABLED"}
        base = {c for c in dovecot if not c.startswith("AUTH=")}
        self.assertIn("IDLE", base)
        for host in (SLUICE4, SLUICE6):
            greeting, caps = py_value(NS_C, IMAP_CAPS.format(host=host, port=143))
            in_greeting = set(re.search(r"\[CAPABILITY ([^\]]*)\]", greeting).group(1)
                              .upper().split())
            self.assertEqual(in_greeting, base | {"STARTTLS"}, greeting)
            self.assertEqual(set(caps.upper().split()) - {"CAPABILITY"},
                             base | {"STARTTLS"}, caps)
        dovecot = py_value(NS_B, POP3_CAPA.format(host=BACK4, port=10110))
        self.assertIn("USER", dovecot)
        seen = py_value(NS_C, POP3_CAPA.format(host=SLUICE4, port=110))
        self.assertEqual(set(seen), set(dovecot) | {"STLS"}, seen)

    def test_dead_backend_found_down(self):
        """A backend on a closed port: the health check says so in the log
        (connection refused, over the native stack), and a client that
        needs it gets SMTP's temporary error, counted."""
        wait_until(lambda: re.search(rf"backend dead {re.escape(BACK4)}:{DEAD_PORT}: "
                                     r"down: connect: Connection refused", SL.log_text()),
                   2 * HEALTH_S + 5, "the health check finding the dead backend down")
        before = SL.counters()
        rc, out = client_py(
            "import smtplib\n"
            f"s = smtplib.SMTP('{SLUICE4}', {DEAD_LISTENER}, timeout=20)\n"
            "print('EHLO', s.ehlo('client.test')[0])\n"
            "print('MAIL', *s.docmd('MAIL FROM:<sender@client.test>'))\n")
        self.assertEqual(rc, 0, out)
        self.assertIn("EHLO 250", out)
        self.assertRegex(out, r"MAIL 421 b'4\.4\.2 ")
        after = SL.counters()
        self.assertEqual(after.get("backend_unavailable", 0) - before.get("backend_unavailable", 0),
                         1, after)
        line = wait_until(lambda: [kv for kv in SL.conn_logs() if kv["listener"] == "dead"],
                          10, "the dead listener's connection line")[-1]
        self.assertEqual(line["result"], "backend-failed", line)
        self.assertEqual(line["backend"], f"{BACK4}:{DEAD_PORT}", line)


# The net_memif rig: dpdk-testpmd is the memif server and forwards (io mode)
# between it and a net_tap whose kernel end is in a client namespace of its
# own; a second sluice has the memif client as its client-side port, and a
# net_tap into the backend namespace on a third network, reaching Postfix's
# IPv6 address through a gateway (Linux takes packets for any of its
# addresses on any interface).
#
#   memif ns            testpmd                      sluice 2                 backend ns
#   192.0.2.1 --tap-- net_tap | net_memif server == net_memif client 192.0.2.10
#                                                    net_tap 2001:db8:3::10 --tap-- 2001:db8:3::1
NS_M = f"slnm{TAG}"
TAP_M, TAP_MB = f"slm{TAG}", f"slmb{TAG}"
MEMIF_B6, MEMIF_GW6 = "2001:db8:3::10", "2001:db8:3::1"


HOLD_SCRIPT = r"""
import socket, ssl, sys
host, port, n, srcs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
held = []
for i in range(n):
    s = ctx.wrap_socket(socket.create_connection((host, port), 20,
                                                 source_address=(srcs[i % len(srcs)], 0)))
    f = s.makefile("rb")
    line = f.readline()
    assert line.startswith(b"220 "), line
    held.append((s, f))
print("held", len(held), flush=True)
sys.stdin.readline()
for s, f in held:
    s.close()
print("closed", flush=True)
"""


class NativeIdleMemory(unittest.TestCase):
    """What an idle TLS session costs on the native stack, by the
    allocator's own count (the `status` command's memory.allocator, jemalloc
    stats.allocated): sessions parked after the TLS handshake and the
    greeting hold their session, their SSL object and their struct
    tcp_conn, but no TCP buffer (net/tcp_buf.c frees one empty for 1 s)
    and no session buffer (lib/buf.h)."""

    # From four client addresses of our own (per_address.sessions is 50):
    # enough sessions that what the allocator's thread caches hold (counted
    # as allocated) weighs little on each.
    SOURCES = [f"192.0.2.{i}" for i in range(41, 45)]
    HELD = 4 * 45
    BUDGET = 24 * 1024           # bytes per idle session; measured about 19 KiB,
                                 # most of it OpenSSL's SSL object (README of net/)

    def allocated(self):
        """jemalloc's stats.allocated, or None in a build without it (ASAN):
        there only the buffers' release is checked."""
        a = SL.ctl("status").get("memory", {}).get("allocator")
        return None if a is None else a["allocated"]

    def test_idle_tls_sessions_hold_no_buffers(self):
        script = harness.scratch() / "hold_idle.py"
        script.write_text(HOLD_SCRIPT)
        for a in self.SOURCES:
            sh("ip", "-n", NS_C, "addr", "add", f"{a}/24", "dev", TAP_C)
        self.addCleanup(lambda: [sh("ip", "-n", NS_C, "addr", "del", f"{a}/24", "dev", TAP_C,
                                    check=False) for a in self.SOURCES])
        before_c = SL.counters()
        base = self.allocated()
        p = subprocess.Popen(in_ns(NS_C, sys.executable, str(script), SLUICE4, "465",
                                   str(self.HELD), ",".join(self.SOURCES)),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
        try:
            line = p.stdout.readline()
            if line.strip() != f"held {self.HELD}":
                p.stdin.close()
                self.fail(f"the client did not hold {self.HELD} sessions: {line}"
                          + p.stdout.read()[-2000:] + SL.log_text()[-2000:])
            # the buffers of the handshake go after buf_idle_us (1 s) idle
            per = None
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                time.sleep(1)
                if base is None:
                    rel = SL.counters().get("net_tcp_buf_released", 0) - before_c.get(
                        "net_tcp_buf_released", 0)
                    if rel >= self.HELD:
                        break
                    continue
                per = (self.allocated() - base) / self.HELD
                if per <= self.BUDGET:
                    time.sleep(2)        # settled: read once more
                    per = (self.allocated() - base) / self.HELD
                    break
            after_c = SL.counters()
            print(f"\n  {self.HELD} idle TLS sessions (native): "
                  + (f"{per:.0f} bytes each by jemalloc's stats.allocated; " if per is not None
                     else "no allocator count in this build; ")
                  + f"TCP buffers held {after_c.get('nat_buf_bytes')} "
                  f"bytes over {after_c.get('nat_conns')} connections", file=sys.stderr)
            if base is not None:
                self.assertLessEqual(per, self.BUDGET,
                                     f"{per:.0f} bytes allocated per idle TLS session (budget "
                                     f"{self.BUDGET}): do idle connections keep TCP buffers?")
            released = after_c.get("net_tcp_buf_released", 0) - before_c.get(
                "net_tcp_buf_released", 0)
            self.assertGreaterEqual(released, self.HELD, "TCP buffers freed once idle")
        finally:
            if p.poll() is None and not p.stdin.closed:
                p.stdin.write("\n")
                p.stdin.flush()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            p.stdout.close()
            if not p.stdin.closed:
                p.stdin.close()


def memif_config(sock):
    return {
        "hostname": "mx.memif.test",
        "cores": 1,
        "workers": 1,
        "timeouts": {"plaintext": 60, "handshake": 30, "idle": 120},
        "backends": [{"name": "pfm", "protocol": "smtp", "proxy": "v2",
                      "servers": [f"[{BACK6}]:10026"], "health_interval": HEALTH_S,
                      "connect_timeout": 2}],
        "listeners": [{"name": "smtp", "address": f"{SLUICE4}:25", "protocol": "smtp",
                       "tls": "starttls", "backend": "pfm"}],
        "native": {
            "eal": {"hugepages": False, "memory_mb": 256},
            "ports": [
                {"device": f"net_memif0,role=client,socket={sock},socket-abstract=no",
                 "ipv4": f"{SLUICE4}/24"},
                {"device": f"net_tap1,iface={TAP_MB}", "ipv6": f"{MEMIF_B6}/64",
                 "ipv6_gateway": MEMIF_GW6},
            ],
            "idle_pause_us": 200,
        },
    }


class NativeMemif(unittest.TestCase):
    """sluice's client side on a net_memif port (the client role), with
    dpdk-testpmd as the memif server bridging to a tap."""

    @classmethod
    def setUpClass(cls):
        cls.sluice = cls.testpmd = None
        cls.sock = harness.scratch() / f"memif{TAG}.sock"
        try:
            cls.setup_rig()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def setup_rig(cls):
        sh("ip", "netns", "del", NS_M, check=False)
        sh("ip", "netns", "add", NS_M)
        if cls.sock.exists():
            cls.sock.unlink()
        cls.pmd_log = harness.scratch() / f"testpmd{TAG}.log"
        # testpmd: main lcore waits on stdin (kept open), one forwarding
        # lcore; no hugepages, its own runtime files.
        cls.pmd_out = open(cls.pmd_log, "wb")
        cls.testpmd = subprocess.Popen(
            [harness.tool("stdbuf"), "-o0", harness.tool("dpdk-testpmd"), "--no-huge", "-m", "256", "--no-pci",
             f"--file-prefix=sltpmd{TAG}", "-l", "0,1",
             f"--vdev=net_memif0,role=server,socket={cls.sock},socket-abstract=no",
             f"--vdev=net_tap0,iface={TAP_M}",
             "--", "--forward-mode=io", "--auto-start", "--nb-cores=1",
             "--total-num-mbufs=8192"],
            stdin=subprocess.PIPE, stdout=cls.pmd_out, stderr=subprocess.STDOUT,
            start_new_session=True)
        # Forwarding, not just probed: the tap's queues are opened by name
        # when the port is configured, so the tap moves only after that.
        forwarding = re.compile(r"start packet forwarding")
        poll(lambda: cls.testpmd.poll() is not None or forwarding.search(cls.pmd_text()), 60)
        assert forwarding.search(cls.pmd_text()) and cls.sock.exists(), \
            f"testpmd is not forwarding:\n{cls.pmd_text()[-3000:]}"
        sh("ip", "link", "set", TAP_M, "netns", NS_M)
        sh("ip", "-n", NS_M, "link", "set", "lo", "up")
        sh("ip", "-n", NS_M, "link", "set", TAP_M, "address", "02:00:00:00:0d:01")
        sh("ip", "-n", NS_M, "link", "set", TAP_M, "up")
        sh("ip", "-n", NS_M, "addr", "add", f"{CLIENT4}/24", "dev", TAP_M)
        cls.sluice = NativeSluice(memif_config(cls.sock), "memif").start()
        wait_until(lambda: Path(f"/sys/class/net/{TAP_MB}").exists(), 20, TAP_MB)
        sh("ip", "link", "set", TAP_MB, "netns", NS_B)
        sh("ip", "-n", NS_B, "link", "set", TAP_MB, "address", "02:00:00:00:0e:01")
        sh("ip", "-n", NS_B, "link", "set", TAP_MB, "up")
        sh("ip", "-n", NS_B, "addr", "add", f"{MEMIF_GW6}/64", "dev", TAP_MB, "nodad")
        wait_until(lambda: re.search(rf"backend pfm \[{re.escape(BACK6)}\]:10026: up",
                                     cls.sluice.log_text()),
                   4 * HEALTH_S + 10, "sluice 2 probing Postfix over its tap\n"
                   + cls.sluice.log_text()[-2000:])

    @classmethod
    def pmd_text(cls):
        try:
            return cls.pmd_log.read_bytes().decode(errors="replace")
        except OSError:
            return ""

    @classmethod
    def tearDownClass(cls):
        if cls.sluice is not None:
            try:
                cls.sluice.stop()
            except Exception as e:
                print(f"memif sluice: {e}", file=sys.stderr)
        if cls.testpmd is not None:
            try:
                cls.testpmd.stdin.close()    # "Press enter to exit": EOF does it
                cls.testpmd.wait(15)
            except (subprocess.TimeoutExpired, OSError):
                os.killpg(cls.testpmd.pid, 9)
                cls.testpmd.wait()
            cls.pmd_out.close()
        sh("ip", "netns", "del", NS_M, check=False)
        # testpmd's runtime files (memif needs the multi-process config).
        sh("rm", "-rf", f"/var/run/dpdk/sltpmd{TAG}", check=False)

    def test_starttls_delivery_over_memif(self):
        """swaks STARTTLS through testpmd and the memif port: delivered, the
        client's address in Postfix's log, the frames counted on sluice 2."""
        self.assertRegex(self.sluice.log_text(), r"native port net_memif0 \(port \d+, net_memif\)")
        tag = unique("memif")
        rc, out = run(in_ns(NS_M, "swaks", "--server", SLUICE4, "--port", "25", "-tls",
                            "--ehlo", "client.test", "--from", "sender@client.test",
                            "--to", "bob@test.local", "--header",
                            f"Message-ID: {message_id(tag)}", "--body", "over net_memif"),
                      timeout=60)
        if rc:
            out += (sh("ip", "-n", NS_M, "neigh", check=False) + sh("ip", "-n", NS_M, "-s", "link", check=False)
                    + str(self.sluice.counters()))
        self.assertEqual(rc, 0, out + self.sluice.log_text()[-2000:] + self.pmd_text()[-2000:])
        got = PF.maildir_messages(message_id(tag).encode(), count=1, timeout=30)
        self.assertEqual(len(got), 1)
        kv = self.sluice.conn_log(CLIENT4)
        self.assertEqual(kv["result"], "ok", kv)
        self.assertEqual(kv["starttls"], "yes")
        self.assertEqual(kv["backend"], f"[{BACK6}]:10026")
        c = self.sluice.counters()
        self.assertGreater(c.get("nat_rx_frames", 0), 10, c)
        self.assertEqual(c.get("nat_tx_drops", 0), 0, c)


class NativeCounters(unittest.TestCase):

    def test_stack_counters_and_cycles_reported(self):
        """SIGUSR1's counters line carries the stack's counters and cycles."""
        rc, _ = client_py("import socket; socket.create_connection"
                          f"(('{SLUICE4}', 25), 5).close()")
        self.assertEqual(rc, 0)
        c = SL.counters()
        for k in ("net_rx_frames", "net_tcp_passive_open", "nat_rx_frames",
                  "nat_tx_frames", "nat_cycles_per_frame"):
            self.assertGreater(c.get(k, 0), 0, k)
        self.assertEqual(c.get("nat_tx_drops", 0), 0)

    def test_metrics_carry_the_stack_and_port_counters(self):
        """The dataplane's metrics command (docs/metrics.md) on the native
        stack: sluice_net_<counter>_total and DPDK's xstats per port, and
        promtool accepts the text."""
        rc, _ = client_py("import socket; socket.create_connection"
                          f"(('{SLUICE4}', 25), 5).close()")
        self.assertEqual(rc, 0)
        ans = SL.ctl("metrics")
        self.assertTrue(ans.get("ok"), ans)
        text = ans["text"]
        for name in ("sluice_net_rx_frames_total", "sluice_net_tcp_passive_open_total"):
            m = re.search(rf"^{name} (\d+)$", text, re.M)
            self.assertTrue(m and int(m.group(1)) > 0, name)
        ports = set(re.findall(r'^sluice_dpdk_port_xstat_total\{port="(\d+)",name="rx_good_packets"\} ',
                               text, re.M))
        self.assertEqual(ports, {"0", "1"}, "xstats of both ports")
        p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr).decode())


class NativeDrain(unittest.TestCase):

    def test_drain_refuses_and_undrain_listens_again(self):
        """Natively a drain takes the listeners out of the stacks: a SYN
        gets the stack's RST (counted as net_tcp_no_listener), an idle
        session its 421; undrain listens again (the control socket) while
        a busy session (half a command line sent) keeps the process."""
        code = f"""
import socket, sys
s = socket.create_connection(('{SLUICE4}', 25), 5)
f = s.makefile('rb')
assert f.readline().startswith(b'220')
busy = socket.create_connection(('{SLUICE4}', 25), 5)
b = busy.makefile('rb')
assert b.readline().startswith(b'220')
busy.sendall(b'NOOP\\r\\nNOO')              # one segment: once NOOP is answered,
assert b.readline().startswith(b'250')    # sluice holds the half line
print('GREETED', flush=True)
sys.stdin.readline()                      # the test drains now
print('GOT', f.readline().decode().strip(), flush=True)
try:
    socket.create_connection(('{SLUICE4}', 25), 5)
    print('CONNECTED', flush=True)
except ConnectionRefusedError:
    print('REFUSED', flush=True)
sys.stdin.readline()                      # the test undrains now
busy.sendall(b'P\\r\\n')
print('BUSY', b.readline().decode().strip(), flush=True)
"""
        before = SL.counters().get("net_tcp_no_listener", 0)
        p = subprocess.Popen(in_ns(NS_C, sys.executable, "-c", code), stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            self.assertEqual(p.stdout.readline().strip(), b"GREETED")
            self.assertEqual(SL.ctl("drain", deadline_s=60), {"ok": True, "sessions": 2})
            p.stdin.write(b"go\n")
            p.stdin.flush()
            self.assertRegex(p.stdout.readline().decode(), r"^GOT 421 4\.3\.2 ")
            self.assertEqual(p.stdout.readline().strip(), b"REFUSED")
            self.assertEqual(SL.ctl("undrain"), {"ok": True})
            p.stdin.write(b"go\n")
            p.stdin.flush()
            out, _ = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
        self.assertRegex(out.decode(errors="replace"), r"BUSY 250 ")
        self.assertGreater(SL.counters().get("net_tcp_no_listener", 0), before)
        rc, out = client_py(f"import socket; s = socket.create_connection(('{SLUICE4}', 25), 5); "
                            "print(s.recv(100))")
        self.assertEqual(rc, 0, out)
        self.assertIn("220 ", out)


if __name__ == "__main__":
    unittest.main()
