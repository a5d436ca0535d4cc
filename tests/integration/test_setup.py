"""sluice-setup (firmware-config/sluice-setup, man sluice-setup(8)) on this
machine's real sysfs, with the configuration read by `sluice --ports`:

  configuration                           check says                          exit
  no native: section                      the kernel stack needs nothing      0
  net_tap ports, eal.hugepages: false     no NIC binding, no hugepages        0
  a PCI address this machine lacks        "no such PCI device"                1
  a real PCI device of this machine       its driver and interface, as sysfs 1
  a vdev whose DPDK driver is missing     its Debian package                  1
  net_tap ports, hugepages, none reserved "none reserved"                     1
    then `apply`: dpdk-hugepages.py reserves them, check says so           0
    the same without dpdk-hugepages.py: nr_hugepages written in sysfs     0
    both: kept across reboots (a tmpfiles.d line systemd-tmpfiles runs)
  a key sluice refuses                    sluice's message, with the key      2

Hugepages are reserved for real and the machine's previous reservation
(and /dev/hugepages as it was) is put back afterwards. No device of this
host is ever bound or unbound: `apply` only runs with net_tap ports.
"""

import os
import re
import shutil
import subprocess
import tempfile
import unittest
from pathlib import Path

from harness import REPO, scratch, sluice_bin

SETUP = REPO / "firmware-config" / "sluice-setup"
PCI = Path("/sys/bus/pci/devices")
HP2M = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")

HEAD = """\
hostname: mx.example.test
backends:
  - {name: pf, protocol: smtp, servers: ["198.51.100.1:10026"]}
listeners:
  - {name: smtp, address: "192.0.2.10:25", protocol: smtp, tls: starttls, backend: pf}
"""


def native(eal, first_device):
    return HEAD + f"""\
native:
  eal: {eal}
  ports:
    - {{device: "{first_device}", ipv4: 192.0.2.10/24}}
    - {{device: "net_tap1,iface=sst1", ipv4: 198.51.100.10/24}}
"""


def hugetlbfs_mounts():
    with open("/proc/mounts") as f:
        return [l.split()[1] for l in f if l.split()[2] == "hugetlbfs"]


def driver_of(addr):
    d = PCI / addr / "driver"
    return os.path.basename(os.readlink(d)) if d.exists() else None


def a_real_device():
    """A PCI device of this machine on a kernel driver (not vfio-pci), a
    network controller if there is one."""
    devs = sorted(p.name for p in PCI.iterdir()) if PCI.exists() else []
    bound = [a for a in devs if driver_of(a) not in (None, "vfio-pci")]
    nets = [a for a in bound if (PCI / a / "class").read_text().startswith("0x02")]
    return (nets or bound or [None])[0]


