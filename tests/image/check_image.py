#!/usr/bin/python3
"""The appliance image, end to end (docs/image.md). Output: TAP.

    tests/image/check_image.py --deb sluice_*.deb [--keep]

  1. image/build: sluice.raw and sluice.qcow2 from the package (the .debs
     it downloads cached in $SLUICE_IMAGE_CACHE, default
     /var/cache/sluice-ci/image);
  2. the disk: a GPT with the EFI system partition and the root partition;
     the qcow2 a valid image of the same size; no certificate or key in it
     (each appliance makes its own);
  3. a copy of the raw image with a sluice.yaml in its EFI partition's
     sluice/ folder (written with mtools, no mount), booted by qemu with
     UEFI firmware (OVMF), a serial console to a file and user-mode
     networking: the guest's port 25 forwarded from a loopback port, the
     host's loopback reached from the guest as 10.0.2.2;
  4. through it: a real Postfix started here (tests/integration/harness.py)
     behind sluice in the guest; swaks sends a message with STARTTLS to the
     forwarded port and it lands in Postfix's Maildir; the certificate
     sluice presents was made by the guest at its first boot (CN=sluice);
     the serial console shows the first-boot step and a login prompt;
  5. the native stack's set-up (man sluice-setup): the guest boots with
     qemu's IOMMU (intel-iommu; the image's boot entry carries
     intel_iommu=on iommu=pt) and a second NIC, an e1000e at 0000:00:05.0 on a
     user network of its own; over a root shell on the second serial port
     (an autologin getty written into the copy's root file system with
     debugfs, for this test only) `sluice-setup check` finds the IOMMU and
     the NIC and says the binding and the hugepages are missing (exit 1),
     `sluice-setup apply --force` loads vfio-pci, binds the NIC with
     driverctl and reserves hugepages through sysfs (the image has no
     python, so no dpdk-hugepages.py), and `check` then says ready (exit 0);
     then a second sluice runs its native stack on that NIC (DPDK's e1000
     driver on vfio-pci) and stops cleanly on SIGINT.

qemu runs under TCG (software emulation): KVM is used only where
SLUICE_IMAGE_KVM=1 says the host's works. Everything made is removed.
"""

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO / "tests" / "integration"))
sys.path.insert(0, str(REPO / "tests" / "package"))
import harness  # noqa: E402
from check_package import Tap, sh  # noqa: E402  (the TAP output and the runner)

CACHE = Path(os.environ.get("SLUICE_IMAGE_CACHE", "/var/cache/sluice-ci/image"))
OVMF_CODE, OVMF_VARS = "/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"
MiB = 1 << 20
BOOT_TIMEOUT = 420

NIC = "0000:00:05.0"         # the e1000e's address (-device ...,addr=0x5)
# The native stack on that NIC, for sluice-setup and a second sluice started
# by hand (the service's sluice serves the kernel-stack VM_CONFIG): 64 MiB
# of hugepages, its own control socket.
NATIVE_CONFIG = f"""\
hostname: sluice
user: sluice
cores: 1
workers: 1
log: stderr
control: {{dataplane_socket: /run/sluice-native/dataplane.sock}}
backends:
  - {{name: pf, protocol: smtp, servers: ["192.0.2.1:10026"]}}
listeners:
  - {{name: smtp, address: "192.0.2.10:25", protocol: smtp, tls: starttls, backend: pf}}
native:
  eal: {{memory_mb: 64}}
  ports:
    - {{device: "{NIC}", ipv4: 192.0.2.10/24}}
"""
# A root shell on ttyS1 for the test (never in the appliance itself).
AUTOLOGIN = """\
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %I $TERM
"""

