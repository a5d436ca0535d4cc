"""sluice on its native stack (its own TCP/IP on DPDK ports) in the rig,
measured in busy cycles per operation beside the kernel stack. Two rows:

NativeMemif (`--stack native`, JSON key sluice-native): no kernel on the
data path. sluice's two ports are net_memif servers (shared memory, no
system call per frame); the load generator and the sink are memif clients
with their own user-space TCP/IP (bench/natio.c: the same net/ library):

    build/bench/sluice-loadgen --native     sluice (the rig's netns)       build/bench/sink --native
    192.0.2.1..4  ==memif client.sock== port 0: 192.0.2.10
                                       port 1: 198.51.100.10 ==memif backend.sock== 198.51.100.1

NativeStack (`--stack native-tap`, JSON key sluice-native-tap): the first
native row, on net_tap ports, the load generator and the sink on the
kernel's TCP/IP in namespaces of their own, every frame a syscall:

    client netns sbc<tag>        sluice (the rig's netns)          backend netns sbb<tag>
    192.0.2.1  --tap sbtc<tag>-- port 0: 192.0.2.10
                                 port 1: 198.51.100.10 --tap sbtb<tag>-- 198.51.100.1
    build/bench/sluice-loadgen                                      build/bench/sink

<tag> is the outer bench/run's PID (SLUICE_BENCH_TAG), so the outer process
can remove both namespaces after the inner one died however it died. The
taps are sluice's: they vanish when it exits. RFC 5737 addresses only; any
port is fine inside namespaces of our own.

What is measured, per operation (docs in bench/README.md):
  busy cycles   the dataplane cores' TSC cycles in loop passes that found
                work (sluice's nat_busy_cycles, read with SIGUSR1 before and
                after), plus the CPU time of every other sluice thread (TLS
                workers, which sleep when idle; the main thread) times the
                TSC rate: the native row's figure;
  wall CPU      user+system of the whole process, polling included: what
                the kernel row's figure is, shown for comparison only.
"""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

from . import procs
from .servers import SMTP_PORTS, Server

CLIENT4, SLUICE4 = "192.0.2.1", "192.0.2.10"
BACK4, SLUICE_B4 = "198.51.100.1", "198.51.100.10"
CLIENT_MAC, BACKEND_MAC = "02:00:00:00:0c:01", "02:00:00:00:0b:01"
SINK = {"smtp": 7025, "imap": 7143, "pop3": 7110}


def tag():
    return os.environ.get("SLUICE_BENCH_TAG") or str(os.getpid() % 100000)


def names(t):
    """(client netns, backend netns, client tap, backend tap) for tag t."""
    return f"sbc{t}", f"sbb{t}", f"sbtc{t}", f"sbtb{t}"


def sh(*cmd, check=True, timeout=60):
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
    if check and p.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: {p.stdout.decode(errors='replace')}")
    return p.stdout.decode(errors="replace")


def netns_pids(ns):
    p = subprocess.run(["ip", "netns", "pids", ns], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL)
    return [int(x) for x in p.stdout.split()] if p.returncode == 0 else []


def remove_namespaces(t):
    """Kill what runs in tag t's namespaces (only the rig's load generator
    and sink live there), by pid, then delete them. Quiet if absent."""
    for ns in names(t)[:2]:
        if not Path(f"/run/netns/{ns}").exists():
            continue
        procs.end_all(lambda: netns_pids(ns), timeout=3)  # noqa: B023
        sh("ip", "netns", "del", ns, check=False)


def sluice_has_dpdk(binary):
    """True if the binary links DPDK (the native stack is built in)."""
    try:
        p = subprocess.run(["ldd", str(binary)], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"librte_eal" in p.stdout


def parse_counters(line):
    """{name: int} from sluice's `counters: a=1 b=2` line."""
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line.split("counters:", 1)[1])}