class Setup(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp(prefix="setup-", dir=scratch()))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def setup_cmd(self, yaml, *args, path=None):
        """sluice-setup ARGS -c (a file holding yaml): (exit status, output)."""
        cfg = self.dir / "sluice.yaml"
        cfg.write_text(yaml)
        env = {**os.environ, "SLUICE": sluice_bin(),
               "SLUICE_SETUP_TMPFILES_D": str(self.dir / "tmpfiles.d")}
        if path:
            env["PATH"] = path
        cmd = args[:1] + ("-c", str(cfg)) + args[1:]
        p = subprocess.run(["/bin/sh", str(SETUP), *cmd], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        out = p.stdout.decode(errors="replace")
        print(f"\n$ sluice-setup {' '.join(cmd)}\n{out}rc={p.returncode}")
        return p.returncode, out

    def test_kernel_stack_needs_nothing(self):
        rc, out = self.setup_cmd(HEAD, "check")
        self.assertEqual(rc, 0, out)
        self.assertIn("the kernel stack (no native: section): no NIC binding, IOMMU or "
                      "hugepages needed", out)

    def test_tap_ports_need_no_binding(self):
        rc, out = self.setup_cmd(native("{hugepages: false, memory_mb: 64}",
                                        "net_tap0,iface=sst0"), "check")
        self.assertEqual(rc, 0, out)
        self.assertIn("ok: ports: only virtual devices (net_tap0 net_tap1): no NIC binding "
                      "and no IOMMU needed", out)
        self.assertIn("hugepages: not needed (eal.hugepages: false", out)
        self.assertRegex(out, r"ok: DPDK: the drivers in \S+ \(mempool_ring bus_vdev net_tap\)")
        self.assertNotIn("missing:", out)
        self.assertIn("ready:", out)

    def test_a_vdev_without_its_driver(self):
        """Debian's DPDK loads drivers as plugins: one not installed is named
        with its package (net_nosuch stands for a driver this machine lacks)."""
        pmds = sorted(Path("/usr/lib").glob("*/dpdk/pmds-*"))
        if not pmds:
            self.fail("no DPDK plugin folder on this machine (libdpdk-dev)")
        abi = pmds[0].name.split("-")[1].split(".")[0]
        self.assertFalse(list(pmds[0].glob("librte_net_nosuch.so*")))
        rc, out = self.setup_cmd(native("{hugepages: false}", "net_nosuch0,x=1"), "check")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"missing: DPDK: drivers not installed: apt-get install "
                      f"librte-net-nosuch{abi} (plugins the EAL loads from {pmds[0]})", out)

    def test_absent_pci_address(self):
        addr = next(a for a in ("0000:7f:1f.7", "0000:7e:1e.6") if not (PCI / a).exists())
        # written without its domain: sluice --ports gives it back with it
        rc, out = self.setup_cmd(native("{hugepages: false}", addr[5:]), "check")
        self.assertEqual(rc, 1, out)
        self.assertIn(f"missing: NIC {addr}: no such PCI device on this machine", out)
        self.assertIn("correct native.ports[].device", out)
        self.assertTrue(out.rstrip().splitlines()[-1].startswith("not ready:"), out)

    def test_a_real_device_with_its_driver(self):
        addr = a_real_device()
        if addr is None:
            self.fail("this machine shows no PCI device on a kernel driver")
        before = driver_of(addr)
        ifaces = sorted({p.name for p in (PCI / addr).glob("net/*")} |
                        {p.name for p in (PCI / addr).glob("virtio*/net/*")})
        rc, out = self.setup_cmd(native("{hugepages: false}", addr), "check")
        self.assertEqual(rc, 1, out)
        line = f"missing: NIC {addr}: bound to the kernel's {before}"
        if ifaces:
            line += f" (interface {' '.join(ifaces)})"
        self.assertIn(line + ", not vfio-pci: driverctl set-override " + addr + " vfio-pci", out)
        vendor = (PCI / addr / "vendor").read_text().strip()[2:]
        device = (PCI / addr / "device").read_text().strip()[2:]
        self.assertIn(f"info: NIC {addr}: [{vendor}:{device}]", out)
        # the DPDK driver for it, from the PCI ids in the installed plugins
        self.assertRegex(out, rf"ok: NIC {addr}: DPDK driver \S+ \(librte_net_\w+\.so\.\d+\)"
                         rf"|missing: NIC {addr}: no installed DPDK driver knows "
                         rf"\[{vendor}:{device}\]")
        for i in ifaces:
            up = int(Path(f"/sys/class/net/{i}/flags").read_text(), 16) & 1
            self.assertEqual(f"interface {i} is up: binding takes it" in out, bool(up), out)
        groups = os.listdir("/sys/kernel/iommu_groups")
        if groups:
            self.assertIn(f"ok: IOMMU: on, {len(groups)} groups", out)
            group = os.path.basename(os.readlink(PCI / addr / "iommu_group"))
            self.assertRegex(out, rf"NIC {addr}: IOMMU group {group}\b")
        else:
            self.assertIn("missing: IOMMU: off (no groups in /sys/kernel/iommu_groups)", out)
        # a check changes nothing
        self.assertEqual(driver_of(addr), before)

    def test_bad_config_is_a_usage_error(self):
        rc, out = self.setup_cmd(native("{hugepages: false, memory_mb: 8}",
                                        "net_tap0,iface=sst0"), "check")
        self.assertEqual(rc, 2, out)
        self.assertIn("native.eal.memory_mb", out)
        self.assertIn("is not a valid configuration", out)