VM_CONFIG = """\
# the image test's sluice (tests/image/check_image.py): port 25 of the
# guest, Postfix on the host's loopback (10.0.2.2 from the guest) behind it
user: sluice
cores: 1
workers: 1
log: stderr
cert_sets:
  - name: host
    certs:
      - {cert: /etc/sluice/sluice.pem, key: /etc/sluice/sluice.key}
backends:
  - {name: postfix, protocol: smtp, proxy: v2, servers: ["10.0.2.2:10026"],
     health_interval: 5}
listeners:
  - {name: smtp, address: "0.0.0.0:25", protocol: smtp, tls: starttls,
     backend: postfix, cert_sets: [host]}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def partitions(raw):
    import json
    rc, out = sh(["sfdisk", "--json", raw])
    return json.loads(out)["partitiontable"] if rc == 0 else None


def root_files(raw, part, work):
    """`debugfs` listings of /etc/sluice in the root partition (copied out
    sparsely: debugfs reads a file system image, not a disk)."""
    img = work / "root.img"
    sh(["dd", f"if={raw}", f"of={img}", "bs=512", f"skip={part['start']}",
        f"count={part['size']}", "conv=sparse", "status=none"])
    rc, out = sh(["debugfs", "-R", "ls -l /etc/sluice", img])
    img.unlink(missing_ok=True)
    return out if rc == 0 else ""


def dd_part(src, dst, off, size, back=False):
    """Copy size bytes at off of src out to dst, or (back) dst's back into src."""
    io = ([f"if={dst}", f"of={src}", f"seek={off}", "oflag=seek_bytes", "conv=notrunc,sparse"]
          if back else [f"if={src}", f"of={dst}", f"skip={off}", f"count={size}",
                        "iflag=skip_bytes,count_bytes", "conv=sparse"])
    return sh(["dd", "bs=4M", "status=none", *io])


def add_test_shell(boot, part, work):
    """An autologin root getty on ttyS1 written into the boot copy's root
    file system with debugfs -w (no mount, no loop device)."""
    img, dropin, cmds = work / "root-rw.img", work / "autologin.conf", work / "debugfs.cmds"
    off, size = part["start"] * 512, part["size"] * 512
    dropin.write_text(AUTOLOGIN)
    d = "/etc/systemd/system/serial-getty@ttyS1.service.d"
    cmds.write_text(f"mkdir {d}\nwrite {dropin} {d}/autologin.conf\n"
                    "symlink /etc/systemd/system/getty.target.wants/serial-getty@ttyS1.service "
                    "/lib/systemd/system/serial-getty@.service\n")
    out = ""
    for step in (lambda: dd_part(boot, img, off, size),
                 lambda: sh(["debugfs", "-w", "-f", cmds, img]),
                 lambda: sh(["debugfs", "-R", f"ls -l {d}", img]),
                 lambda: dd_part(boot, img, off, size, back=True)):
        rc, o = step()
        out += o
        if rc != 0:
            break
    img.unlink(missing_ok=True)
    return rc == 0 and "autologin.conf" in out, out


def boot_options(boot, off, wanted):
    """Does the boot entry's kernel command line carry wanted (mtools)?"""
    entry = "::/loader/entries/sluice.conf"
    rc, text = sh(["mtype", "-i", f"{boot}@@{off}", entry])
    opts = [line for line in text.splitlines() if line.startswith("options ")]
    return rc == 0 and len(opts) == 1 and f" {wanted} " in opts[0] + " ", text


class SerialShell:
    """The root shell on the guest's ttyS1 (qemu's unix socket): run a
    command, get its output and exit status."""

    def __init__(self, path, timeout):
        deadline = time.monotonic() + timeout
        self.buf = ""
        while True:
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(str(path))
                break
            except OSError:
                self.s.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def read_until(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = re.sub(r"\x1b\[[0-9;=?]*[A-Za-z]|\r", "", self.buf)
            m = re.search(pattern, text)
            if m:
                self.buf = ""
                return text, m
            self.s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                got = self.s.recv(65536)
            except socket.timeout:
                continue
            if not got:
                break
            self.buf += got.decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;=?]*[A-Za-z]|\r", "", self.buf), None

    def login(self, timeout):
        """Wait for the autologin shell: prod it until it answers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.s.sendall(b"echo shell-$((6*7))\n")
            text, m = self.read_until(r"shell-42", 5)
            if m:
                return True, text
        return False, text

    def run(self, cmd, timeout=120):
        self.s.sendall(f'{cmd}; echo "@@rc=$?@@"\n'.encode())
        text, m = self.read_until(r"@@rc=(\d+)@@", timeout)
        return (int(m.group(1)) if m else None), text


def banner(port, timeout):
    """The first line a connection to port gets, or None by the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 5) as s:
                s.settimeout(10)
                line = s.makefile("rb").readline().decode(errors="replace")
                if line.startswith("220"):
                    s.sendall(b"QUIT\r\n")
                    return line.strip()
        except OSError:
            pass
        time.sleep(3)
    return None