class NativeStack(Server):
    """sluice with a `native:` section: the client and the sink each in a
    namespace of their own behind one of its net_tap ports."""

    name, label = "sluice-native-tap", "sluice (native stack, net_tap)"
    transport = "net_tap"
    ports = SMTP_PORTS
    host = SLUICE4
    note = ("sluice on DPDK net_tap ports (no hugepages), its own TCP/IP; the load "
            "generator in one namespace behind the first tap, the sink in another behind "
            "the second; `cores` and `workers` as the kernel row; CPU figure: busy "
            "cycles (see the native section)")

    @classmethod
    def available(cls, rig):
        """(True, '') or (False, why not)."""
        if not sluice_has_dpdk(rig.sluice_bin):
            return False, "not available: this sluice is built without DPDK (libdpdk-dev)"
        if not Path("/dev/net/tun").exists():
            return False, "not available: no /dev/net/tun for net_tap"
        return True, ""

    def __init__(self, rig):
        super().__init__(rig)
        self.ns_c, self.ns_b, self.tap_c, self.tap_b = names(tag())
        self.client_prefix = ["ip", "netns", "exec", self.ns_c]
        self.sink = None
        self.made = False

    # -- set-up --

    def launch(self, cert, port_client, port_backend, ready=lambda: True):
        """sluice on the two port devices given, from the native template;
        returns once it logged its start and ready() holds."""
        cfg = self.render("sluice-native.yaml.in", self.dir / "sluice.yaml", cert,
                          {"@PORT_CLIENT@": port_client, "@PORT_BACKEND@": port_backend,
                           "@IDLE_PAUSE_US@": str(self.rig.args.idle_pause_us),
                           "@SLUICE_WORKERS@": str(self.rig.sluice_workers)})
        self.log = self.dir / "stderr.log"
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(self.rig.server_pin
                                         + [self.rig.sluice_bin, "-c", str(cfg)],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         start_new_session=True, cwd=self.dir)
        deadline = time.monotonic() + 30
        while " started: " not in self.log_text() or not ready():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"sluice ({self.transport}) did not start:\n"
                                   + self.log_text()[-2000:])
            time.sleep(0.05)

    def start(self, cert):
        self.fresh_dir()
        self.network()
        self.launch(cert, f"net_tap0,iface={self.tap_c}", f"net_tap1,iface={self.tap_b}")
        self.attach()
        self.start_sink()
        # The stack answers once the taps are wired and ARP resolved.
        probe = ("import socket,sys\nfor i in range(200):\n try:\n"
                 f"  socket.create_connection(('{SLUICE4}', {self.port('handshake')}), 1).close()"
                 "\n  sys.exit(0)\n except OSError:\n  import time; time.sleep(0.1)\nsys.exit(1)")
        p = subprocess.run(self.client_prefix + ["/usr/bin/python3", "-c", probe],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        if p.returncode:
            raise RuntimeError("no TCP connection to sluice's native address: "
                               + p.stdout.decode(errors="replace")[-500:]
                               + self.log_text()[-1500:])

    def network(self):
        """The two namespaces (a killed run's leftovers removed first)."""
        remove_namespaces(tag())
        self.made = True
        for ns in (self.ns_c, self.ns_b):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")

    def attach(self, timeout=20):
        """Move sluice's taps into the namespaces and address their kernel
        ends; they get MACs of their own (net_tap gives them the port's)."""
        deadline = time.monotonic() + timeout
        while not all(Path(f"/sys/class/net/{t}").exists() for t in (self.tap_c, self.tap_b)):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sluice's taps {self.tap_c}, {self.tap_b} did not appear")
            time.sleep(0.05)
        for tap, ns, mac, a4 in ((self.tap_c, self.ns_c, CLIENT_MAC, CLIENT4),
                                 (self.tap_b, self.ns_b, BACKEND_MAC, BACK4)):
            sh("ip", "link", "set", tap, "netns", ns)
            sh("ip", "-n", ns, "link", "set", tap, "address", mac)
            sh("ip", "-n", ns, "link", "set", tap, "up")
            sh("ip", "-n", ns, "addr", "add", f"{a4}/24", "dev", tap)

    def start_sink(self):
        args = []
        for proto, port in SINK.items():
            args += [f"--{proto}", f"{BACK4}:{port}"]
        with open(self.dir / "sink.log", "wb") as log:
            self.sink = subprocess.Popen(["ip", "netns", "exec", self.ns_b]
                                         + self.rig.client_pin
                                         + [str(self.rig.bdir / "bench/sink")] + args,
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        # ip netns exec and taskset exec: the pid becomes the sink's, and
        # its /proc/PID/net/tcp shows the backend namespace (on the backend
        # address only: before the exec it shows the rig's, where the
        # kernel row's sink has the same ports).
        deadline = time.monotonic() + 10
        while True:
            if self.sink.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the sink did not start in the backend namespace: "
                                   + (self.dir / "sink.log").read_text(errors="replace"))
            try:
                if set(SINK.values()) <= procs.listening_ports(self.sink.pid, BACK4):
                    return
            except OSError:
                pass
            time.sleep(0.05)

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def log_lines(self):
        """The log up to its last complete line (a read can see part of a
        write)."""
        text = self.log_text()
        return text[:text.rfind("\n") + 1]

    def stop(self):
        """sluice first (its taps go with it), then the sink and the
        namespaces; an unclean exit is recorded like the kernel row's."""
        proc = self.proc
        super().stop()
        if self.sink is not None:
            if self.sink.poll() is None:
                self.sink.terminate()
                try:
                    self.sink.wait(5)
                except subprocess.TimeoutExpired:
                    self.sink.kill()
                    self.sink.wait()
            self.sink = None
        if self.made:
            remove_namespaces(tag())
            self.made = False
        if proc is None:
            return
        text = self.log_text()
        if proc.returncode != 0 or "Sanitizer" in text or "runtime error:" in text:
            self.rig.problems.append(f"sluice (native) exited {proc.returncode}: "
                                     + text[-1500:])

    def version(self):
        return self.rig.sluice_rev

    # -- what is measured --

    def counters(self, timeout=5):
        """SIGUSR1, then the counters line it logs."""
        seen = self.log_lines().count("counters:")
        os.kill(self.proc.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log_lines()
            if text.count("counters:") > seen:
                return parse_counters([l for l in text.splitlines() if "counters:" in l][-1])
            time.sleep(0.02)
        raise RuntimeError("sluice logged no counters line on SIGUSR1")

    def sample(self):
        return {"counters": self.counters(),
                "threads": procs.thread_cpu(self.proc.pid)}

    def account(self, before, after, r):
        """Busy cycles per operation (and per MiB for bulk) between two
        samples, beside the wall CPU the rig measured for the process.

        The cores' share is the lower of two upper bounds: sluice's TSC
        count of loop passes that found work (which also counts time the
        core thread spent preempted inside such a pass: on a server CPU
        shared with the TLS workers, a worker woken by the core runs its
        whole handshake there) and the core threads' on-CPU time (which
        also counts their idle polls before each pause). Every other
        thread sleeps when idle: its on-CPU time is work."""
        if "native" in r:       # the load generator's own (natio) figures
            r["loadgen_native"] = r.pop("native")
        b, a = before["counters"], after["counters"]
        if "nat_busy_cycles" not in a:
            raise RuntimeError("this sluice reports no nat_busy_cycles (built before it)")
        tsc = self.rig.tsc_hz or a["nat_tsc_hz"]
        d = {k: a.get(k, 0) - b.get(k, 0) for k in
             ("nat_busy_cycles", "nat_idle_cycles", "nat_pauses", "nat_rx_frames",
              "nat_tx_frames", "nat_tx_drops", "nat_spread_out", "nat_rx_bytes", "nat_tx_bytes", "net_tcp_retrans_segs")}
        threads, groups = {}, {g: [0.0, 0.0, 0.0] for g in ("cores", "workers", "other")}
        for comm, t in after["threads"].items():
            t0 = before["threads"].get(comm, [0.0, 0.0, 0.0])
            dt = [round(x - y, 6) for x, y in zip(t, t0)]
            threads[comm] = dict(zip(("user_s", "system_s", "cpu_s"), dt))
            groups[procs.thread_group(comm)] = [x + y for x, y in
                                                zip(groups[procs.thread_group(comm)], dt)]
        # Cycles in the stack's input per received frame (Ethernet, IP,
        # TCP; the session work it wakes runs later; not the tap's read()
        # nor the write() of the flush): from the running mean
        # sluice reports, times the frames it covers, before and after.
        fr = a.get("net_rx_frames", 0) - b.get("net_rx_frames", 0)
        rx_cyc = (a.get("nat_cycles_per_frame", 0) * a.get("net_rx_frames", 0)
                  - b.get("nat_cycles_per_frame", 0) * b.get("net_rx_frames", 0))
        # The whole packet path outside TLS and the session, per frame
        # both ways: the stacks' input, timers (every pass, idle ones too)
        # and API calls (segments built and copied into mbufs, bytes
        # copied out), plus the driver's RX bursts and frees and its TX
        # bursts (nat_drv_cycles). None from a sluice without the sums.
        stk = {k: a[k] - b.get(k, 0) for k in
               ("nat_stack_rx_cycles", "nat_stack_poll_cycles", "nat_stack_api_cycles",
                "nat_stack_api_calls", "nat_drv_cycles") if k in a}
        pkts = d["nat_rx_frames"] + d["nat_tx_frames"]
        stack_pp = None
        if len(stk) == 5 and pkts > 0:
            stack_pp = (stk["nat_stack_rx_cycles"] + stk["nat_stack_poll_cycles"]
                        + stk["nat_stack_api_cycles"] + stk["nat_drv_cycles"]) / pkts
        core_cpu = groups["cores"][2] * tsc
        core = min(d["nat_busy_cycles"], core_cpu)
        rest = (groups["workers"][2] + groups["other"][2]) * tsc
        busy = core + rest
        ops = r["ops"]
        r["native"] = {
            "tsc_hz": tsc, "tsc_hz_dpdk": a.get("nat_tsc_hz"), "delta": d, "threads": threads,
            "groups_s": {g: dict(zip(("user_s", "system_s", "cpu_s"), v))
                         for g, v in groups.items()},
            "core_busy_tsc": d["nat_busy_cycles"], "core_thread_cycles": core_cpu,
            "core_cycles": core, "core_basis": ("TSC busy count" if core < core_cpu
                                                else "core threads' CPU time"),
            "other_cycles": rest, "busy_cycles": busy,
            "input_cycles_per_rx_frame": (stk["nat_stack_rx_cycles"] / fr if fr > 0 and stk
                                          else rx_cyc / fr if fr > 0 else None),
            "stack_cycles": stk, "stack_cycles_per_packet": stack_pp,
            "idle_poll_share": d["nat_idle_cycles"] / core_cpu if core_cpu else None}
        r["wall_cpu_us_per_op"] = r["cpu_us_per_op"]
        r["cpu_basis"] = "busy cycles"
        r["cycles_per_op"] = busy / ops if ops else None
        r["cpu_us_per_op"] = busy / tsc * 1e6 / ops if ops else None
        r["frames_per_op"] = (d["nat_rx_frames"] + d["nat_tx_frames"]) / ops if ops else None
        if "cpu_us_per_mib" in r:
            mib = r["payload_bytes"] / (1 << 20)
            r["wall_cpu_us_per_mib"] = r["cpu_us_per_mib"]
            r["cycles_per_mib"] = busy / mib
            r["cpu_us_per_mib"] = busy / tsc * 1e6 / mib


MEMIF_ADDRS = 4             # client addresses 192.0.2.1..4: one stack each


class NativeMemif(NativeStack):
    """sluice with two net_memif ports (the memif servers); the load
    generator and the sink are memif clients on their own TCP/IP
    (loadgen --native, sink --native): no kernel between them and sluice.
    No namespaces: nothing reaches the kernel's network."""

    name, label = "sluice-native", "sluice (native stack, memif)"
    transport = "net_memif"
    note = ("sluice on two DPDK net_memif ports (no hugepages), its own TCP/IP; the load "
            "generator and the sink on memif too, each with the same user-space TCP/IP "
            "(bench/natio.c): no kernel on the data path; `cores` and `workers` as the "
            "kernel row; CPU figure: busy cycles (see the native section)")

    @classmethod
    def available(cls, rig):
        if not sluice_has_dpdk(rig.sluice_bin):
            return False, "not available: this sluice is built without DPDK (libdpdk-dev)"
        p = subprocess.run([str(rig.loadgen), "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        if b"--native" not in p.stdout:
            return False, "not available: the load generator is built without DPDK"
        return True, ""

    def __init__(self, rig):
        Server.__init__(self, rig)
        self.client_prefix = []
        self.sink = None
        self.made = False

    def sock(self, which):
        return self.dir / f"{which}.sock"

    def memif(self, n, which, role):
        return f"net_memif{n},role={role},socket={self.sock(which)},socket-abstract=no"

    @property
    def loadgen_args(self):
        cpu = self.rig.client_cpus[0]
        return ["--native", self.memif(0, "client", "client"), "--native-addr",
                f"{CLIENT4}/24", "--native-addrs", str(MEMIF_ADDRS), "--native-cpu", str(cpu),
                "--native-queues", str(self.rig.workers)]

    def start(self, cert):
        self.fresh_dir()
        self.launch(cert, self.memif(0, "client", "server"), self.memif(1, "backend", "server"),
                    lambda: all(self.sock(w).exists() for w in ("client", "backend")))
        self.start_sink()

    def start_sink(self):
        args = []
        for proto, port in SINK.items():
            args += [f"--{proto}", f"{BACK4}:{port}"]
        args += ["--native", self.memif(0, "backend", "client"), "--native-addr",
                 f"{BACK4}/24", "--native-cpu", str(self.rig.client_cpus[0]),
                 "--native-queues", str(self.rig.workers)]     # one ring per sluice core
        with open(self.dir / "sink.log", "wb") as log:
            self.sink = subprocess.Popen(self.rig.client_pin
                                         + [str(self.rig.bdir / "bench/sink")] + args,
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while "sink: native on" not in (self.dir / "sink.log").read_text(errors="replace"):
            if self.sink.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the native sink did not start: "
                                   + (self.dir / "sink.log").read_text(errors="replace"))
            time.sleep(0.05)