class Hugepages(unittest.TestCase):
    """`apply` reserves 2 MiB pages for eal.memory_mb for real; tearDown
    puts the machine's reservation and /dev/hugepages back."""

    YAML = native("{memory_mb: 64}", "net_tap0,iface=sst0")

    def setUp(self):
        if not HP2M.exists():
            self.fail("this kernel has no 2 MiB hugepages")
        self.nr = int((HP2M / "nr_hugepages").read_text())
        self.mounts = hugetlbfs_mounts()
        self.had_dir = os.path.isdir("/dev/hugepages")
        self.dir = Path(tempfile.mkdtemp(prefix="setup-", dir=scratch()))
        self.setup_cmd = Setup.setup_cmd.__get__(self)
        (HP2M / "nr_hugepages").write_text("0\n")

    def tearDown(self):
        for m in hugetlbfs_mounts():
            if m not in self.mounts:
                subprocess.run(["umount", m], check=False)
        if not self.had_dir and os.path.isdir("/dev/hugepages"):
            os.rmdir("/dev/hugepages")
        (HP2M / "nr_hugepages").write_text(f"{self.nr}\n")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.assertEqual(int((HP2M / "nr_hugepages").read_text()), self.nr)

    def reserved_and_reported(self, out):
        nr = int((HP2M / "nr_hugepages").read_text())
        free = int((HP2M / "free_hugepages").read_text())
        self.assertEqual(nr, 32, "64 MiB of 2 MiB pages")
        self.assertIn(f"ok: hugepages: 32 of 2M reserved, {free} free", out)
        self.assertIn("ok: hugepages: 64 MiB free, enough for eal.memory_mb 64", out)
        self.assertTrue(hugetlbfs_mounts(), "hugetlbfs mounted")
        self.assertIn("ok: hugetlbfs: mounted on", out)

    def kept_across_reboots(self):
        """The tmpfiles.d line apply wrote does at boot what apply did:
        with the pages given back, systemd-tmpfiles --create (what
        systemd-tmpfiles-setup.service runs at boot) reserves them again."""
        conf = self.dir / "tmpfiles.d" / "sluice-hugepages.conf"
        self.assertIn(f"w {HP2M}/nr_hugepages - - - - 32\n", conf.read_text())
        for m in hugetlbfs_mounts():
            if m not in self.mounts:
                subprocess.run(["umount", m], check=False)
        (HP2M / "nr_hugepages").write_text("0\n")
        p = subprocess.run(["systemd-tmpfiles", "--create", str(conf)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(int((HP2M / "nr_hugepages").read_text()), 32)

    def test_check_apply_check(self):
        rc, out = self.setup_cmd(self.YAML, "check")
        self.assertEqual(rc, 1, out)
        self.assertIn("missing: hugepages: none reserved (eal.hugepages is on): "
                      "dpdk-hugepages.py -p 2M --reserve 64M --mount", out)
        rc, out = self.setup_cmd(self.YAML, "apply")
        self.assertEqual(rc, 0, out)
        self.assertIn("+ dpdk-hugepages.py -p 2M --reserve 64M --mount", out)
        self.assertIn("hugepages: kept across reboots by ", out)
        self.assertIn("hugepagesz=2M hugepages=32 on the kernel command line", out)
        rc, out = self.setup_cmd(self.YAML, "check")
        self.assertEqual(rc, 0, out)
        self.reserved_and_reported(out)
        self.kept_across_reboots()
        self.assertIn("ready:", out)
        # again: a large enough reservation is left alone
        rc, out = self.setup_cmd(self.YAML, "apply")
        self.assertEqual(rc, 0, out)
        self.assertIn("hugepages: 32 of 2M already reserved (need 32)", out)

    def test_apply_without_dpdk_hugepages_py(self):
        """The appliance image's case: no python, no dpdk package."""
        bin_ = self.dir / "bin"
        bin_.mkdir()
        for tool in ("sh", "sed", "awk", "cat", "grep", "tr", "head", "wc", "find", "basename",
                     "dirname", "readlink", "uname", "id", "mkdir", "mount", "lspci", "sort", "mv", "rm"):
            where = shutil.which(tool)
            if where:
                (bin_ / tool).symlink_to(where)
        rc, out = self.setup_cmd(self.YAML, "apply", path=str(bin_))
        self.assertEqual(rc, 0, out)
        self.assertIn("dpdk-hugepages.py not found (Debian package dpdk): writing 32 to "
                      f"{HP2M}/nr_hugepages instead", out)
        self.reserved_and_reported(out)
        self.kept_across_reboots()
        if not self.mounts:
            self.assertIn("+ mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages", out)


if __name__ == "__main__":
    unittest.main()