def native_setup(t, ttys1):
    """sluice-setup check, apply, check in the guest (docstring, step 5)."""
    t1 = time.monotonic()
    sh_ = SerialShell(ttys1, 30)
    ok, text = sh_.login(60)
    if not t.case("a root shell on the guest's ttyS1", ok, text[-2000:]):
        return
    cfg = "-c /boot/efi/sluice/native.yaml"
    rc, out = sh_.run(f"sluice-setup check {cfg}")
    t.case("sluice-setup check in the guest: the IOMMU on, the e1000e found on its kernel "
           "driver, the binding and the hugepages missing, exit 1",
           rc == 1 and re.search(r"ok: IOMMU: on, \d+ groups", out)
           and f"info: NIC {NIC}: [8086:10d3]" in out
           and re.search(rf"missing: NIC {NIC}: bound to the kernel's e1000e \(interface \w+\), "
                         rf"not vfio-pci: driverctl set-override {NIC} vfio-pci", out)
           and re.search(rf"ok: NIC {NIC}: IOMMU group \d+", out)
           and "missing: vfio-pci: available but not loaded" in out
           and "ok: DPDK: the drivers in" in out
           and f"ok: NIC {NIC}: DPDK driver net_e1000_em (librte_net_e1000.so" in out
           and "missing: hugepages: none reserved" in out, out)
    rc, out = sh_.run(f"sluice-setup apply --force {cfg}", timeout=180)
    t.case("sluice-setup apply --force: modprobe vfio-pci, driverctl set-override, "
           "hugepages through sysfs (no dpdk-hugepages.py in the image), exit 0",
           rc == 0 and "+ modprobe vfio-pci" in out
           and f"+ driverctl set-override {NIC} vfio-pci" in out
           and "dpdk-hugepages.py not found (Debian package dpdk): writing 32 to" in out, out)
    rc, out = sh_.run(f"sluice-setup check {cfg}")
    rc2, facts = sh_.run(f"readlink /sys/bus/pci/devices/{NIC}/driver; "
                         "cat /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages; "
                         f"cat /etc/driverctl.d/pci-{NIC}; "
                         "grep -v '^#' /etc/tmpfiles.d/sluice-hugepages.conf")
    t.case("sluice-setup check again: the NIC on vfio-pci (as sysfs and driverctl's "
           "saved override say), 32 hugepages kept for the next boot (tmpfiles.d), "
           "ready, exit 0",
           rc == 0 and f"ok: NIC {NIC}: bound to vfio-pci" in out
           and "ok: hugepages: 32 of 2M reserved" in out and "ready:" in out
           and "missing:" not in out and rc2 == 0
           and re.search(r"drivers/vfio-pci\n32\nvfio-pci\n"
                         r"w /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages - - - - 32",
                         facts), out + facts)
    rc, out = sh_.run("mkdir -m 0750 -p /run/sluice-native; "
                      f"sluice {cfg} >/tmp/native.log 2>&1 & "
                      "for i in $(seq 90); do grep -q -e 'started:' -e '^sluice: ' "
                      "/tmp/native.log && break; sleep 1; done; cat /tmp/native.log", timeout=150)
    started = "native stack" in out and "started:" in out
    # a few seconds for the first probe round (ARP for the backend), then stop
    rc, end = sh_.run("sleep 3; kill -INT %1; wait %1; echo exit=$?; cat /tmp/native.log",
                      timeout=90)
    t.case("sluice runs its native stack on the NIC sluice-setup bound: DPDK's e1000 "
           "driver over vfio-pci and qemu's IOMMU, frames sent, a clean exit on SIGINT",
           started and f"Probe PCI driver: net_e1000_em (8086:10d3) device: {NIC}" in out
           and f"native port {NIC} (port 0, net_e1000_em)" in out
           and "exit=0" in end and "drain: done" in end
           and re.search(r"nat_tx_frames=[1-9]", end), out + end)
    t.note(f"sluice-setup and the native sluice in the guest: {time.monotonic() - t1:.0f} s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--deb", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the images and the serial log")
    a = ap.parse_args()
    t = Tap()
    t0 = time.monotonic()
    if os.geteuid() != 0:
        print("1..1\nnot ok 1 - the image test runs as root (mmdebstrap, file ownership)")
        return 1
    work = Path(tempfile.mkdtemp(prefix="sluice-imagetest-", dir="/var/tmp"))
    qemu = postfix = None
    try:
        rc, out = sh([sys.executable, REPO / "image" / "build", "--deb", a.deb, "--out", work,
                      "--cache", CACHE], timeout=1500)
        raw, qcow = work / "sluice.raw", work / "sluice.qcow2"
        if not t.case("image/build makes sluice.raw and sluice.qcow2",
                      rc == 0 and raw.exists() and qcow.exists(), out[-4000:]):
            return 1
        pt = partitions(raw)
        parts = (pt or {}).get("partitions", [])
        types = [p.get("type") for p in parts]
        t.case("the raw disk: GPT, an EFI system partition then the root partition",
               pt and pt.get("label") == "gpt" and types == [
                   "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                   "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"], str(pt))
        rc, out = sh(["qemu-img", "info", "--output=json", qcow])
        import json
        info = json.loads(out) if rc == 0 else {}
        t.case("sluice.qcow2: a qcow2 image of the raw disk's size",
               info.get("format") == "qcow2" and info.get("virtual-size") == raw.stat().st_size,
               out)
        listing = root_files(raw, parts[1], work) if len(parts) == 2 else ""
        t.case("the image holds the package's configuration and no certificate or key "
               "(each appliance makes its own)",
               "sluice.yaml" in listing and "sluice.key" not in listing
               and "sluice.pem" not in listing, listing)

        # the operator's configuration, in the EFI partition, no mount
        boot = work / "boot.raw"
        sh(["cp", "--sparse=always", raw, boot])
        (work / "sluice.yaml").write_text(VM_CONFIG)
        off = parts[0]["start"] * 512
        rc, out = sh(["mcopy", "-o", "-i", f"{boot}@@{off}", work / "sluice.yaml",
                      "::/sluice/sluice.yaml"])
        t.case("mcopy puts sluice.yaml into the EFI partition's sluice/ folder", rc == 0, out)
        # for sluice-setup: a native configuration, the IOMMU on, a shell
        (work / "native.yaml").write_text(NATIVE_CONFIG)
        rc, out = sh(["mcopy", "-o", "-i", f"{boot}@@{off}", work / "native.yaml",
                      "::/sluice/native.yaml"])
        ok, text = boot_options(boot, off, "intel_iommu=on iommu=pt")
        shell_ok, shell_out = add_test_shell(boot, parts[1], work)
        t.case("the image's boot entry turns the IOMMU on (intel_iommu=on iommu=pt); the "
               "test's copy: native.yaml in the EFI partition, a root shell on ttyS1 (debugfs)",
               rc == 0 and ok and shell_ok, out + text + shell_out)

        postfix = harness.Postfix(work / "postfix").start()
        port = free_port()
        vars_ = work / "OVMF_VARS.fd"
        shutil.copy(OVMF_VARS, vars_)
        serial, ttys1 = work / "serial.log", work / "ttyS1.sock"
        accel = "kvm" if os.environ.get("SLUICE_IMAGE_KVM") == "1" else "tcg"
        # Debian's DPDK needs x86-64-v2 (SSE4.2, POPCNT), which TCG's
        # default qemu64 model lacks: sluice would die of SIGILL at load
        # qemu's IOMMU first (before the PCI devices it translates for);
        # interrupt remapping without x2APIC's extended mode, which TCG lacks
        cmd = ["qemu-system-x86_64", "-machine",
               f"q35,accel={accel}" + (",kernel-irqchip=split" if accel == "kvm" else ""),
               "-cpu", "host" if accel == "kvm" else "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt",
               "-device", "intel-iommu,intremap=on,eim=off",
               "-netdev", "user,id=n1,net=198.51.100.0/24,restrict=on",
               "-device", "e1000e,netdev=n1,addr=0x5",
               "-device", "virtio-rng-pci", "-m", "1024",
               "-smp", "2", "-display", "none", "-vga", "none", "-monitor", "none",
               "-serial", f"file:{serial}", "-serial", f"unix:{ttys1},server=on,wait=off",
               "-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
               "-drive", f"if=pflash,format=raw,file={vars_}",
               "-drive", f"file={boot},format=raw,if=virtio",
               "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:25",
               "-device", "virtio-net-pci,netdev=n0"]
        print("# + " + " ".join(cmd), flush=True)
        qemu = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        tb = time.monotonic()
        line = banner(port, BOOT_TIMEOUT)
        boot_s = time.monotonic() - tb
        text = serial.read_text(errors="replace") if serial.exists() else ""
        if not t.case(f"the image boots under qemu ({accel}, UEFI) and sluice greets on "
                      "port 25", line is not None,
                      f"no 220 in {BOOT_TIMEOUT} s; serial console:\n{text[-4000:]}"):
            return 1
        t.note(f"first banner {boot_s:.0f} s after qemu started: {line}")

        msg_id = harness.message_id(harness.unique("image"))
        rc, out = sh(["swaks", "--server", "127.0.0.1", "--port", str(port), "--tls",
                      "--ehlo", "client.test", "--from", "sender@example.org",
                      "--to", harness.recipient("image"),
                      "--header", f"Message-Id: {msg_id}", "--body", "through the appliance",
                      "--timeout", "60"], timeout=120)
        t.case("swaks: STARTTLS through the appliance, 250 for the message",
               rc == 0 and "250" in out, out[-3000:])
        got = postfix.maildir_messages(containing=msg_id.encode(), count=1, timeout=30)
        t.case("the message is in Postfix's Maildir on the host", bool(got),
               postfix.log()[-2000:])

        rc, out = sh(["openssl", "s_client", "-starttls", "smtp", "-connect",
                      f"127.0.0.1:{port}", "-brief"], input=b"QUIT\r\n", timeout=60)
        t.case("the certificate was made by the guest at its first boot (CN = sluice)",
               "CN = sluice" in out or "CN=sluice" in out, out[-2000:])
        def console():
            """The serial log without the terminal's escape sequences."""
            raw_text = serial.read_text(errors="replace")
            return re.sub(r"\x1b\[[0-9;=?]*[A-Za-z]", "", raw_text)

        text = console()
        t.case("the serial console: the first-boot step read the EFI partition's "
               "sluice.yaml", "configuration from /boot/efi/sluice/sluice.yaml" in text
               or "sluice-firstboot" in text, text[-3000:])
        harness.poll(lambda: "sluice login:" in console(), 90)
        text = console()
        t.case("the serial console: a login prompt", "sluice login:" in text, text[-3000:])
        native_setup(t, ttys1)
    except Exception as e:
        t.case("the image test ran to its end", False, repr(e))
    finally:
        if qemu:
            qemu.kill()
            qemu.wait(10)
        if postfix:
            postfix.stop()
        if a.keep:
            t.note(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        print(f"1..{t.n}")
        t.note(f"image test: {time.monotonic() - t0:.0f} s")
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
