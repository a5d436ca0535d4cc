"""Network namespaces for the tests that build a topology of their own
(test_native, test_fleet): set-up commands, commands inside a namespace,
and the harness's Postfix and Dovecot moved into one, on its addresses."""

import re
import subprocess

from harness import Dovecot, Postfix


def sh(*cmd, check=True):
    """Run a set-up command; a failure names it and what it said."""
    p = subprocess.run([str(c) for c in cmd], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    if check and p.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd))}: {p.stdout.decode(errors='replace')}")
    return p.stdout.decode(errors="replace")


def in_ns(ns, *cmd):
    return ["ip", "netns", "exec", ns, *cmd]


def ns_listening(ns, port):
    """True if a TCP socket listens on port in namespace ns."""
    out = sh(*in_ns(ns, "ss", "-Hltn"), check=False)
    return re.search(rf":{port}\s", out) is not None


def _bracket(a):
    return f"[{a}]" if ":" in a else a


class NsPostfix(Postfix):
    """The harness's Postfix in namespace ns, listening on addrs (IPv4
    and IPv6 addresses) instead of 127.0.0.1."""

    def __init__(self, ns, addrs, dir=None):
        super().__init__(dir)
        self.ns, self.addrs = ns, tuple(addrs)
        self.run_in = tuple(in_ns(ns))
        self.ports_text = f"10026 in namespace {ns}"

    def _render(self):
        super()._render()
        main = self.etc / "main.cf"
        text = main.read_text()
        text = text.replace("inet_interfaces = 127.0.0.1",
                            "inet_interfaces = " + ", ".join(map(_bracket, self.addrs)))
        if any(":" in a for a in self.addrs):
            text = text.replace("inet_protocols = ipv4", "inet_protocols = all")
        main.write_text(text + "\n# the 10 MiB tests\nmessage_size_limit = 52428800\n"
                        "virtual_mailbox_limit = 104857600\n")
        master = self.etc / "master.cf"
        lines = []
        for line in master.read_text().splitlines():
            if line.startswith("127.0.0.1:"):
                lines += [line.replace("127.0.0.1:", f"{_bracket(a)}:", 1) for a in self.addrs]
            else:
                lines.append(line)
        master.write_text("\n".join(lines) + "\n")

    def _stop_stale(self):
        self.stop()

    def _ports_closed(self):
        """The namespace's ports: those of the root namespace belong to
        other runs."""
        return not any(ns_listening(self.ns, port) for port in (10025, 10026))

    def _listening(self):
        return ns_listening(self.ns, 10026)


class NsDovecot(Dovecot):
    """The harness's Dovecot in namespace ns on addrs, trusting PROXY
    headers from the networks in trusted."""

    def __init__(self, ns, addrs, trusted, dir=None):
        super().__init__(dir)
        self.ns, self.addrs, self.trusted = ns, tuple(addrs), tuple(trusted)
        self.run_in = tuple(in_ns(ns))
        self.ports_text = f"10144 and 10111 in namespace {ns}"

    def _render(self):
        super()._render()
        text = self.conf.read_text()
        text = text.replace("listen = 127.0.0.1", "listen = " + ", ".join(self.addrs))
        text = text.replace("address = 127.0.0.1", "address = " + ", ".join(self.addrs))
        text = text.replace("haproxy_trusted_networks = 127.0.0.0/8",
                            "haproxy_trusted_networks = " + " ".join(self.trusted))
        self.conf.write_text(text)

    def _stop_stale(self):
        self.stop()

    def _ports_closed(self):
        return not any(ns_listening(self.ns, port) for port in (10143, 10144, 10110, 10111))

    def _listening(self):
        return ns_listening(self.ns, 10144) and ns_listening(self.ns, 10111)
